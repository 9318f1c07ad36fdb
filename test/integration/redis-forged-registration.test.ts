// Scenario: one redis-server (started here) and three `ferry rendezvous --store redis://…`
// processes over it; hosts are played by RendezvousClients in the test. A proven registration
// through node A is served by B and C. Through node B, a stale one (lower epoch), one at the same
// epoch for another host, one whose chain is another key's (forged), and one whose host
// signature is not the host's are each refused with their code; through node C a copy of the
// registration made through A with another locator is refused too. Every node still serves the true entry,
// and a newer proven registration through C is then served by A.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Identity } from '../../src/identity/index.js';
import { startRedisServer } from '../../src/testing/index.js';
import { ControlChannel } from '../../src/control/index.js';
import { LocationMessageType as T, encodeRegister, registerSigned } from '../../src/wire/index.js';
import { Processes, stop } from '../helpers/processes.js';
import { RendezvousClients, locationEntry, refusedWith as code, startRendezvousNodes } from '../helpers/rendezvous.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

// Bounded: a hang fails the file instead of stalling the run.
test('a stale or forged registration through one rendezvous node is refused, and the others keep serving the true entry', { timeout: 120_000 }, async () => {
  const redis = await startRedisServer();
  cleanups.push(() => redis.destroy());
  const { nodes, addresses } = await startRendezvousNodes(procs, 3, redis.url);
  const [A, B, C] = addresses as [string, string, string];
  const clients = new RendezvousClients();
  cleanups.push(() => clients.closeAll());
  const via = (server: string, signer?: Identity): ReturnType<RendezvousClients['via']> => clients.via(server, signer);

  const agent = Identity.generate();
  const [h1, h2, mallory] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const entry = (h: Identity, epoch: number, controlPort = 4000, chainKey: Identity = agent): ReturnType<typeof locationEntry> => locationEntry(agent, h, epoch, { controlPort, chainKey });

  await (await via(A, h1)).register(entry(h1, 5));
  for (const n of [B, C]) assert.equal((await (await via(n)).lookup(agent.id))?.hostId, h1.id);

  await assert.rejects((await via(B, h2)).register(entry(h2, 4)), code('FERRY_ERR_STALE_EPOCH'));
  await assert.rejects((await via(B, h2)).register(entry(h2, 5)), code('FERRY_ERR_STALE_EPOCH'));
  await assert.rejects((await via(B, h2)).register(entry(h2, 6, 4000, mallory)), code('FERRY_ERR_CHAIN_TRUNCATED'));
  // The chain is the agent's for h2, but the REGISTER is signed by Mallory's key, not h2's.
  const raw = await ControlChannel.bind({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => raw.close());
  const e6 = entry(h2, 6);
  const unsigned = { agent: e6.agent, hostId: e6.hostId, ip: e6.ip, controlPort: e6.controlPort, redirectorPort: e6.redirectorPort, epoch: 6, agentKey: Buffer.from(agent.publicRaw), chain: e6.chain! };
  await assert.rejects(raw.request(B, T.REGISTER, encodeRegister({ ...unsigned, signature: mallory.sign(registerSigned(unsigned)) })), code('FERRY_ERR_BAD_SIGNATURE'));
  // A copy of A's proven registration replayed through node C with another locator.
  await assert.rejects((await via(C, h1)).register(entry(h1, 5, 4999)), code('FERRY_ERR_STALE_EPOCH'));

  for (const n of [A, B, C]) {
    const e = await (await via(n)).lookup(agent.id);
    assert.deepEqual([e?.hostId, e?.epoch, e?.controlPort], [h1.id, 5, 4000], `node ${n} serves the true entry`);
  }
  await (await via(C, h2)).register(entry(h2, 6));
  assert.equal((await (await via(A)).lookup(agent.id))?.hostId, h2.id);
  for (const n of nodes) assert.equal(await stop(n), 0, n.err());
});
