// Scenario: DEREGISTER against real `ferry rendezvous` processes, with the memory store (one
// process) and with Redis (two nodes over one redis-server started here); hosts are played by
// RendezvousClients signing as host keys. An agent registered by h1 moves to h2 (through the other
// node). h1's late DEREGISTER of its old entry is refused (NOT_HOLDER); a forged one naming h2
// (h2's key, another signature) and one with another key claiming h2 are refused; every node
// still serves h2's entry. Then h2's own DEREGISTER removes it at every node; its epoch stays as a
// tombstone (no registration at or below it through any node), and the same DEREGISTER sent again
// after the agent was registered anew above it (replayed) removes nothing.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Identity } from '../../src/identity/index.js';
import { registrationDigest } from '../../src/location/index.js';
import { startRedisServer } from '../../src/testing/index.js';
import { ControlChannel } from '../../src/control/index.js';
import { LocationMessageType as T, deregisterSigned, encodeDeregister } from '../../src/wire/index.js';
import { Processes, stop } from '../helpers/processes.js';
import { RendezvousClients, locationEntry, refusedWith as code, startRendezvousNodes } from '../helpers/rendezvous.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** The DEREGISTER story against `nodes` (addresses serving one directory). */
async function story(nodes: [string, string]): Promise<void> {
  const [A, B] = nodes;
  const clients = new RendezvousClients();
  cleanups.push(() => clients.closeAll());
  const via = (server: string, signer?: Identity): ReturnType<RendezvousClients['via']> => clients.via(server, signer);
  const raw = await ControlChannel.bind({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => raw.close());

  const agent = Identity.generate();
  const [h1, h2, mallory] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const entry = (h: Identity, epoch: number, at = Date.now()): ReturnType<typeof locationEntry> => locationEntry(agent, h, epoch, { controlPort: 4000 + epoch, at });
  const served = async (): Promise<(string | number | undefined)[][]> => Promise.all(nodes.map(async (n) => ((e) => [e?.hostId, e?.epoch])(await (await via(n)).lookup(agent.id))));

  const old = entry(h1, 1);
  await (await via(A, h1)).register(old);
  const moved = entry(h2, 2);
  await (await via(B, h2)).register(moved);
  // h1 never heard of the move: its deregistration is stale.
  await assert.rejects((await via(B, h1)).deregister(old), code('FERRY_ERR_NOT_HOLDER'));
  // Forged: naming h2 with h2's key but Mallory's signature; or Mallory's key claiming h2.
  const unsigned = { agent: agent.id, hostId: h2.id, epoch: 2, registration: registrationDigest(moved.chain), hostKey: Buffer.from(h2.publicRaw) };
  await assert.rejects(raw.request(A, T.DEREGISTER, encodeDeregister({ ...unsigned, signature: mallory.sign(deregisterSigned(unsigned)) })), code('FERRY_ERR_BAD_SIGNATURE'));
  const claimed = { ...unsigned, hostKey: Buffer.from(mallory.publicRaw) };
  await assert.rejects(raw.request(B, T.DEREGISTER, encodeDeregister({ ...claimed, signature: mallory.sign(deregisterSigned(claimed)) })), code('FERRY_ERR_IDENTITY_MISMATCH'));
  assert.deepEqual(await served(), [[h2.id, 2], [h2.id, 2]], 'every node keeps the newer entry');

  // The holder removes it, through either node, for every node.
  const genuine = encodeDeregister({ ...unsigned, signature: h2.sign(deregisterSigned(unsigned)) });
  assert.equal((await raw.request(A, T.DEREGISTER, genuine)).body[0], 1);
  // The other node hears the removal over Redis pub/sub, so its cache may answer once more.
  let now = await served();
  for (const end = Date.now() + 5000; now.some(([h]) => h !== undefined) && Date.now() < end; ) now = await served();
  assert.deepEqual(now, [[undefined, undefined], [undefined, undefined]]);
  // The removed epoch is a tombstone at every node: nothing at or below it registers again
  // through either (a REGISTER replayed from before the removal could not be told apart).
  for (const n of nodes) await assert.rejects((await via(n, h2)).register(entry(h2, 2, Date.now() + 1000)), code('FERRY_ERR_STALE_EPOCH'));
  // Registered anew above it: the earlier DEREGISTER, replayed, removes nothing.
  await (await via(B, h2)).register(entry(h2, 3, Date.now() + 1000));
  const replayer = await ControlChannel.bind({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => replayer.close());
  await assert.rejects(replayer.request(B, T.DEREGISTER, genuine), code('FERRY_ERR_NOT_HOLDER'));
  assert.deepEqual(await served(), [[h2.id, 3], [h2.id, 3]]);
}

test('stale, forged and replayed DEREGISTERs are refused by a memory-store rendezvous, and the holder\'s removes the entry', { timeout: 60_000 }, async () => {
  const { nodes, addresses } = await startRendezvousNodes(procs, 1);
  await story([addresses[0]!, addresses[0]!]);
  assert.equal(await stop(nodes[0]!), 0, nodes[0]!.err());
});

test('the same against two rendezvous nodes over one Redis: refused at every node, removed at every node', { timeout: 60_000 }, async () => {
  const redis = await startRedisServer();
  cleanups.push(() => redis.destroy());
  const { nodes, addresses } = await startRendezvousNodes(procs, 2, redis.url);
  await story(addresses as [string, string]);
  for (const n of nodes) assert.equal(await stop(n), 0, n.err());
});
