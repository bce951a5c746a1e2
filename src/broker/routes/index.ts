// Every route module of the broker, in mount order. A module registers its endpoints with
// defineRoute(ctx, router, {...}); add a line here to mount a new one.
import type { Router } from 'express';
import type { BrokerContext } from '../context.js';
import { adminRoutes } from './admin.js';
import { authRoutes } from './auth.js';
import { billingRoutes } from './billing.js';
import { HEARTBEAT_PATH, nodeRoutes } from './nodes.js';
import { OAUTH_FORM_PATHS, oauthRoutes } from './oauth.js';
import { publicRoutes } from './public.js';
import { sessionRoutes } from './sessions.js';
import { systemRoutes } from './system.js';
import { usageRoutes } from './usage.js';
import { isWebFormPath, webRoutes } from './web.js';

export type RouteModule = (ctx: BrokerContext, router: Router) => void;

export const ROUTE_MODULES: RouteModule[] = [
  systemRoutes,
  publicRoutes,
  authRoutes,
  billingRoutes,
  adminRoutes,
  sessionRoutes,
  usageRoutes,
  nodeRoutes,
  oauthRoutes,
  // Last: a browser's request that no route above took gets the pages' 404 page.
  webRoutes,
];

/** A request path as Express's router matches it: any case, one optional trailing slash. */
export const routedPath = (path: string) => path.toLowerCase().replace(/(.)\/$/, '$1');

/** Paths that take application/x-www-form-urlencoded bodies (OAuth endpoints and the pages' forms). */
export const acceptsForm = (path: string) => {
  const routed = routedPath(path);
  return OAUTH_FORM_PATHS.includes(routed) || isWebFormPath(routed);
};

/** Paths whose route parses its JSON body itself, after authentication (the node heartbeat). */
export const readsOwnBody = (path: string) => HEARTBEAT_PATH.test(routedPath(path));
