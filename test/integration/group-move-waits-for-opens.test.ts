// Scenario: a group move waits for its members' opens to end before it pauses any member (a
// stranger's CONNECT to member x is answered and never confirmed, so the wait lasts its handshake
// time, twice). During that wait every member is already marked moving: member y begins no open
// (UNKNOWN_AGENT) and takes none. And when x is removed from the host during the wait (its code
// ended, or it was fenced), the move fails with UNKNOWN_AGENT instead of carrying the removed agent
// to the destination, where it would have lived again; y runs on at the source and takes opens
// again. Before the fix y could open during the wait, and the removed x landed at the destination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { buildConnect } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type AgentId, type HostId } from '../../src/identity/index.js';
import { LIMITS, isFerryError } from '../../src/util/index.js';
import { lengthPrefix } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
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
