// Scenario: hosts find each other through a networked rendezvous instead of the in-process table.
// Each of three hosts has its own RendezvousClient (own UDP socket) against one RendezvousServer
// that requires proof: every registration carries the agent-signed delegation to the host and
// the host's signature. An agent on h0 connects to an
// agent on h1 by id, both stream, then the client agent moves to h2, then the server agent moves
// to h0, then both move at once (a to h1, b to h2): the ends find each other through the
// rendezvous (WATCH after PEER_MOVING), and every byte arrives exactly once. The directory ends
// with both agents at their new hosts and epochs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import { RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { pattern, Reader, waitFor } from '../helpers/harness.js';

test('hosts connect and move agents through a rendezvous', async () => {
  const server = await RendezvousServer.start({ requireChains: true });
  const clients: RendezvousClient[] = [];
  for (let i = 0; i < 3; i++) clients.push(await RendezvousClient.connect({ server: server.address }));
  const hosts: Host[] = [];
  try {
    for (let i = 0; i < 3; i++) hosts.push(await Host.start({ location: clients[i]!, name: `h${i}` }));
    const [h0, h1, h2] = hosts as [Host, Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    assert.equal((await server.store.get(a.id))?.hostId, h0.id);
    assert.equal((await server.store.get(b.id))?.hostId, h1.id);

    const listening = h1.listen(b.id);
    const accepted = listening.accept();
    let sa: AgentSocket = await h0.connect(a.id, b.id);
    let sb: AgentSocket = await accepted;
    const ra = new Reader();
    const rb = new Reader();
    ra.attach(sa);
    rb.attach(sb);
    let wa = 0;
    let wb = 0;
    const write = (n: number): void => {
      sa.write(pattern(1, wa, n));
      wa += n;
      sb.write(pattern(2, wb, n));
      wb += n;
    };
    write(100_000);
    await waitFor(() => rb.length === wa && ra.length === wb, 5000, 'before moves');

    // The client agent moves h0 -> h2; b (on h1) learns a's new place from the rendezvous.
    write(50_000);
    [sa] = (await h0.moveAgent(a.id, h2)).sockets as [AgentSocket];
    ra.attach(sa);
    write(50_000);
    await waitFor(() => rb.length === wa && ra.length === wb, 8000, 'after a moved');

    // The server agent moves h1 -> h0; a (now on h2) finds it through the rendezvous.
    write(50_000);
    [sb] = (await h1.moveAgent(b.id, h0)).sockets as [AgentSocket];
    rb.attach(sb);
    write(50_000);
    await waitFor(() => rb.length === wa && ra.length === wb, 8000, 'after b moved');

    const watchesBefore = server.stats.watches + server.stats.lookups;
    // Both move at once (a h2 -> h1, b h0 -> h2): each end's RES goes to the other's old host,
    // which answers PEER_MOVING, so the ends must find each other through the rendezvous.
    write(50_000);
    const [ma, mb] = await Promise.all([h2.moveAgent(a.id, h1), h0.moveAgent(b.id, h2)]);
    [sa] = ma.sockets as [AgentSocket];
    [sb] = mb.sockets as [AgentSocket];
    ra.attach(sa);
    rb.attach(sb);
    write(50_000);
    await waitFor(() => rb.length === wa && ra.length === wb, 10_000, 'after both moved');
    assert.ok(server.stats.watches + server.stats.lookups > watchesBefore, 'the ends asked the rendezvous');

    assert.ok(rb.bytes().equals(pattern(1, 0, wa)), 'a -> b intact');
    assert.ok(ra.bytes().equals(pattern(2, 0, wb)), 'b -> a intact');
    const la = await server.store.get(a.id);
    const lb = await server.store.get(b.id);
    assert.deepEqual([la?.hostId, la?.epoch], [h1.id, 3]);
    assert.deepEqual([lb?.hostId, lb?.epoch], [h2.id, 3]);
    assert.ok(server.stats.registered >= 6);
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
    for (const c of clients) c.close();
    await server.close();
  }
});

test('a migration over the authenticated channel lands at a rendezvous that requires proof', async () => {
  const server = await RendezvousServer.start({ requireChains: true });
  const clients: RendezvousClient[] = [];
  for (let i = 0; i < 2; i++) clients.push(await RendezvousClient.connect({ server: server.address }));
  const hosts: Host[] = [];
  try {
    for (let i = 0; i < 2; i++) hosts.push(await Host.start({ location: clients[i]!, name: `m${i}` }));
    const [h0, h1] = hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const accepted = h1.listen(b.id).accept();
    const sa = await h0.connect(a.id, b.id);
    const sb = await accepted;
    const rb = new Reader();
    rb.attach(sb);
    sa.write(pattern(7, 0, 80_000));
    await h0.migrateAgent(a.id, { ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id });
    const stored = await server.store.get(a.id);
    assert.equal(stored?.hostId, h1.id, 'the rendezvous points at the destination');
    const [moved] = h1.socketsOf(a.id) as [AgentSocket];
    moved.write(pattern(7, 80_000, 20_000));
    await waitFor(() => rb.length === 100_000, 8000, 'stream after migration');
    assert.ok(rb.bytes().equals(pattern(7, 0, 100_000)));
    // A host that cannot prove the agent's chain cannot take its place in the directory.
    const { Identity, freshChain } = await import('../../src/identity/index.js');
    const impostor = Identity.generate();
    const stranger = Identity.generate();
    await assert.rejects(
      clients[0]!.register(
        { agent: a.id, hostId: impostor.id, ip: '127.0.0.1', controlPort: 1, redirectorPort: 1, epoch: (stored?.epoch ?? 0) + 1, agentKey: a.publicRaw, chain: freshChain(stranger, impostor.publicRaw, (stored?.epoch ?? 0) + 1, Date.now()) },
        { signer: impostor },
      ),
      (e: { code?: string }) => typeof e.code === 'string' && e.code.startsWith('FERRY_ERR_CHAIN'),
    );
    assert.equal((await server.store.get(a.id))?.hostId, h1.id, 'unchanged');
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
    for (const c of clients) c.close();
    await server.close();
  }
});
