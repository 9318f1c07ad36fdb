// Scenario: the dialing end learns its peer's new address from the peer's RES after a move (an
// unproven candidate), but its dial there is cut short when the peer suspends again, and the peer
// then moves back to the address the dialer still holds as proven. The next resume's RES is
// answered there; the dialer must dial there too, not the stale candidate (before the fix it
// dialed the old host, got PEER_MOVING, and did so on every attempt until the reconnect limit:
// the exactly-once property test's rare "resume did not finish in 20000 ms").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import type { Identity } from '../../src/identity/index.js';
import { pattern, Reader, startHosts, waitFor, within } from '../helpers/harness.js';

test('a stale candidate address is not dialed once the peer answers a RES from elsewhere', { timeout: 60_000 }, async () => {
  const net = await startHosts(3, { reconnectLimitMs: 10_000 });
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    // a dials (the lower AgentId dials).
    let a: Identity;
    let b: Identity;
    do {
      a = await h0.addAgent();
      b = await h1.addAgent();
    } while (!(a.id < b.id));
    const server = h1.listen(b.id);
    const acc = server.accept();
    const sa = await h0.connect(a.id, b.id);
    let sb: AgentSocket = await acc;
    server.close();
    const ra = new Reader();
    ra.attach(sa);
    await waitFor(() => sa.state === 'ESTABLISHED' && sb.state === 'ESTABLISHED', 5000, 'established');

    // a's resume dials hang (a socket that never answers), so b's RES from h2 leaves a with an
    // unproven candidate (h2) and a dial in progress...
    const env = (sa.endpoint as unknown as { env: { dial: (ip: string, port: number) => unknown } }).env;
    const realDial = env.dial;
    (sa.endpoint as unknown as { env: unknown }).env = { ...env, dial: () => new Duplex({ read() {}, write: (_c, _e, cb) => cb() }) };
    sb = (await h1.moveAgent(b.id, h2)).sockets[0]!;
    await waitFor(() => sa.state === 'RES_ACKED', 5000, 'a acknowledged b\'s RES from h2');
    // ...which b's suspend cuts short.
    await within(sb.suspend(), 5000, 'b suspends');
    await waitFor(() => sa.state === 'SUSPENDED', 5000, 'a suspended');
    (sa.endpoint as unknown as { env: unknown }).env = { ...env, dial: realDial };
    // b goes back to h1, where a still holds it as its proven peer address.
    sb = (await h2.moveAgent(b.id, h1)).sockets[0]!;
    sb.write(pattern(3, 0, 5000));
    await within(sa.resumeConnection(), 8000, 'a resumes');
    await waitFor(() => ra.length === 5000, 5000, 'bytes after the resume');
    assert.ok(ra.bytes().equals(pattern(3, 0, 5000)));
  } finally {
    await net.close();
  }
});
