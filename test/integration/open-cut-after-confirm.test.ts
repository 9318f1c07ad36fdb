// Scenario: an in-band open whose socket dies right after the client's CONNECT_CONFIRM, before the
// server reads it (PROTOCOL.md §5.5, "The open's socket dies"). The server host is reached
// through a TCP proxy on loopback that, on the first connection, passes the CONNECT and the
// CONNECT_ACK and then cuts both sides at the client's next byte (its CONNECT_CONFIRM), which
// never arrives. The client is ESTABLISHED as soon as it sent the confirmation, so its open
// resolves; its data socket is gone, so it resumes: its RES, under the connection key, is the
// server's key confirmation (CONNECT_ACKED × recv_res). The server delivers the connection to its
// agent, and bytes written by the client before and after the cut, and by the server, arrive
// exactly, both ways, for security on and off. (Before the fix the server dropped the half-open
// when its socket closed: the accept never came, and the client's resumes were answered
// UNKNOWN_CONNECTION.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { FRAME_LENGTH_BYTES } from '../../src/wire/index.js';
import { Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { pattern, Reader, waitFor } from '../helpers/harness.js';

/** A loopback proxy to `target()`: the first connection is cut at the client's second frame. */
async function cuttingProxy(target: () => number): Promise<{ port: number; cuts: number; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const state = { port: 0, cuts: 0, server: undefined as unknown as Server, sockets };
  let first = true;
  state.server = createServer((client) => {
    const cut = first;
    first = false;
    const upstream = netConnect({ host: '127.0.0.1', port: target() });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    upstream.on('data', (b: Buffer) => client.write(b));
    // The client's first frame (its CONNECT) passes; at the first byte past it, both sides die.
    let passed = 0;
    let head = Buffer.alloc(0);
    let firstFrame: number | undefined;
    client.on('data', (b: Buffer) => {
      if (!cut) return void upstream.write(b);
      if (firstFrame === undefined) {
        head = Buffer.concat([head, b]);
        if (head.length >= FRAME_LENGTH_BYTES) firstFrame = FRAME_LENGTH_BYTES + head.readUInt32BE(0);
      }
      const room = (firstFrame ?? Infinity) - passed;
      if (b.length <= room) {
        passed += b.length;
        upstream.write(b);
        return;
      }
      if (room > 0) upstream.write(b.subarray(0, room));
      state.cuts++;
      client.destroy();
      upstream.destroy();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  state.server.listen(0, '127.0.0.1');
  await once(state.server, 'listening');
  state.port = (state.server.address() as { port: number }).port;
  return state;
}

for (const security of [true, false]) {
  test(`an open whose socket dies right after CONNECT_CONFIRM completes by the client's resume (security ${security})`, async () => {
    const location = new MemoryLocationTable();
    let h1: Host | undefined;
    const proxy = await cuttingProxy(() => h1!.listeningRedirectorPort);
    const h0 = await Host.start({ location, name: 'h0', security });
    try {
      h1 = await Host.start({ location, name: 'h1', security, advertiseRedirectorPort: proxy.port });
      const a = await h0.addAgent();
      const b = await h1.addAgent();
      const server = h1.listen(b.id);
      const accepted = server.accept();
      // Resolves once the confirmation is sent: the cut follows it.
      const ca = await h0.connect(a.id, b.id);
      await waitFor(() => proxy.cuts === 1, 5000, 'the open cut at its CONNECT_CONFIRM');
      ca.write(pattern(1, 0, 30_000));
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the server never delivered the connection')), 10_000).unref());
      const cb = await Promise.race([accepted, timeout]);
      assert.equal(cb.connectionId, ca.connectionId);
      const ra = new Reader();
      const rb = new Reader();
      ra.attach(ca);
      rb.attach(cb);
      ca.write(pattern(1, 30_000, 20_000));
      cb.write(pattern(2, 0, 40_000));
      await waitFor(() => rb.length === 50_000 && ra.length === 40_000, 8000, 'bytes both ways after the resume');
      assert.ok(rb.bytes().equals(pattern(1, 0, 50_000)), 'client to server exact');
      assert.ok(ra.bytes().equals(pattern(2, 0, 40_000)), 'server to client exact');
      assert.equal(ca.state, 'ESTABLISHED');
      assert.equal(cb.state, 'ESTABLISHED');
      await ca.close();
      await waitFor(() => cb.state === 'CLOSED', 5000, 'peer closed');
      server.close();
    } finally {
      await Promise.all([h0.close(), h1?.close()]);
      for (const s of proxy.sockets) s.destroy();
      proxy.server.close();
    }
  });
}
