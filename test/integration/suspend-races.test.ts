// Scenario: races between the two ends' suspends and resumes. A user suspend() called while the
// peer's own suspend is still draining (our endpoint in SUS_ACKED) must finish even when the peer
// resumes before that drain ends, so the endpoint goes SUS_ACKED -> RES_ACKED without ever being
// SUSPENDED. Before the fix it waited for SUSPENDED forever (the exactly-once property test's
// rare "suspend did not finish in 20000 ms", after a move whose RES overtook the peer's DRAIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { connectedPair, dataSocketsOf, delayDataSocket, pattern, Reader, startHosts, waitFor, within } from '../helpers/harness.js';

/**
 * A connection from a new agent on hosts[0] (x) to one on hosts[1] (y), ESTABLISHED, each end
 * with a Reader, and y's first 1000 bytes (pattern 7) read by x.
 */
async function established(net: { hosts: Host[] }): Promise<{ x: AgentSocket; y: AgentSocket; rx: Reader; ry: Reader }> {
  const [x, y] = await connectedPair(net);
  const rx = new Reader();
  const ry = new Reader();
  rx.attach(x);
  ry.attach(y);
  y.write(pattern(7, 0, 1000));
  await waitFor(() => rx.length === 1000, 5000, 'first bytes');
  return { x, y, rx, ry };
}

test('suspend() while the peer is suspending us finishes even if the peer resumes before our drain ends', { timeout: 30_000 }, async () => {
  const net = await startHosts(2);
  try {
    const [, h1] = net.hosts as [Host, Host];
    const { x, y, rx, ry } = await established(net);

    // x sees its data socket late: its drain does not see y's DRAIN or end of stream for 300 ms,
    // so x stays SUS_ACKED while the control messages keep flowing.
    delayDataSocket(dataSocketsOf(x.endpoint).data, 300, 'a data socket is attached');
    // y suspends over the control channel (a move-time SUS, as in the original failure; a user
    // suspend on a live socket goes in-band and would be delayed with the socket).
    await within(y.endpoint.suspend('move'), 5000, "the peer's suspend");
    assert.equal(x.state, 'SUS_ACKED');
    // y kept the socket (x's DRAIN reached it); kill it, so that y resumes by datagram (RES over
    // UDP, which can overtake the TCP side) and x sees the socket end only 300 ms late.
    assert.ok(h1.breakDataSockets(y.localAgent) > 0, 'the kept socket was there to kill');
    const sx = x.suspend();
    // The peer resumes now: its RES reaches x while x is still draining.
    y.write(pattern(7, 1000, 500));
    await within(y.resumeConnection(), 5000, "the peer's resume");
    await within(sx, 5000, 'suspend() called in SUS_ACKED');
    // Nothing lost or repeated: the stream goes on on a new data socket.
    await x.resumeConnection();
    await waitFor(() => rx.length === 1500, 5000, 'bytes after the resume');
    assert.ok(rx.bytes().equals(pattern(7, 0, 1500)));
    x.write(pattern(8, 0, 300));
    await waitFor(() => ry.length === 300, 5000, 'the other direction');
    assert.ok(ry.bytes().equals(pattern(8, 0, 300)));
  } finally {
    await net.close();
  }
});

test('an in-band SUSPEND that gets no DRAIN back falls back to the SUS datagram: suspended, then resumed exactly once', { timeout: 30_000 }, async () => {
  const net = await startHosts(2);
  try {
    const { x, y, rx, ry } = await established(net);
    // x sees its data socket 1.5 s late: y's in-band SUSPEND gets no DRAIN within
    // DRAIN_TIMEOUT_MS (1 s), so y gives the socket up and sends SUS over UDP, which x answers.
    delayDataSocket(dataSocketsOf(x.endpoint).data, 1500, 'a data socket is attached');
    const t0 = Date.now();
    await within(y.suspend(), 5000, "y's suspend");
    assert.ok(Date.now() - t0 >= 900, 'the suspend waited for the in-band answer first');
    assert.equal(y.state, 'SUSPENDED');
    await waitFor(() => x.state === 'SUSPENDED', 5000, 'x suspended by the SUS datagram');
    y.write(pattern(7, 1000, 500));
    x.write(pattern(8, 0, 300));
    await within(y.resumeConnection(), 8000, "y's resume");
    await waitFor(() => rx.length === 1500 && ry.length === 300, 5000, 'bytes after the resume');
    assert.ok(rx.bytes().equals(pattern(7, 0, 1500)));
    assert.ok(ry.bytes().equals(pattern(8, 0, 300)));
    assert.equal(y.endpoint.stats.reused, 0, 'the socket given up is not reused');
  } finally {
    await net.close();
  }
});
