// Scenario: the replay of register-replay-after-deregister, across a restart of the rendezvous.
// A rendezvous on the memory store with a snapshot file; an agent moves from h0 to h1, whose
// landing REGISTER (epoch 2) an eavesdropper records; h1 deregisters the agent. The rendezvous
// stops (its final snapshot written) and a new rendezvous process starts from that snapshot. The
// replayed REGISTER is refused FERRY_ERR_STALE_EPOCH there too and stores nothing: the tombstone
// travelled in the snapshot (PROTOCOL.md 12.7). Before, a restarted rendezvous forgot it and
// took the replay, naming h1 again for an agent h1 no longer runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Host } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { MemoryStore, RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { LocationMessageType } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Attacker, assertRefused, tapper, type Tap } from '../helpers/attacker.js';

test('a REGISTER replayed after its deregistration is refused by a rendezvous restarted from its snapshot', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tomb-'));
  const snapshotFile = join(dir, 'directory.json');
  let server = await RendezvousServer.start({ requireChains: true, store: await MemoryStore.open({ snapshotFile }) });
  const { taps, wrap } = tapper();
  const clients: RendezvousClient[] = [];
  const hosts: Host[] = [];
  const attacker = await Attacker.bind('127.0.0.9');
  try {
    for (let i = 0; i < 2; i++) clients.push(await RendezvousClient.connect({ server: server.address, cacheTtlMs: 0, wrap }));
    for (let i = 0; i < 2; i++) hosts.push(await Host.start({ location: clients[i]!, name: `h${i}` }));
    const [h0, h1] = hosts as [Host, Host];
    const x = Identity.generate();
    await h0.addAgent(x);
    const tap1 = taps[1] as Tap;
    const before = tap1.sentRequests(LocationMessageType.REGISTER).length;
    await h0.moveAgent(x.id, h1);
    const captured = tap1.sentRequests(LocationMessageType.REGISTER).slice(before);
    assert.equal(captured.length, 1, 'h1 sent one REGISTER for the landing');
    const replay = captured[0]!.msg;
    h1.removeAgent(x.id);
    await waitFor(() => server.stats.deregistered === 1, 5000, 'x deregistered');

    // The rendezvous restarts from its snapshot (close writes the final one).
    await server.close();
    server = await RendezvousServer.start({ requireChains: true, store: await MemoryStore.open({ snapshotFile }) });
    assert.equal(await server.store.get(x.id), undefined, 'the restarted directory does not know x');
    assert.equal(await server.store.removedEpoch(x.id), 2, 'the tombstone came back from the snapshot');
    assertRefused(await attacker.sendRaw(server.address, replay), 'FERRY_ERR_STALE_EPOCH');
    assert.equal(await server.store.get(x.id), undefined, 'the replay stored nothing');
  } finally {
    attacker.close();
    for (const h of hosts) await h.close();
    for (const c of clients) c.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
