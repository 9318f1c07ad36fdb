// Scenario: a group move waits for its members' opens to end before it pauses any member (a
// stranger's CONNECT to member x is answered and never confirmed, so the wait lasts its handshake
// time, twice). During that wait every member is already marked moving: member y begins no open
// (UNKNOWN_AGENT) and takes none. And when x is removed from the host during the wait (its code
// ended, or it was fenced), the move fails with UNKNOWN_AGENT instead of carrying the removed agent
// to the destination, where it would have lived again; y runs on at the source and takes opens
// again. Before the fix y could open during the wait, and the removed x landed at the destination.
// And a group whose rollback comes after one member's own detach failed leaves alone that
// member's mark should a new move of it have begun meanwhile (the rollback cleared it, before).
// On b685943 the first test fails (the removed x landed) and so does the second (y, an agent
// without code, was never re-attached).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { buildConnect } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type AgentId, type HostId } from '../../src/identity/index.js';
import { FerryError, LIMITS, MemoryLogger, isFerryError } from '../../src/util/index.js';
import { MemoryLocationTable, type LocationEntry } from '../../src/location/index.js';
import { lengthPrefix } from '../../src/wire/index.js';
import { hostStarter, startHosts, waitFor } from '../helpers/harness.js';
import { opensBothWays } from '../helpers/agents.js';

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

/** A genuine in-band CONNECT to `to` from a fresh key, on a socket of its own, never confirmed; resolves once the host answered it. */
async function unconfirmedConnect(port: number, to: AgentId): Promise<Socket> {
  const hello = buildConnect({ secure: true, clientHalf: randomBytes(8), client: Identity.generate(), toAgent: to, redirectorPort: 9, window: 65536, inbandControlPort: 9 });
  const s = netConnect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('data', () => resolve()); // the CONNECT_ACK: the host now holds a half-open for `to`
    s.once('close', () => reject(new Error('the host closed the socket instead of answering the CONNECT')));
    s.once('connect', () => s.write(Buffer.concat([lengthPrefix(hello.body.length), hello.body])));
  });
  return s;
}

/** Whether agent `id` on `h` is marked moving, seen through the public API: listen() refuses it as not on the host. */
function moving(h: Host, id: AgentId): boolean {
  try {
    h.listen(id).close();
    return false;
  } catch (err) {
    return isFerryError(err, 'FERRY_ERR_UNKNOWN_AGENT');
  }
}

test('during a group move\'s wait for opens, members begin none; a member removed meanwhile is not moved', async () => {
  const spec = LIMITS.HANDSHAKE_TIMEOUT_MS as { value: number };
  const was = spec.value;
  spec.value = 1500; // the wait: up to twice this
  const net = await startHosts(2, { fenceCheckMs: 0 });
  let raw: Socket | undefined;
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const x = (await h0.addAgent()).id;
    const y = (await h0.addAgent()).id;
    const z = (await h1.addAgent()).id;
    const zServer = h1.listen(z);
    h0.listen(x);
    raw = await unconfirmedConnect(h0.redirectorPort, x);

    const move = h0.migrateGroup([x, y], target(h1));
    const outcome = move.then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor(() => moving(h0, y), 2000, 'y marked moving while the group waits for x\'s half-open');
    await assert.rejects(h0.connect(y, z), (e: unknown) => isFerryError(e, 'FERRY_ERR_UNKNOWN_AGENT'), 'a member begins no open during the wait');
    h0.removeAgent(x);

    const err = await outcome;
    assert.ok(isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((err as Error).cause, 'FERRY_ERR_UNKNOWN_AGENT'), `the move failed on the removed member: ${String(err)}`);
    assert.deepEqual(h1.agentIds(), [z], 'nothing landed at the destination');
    assert.deepEqual(h0.agentIds(), [y], 'y runs on at the source, x is gone');
    // removeAgent deregisters x in the background.
    for (const end = Date.now() + 5000; (await net.location.lookup(x)) !== undefined; ) {
      assert.ok(Date.now() < end, 'the removed agent is still registered after 5 s');
      await new Promise((r) => setTimeout(r, 20));
    }

    // y takes opens again and begins them.
    await opensBothWays(h0, y, h1, z, zServer);
  } finally {
    spec.value = was;
    raw?.destroy();
    await net.close();
  }
});

/** A table whose lookups of `failing` fail from the second on, and whose registrations of `held` wait for `release()`. */
class Faults extends MemoryLocationTable {
  failing: AgentId | undefined;
  lookups = 0;
  held: AgentId | undefined;
  waiting: (() => void)[] = [];
  override async lookup(agent: AgentId): Promise<LocationEntry | undefined> {
    if (agent === this.failing && ++this.lookups >= 2) throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', 'the directory store is down');
    return super.lookup(agent);
  }
  override async register(entry: LocationEntry, ...rest: unknown[]): Promise<void> {
    if (entry.agent === this.held) await new Promise<void>((r) => this.waiting.push(r));
    return (super.register as (e: LocationEntry, ...r: unknown[]) => Promise<void>)(entry, ...rest);
  }
  release(): void {
    this.held = undefined;
    for (const r of this.waiting.splice(0)) r();
  }
}

test('a failed group move leaves alone the mark of a move of one member that began meanwhile', async () => {
  const spec = LIMITS.HANDSHAKE_TIMEOUT_MS as { value: number };
  const was = spec.value;
  spec.value = 1500;
  const location = new Faults();
  const { hosts, start } = hostStarter(location, new MemoryLogger());
  let raw: Socket | undefined;
  try {
    const h0 = await start('h0', { fenceCheckMs: 0 });
    const h1 = await start('h1', { fenceCheckMs: 0 });
    const x = (await h0.addAgent()).id;
    const y = (await h0.addAgent()).id;
    // x's detach cannot learn its epoch (its second lookup fails); y detaches, and its re-attach
    // here waits on the directory.
    location.failing = x;
    location.held = y;
    const group = h0.migrateGroup([x, y], target(h1)).then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor(() => location.waiting.length === 1, 5000, "y's re-attach waiting on the directory");
    assert.ok(!moving(h0, x), 'x, whose detach failed, takes opens again');
    // Meanwhile a move of x alone begins: it marks x and waits on a half-open to x.
    location.failing = undefined;
    h0.listen(x);
    raw = await unconfirmedConnect(h0.redirectorPort, x);
    const detaching = h0.detachAgent(x);
    assert.ok(moving(h0, x), 'the new detach marked x');
    location.release();
    const err = await group;
    assert.ok(isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK'), `the group rolled back: ${String(err)}`);
    assert.ok(h0.agentIds().includes(y), 'y runs on here');
    assert.ok(moving(h0, x), "the group's rollback left the new detach's mark on x");
    // The detach goes on once the half-open ends, and x comes back.
    const cp = await detaching;
    assert.ok(!h0.agentIds().includes(x));
    await h0.attachAgent(cp);
    assert.ok(!moving(h0, x) && h0.agentIds().includes(x), 'x back, taking opens');
  } finally {
    spec.value = was;
    raw?.destroy();
    await Promise.all(hosts.map((h) => h.close()));
  }
});
