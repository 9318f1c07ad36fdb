// Co-located agents moving as one group (the HIP paper's end-point group): one migration channel,
// one admission of every member at the destination, one checkpoint. Host-level agents A and B are
// connected to each other (both ends of that connection move together) and C to a remote D; all
// stream both ways while {A, B, C} move to another host, and every stream is exact. Before the
// commit a group is all or nothing: a channel cut after the detach re-attaches every member at
// the source, and a destination whose policy refuses one member's owner refuses the group before
// anything is paused. Agents with code move through their runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { Identity, type AgentId, type HostId } from '../../src/identity/index.js';
import { channelHost, type Host } from '../../src/host/index.js';
import { isFerryError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { Reader, pattern, startHosts, waitFor } from '../helpers/harness.js';
import { allowAll, connectWhenListening, echoRoundTrip, fixture, linesOf, startAgentNet } from '../helpers/agents.js';

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

/** One connection's two ends, each read into a Reader that follows the end across moves. */
interface Link {
  ends: [AgentId, AgentId];
  socks: [AgentSocket, AgentSocket];
  readers: [Reader, Reader];
  written: [number, number];
  seeds: [number, number];
}

async function link(hosts: Host[], from: [number, AgentId], to: [number, AgentId], seed: number): Promise<Link> {
  const acc = hosts[to[0]]!.listen(to[1]).accept();
  const a = await hosts[from[0]]!.connect(from[1], to[1]);
  const b = await acc;
  const readers: [Reader, Reader] = [new Reader(), new Reader()];
  readers[0].attach(a);
  readers[1].attach(b);
  return { ends: [from[1], to[1]], socks: [a, b], readers, written: [0, 0], seeds: [seed, seed + 1] };
}

function write(l: Link, n: number): void {
  for (const i of [0, 1] as const) {
    l.socks[i].write(pattern(l.seeds[i], l.written[i], n));
    l.written[i] += n;
  }
}

/** After a move, follow each end to the socket object of the host it lives on now. */
function follow(hosts: Host[], l: Link): void {
  for (const i of [0, 1] as const) {
    const holder = hosts.filter((h) => h.agentIds().includes(l.ends[i]));
    assert.equal(holder.length, 1, `agent ${l.ends[i]} lives on exactly one host`);
    const sock = holder[0]!.socketsOf(l.ends[i]).find((s) => s.connectionId === l.socks[i].connectionId)!;
    assert.ok(sock, 'the connection came along');
    if (sock !== l.socks[i]) {
      l.socks[i] = sock;
      l.readers[i].attach(sock);
    }
  }
}

async function verify(l: Link): Promise<void> {
  await waitFor(() => l.readers[1].length === l.written[0] && l.readers[0].length === l.written[1], 10_000, 'both directions delivered');
  assert.ok(l.readers[1].bytes().equals(pattern(l.seeds[0], 0, l.written[0])), 'forward exactly once');
  assert.ok(l.readers[0].bytes().equals(pattern(l.seeds[1], 0, l.written[1])), 'backward exactly once');
}

async function world(opts: Parameters<typeof startHosts>[1] = {}): Promise<{ hosts: Host[]; ids: AgentId[]; links: Link[]; location: Awaited<ReturnType<typeof startHosts>>['location']; close(): Promise<void> }> {
  const net = await startHosts(3, opts);
  const [a, b, c] = [await net.hosts[0]!.addAgent(), await net.hosts[0]!.addAgent(), await net.hosts[0]!.addAgent()].map((x) => x.id) as [AgentId, AgentId, AgentId];
  const d = (await net.hosts[1]!.addAgent()).id;
  const links = [await link(net.hosts, [0, a], [0, b], 10), await link(net.hosts, [0, c], [1, d], 20), await link(net.hosts, [1, d], [0, a], 30)];
  return { hosts: net.hosts, ids: [a, b, c, d], links, location: net.location, close: net.close };
}

test('three co-located agents move as one group while streaming; the connection between two of them moves both ends', async () => {
  const w = await world();
  try {
    const [a, b, c] = w.ids as [AgentId, AgentId, AgentId];
    const before = await Promise.all([a, b, c].map(async (x) => (await w.location.lookup(x))!.epoch));
    for (const l of w.links) write(l, 150_000);
    const report = await w.hosts[0]!.migrateGroup([a, b, c], target(w.hosts[2]!));
    assert.ok(report && report.detachMs >= 0 && report.commitMs > 0);
    assert.deepEqual(w.hosts[0]!.agentIds(), [], 'none left at the source');
    assert.deepEqual(w.hosts[2]!.agentIds().sort(), [a, b, c].sort(), 'all three at the destination');
    for (const [i, x] of [a, b, c].entries()) {
      const loc = (await w.location.lookup(x))!;
      assert.equal(loc.hostId, w.hosts[2]!.id);
      assert.equal(loc.epoch, before[i]! + 1);
    }
    for (const l of w.links) follow(w.hosts, l);
    for (const l of w.links) write(l, 150_000);
    for (const l of w.links) await verify(l);
  } finally {
    await w.close();
  }
});

test('a group cut after the detach rolls back whole: every member re-attached at the source, streams exact', async () => {
  const w = await world({ migrationFault: (side, step) => (side === 'source' && step === MigrationStep.CHECKPOINT_PART ? 'cut' : undefined) });
  try {
    const [a, b, c] = w.ids as [AgentId, AgentId, AgentId];
    for (const l of w.links) write(l, 100_000);
    await assert.rejects(w.hosts[0]!.migrateGroup([a, b, c], target(w.hosts[2]!)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && /rolled back/.test((e as Error).message));
    assert.deepEqual(w.hosts[0]!.agentIds().sort(), [a, b, c].sort(), 'all three still at the source');
    assert.deepEqual(w.hosts[2]!.agentIds(), []);
    for (const x of [a, b, c]) assert.equal((await w.location.lookup(x))!.hostId, w.hosts[0]!.id);
    for (const l of w.links) follow(w.hosts, l);
    for (const l of w.links) write(l, 100_000);
    for (const l of w.links) await verify(l);
  } finally {
    await w.close();
  }
});

test('bad groups are refused with typed errors before anything moves', async () => {
  const w = await world();
  try {
    const [a, , , d] = w.ids as [AgentId, AgentId, AgentId, AgentId];
    const t = target(w.hosts[2]!);
    await assert.rejects(w.hosts[0]!.migrateGroup([], t), (e: unknown) => isFerryError(e, 'FERRY_ERR_INVALID_ARGUMENT'));
    await assert.rejects(w.hosts[0]!.migrateGroup([a, d], t), (e: unknown) => isFerryError(e, 'FERRY_ERR_UNKNOWN_AGENT'), 'd lives elsewhere');
    const many = [...Array(65).keys()].map(() => Identity.generate().id);
    await assert.rejects(w.hosts[0]!.migrateGroup(many, t), (e: unknown) => isFerryError(e, 'FERRY_ERR_INVALID_ARGUMENT'), 'more than MIGRATION_GROUP_AGENTS');
    assert.deepEqual(w.hosts[0]!.agentIds().length, 3, 'nothing moved');
  } finally {
    await w.close();
  }
});

test('agents with code: a group moves through the runtime; a destination refusing one owner refuses the group before any pause', async () => {
  const owner = Identity.generate();
  const other = Identity.generate();
  const policy = { version: 1, owners: { [owner.id]: { land: true, listen: true, connect: '*' }, [other.id]: { land: true, listen: true, connect: '*' } } };
  const onlyOwner = { version: 1, owners: { [owner.id]: { land: true, listen: true, connect: '*' } } };
  const net = await startAgentNet(3, { owner, policies: [policy, policy, onlyOwner], wrapHost: (_i, _b, host) => channelHost(host) });
  net.hosts.forEach((h, i) => h.useRuntime(net.runtimes[i]));
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const e1 = await net.launch(0, fixture('echo.mjs'));
    const e2 = await net.launch(0, fixture('echo.mjs'), { owner: other });
    const s1 = await connectWhenListening(h1, e1.id);
    const s2 = await connectWhenListening(h1, e2.id);
    await echoRoundTrip(s1, 1, 5000);
    await echoRoundTrip(s2, 2, 5000);
    // h2 admits only `owner`: e2 is refused, so neither moves, and nothing was paused.
    await assert.rejects(h0.migrateGroup([e1.id, e2.id], target(h2)), (e: unknown) => {
      assert.ok(isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK'), String(e));
      assert.ok(isFerryError((e as Error).cause, 'FERRY_ERR_POLICY_DENIED'), `cause ${String((e as Error).cause)}`);
      return true;
    });
    assert.deepEqual(net.runtimes[0]!.agentIds().sort(), [e1.id, e2.id].sort());
    assert.equal(linesOf(net.log, 'agent_reattached').length, 0, 'refused before any detach');
    await echoRoundTrip(s1, 3, 5000);
    await echoRoundTrip(s2, 4, 5000);
    // To h1, which admits both: the group moves, each echo runs again there with its connection.
    const got: Buffer[] = [];
    s1.on('data', (c: Buffer) => got.push(c));
    s1.write(pattern(5, 0, 50_000));
    await h0.migrateGroup([e1.id, e2.id], target(h1));
    s1.write(pattern(5, 50_000, 50_000));
    await waitFor(() => Buffer.concat(got).length >= 100_000, 10_000, 'echoed across the move');
    assert.ok(Buffer.concat(got).equals(pattern(5, 0, 100_000)));
    s1.removeAllListeners('data');
    await echoRoundTrip(s2, 6, 5000);
    assert.deepEqual(net.runtimes[0]!.agentIds(), []);
    assert.deepEqual(net.runtimes[1]!.agentIds().sort(), [e1.id, e2.id].sort());
    const runs = linesOf(net.log, 'agent_log').filter((l) => String(l.fields.text).startsWith('echo run 2'));
    assert.equal(runs.length, 2, 'both ran again at the destination');
    s1.destroy();
    s2.destroy();
  } finally {
    await net.close();
  }
});
