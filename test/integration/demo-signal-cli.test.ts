// Scenario: `ferry demo` killed by SIGTERM (`kill PID`) while its ring streams stops what it
// started: the rendezvous and the three host processes exit, its ferry-demo-* folder is removed,
// and it exits 143, as the signal would have.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FERRY_MAIN, poll } from '../helpers/processes.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.splice(0)) await f();
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('ferry demo stops its processes and removes its folder on SIGTERM', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'ferry-demo-signal-'));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const child = spawn(process.execPath, [FERRY_MAIN, 'demo', '--seconds', '60', '--json'], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.resume();
  let found: number[] = [];
  async function refresh(): Promise<void> {
    try {
      const [demoDir] = (await readdir(tmp)).filter((d) => d.startsWith('ferry-demo-'));
      if (!demoDir) return;
      const out: number[] = [];
      for (const h of ['host0', 'host1', 'host2']) out.push((JSON.parse(await readFile(join(tmp, demoDir, h, 'host.json'), 'utf8')) as { pid: number }).pid);
      found = out;
    } catch {
      // not there yet
    }
  }
  // Wait until the three hosts are up (their host.json files exist), and note their pids.
  const pids = await poll(
    () => {
      void refresh();
      return found.length === 3 ? found : undefined;
    },
    60_000,
    () => `the demo's hosts never came up; stderr: ${err.slice(-2000)}`,
  );
  assert.ok(pids.every(alive));
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 143, err.slice(-2000));
  assert.deepEqual(await readdir(tmp), [], 'the ferry-demo-* folder is removed');
  await poll(() => (pids.some(alive) ? undefined : true), 10_000, () => `hosts still running: ${pids.filter(alive).join(', ')}`);
});
