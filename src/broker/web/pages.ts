// The pages: sign-in, consent, account and a plain message page, in one layout. Every form posts to
// the broker with the CSRF token of the sign-in (or of the sign-in form itself) in a hidden field.
import type { Scope } from '../scopes.js';
import { formatBytes, formatIso, formatTime } from './format.js';
import { html, type Html } from '../../lib/html.js';

export const STYLESHEET_PATH = '/assets/tunnelbyte.css';

/** What each scope lets an app do, in the words the consent page uses. */
const SCOPE_WORDS: Record<Scope, string> = {
  'tunnels:read': 'See your tunnel sessions',
  'tunnels:write': 'Open tunnel sessions for you',
  'tunnels:delete': 'Close your tunnel sessions',
  'tunnels:stats': 'See traffic statistics of your sessions',
  'analytics:read': 'See your usage and limits',
  'logs:read': 'Read your request logs',
  'alerts:read': 'See your alert settings',
  'alerts:write': 'Change your alert settings',
  'account:read': 'See your account: email, plan and usage totals',
  'account:write': 'Change your account settings and authorized apps',
  'billing:read': 'See your billing information',
  'keys:manage': 'Create and revoke API keys (never with more access than this app has)',
  'admin:read': 'Read operator data',
  'admin:write': 'Change operator settings',
  'users:manage': 'Manage team users',
  'org:manage': 'Manage your organization',
};

export interface Layout {
  title: string;
  /** Signed-in email (shows the account link and the sign-out button). */
  signedIn?: { email: string; csrf: string };
  narrow?: boolean;
}

export function page(layout: Layout, body: Html): string {
  const nav = layout.signedIn
    ? html`<nav class="nav">
        <span class="who">${layout.signedIn.email}</span>
        <a href="/account">Account</a>
        <form method="post" action="/logout" class="inline">
          <input type="hidden" name="csrf" value="${layout.signedIn.csrf}" /><button
            class="link"
            type="submit"
          >
            Sign out
          </button>
        </form>
      </nav>`
    : '';
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>${layout.title} · tunnelbyte</title>
        <link rel="stylesheet" href="${STYLESHEET_PATH}" />
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/account"><span class="mark" aria-hidden="true"></span>tunnelbyte</a>${nav}
        </header>
        <main class="${layout.narrow ? 'narrow' : 'wide'}">${body}</main>
        <footer class="foot">tunnelbyte · WireGuard exits</footer>
      </body>
    </html> `.text;
}

const hidden = (fields: Record<string, string | undefined>) =>
  Object.entries(fields).map(([name, value]) =>
    value === undefined ? '' : html`<input type="hidden" name="${name}" value="${value}" />`,
  );

export function loginPage(input: {
  csrf: string;
  next: string;
  email?: string;
  error?: string;
  notice?: string;
}): string {
  return page(
    { title: 'Sign in', narrow: true },
    html`<section class="card">
      <h1>Sign in to tunnelbyte</h1>
      <p class="muted">With the email and password of your paid account.</p>
      ${input.error ? html`<p class="alert" role="alert">${input.error}</p>` : ''}
      ${input.notice ? html`<p class="notice" role="status">${input.notice}</p>` : ''}
      <form method="post" action="/login" class="stack">
        ${hidden({ csrf: input.csrf, next: input.next })}
        <label
          >Email<input
            type="email"
            name="email"
            autocomplete="username"
            required
            maxlength="254"
            value="${input.email ?? ''}"
            autofocus
        /></label>
        <label
          >Password<input
            type="password"
            name="password"
            autocomplete="current-password"
            required
            maxlength="1024"
        /></label>
        <button type="submit" class="primary">Sign in</button>
      </form>
    </section>`,
  );
}

export function consentPage(input: {
  signedIn: { email: string; csrf: string };
  clientName: string;
  /** A user registered the app (anyone can name theirs like tunnelbyte's own). */
  thirdParty: boolean;
  redirectHost: string;
  scopes: Scope[];
  params: Record<string, string | undefined>;
  /** Set when the account may not authorize apps: only Deny is offered. */
  refusal?: string;
}): string {
  const scopes = input.scopes.map((s) => html`<li><span class="scope">${s}</span>${SCOPE_WORDS[s]}</li>`);
  return page(
    { title: `Authorize ${input.clientName}`, signedIn: input.signedIn, narrow: true },
    html`<section class="card">
      <h1><span class="app">${input.clientName}</span> wants to use your tunnelbyte account</h1>
      ${input.thirdParty ? html`<p><strong>Made by a tunnelbyte user, not by tunnelbyte.</strong></p>` : ''}
      <p class="muted">
        Signed in as <strong>${input.signedIn.email}</strong>. After you decide, you go back to
        <strong>${input.redirectHost}</strong>.
      </p>
      ${
        input.refusal
          ? html`<p class="alert" role="alert">${input.refusal}</p>`
          : html`<h2>It will be able to</h2>
              <ul class="scopes">
                ${scopes}
              </ul>`
      }
      <form method="post" action="/v1/oauth/authorize" class="actions">
        ${hidden({ ...input.params, csrf: input.signedIn.csrf })}
        ${input.refusal ? '' : html`<button type="submit" name="decision" value="allow" class="primary">Allow</button>`}
        <button type="submit" name="decision" value="deny" class="secondary">Deny</button>
      </form>
      <p class="fine">You can revoke this at any time on your account page.</p>
    </section>`,
  );
}

export function messagePage(title: string, message: string, signedIn?: Layout['signedIn']): string {
  return page(
    { title, signedIn, narrow: true },
    html`<section class="card">
      <h1>${title}</h1>
      <p>${message}</p>
      <p><a href="/account">Go to your account</a></p>
    </section>`,
  );
}

// ── the account page ────────────────────────────────────────────────────────────────────────────────

export interface AccountPageData {
  signedIn: { email: string; csrf: string };
  notice?: string;
  plan: string;
  period: { start: string; end: string };
  bytes: { used: number; limit: number | null };
  sessions: { active: number; limit: number };
  requestsPerMinute: number;
  chart: Html;
  open: {
    id: string;
    region: string;
    node: string;
    since: string;
    bytes: number;
    lastHandshake: string | null;
    status: string;
  }[];
  keys: { id: string; name: string; masked: string; created: number; lastUsed: number | null }[];
  apps: { clientId: string; name: string; scopes: string[]; granted: string; lastUsed: string }[];
}

const button = (action: string, label: string, csrf: string, confirmText: string) =>
  html`<form method="post" action="${action}" class="inline">
    <input type="hidden" name="csrf" value="${csrf}" /><button
      type="submit"
      class="danger small"
      aria-label="${confirmText}"
    >
      ${label}
    </button>
  </form>`;

function table(headers: string[], rows: Html[], empty: string): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<div class="scroll">
    <table>
      <thead>
        <tr>
          ${headers.map((h) => html`<th scope="col">${h}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`;
}

export function accountPage(d: AccountPageData): string {
  const csrf = d.signedIn.csrf;
  const used = d.bytes.limit === null ? null : Math.min(d.bytes.used, d.bytes.limit);
  const quota =
    d.bytes.limit === null || used === null
      ? html`<p class="big">${formatBytes(d.bytes.used)}</p>
          <p class="muted">Unlimited on your plan</p>`
      : html`<p class="big">
            ${formatBytes(d.bytes.used)} <span class="muted">of ${formatBytes(d.bytes.limit)}</span>
          </p>
          <progress max="${d.bytes.limit}" value="${used}">
            ${Math.round((used / Math.max(1, d.bytes.limit)) * 100)}%
          </progress>`;
  const sessions = d.open.map(
    (s) =>
      html`<tr>
        <td data-label="Region">${s.region}</td>
        <td data-label="Node"><code>${s.node}</code></td>
        <td data-label="Since">${formatIso(s.since)}</td>
        <td data-label="Traffic">${formatBytes(s.bytes)}</td>
        <td data-label="Last handshake">${formatIso(s.lastHandshake)}</td>
        <td data-label="Status"><span class="pill ${s.status}">${s.status}</span></td>
        <td>
          ${button(`/account/sessions/${encodeURIComponent(s.id)}/close`, 'Close', csrf, `Close session ${s.id}`)}
        </td>
      </tr>`,
  );
  const keys = d.keys.map(
    (k) =>
      html`<tr>
        <td data-label="Name">${k.name}</td>
        <td data-label="Key"><code>${k.masked}</code></td>
        <td data-label="Created">${formatTime(k.created)}</td>
        <td data-label="Last used">${k.lastUsed === null ? 'never' : formatTime(k.lastUsed)}</td>
        <td>
          ${button(`/account/keys/${encodeURIComponent(k.id)}/revoke`, 'Revoke', csrf, `Revoke key ${k.name}`)}
        </td>
      </tr>`,
  );
  const apps = d.apps.map(
    (a) =>
      html`<tr>
        <td data-label="App">${a.name}</td>
        <td data-label="Scopes">${a.scopes.map((s) => html`<span class="scope">${s}</span> `)}</td>
        <td data-label="Allowed">${formatIso(a.granted)}</td>
        <td data-label="Last used">${formatIso(a.lastUsed)}</td>
        <td>
          ${button(`/account/apps/${encodeURIComponent(a.clientId)}/revoke`, 'Revoke', csrf, `Revoke ${a.name}`)}
        </td>
      </tr>`,
  );
  return page(
    { title: 'Account', signedIn: d.signedIn },
    html`<h1>Your account</h1>
      ${d.notice ? html`<p class="notice" role="status">${d.notice}</p>` : ''}
      <section class="grid">
        <div class="card stat">
          <h2>Plan</h2>
          <p class="big plan">${d.plan}</p>
          <p class="muted">Period ${formatIso(d.period.start)} – ${formatIso(d.period.end)}</p>
        </div>
        <div class="card stat">
          <h2>Traffic this period</h2>
          ${quota}
        </div>
        <div class="card stat">
          <h2>Sessions</h2>
          <p class="big">${d.sessions.active} <span class="muted">of ${d.sessions.limit} open</span></p>
          <p class="muted">${d.requestsPerMinute} API requests per minute</p>
        </div>
      </section>
      <section class="card">
        <h2>Traffic per day</h2>
        ${d.chart}
      </section>
      <section class="card">
        <h2>Open sessions</h2>
        ${table(['Region', 'Node', 'Since', 'Traffic', 'Last handshake', 'Status', ''], sessions, 'No open sessions. Start one with `tunnelbyte connect`.')}
      </section>
      <section class="card">
        <h2>API keys</h2>
        ${table(['Name', 'Key', 'Created', 'Last used', ''], keys, 'No API keys.')}
      </section>
      <section class="card">
        <h2>Authorized apps</h2>
        ${table(['App', 'Scopes', 'Allowed', 'Last used', ''], apps, 'No apps have access to your account.')}
      </section>
      <section class="card signout">
        <form method="post" action="/logout">
          <input type="hidden" name="csrf" value="${csrf}" /><button type="submit" class="secondary">
            Sign out
          </button>
        </form>
      </section>`,
  );
}
