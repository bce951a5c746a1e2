// Permission scopes (docs/API.md "Scopes"). `tunnels:*` is a grant that expands to the four tunnel scopes;
// a session is a tunnel.

export const SCOPES = [
  'tunnels:read',
  'tunnels:write',
  'tunnels:delete',
  'tunnels:stats',
  'analytics:read',
  'logs:read',
  'alerts:read',
  'alerts:write',
  'account:read',
  'account:write',
  'billing:read',
  'keys:manage',
  'admin:read',
  'admin:write',
  'users:manage',
  'org:manage',
] as const;
export type Scope = (typeof SCOPES)[number];

export const TUNNEL_WILDCARD = 'tunnels:*';
/** What a key may hold: a scope or the tunnel wildcard. */
export type Permission = Scope | typeof TUNNEL_WILDCARD;
export const PERMISSIONS: readonly Permission[] = [...SCOPES, TUNNEL_WILDCARD];

const TUNNEL_SCOPES: readonly Scope[] = ['tunnels:read', 'tunnels:write', 'tunnels:delete', 'tunnels:stats'];
const ADMIN_SCOPES: ReadonlySet<Scope> = new Set(['admin:read', 'admin:write']);

/** What a token from signup or login holds: every non-admin scope. */
export const USER_SCOPES: readonly Scope[] = SCOPES.filter((s) => !ADMIN_SCOPES.has(s));

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}

export function expand(permissions: readonly string[]): Set<Scope> {
  const scopes = new Set<Scope>();
  for (const p of permissions) {
    if (p === TUNNEL_WILDCARD) TUNNEL_SCOPES.forEach((s) => scopes.add(s));
    else if (isScope(p)) scopes.add(p);
  }
  return scopes;
}

export function grants(permissions: readonly string[], required: Scope): boolean {
  return expand(permissions).has(required);
}

/** The first scope in `requested` that `held` does not grant, or undefined when all are covered. */
export function firstMissing(held: readonly string[], requested: readonly string[]): Scope | undefined {
  const heldScopes = expand(held);
  for (const scope of expand(requested)) if (!heldScopes.has(scope)) return scope;
  return undefined;
}
