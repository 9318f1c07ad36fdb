// Scenario: a REGISTER seen on the wire is replayed to the rendezvous after its host deregistered
// the agent (PROTOCOL.md §12.2.1, "Tombstones"). An agent launched on h0 (epoch 1) moves to h1,
// whose landing REGISTER (epoch 2) an eavesdropper records; the agent ends on h1, which
// deregisters it; the same agent key is launched again on h2. Before tombstones, the launch
// registered epoch 1 (nothing was stored), the replayed epoch-2 REGISTER was then accepted as
// newer, the directory named h1 again, and h2's directory check fenced the live agent
// (FERRY_ERR_FENCED): one captured datagram killed a running agent on another host. Now the
// rendezvous keeps the deregistered epoch: LOOKUP tells the launching host (found = 2), which
// registers above it, and the replay is refused FERRY_ERR_STALE_EPOCH, before and after the
// relaunch. The relaunched agent keeps serving a connection through several directory checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { LocationMessageType } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Attacker, assertRefused, Link, sleep, tapper, type Tap } from '../helpers/attacker.js';

const FENCE_CHECK_MS = 100;

test('a REGISTER replayed after its agent was deregistered is refused and fences nothing', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const server = await RendezvousServer.start({ requireChains: true, logger: log.child({ host: 'rv' }) });
  const { taps, wrap } = tapper();
  const clients: RendezvousClient[] = [];
  const hosts: Host[] = [];
  const attacker = await Attacker.bind('127.0.0.9');
  try {
    for (let i = 0; i < 3; i++) clients.push(await RendezvousClient.connect({ server: server.address, cacheTtlMs: 0, wrap }));
    for (let i = 0; i < 3; i++) hosts.push(await Host.start({ location: clients[i]!, name: `h${i}`, logger: log.child({ host: `h${i}` }), fenceCheckMs: FENCE_CHECK_MS }));
    const [h0, h1, h2] = hosts as [Host, Host, Host];
    const tap1 = taps[1] as Tap;
    const x = Identity.generate();
    await h0.addAgent(x);
    const peer = await h0.addAgent();

    // x lands on h1: its REGISTER at epoch 2, as an eavesdropper records it.
    const before = tap1.sentRequests(LocationMessageType.REGISTER).length;
    await h0.moveAgent(x.id, h1);
    const captured = tap1.sentRequests(LocationMessageType.REGISTER).slice(before);
    assert.equal(captured.length, 1, 'h1 sent one REGISTER for the landing');
    assert.deepEqual([(await server.store.get(x.id))?.hostId, (await server.store.get(x.id))?.epoch], [h1.id, 2]);
    const replay = captured[0]!.msg;

    // x ends on h1: h1 deregisters it.
    h1.removeAgent(x.id);
    await waitFor(() => server.stats.deregistered === 1, 5000, 'x deregistered');
    assert.equal(await server.store.get(x.id), undefined);

    // Replayed before any relaunch: refused, the directory still knows nothing of x.
    assertRefused(await attacker.sendRaw(server.address, replay), 'FERRY_ERR_STALE_EPOCH');
    assert.equal(await server.store.get(x.id), undefined, 'the replay stored nothing');

    // Launched again on h2, without replace: registered above the deregistered epoch.
    await h2.addAgent(x);
    const relaunched = await server.store.get(x.id);
    assert.deepEqual([relaunched?.hostId, relaunched?.epoch], [h2.id, 3]);
    const link = await Link.open(h0, peer.id, h2, x.id, 71);
    await link.exchange(10_000, 'after the relaunch');

    // Replayed after the relaunch (a fresh requestId, so no duplicate cache answers it): refused.
    replay.writeUInt32BE(0x5eed, 4);
    assertRefused(await attacker.sendRaw(server.address, replay), 'FERRY_ERR_STALE_EPOCH');
    assert.equal((await server.store.get(x.id))?.hostId, h2.id, 'the directory still names h2');

    // Several directory checks later, x still runs on h2 and its connection streams on.
    await sleep(FENCE_CHECK_MS * 5);
    assert.equal(log.lines.filter((l) => l.event === 'agent_fenced').length, 0, 'nothing was fenced');
    await link.exchange(10_000, 'after the replays');
  } finally {
    attacker.close();
    for (const h of hosts) await h.close();
    for (const c of clients) c.close();
    await server.close();
  }
});
