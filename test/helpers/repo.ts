// The repository's root and its documents, for tests that check code against what docs/ says.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A file under docs/, e.g. readDoc('API.md'). */
export const readDoc = (name: string): string => readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');

/** The text of one `## heading` section of a markdown document, up to the next `## `. */
export function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`no section "## ${heading}"`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}
