// Scenario: a reader that stops reading stops the writer (write() returns false, 'drain' follows
// when it reads again) with memory bounded by the budget and window; end() half-closes through
// the stream offsets, across a move, and the peer sees 'end' after every byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

test('backpressure: a paused reader bounds what the writer may buffer', async () => {
  const budget = 256 * 1024;
  const net = await startHosts(2, { sendBudget: budget, receiveWindow: budget });
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const acc = h1.listen(b.id).accept();
    const sa = await h0.connect(a.id, b.id);
    const sb = await acc;
    sb.pause();
    let written = 0;
    let refused = false;
    for (let i = 0; i < 200 && !refused; i++) {
      refused = !sa.write(pattern(3, written, 16 * 1024));
      written += 16 * 1024;
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(refused, 'write() returned false');
    await new Promise((r) => setTimeout(r, 100));
    // Everything written is either unacknowledged at the sender (≤ budget + one write) or
    // held at the receiver (≤ window + the Readable high-water mark).
    assert.ok(sa.endpoint.send.unacked <= budget + 16 * 1024, `sender holds ${sa.endpoint.send.unacked}`);
    assert.ok(sb.endpoint.recv.queued <= budget, `receiver holds ${sb.endpoint.recv.queued}`);
    const drained = new Promise((r) => sa.once('drain', r));
    const r = new Reader();
    r.attach(sb);
    sb.resume();
    await drained;
    await waitFor(() => r.length === written, 5000, 'all bytes after resume of reading');
    assert.ok(r.bytes().equals(pattern(3, 0, written)));
  } finally {
    await net.close();
  }
});

test('end() half-closes: the peer reads every byte then end, across a move, and can still reply', async () => {
  const net = await startHosts(3);
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const acc = h1.listen(b.id).accept();
    const sa = await h0.connect(a.id, b.id);
    const sb = await acc;
    const rb = new Reader();
    rb.attach(sb);
    let ended = false;
    sb.on('end', () => (ended = true));
    sa.write(pattern(4, 0, 300_000));
    sa.end();
    // a moves while its FIN may still be in flight.
    const moved = await h0.moveAgent(a.id, h2);
    const sa2 = moved.sockets[0] as AgentSocket;
    const ra = new Reader();
    ra.attach(sa2);
    await waitFor(() => ended, 8000, "peer 'end'");
    assert.ok(rb.bytes().equals(pattern(4, 0, 300_000)));
    sb.end(pattern(5, 0, 1000));
    await waitFor(() => ra.length === 1000, 8000, 'reply after half-close');
    assert.ok(ra.bytes().equals(pattern(5, 0, 1000)));
  } finally {
    await net.close();
  }
});

test('a graceful close delivers every byte still unread (far more than one read chunk) before end', async () => {
  const net = await startHosts(2);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const acc = h1.listen(b.id).accept();
    const sa = await h0.connect(a.id, b.id);
    const sb = await acc;
    sb.pause();
    sa.write(pattern(6, 0, 700_000));
    await sa.close();
    await waitFor(() => sb.state === 'CLOSED', 5000, 'peer closed');
    const r = new Reader();
    let ended = false;
    let failed: unknown;
    sb.on('end', () => (ended = true));
    sb.on('error', (e) => (failed = e));
    r.attach(sb);
    sb.resume();
    await waitFor(() => ended, 5000, 'end after all bytes');
    assert.equal(failed, undefined);
    assert.ok(r.bytes().equals(pattern(6, 0, 700_000)), 'every byte, then end');
  } finally {
    await net.close();
  }
});

test('ending both directions closes gracefully: the peer sees end, not an abort', async () => {
  const net = await startHosts(2);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const acc = h1.listen(b.id).accept();
    const sa = await h0.connect(a.id, b.id);
    const sb = await acc;
    const errors: unknown[] = [];
    sa.on('error', (e) => errors.push(e));
    sb.on('error', (e) => errors.push(e));
    const ra = new Reader();
    const rb = new Reader();
    ra.attach(sa);
    rb.attach(sb);
    sa.end(pattern(8, 0, 50_000));
    sb.end(pattern(9, 0, 50_000));
    await waitFor(() => sa.state === 'CLOSED' && sb.state === 'CLOSED', 8000, 'both closed');
    assert.deepEqual(errors, [], 'no PEER_ABORTED on either side');
    assert.ok(rb.bytes().equals(pattern(8, 0, 50_000)));
    assert.ok(ra.bytes().equals(pattern(9, 0, 50_000)));
  } finally {
    await net.close();
  }
});
