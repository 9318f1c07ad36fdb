/**
 * Code blocks of README.md, for tests that run the README's examples as written so the two
 * cannot drift: the first fenced block of a language under a given heading.
 */
import { readFileSync, readdirSync } from 'node:fs';
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

/**
 * Run a README shell block as a user would in a terminal: bash with job control on a pty
 * (`script`), so `cmd &` jobs get their own process groups and `kill %1` stops a whole job, npx
 * and the node it started. Every process it starts carries `marker` in its environment, so
 * {@link killMarked} can clean up after a block that failed half-way.
 */
export function shellBlockCommand(file: string): [string, string[]] {
  return ['script', ['-qec', `bash -m -e ${file}`, '/dev/null']];
}

/** The processes of ours whose environment holds `name=value` (Linux /proc). */
export function markedPids(name: string, value: string): number[] {
  const want = `${name}=${value}`;
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (Number(pid) === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours
    }
    if (env.split('\0').includes(want)) pids.push(Number(pid));
  }
  return pids;
}

/** SIGKILL every process {@link markedPids} finds; returns how many were still running. */
export function killMarked(name: string, value: string): number {
  let killed = 0;
  for (const pid of markedPids(name, value)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // exited meanwhile
    }
  }
  return killed;
}
