// `ferry demo --attack`, small: the ring demo (a rendezvous, three host processes, five confined
// agents streaming both ways while they move) with an attacker running against it the whole time:
// strangers with fresh keys that connect to the agents, send 2 bytes and vanish; garbage
// datagrams to the hosts' control ports and the rendezvous; garbage and slowloris sockets on the
// redirectors. The verdict must be the one without the attack (every stream exactly once, every
// planned move committed, the planned rollback rolled back), and the report must show that the
// attack got through to the agents and the ports and how each part was refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('ferry demo --attack --json: ten streams exactly once while strangers, garbage and slowloris sockets hit the hosts', async () => {
  const child = spawn(process.execPath, [MAIN, 'demo', '--attack', '--bytes', '4194304', '--rounds', '1', '--seconds', '10', '--json'], { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `exit ${code}\nstdout:\n${out}\nstderr:\n${err.slice(-3000)}`);
  const r = JSON.parse(out.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  // 4 MiB over 10 directions: 419430 bytes each.
  assert.deepEqual(
    { ok: r.ok, sent: r.sent, delivered: r.delivered, lost: r.lost, duplicated: r.duplicated, migrations: r.migrations, rollbacks: r.rollbacks },
    { ok: true, sent: 4194300, delivered: 4194300, lost: 0, duplicated: 0, migrations: 10, rollbacks: 1 },
  );
  const a = r.attack as {
    strangers: { connected: number; closedByAgent: number; refused: Record<string, number>; waves: number };
    datagrams: { sent: number; refused: Record<string, number>; otherReplies: number };
    redirector: { sockets: number; rejected: Record<string, number>; closed: number; waitingAtEnd: number; neverClosed: number };
    slowloris: { opened: number; closedByHost: number; heldAtEnd: number };
    closedByRingAgents: number;
  };
  const sum = (m: Record<string, number>): number => Object.values(m).reduce((x, y) => x + y, 0);
  // Strangers reached the agents, and the agents closed what they did not expect (never more than arrived).
  assert.ok(a.strangers.connected > 0 && a.strangers.waves > 0, JSON.stringify(a.strangers));
  assert.ok(a.closedByRingAgents > 0 && a.closedByRingAgents <= a.strangers.connected, `ring agents closed ${a.closedByRingAgents} of ${a.strangers.connected}`);
  // Garbage datagrams: each refused with a typed error or dropped; nothing else ever answers.
  assert.ok(a.datagrams.sent > 0 && sum(a.datagrams.refused) > 0, JSON.stringify(a.datagrams));
  assert.equal(a.datagrams.otherReplies, 0);
  for (const c of Object.keys(a.datagrams.refused)) assert.match(c, /^FERRY_ERR_[A-Z_]+$/);
  // Redirector garbage: every socket refused by a REJECT or closed (within HELLO_TIMEOUT_MS when it
  // announced a frame it never completed; those the attack still held at its end are counted apart).
  assert.ok(a.redirector.sockets > 0 && sum(a.redirector.rejected) > 0);
  assert.equal(a.redirector.neverClosed, 0, JSON.stringify(a.redirector));
  assert.equal(sum(a.redirector.rejected) + a.redirector.closed + a.redirector.waitingAtEnd, a.redirector.sockets, JSON.stringify(a.redirector));
  // Slowloris: the hosts closed idle sockets (HELLO timeout), and moves went on regardless.
  assert.ok(a.slowloris.opened > 0 && a.slowloris.closedByHost > 0, JSON.stringify(a.slowloris));
  assert.match(out, /^PASS: /m);
  assert.match(out, /^ {2}attack \(while the ring streamed and moved\):$/m);
});
