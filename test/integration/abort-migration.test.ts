// Scenario: an operator passes an AbortSignal to Host.migrateAgent, migrateGroup and moveAgent
// over real loopback hosts. An already-aborted signal rejects at once with FERRY_ERR_ABORTED and
// nothing moves. Aborted before the detach (at DELEGATE), the agent never stopped: the same socket
// object streams on. Aborted after the detach but before the checkpoint left (at CONFIRM), the
// move rolls back: the agent is re-attached here and the destination holds nothing (a group move:
// every member). Aborted once the checkpoint has left (at COMMITTED), the abort is ignored and the
// move completes. Each time the stream is checked byte for byte, and a signal reused for many
// moves holds no listener after.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import type { Host } from '../../src/host/index.js';
import { isAbortError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { Link } from '../helpers/attacker.js';
import { startHosts } from '../helpers/harness.js';

let hook: ((side: 'source' | 'destination', step: number) => void) | undefined;
const net = await startHosts(3, { migrationFault: (side, step) => void hook?.(side, step) });
after(() => {
  hook = undefined;
  return net.close();
});
const [h0, h1, h2] = net.hosts as [Host, Host, Host];
const to = (h: Host) => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

let seed = 500;
async function link(): Promise<Link> {
  const a = await h0.addAgent();
  const b = await h1.addAgent();
  const l = await Link.open(h0, a.id, h1, b.id, seed++);
  await l.exchange(20_000, 'opened');
  return l;
}
const epochOf = async (l: Link): Promise<number> => (await net.location.lookup(l.a.localAgent))!.epoch;

/** Abort `ac` when the source reaches `step`. */
function abortAt(ac: AbortController, step: number): void {
  hook = (side, s) => {
    if (side === 'source' && s === step) {
      hook = undefined;
      ac.abort('stop the move');
    }
  };
}

test('an already-aborted signal: migrateAgent, migrateGroup and moveAgent reject at once, nothing moves', async () => {
  const l = await link();
  const epoch = await epochOf(l);
  const signal = AbortSignal.abort('no');
  const agent = l.a.localAgent;
  await assert.rejects(h0.migrateAgent(agent, to(h2), { signal }), (e) => isAbortError(e) && (e as Error).cause === 'no');
  await assert.rejects(h0.migrateGroup([agent], to(h2), { signal }), (e) => isAbortError(e));
  await assert.rejects(h0.moveAgent(agent, h2, { signal }), (e) => isAbortError(e));
  assert.deepEqual(h0.socketsOf(agent), [l.a], 'the same socket object, still here');
  assert.equal(h2.agentIds().includes(agent), false);
  assert.equal(await epochOf(l), epoch, 'nothing registered');
  await l.exchange(30_000, 'after');
});

test('aborted before the detach: rejects, the agent never stopped', async () => {
  const l = await link();
  const epoch = await epochOf(l);
  const ac = new AbortController();
  abortAt(ac, MigrationStep.DELEGATE);
  l.write(50_000);
  await assert.rejects(h0.migrateAgent(l.a.localAgent, to(h2), { signal: ac.signal }), (e) => isAbortError(e) && (e as Error).cause === 'stop the move');
  assert.deepEqual(h0.socketsOf(l.a.localAgent), [l.a], 'the same socket object carries on');
  assert.equal(l.a.state, 'ESTABLISHED');
  assert.equal(h2.agentIds().includes(l.a.localAgent), false, 'nothing at the destination');
  assert.equal(await epochOf(l), epoch, 'nothing registered');
  await l.settle('after the abort');
  await l.exchange(30_000, 'after');
});

test('aborted after the detach, before the checkpoint left: rolled back here, the stream exact', async () => {
  const l = await link();
  const ac = new AbortController();
  abortAt(ac, MigrationStep.CONFIRM);
  l.write(50_000);
  await assert.rejects(h0.migrateAgent(l.a.localAgent, to(h2), { signal: ac.signal }), (e) => isAbortError(e));
  assert.equal(h2.agentIds().includes(l.a.localAgent), false, 'nothing at the destination');
  assert.equal((await net.location.lookup(l.a.localAgent))!.hostId, h0.id, 'registered here');
  const [back] = h0.socketsOf(l.a.localAgent);
  assert.ok(back, 're-attached here');
  l.follow('a', back);
  await l.settle('after the rollback', 10_000);
  await l.exchange(30_000, 'after');
});

test('aborted once the checkpoint left: the abort is ignored and the move completes', async () => {
  const l = await link();
  const ac = new AbortController();
  abortAt(ac, MigrationStep.COMMITTED);
  l.write(50_000);
  await h0.migrateAgent(l.a.localAgent, to(h2), { signal: ac.signal });
  assert.equal(ac.signal.aborted, true, 'the signal did abort');
  assert.equal(h0.agentIds().includes(l.a.localAgent), false);
  const [moved] = h2.socketsOf(l.a.localAgent);
  assert.ok(moved, 'at the destination');
  l.follow('a', moved);
  await l.settle('after the move', 10_000);
  await l.exchange(30_000, 'after');
});

test('a group move aborted after the detach rolls back whole: both members back here, streams exact', async () => {
  const l1 = await link();
  const l2 = await link();
  const ac = new AbortController();
  abortAt(ac, MigrationStep.CONFIRM);
  l1.write(30_000);
  l2.write(30_000);
  await assert.rejects(h0.migrateGroup([l1.a.localAgent, l2.a.localAgent], to(h2), { signal: ac.signal }), (e) => isAbortError(e) && (e as Error).cause === 'stop the move');
  for (const l of [l1, l2]) {
    assert.equal(h2.agentIds().includes(l.a.localAgent), false, 'nothing at the destination');
    const [back] = h0.socketsOf(l.a.localAgent);
    assert.ok(back, 're-attached here');
    l.follow('a', back);
    await l.settle('after the group rollback', 10_000);
    await l.exchange(20_000, 'after');
  }
});

test('moveAgent aborted during its detach: back here, the stream exact', async () => {
  const l = await link();
  const ac = new AbortController();
  l.write(50_000);
  const moving = h0.moveAgent(l.a.localAgent, h2, { signal: ac.signal });
  ac.abort();
  await assert.rejects(moving, (e) => isAbortError(e));
  assert.equal(h2.agentIds().includes(l.a.localAgent), false, 'nothing at the destination');
  const [back] = h0.socketsOf(l.a.localAgent);
  assert.ok(back, 're-attached here');
  l.follow('a', back);
  await l.settle('after the aborted move', 10_000);
  await l.exchange(30_000, 'after');
});

test('a signal reused for many moves holds no listener once they settled, and still aborts', async () => {
  const l = await link();
  const ac = new AbortController();
  let here = h0;
  for (let i = 0; i < 6; i++) {
    const there = here === h0 ? h2 : h0;
    await here.migrateAgent(l.a.localAgent, to(there), { signal: ac.signal });
    l.follow('a', there.socketsOf(l.a.localAgent)[0]!);
    here = there;
    await l.exchange(10_000, `move ${i}`);
  }
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
  abortAt(ac, MigrationStep.DELEGATE);
  await assert.rejects(here.migrateAgent(l.a.localAgent, to(here === h0 ? h2 : h0), { signal: ac.signal }), (e) => isAbortError(e));
  await l.exchange(10_000, 'after the aborted move');
});
