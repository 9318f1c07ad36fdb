// Scenario: a new user follows README's "Your first agent" in a terminal. The block, extracted
// from README.md and run as written (bash with job control on a pty, from the repository root):
// keys, a policy and two credentials made with `ferry keygen`, `ferry policy init` and
// `ferry credential`; a rendezvous and two hosts in the background; an echo agent and a greeter
// launched on h1; the echo agent moved to h2; `ferry ls` lists it there with the greeter's
// connection; `kill %1 %2 %3` stops everything it started.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { REPO_ROOT, killMarked, markedPids, readmeBlock, shellBlockCommand } from '../helpers/readme.js';

const MARK = 'FERRY_README_RUN';
const mark = randomBytes(8).toString('hex');
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  killMarked(MARK, mark);
  for (const f of cleanups.splice(0)) await f();
});

/** The README's rendezvous port must be free, or the block cannot run as written. */
async function assertUdpPortFree(port: number): Promise<void> {
  const s = createSocket('udp4');
  try {
    s.bind(port, '127.0.0.1');
    await once(s, 'listening');
  } catch (err) {
    assert.fail(`README's block needs UDP 127.0.0.1:${port} free: ${(err as Error).message}`);
  } finally {
    s.close();
  }
}

test("README's first agent block runs as written: launch a pair, move one, ferry ls shows it", async () => {
  const block = readmeBlock('## Your first agent', 'sh');
  const port = Number(/--port (\d+)/.exec(block)?.[1]);
  await assertUdpPortFree(port);
  const tmp = await mkdtemp(join(tmpdir(), 'ferry-first-'));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const file = join(tmp, 'first-agent.sh');
  await writeFile(file, block);

  const [cmd, args] = shellBlockCommand(file);
  // TMPDIR: the block's `mktemp -d` lands in this test's folder, removed afterwards.
  const child = spawn(cmd, args, { cwd: REPO_ROOT, env: { ...process.env, TMPDIR: tmp, [MARK]: mark }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  // npm's spinner draws on the pty: braille glyphs and cursor escapes.
  const text = out.replace(/\r|[\u2800-\u28ff]|\x1b\[[0-9;]*[A-Za-z]/g, '');
  assert.equal(code, 0, text);

  const launched = [...text.matchAll(/^launched ([0-9a-f]{32})$/gm)].map((m) => m[1]!);
  assert.equal(launched.length, 2, text);
  const [echo, greeter] = launched as [string, string];
  assert.match(text, new RegExp(`^migrated ${echo} to `, 'm'));
  // `ferry ls --data-dir $D/h2`: the echo agent, with the greeter's connection, established.
  assert.match(text, new RegExp(`^  agent ${echo}  1 connection\\(s\\)\\n    [0-9a-f]{32}  server  peer ${greeter}  ESTABLISHED`, 'm'));
  // `kill %1 %2 %3` stopped the rendezvous and both hosts (and their npx wrappers). A host waits
  // up to HOST_DEREGISTER_WAIT_MS for the rendezvous stopped with it to answer its deregistrations.
  for (const end = Date.now() + 10_000; markedPids(MARK, mark).length > 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
  assert.equal(killMarked(MARK, mark), 0, 'processes of the block still running 10 s after kill %1 %2 %3');
});
