// Scenario: an application calls resumeConnection() while its agent is being detached for a move
// (in its 'suspended' handler, or a resume already pending when the move starts), through
// Host.moveAgent and Host.migrateAgent, with two connections per agent. Every connection is
// carried (none stays live on the source), the resume pending on a detached socket object settles
// with FERRY_ERR_SOCKET_MOVED, the carried connection resumes at the destination, and both streams
// stay exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { isFerryError } from '../../src/util/index.js';
import { pattern, Reader, startHosts, waitFor, within } from '../helpers/harness.js';

/** One connection of agent A (on hosts[0]) to a peer agent, with both directions checked. */
interface Link {
  peer: AgentId;
  a: AgentSocket;
  p: AgentSocket;
  ra: Reader;
  rp: Reader;
  written: { a: number; p: number };
  seed: number;
}

async function world(): Promise<{ hosts: Host[]; a: AgentId; links: Link[]; close(): Promise<void> }> {
  const net = await startHosts(3);
  const [h0, h1] = net.hosts as [Host, Host];
  const a = (await h0.addAgent()).id;
  const links: Link[] = [];
  // Two connections per agent: A -> P1 and A -> P2, both peers on hosts[1].
  for (let i = 0; i < 2; i++) {
    const peer = (await h1.addAgent()).id;
    const acc = h1.listen(peer).accept();
    const sa = await h0.connect(a, peer);
    const sp = await acc;
    const link: Link = { peer, a: sa, p: sp, ra: new Reader(), rp: new Reader(), written: { a: 0, p: 0 }, seed: 10 * (i + 1) };
    link.ra.attach(sa);
    link.rp.attach(sp);
    links.push(link);
  }
  return { hosts: net.hosts, a, links, close: net.close };
}

function stream(l: Link, n: number): void {
  l.a.write(pattern(l.seed, l.written.a, n));
  l.written.a += n;
  l.p.write(pattern(l.seed + 1, l.written.p, n));
  l.written.p += n;
}

async function verify(l: Link): Promise<void> {
  await waitFor(() => l.rp.length === l.written.a && l.ra.length === l.written.p, 10_000, 'streams delivered');
  assert.ok(l.rp.bytes().equals(pattern(l.seed, 0, l.written.a)), 'A -> peer exactly once');
  assert.ok(l.ra.bytes().equals(pattern(l.seed + 1, 0, l.written.p)), 'peer -> A exactly once');
}

/** The old socket objects are detached (carried, not left live on the source); A's new sockets replace them. */
function adopt(w: { hosts: Host[]; a: AgentId; links: Link[] }, to: Host, old: AgentSocket[]): void {
  assert.deepEqual(w.hosts[0]!.agentIds().includes(w.a), false, 'A is gone from the source');
  for (const s of old) {
    assert.equal(s.endpoint.detached, true, 'the old endpoint was checkpointed, not left behind');
    assert.equal(s.state, 'SUSPENDED', 'the old endpoint does not run on');
  }
  const fresh = to.socketsOf(w.a);
  assert.equal(fresh.length, w.links.length, 'every connection was carried');
  for (const l of w.links) {
    const s = fresh.find((x) => x.remoteAgent === l.peer);
    assert.ok(s, 'a carried socket per peer');
    l.a = s;
    l.ra.attach(s);
  }
}

/** How a promise settled (kept from the moment it was made, so an early failure is never unhandled). */
function outcome(p: Promise<void>): Promise<'resolved' | unknown> {
  return p.then(
    () => 'resolved',
    (e: unknown) => e,
  );
}

/** A resume on a detached socket object settles, with the typed code that says to use the new one. */
async function settlesMoved(p: Promise<'resolved' | unknown>): Promise<void> {
  const r = await within(p, 5000, 'the resume pending on a moved socket');
  assert.ok(isFerryError(r, 'FERRY_ERR_SOCKET_MOVED'), `the pending resume rejects with FERRY_ERR_SOCKET_MOVED (got ${String(r)})`);
}

test("moveAgent: resumeConnection() in the 'suspended' handler of both connections", async () => {
  const w = await world();
  try {
    for (const l of w.links) stream(l, 100_000);
    const old = w.links.map((l) => l.a);
    const pending: Promise<unknown>[] = [];
    for (const s of old) s.once('suspended', () => pending.push(outcome(s.resumeConnection())));
    const moved = await w.hosts[0]!.moveAgent(w.a, w.hosts[2]!);
    assert.equal(moved.sockets.length, 2, 'both connections arrive at the destination');
    assert.equal(pending.length, 2, 'both handlers ran during the detach');
    await Promise.all(pending.map(settlesMoved));
    adopt(w, w.hosts[2]!, old);
    for (const l of w.links) {
      await within(waitFor(() => l.a.state === 'ESTABLISHED', 10_000), 12_000, 'resumed at the destination');
      stream(l, 50_000);
    }
    for (const l of w.links) await verify(l);
  } finally {
    await w.close();
  }
});

test("migrateAgent: resumeConnection() in the 'suspended' handler of both connections", async () => {
  const w = await world();
  try {
    for (const l of w.links) stream(l, 100_000);
    const old = w.links.map((l) => l.a);
    const pending: Promise<unknown>[] = [];
    for (const s of old) s.once('suspended', () => pending.push(outcome(s.resumeConnection())));
    const h2 = w.hosts[2]!;
    await w.hosts[0]!.migrateAgent(w.a, { ip: h2.ip, redirectorPort: h2.redirectorPort, hostId: h2.id });
    assert.equal(pending.length, 2, 'both handlers ran during the detach');
    await Promise.all(pending.map(settlesMoved));
    adopt(w, h2, old);
    for (const l of w.links) {
      await within(waitFor(() => l.a.state === 'ESTABLISHED', 10_000), 12_000, 'resumed at the destination');
      stream(l, 50_000);
    }
    for (const l of w.links) await verify(l);
  } finally {
    await w.close();
  }
});

test('moveAgent: a resume already pending (behind a user suspend) when the move starts', async () => {
  const w = await world();
  try {
    for (const l of w.links) stream(l, 100_000);
    const old = w.links.map((l) => l.a);
    const suspends = old.map((s) => outcome(s.suspend()));
    const pending = old.map((s) => outcome(s.resumeConnection()));
    await w.hosts[0]!.moveAgent(w.a, w.hosts[2]!);
    // The user's suspend did happen (resolved); the resume behind it settles on the old object.
    for (const r of await within(Promise.all(suspends), 5000, 'the user suspends')) assert.equal(r, 'resolved');
    await Promise.all(pending.map(settlesMoved));
    adopt(w, w.hosts[2]!, old);
    // Closing a detached object is refused and sends nothing: the carried connection goes on.
    await assert.rejects(old[0]!.endpoint.close(), (e: unknown) => isFerryError(e, 'FERRY_ERR_SOCKET_MOVED'));
    for (const l of w.links) {
      await within(waitFor(() => l.a.state === 'ESTABLISHED', 10_000), 12_000, 'resumed at the destination');
      stream(l, 50_000);
    }
    for (const l of w.links) await verify(l);
    for (const l of w.links) assert.equal(l.p.state, 'ESTABLISHED');
  } finally {
    await w.close();
  }
});

test('moveAgent: a resume in flight (RES sent) when the move starts settles on the detached object', async () => {
  const w = await world();
  try {
    const l = w.links[0]!;
    stream(l, 50_000);
    await verify(l);
    await l.a.suspend();
    const old = w.links.map((x) => x.a);
    // The RES goes out now; the move starts in the same turn, before any answer can arrive, and
    // overtakes the resume (RES_SENT -> SUS_SENT): the object it was pending on is then detached.
    const pending = outcome(l.a.resumeConnection());
    assert.equal(l.a.state, 'RES_SENT');
    await w.hosts[0]!.moveAgent(w.a, w.hosts[2]!);
    await settlesMoved(pending);
    adopt(w, w.hosts[2]!, old);
    for (const x of w.links) {
      await within(waitFor(() => x.a.state === 'ESTABLISHED', 10_000), 12_000, 'resumed at the destination');
      stream(x, 20_000);
    }
    for (const x of w.links) await verify(x);
  } finally {
    await w.close();
  }
});
