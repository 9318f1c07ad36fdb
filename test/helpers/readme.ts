/**
 * Code blocks of README.md, for tests that run the README's examples as written so the two
 * cannot drift: the first fenced block of a language under a given heading.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/…). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The first ```lang block after the line `heading` in README.md; throws if there is none. */
export function readmeBlock(heading: string, lang: string): string {
  const text = readFileSync(new URL('README.md', `file://${REPO_ROOT}`), 'utf8');
  const at = text.split('\n').findIndex((l) => l.trim() === heading);
  if (at < 0) throw new Error(`README.md has no heading ${JSON.stringify(heading)}`);
  const rest = text.split('\n').slice(at + 1).join('\n');
  const m = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```', 'm').exec(rest);
  if (!m) throw new Error(`README.md has no \`\`\`${lang} block under ${JSON.stringify(heading)}`);
  return m[1]!;
}
