/**
 * Hosts on two loopback addresses: each dial leaves from its host's own address, whether the host
 * had to bind it (127.0.0.2: the kernel would pick 127.0.0.1) or not (127.0.0.1, once the
 * kernel's answer is in). The peer reads that address off the TCP socket of an in-band open and
 * sends its control datagrams there: a resume after a cut data socket (RES over UDP, a new dial)
 * and the close (CLS over UDP) in both directions prove it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { dataSocketsOf, pattern, Reader, waitFor } from '../helpers/harness.js';
import type { AgentSocket } from '../../src/connection/index.js';

async function open(from: Host, to: Host): Promise<[AgentSocket, AgentSocket]> {
  const a = await from.addAgent();
  const b = await to.addAgent();
  const server = to.listen(b.id);
  const acc = server.accept();
  const c = await from.connect(a.id, b.id);
  const s = await acc;
  server.close();
  return [c, s];
}

function remoteIp(sock: AgentSocket): string | undefined {
  return dataSocketsOf(sock.endpoint).data?.socket.remoteAddress?.replace(/^::ffff:/, '');
}

test('dials leave from the host address, bound or not, and the peer reaches it there', { timeout: 30_000 }, async () => {
  const location = new MemoryLocationTable();
  const one = await Host.start({ location, ip: '127.0.0.1', name: 'one' });
  const two = await Host.start({ location, ip: '127.0.0.2', name: 'two' });
  try {
    // Twice each way: the first dial binds while the kernel is asked, the second uses its answer.
    for (let round = 0; round < 2; round++) {
      for (const [from, to, fromIp] of [[one, two, '127.0.0.1'], [two, one, '127.0.0.2']] as const) {
        const [c, s] = await open(from, to);
        assert.equal(remoteIp(s), fromIp, `round ${round}: the acceptor sees the dial from ${fromIp}`);
        const rx = new Reader();
        rx.attach(s);
        c.write(pattern(round, 0, 1000));
        await waitFor(() => rx.length === 1000, 5000, 'bytes before the cut');
        // The acceptor cuts its data socket: the ends resume with RES datagrams to the control
        // ports at the addresses they know and a new dial.
        const socketsBefore = c.endpoint.stats.sockets;
        assert.ok(s.endpoint.breakDataSocket());
        c.write(pattern(round, 1000, 1000));
        await waitFor(() => rx.length === 2000, 5000, 'bytes after the cut');
        assert.ok(rx.bytes().equals(pattern(round, 0, 2000)));
        assert.ok(c.endpoint.stats.sockets > socketsBefore, 'resumed on a new data socket');
        assert.equal(remoteIp(s), fromIp, `round ${round}: the resumed socket is from ${fromIp} too`);
        // CLS and CLS_ACK over UDP, each to the address the other end knows.
        await c.close();
        await waitFor(() => s.state === 'CLOSED', 5000, 'the acceptor closed by the CLS');
      }
      await Promise.all([(one as unknown as { routes: { settled(): Promise<void> } }).routes.settled(), (two as unknown as { routes: { settled(): Promise<void> } }).routes.settled()]);
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
});
