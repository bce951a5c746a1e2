// Cursor pagination for list endpoints (docs/API.md "Conventions"): `?limit=` (default 50, at most 200)
// and `?cursor=` in, `next_cursor` (null on the last page) out. A cursor is opaque to clients: the
// sort position (time, id) of the last item returned, so a page stays correct while items come and go.
import { invalidRequest } from './errors.js';
import { z } from './openapi.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  cursor: z.string().max(200).optional().openapi({ description: 'next_cursor of the previous page' }),
});

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

interface Position {
  at: number;
  id: string;
}

const encode = (p: Position) => Buffer.from(`${p.at}.${p.id}`).toString('base64url');

function decode(cursor: string): Position {
  const match = /^(\d{1,16})\.([0-9A-Za-z_]{1,100})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw invalidRequest('cursor', 'cursor: not a cursor this list gave out.');
  return { at: Number(match[1]), id: match[2]! };
}

/**
 * One page of `items`, which must already be sorted by (position.at, position.id) in `order`. The
 * page starts after the cursor's position.
 */
export function paginate<T>(
  items: readonly T[],
  positionOf: (item: T) => Position,
  order: 'asc' | 'desc',
  query: { limit: number; cursor?: string | undefined },
): Page<T> {
  const sign = order === 'asc' ? 1 : -1;
  const after = query.cursor === undefined ? undefined : decode(query.cursor);
  const compare = (a: Position, b: Position) =>
    sign * (a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const rest = after ? items.filter((item) => compare(positionOf(item), after) > 0) : items;
  const page = rest.slice(0, query.limit);
  const last = page.at(-1);
  return {
    items: page,
    nextCursor: rest.length > query.limit && last !== undefined ? encode(positionOf(last)) : null,
  };
}
