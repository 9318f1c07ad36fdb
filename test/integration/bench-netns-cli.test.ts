// `ferry bench --netns` refuses cleanly where it cannot run: with a --suite list that leaves out
// open, and (run as root, through `runuser`) as an unprivileged user; both exit 2 with the reason
// before anything is measured, and leave no namespace behind. The unprivileged run uses a copy of
// the compiled CLI in a folder everyone may enter: the checkout may sit where the unprivileged
// user cannot (root's home, a `mktemp -d` folder). The measurement itself is not a
// test (benchmarks are not asserted, STYLE.md §14); CI's bench smoke runs it as root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

async function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(cmd, args, { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, out, err };
}

const hasRunuser = (): boolean => {
  try {
    execFileSync('runuser', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

test('ferry bench --netns refuses without the open suite, and without root', async () => {
  const r = await run(process.execPath, [MAIN, 'bench', '--suite', 'throughput', '--netns']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--netns adds to the open suite/);
  assert.equal(r.out, '');

  if (process.getuid?.() !== 0 || !hasRunuser()) return;
  const copy = await mkdtemp(join(tmpdir(), 'ferry-cli-copy-'));
  try {
    for (const d of ['src', 'bench']) await cp(fileURLToPath(new URL(`../../${d}`, import.meta.url)), join(copy, 'dist', d), { recursive: true });
    await writeFile(join(copy, 'package.json'), JSON.stringify({ type: 'module' }));
    execFileSync('chmod', ['-R', 'a+rX', copy]);
    await chmod(copy, 0o755);
    await checkUnprivileged(join(copy, 'dist', 'src', 'cli', 'main.js'));
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});

async function checkUnprivileged(main: string): Promise<void> {
  const u = await run('runuser', ['-u', 'nobody', '--', process.execPath, main, 'bench', '--suite', 'open', '--netns', '--quick']);
  assert.equal(u.code, 2, u.err);
  assert.match(u.err, /^ferry bench: --netns: network namespaces need root \(this process runs as uid \d+\); run without --netns/);
  assert.equal(u.out, '', 'nothing measured');
}
