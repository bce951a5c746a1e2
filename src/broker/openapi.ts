// OpenAPI 3.1 generated from the same zod schemas that validate requests (zod-to-openapi): every
// route defined with defineRoute() registers itself here, so the document cannot drift from the code.
import { OpenAPIRegistry, OpenApiGeneratorV31, extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ERRORS } from './errors.js';

extendZodWithOpenApi(z);

export { z };

export const ErrorBody = z
  .object({
    error: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...(keyof typeof ERRORS)[]]),
    message: z.string(),
    code: z.number().int(),
    field: z.string().optional(),
    required_scope: z.string().optional(),
    required_tier: z.string().optional(),
    retry_after: z.number().int().optional(),
  })
  .openapi('Error');

export const BEARER_SCHEME = 'bearer';
/** An exit node's enrollment token (docs/API.md "Exit nodes"). */
export const NODE_SCHEME = 'node';

export function createOpenApiRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', BEARER_SCHEME, {
    type: 'http',
    scheme: 'bearer',
    description: 'tb_ + 32 base62 characters + 6-character checksum',
  });
  registry.registerComponent('securitySchemes', NODE_SCHEME, {
    type: 'http',
    scheme: 'bearer',
    description: 'an exit node’s enrollment token: tbn_ + 32 base62 characters + 6-character checksum',
  });
  registry.register('Error', ErrorBody);
  return registry;
}

/** `delete /v1/sessions/{id}` → `deleteV1SessionsId`: one per method and path, for code generators. */
const operationId = (method: string, path: string) =>
  method +
  path
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word[0]!.toUpperCase() + word.slice(1))
    .join('');

export function generateDocument(registry: OpenAPIRegistry): object {
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'tunnelbyte API',
      version: '1',
      description: 'Accounts, keys, regions, sessions, usage, IP attribution and exit nodes (docs/API.md).',
    },
    servers: [{ url: '/' }],
  });
  for (const [path, operations] of Object.entries(document.paths ?? {}))
    for (const [method, operation] of Object.entries(operations as Record<string, { operationId?: string }>))
      operation.operationId ??= operationId(method, path);
  return document;
}
