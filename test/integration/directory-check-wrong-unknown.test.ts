// Scenario: a host's directory check is told "unknown" for an agent whose entry the rendezvous in
// fact still holds (one lookup answered wrongly, as by a node that had not caught up). The host
// registers the agent again with the chain it registered, which the rendezvous acknowledges
// unchanged; so when the host then stops gracefully its DEREGISTER still names the stored
// registration and removes it. (Registering with a fresh chain would have been acknowledged
// without a write, and the DEREGISTER, naming the fresh chain, refused NOT_HOLDER: an entry left
// pointing at a stopped host.) In process, with a real RendezvousServer over loopback.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { RendezvousClient, RendezvousServer, type LocationService } from '../../src/location/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { poll } from '../helpers/processes.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test('a wrong "unknown" from the directory check re-registers the same registration, which a graceful stop then removes', async () => {
  const server = await RendezvousServer.start();
  cleanups.push(() => server.close());
  const identity = Identity.generate();
  const client = await RendezvousClient.connect({ server: server.address, signer: identity, cacheTtlMs: 0 });
  cleanups.push(() => client.close());
  let lie: AgentId | undefined;
  const location: LocationService = {
    register: (e, o) => client.register(e, o),
    deregister: (e, o) => client.deregister(e, o),
    watch: (a, n, w) => client.watch(a, n, w),
    lookup: (a) => {
      if (a !== lie) return client.lookup(a);
      lie = undefined;
      return Promise.resolve(undefined);
    },
  };
  const log = new MemoryLogger();
  const host = await Host.start({ location, identity, logger: log, fenceCheckMs: 50 });
  cleanups.push(() => host.close());
  const agent = await host.addAgent();
  const stored = await server.store.get(agent.id);
  assert.equal(stored?.hostId, host.id);

  lie = agent.id;
  await poll(() => log.lines.find((l) => l.event === 'agent_restored'), 10_000, () => 'the host never registered the agent again');
  assert.equal(server.stats.registered, 1, 'the same registration, acknowledged without a second write');

  await host.close();
  assert.equal(await server.store.get(agent.id), undefined, 'the graceful stop removed the entry');
  assert.equal(server.stats.deregistered, 1);
});
