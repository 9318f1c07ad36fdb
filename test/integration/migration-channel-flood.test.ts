// Scenario: one address opens many migration channels to a host's redirector (any host key may
// open one). A channel leaves the redirector's per-source handoff slots at its first frame
// (MIG_HELLO), so before, nothing bounded how many one address held: each costs the destination a
// handshake and up to about 1.25 MiB of queued frames until its step timeout, and an attacker that
// keeps opening them holds as many as it can open in that time. Now a source address holds at
// most INCOMING_MIGRATIONS_PER_SOURCE channels: one more, and its own idlest is closed (one
// `migration_evicted` line, FERRY_ERR_LIMIT_EXCEEDED counted). A real migration from another host
// meanwhile goes through, the stream exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { MigrationChannel, type Host } from '../../src/host/index.js';
import { Identity, type HostId } from '../../src/identity/index.js';
import { MemoryLogger, limit, systemClock } from '../../src/util/index.js';
import { connectedPair, pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

test('one address holds at most INCOMING_MIGRATIONS_PER_SOURCE migration channels; real moves go on', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const net = await startHosts(3, { logger: log });
  const sockets: Socket[] = [];
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const share = limit('INCOMING_MIGRATIONS_PER_SOURCE');
    // The flooder's channels, from an address of its own, each authenticated with a fresh key.
    const open = async (): Promise<MigrationChannel> => {
      const sock = connect({ host: h2.ip, port: h2.redirectorPort, localAddress: '127.0.0.9' });
      sockets.push(sock);
      sock.on('error', () => sock.destroy());
      await once(sock, 'connect');
      return MigrationChannel.open(sock, Identity.generate(), systemClock, h2.id as HostId);
    };
    const closed = (): number => sockets.filter((s) => s.destroyed || s.readyState === 'closed').length;
    await Promise.all(Array.from({ length: share }, () => open()));
    assert.equal(closed(), 0, 'its share is held');
    assert.equal(h2.refusals.get('FERRY_ERR_LIMIT_EXCEEDED') ?? 0, 0);

    // One more: the host closes one of that address's channels for it.
    await open();
    await waitFor(() => closed() === 1, 5000, 'one channel of the flooding address closed');
    assert.equal(h2.refusals.get('FERRY_ERR_LIMIT_EXCEEDED'), 1);
    assert.equal(log.lines.filter((l) => l.event === 'migration_evicted' && l.fields['host'] === 'h2').length, 1);

    // A real move from another address gets in meanwhile, and the stream is exact.
    const [c, s] = await connectedPair(net);
    const rs = new Reader();
    rs.attach(s);
    c.write(pattern(8, 0, 4000));
    await waitFor(() => rs.length === 4000, 5000, 'bytes before the move');
    await h0.migrateAgent(c.localAgent, { ip: h2.ip, redirectorPort: h2.redirectorPort, hostId: h2.id });
    const moved = h2.socketsOf(c.localAgent);
    assert.equal(moved.length, 1);
    moved[0]!.write(pattern(8, 4000, 4000));
    await waitFor(() => rs.length === 8000, 10_000, 'bytes after the move');
    assert.ok(rs.bytes().equals(pattern(8, 0, 8000)));
    assert.ok(h1);
  } finally {
    for (const sock of sockets) sock.destroy();
    await net.close();
  }
});
