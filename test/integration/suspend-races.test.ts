// Scenario: races between the two ends' suspends and resumes. A user suspend() called while the
// peer's own suspend is still draining (our endpoint in SUS_ACKED) must finish even when the peer
// resumes before that drain ends, so the endpoint goes SUS_ACKED -> RES_ACKED without ever being
// SUSPENDED. Before the fix it waited for SUSPENDED forever (the exactly-once property test's
// rare "suspend did not finish in 20000 ms", after a move whose RES overtook the peer's DRAIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

/** Fail (not hang) after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Make an endpoint see everything on its current data socket (frames, end, close) `ms` late, as
 * when its TCP events queue behind UDP ones (test-only reach into the internals).
 */
function delayDataSocket(sock: AgentSocket, ms: number): void {
  const ds = (sock.endpoint as unknown as { data?: { handlers: { frame(f: unknown): void; close(e: unknown): void; writable(): void } } }).data;
  assert.ok(ds, 'a data socket is attached');
  const h = ds.handlers;
  ds.handlers = {
    frame: (f) => void setTimeout(() => h.frame(f), ms),
    close: (e) => void setTimeout(() => h.close(e), ms),
    writable: () => h.writable(),
  };
}

test('suspend() while the peer is suspending us finishes even if the peer resumes before our drain ends', { timeout: 30_000 }, async () => {
  const net = await startHosts(2);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const server = h1.listen(b.id);
    const acc = server.accept();
    const x = await h0.connect(a.id, b.id);
    const y = await acc;
    const rx = new Reader();
    const ry = new Reader();
    rx.attach(x);
    ry.attach(y);
    await waitFor(() => x.state === 'ESTABLISHED' && y.state === 'ESTABLISHED', 5000, 'established');
    y.write(pattern(7, 0, 1000));
    await waitFor(() => rx.length === 1000, 5000, 'first bytes');

    // x sees its data socket late: its drain does not see y's DRAIN or end of stream for 300 ms,
    // so x stays SUS_ACKED while the control messages keep flowing.
    delayDataSocket(x, 300);
    // y suspends over the control channel (a move-time SUS, as in the original failure; a user
    // suspend on a live socket goes in-band and would be delayed with the socket).
    await within(y.endpoint.suspend('move'), 5000, "the peer's suspend");
    assert.equal(x.state, 'SUS_ACKED');
    // y kept the socket (x's DRAIN reached it); kill it, so that y resumes by datagram (RES over
    // UDP, which can overtake the TCP side) and x sees the socket end only 300 ms late.
    assert.ok(h1.breakDataSockets(b.id) > 0, 'the kept socket was there to kill');
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
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const server = h1.listen(b.id);
    const acc = server.accept();
    const x = await h0.connect(a.id, b.id);
    const y = await acc;
    const rx = new Reader();
    const ry = new Reader();
    rx.attach(x);
    ry.attach(y);
    await waitFor(() => x.state === 'ESTABLISHED' && y.state === 'ESTABLISHED', 5000, 'established');
    y.write(pattern(7, 0, 1000));
    await waitFor(() => rx.length === 1000, 5000, 'first bytes');
    // x sees its data socket 1.5 s late: y's in-band SUSPEND gets no DRAIN within
    // DRAIN_TIMEOUT_MS (1 s), so y gives the socket up and sends SUS over UDP, which x answers.
    delayDataSocket(x, 1500);
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
