// `ferry demo` end to end, small: a rendezvous process, three host processes and a ring of five
// confined agents streaming both ways while they move alone, in a pair, as a group of two
// co-located agents, as a whole ring, and once
// to a host that is down. The verdict is computed from what the agents themselves report (CRC-32s
// and per-byte checks per direction); this test checks its JSON line and exit status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('ferry demo --json: ten streams exactly once across 10 migrations (one a group move) and 1 rollback', async () => {
  const child = spawn(process.execPath, [MAIN, 'demo', '--bytes', '2097152', '--rounds', '1', '--seconds', '8', '--json'], { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  const last = out.trim().split('\n').pop() ?? '';
  assert.equal(code, 0, `exit ${code}\nstdout:\n${out}\nstderr:\n${err.slice(-3000)}`);
  const r = JSON.parse(last) as Record<string, unknown>;
  // 2 MiB over 10 directions: 209715 bytes each.
  assert.deepEqual(
    { ok: r.ok, sent: r.sent, delivered: r.delivered, lost: r.lost, duplicated: r.duplicated, agents: r.agents, migrations: r.migrations, rollbacks: r.rollbacks, simultaneousMoves: r.simultaneousMoves, groupMoves: r.groupMoves, security: r.security },
    // One round: one alone (1), a pair at once (2), a group of two (2), the ring (5); one rollback.
    { ok: true, sent: 2097150, delivered: 2097150, lost: 0, duplicated: 0, agents: 5, migrations: 10, rollbacks: 1, simultaneousMoves: 3, groupMoves: 1, security: true },
  );
  assert.equal(r.moves, r.migrations);
  assert.ok((r.suspendMs as { p50: number }).p50 > 0 && (r.resumeMs as { p50: number }).p50 > 0);
  // The human verdict lists all ten directions as equal.
  assert.equal((out.match(/CRC-32 and per-byte check equal/g) ?? []).length, 10, out);
  assert.match(out, /^PASS: /m);
});
