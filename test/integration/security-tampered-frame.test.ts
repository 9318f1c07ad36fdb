// Scenario: a man in the middle on the data path. The server agent's location points at a TCP
// proxy in front of its host's redirector, so the client's open dials through it. The proxy
// passes the HELLO and HELLO_ACK untouched, then flips one bit inside the first sealed DATA frame
// from client to server — once. The server refuses the frame with FERRY_ERR_DECRYPT_FAILED, logs
// it once, and drops the data socket; the connection recovers by itself (both ends resume, with
// no call from either agent) and each side receives exactly the bytes the other wrote. A
// bystander connection on the same hosts is not disturbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Host } from '../../src/host/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { FRAME_LENGTH_BYTES } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Link, assertLoggedOnce } from '../helpers/attacker.js';

/** Sealed frames at least this long carry DATA (an ACK is 17 + 16 bytes sealed). */
const DATA_BODY_MIN = 64;

/** A TCP proxy to `target` that flips one bit in the first client->server DATA frame it sees. */
class FlippingProxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  connections = 0;
  upstreamClosed = 0;
  flipped = false;
  constructor(target: number) {
    this.server = createServer((down) => {
      this.connections++;
      const up = netConnect({ host: '127.0.0.1', port: target });
      this.sockets.add(down).add(up);
      down.on('error', () => {});
      up.on('error', () => {});
      up.on('close', () => {
        this.upstreamClosed++;
        down.destroy();
      });
      down.on('close', () => up.destroy());
      up.on('data', (c: Buffer) => down.write(c));
      // Client -> server: walk the frames (length prefix + body); after the first (the HELLO),
      // corrupt the body of the first DATA-sized frame.
      let pending = Buffer.alloc(0);
      let frames = 0;
      down.on('data', (chunk: Buffer) => {
        if (this.flipped) return void up.write(chunk);
        pending = Buffer.concat([pending, chunk]);
        let at = 0;
        while (pending.length - at >= FRAME_LENGTH_BYTES) {
          const len = pending.readUInt32BE(at);
          if (pending.length - at < FRAME_LENGTH_BYTES + len) break;
          if (frames > 0 && len >= DATA_BODY_MIN && !this.flipped) {
            // A bit in the ciphertext of the DATA header: the GCM tag no longer matches.
            pending[at + FRAME_LENGTH_BYTES + 3]! ^= 0x10;
            this.flipped = true;
          }
          frames++;
          at += FRAME_LENGTH_BYTES + len;
        }
        up.write(pending.subarray(0, at));
        pending = pending.subarray(at);
        if (this.flipped && pending.length > 0) {
          up.write(pending);
          pending = Buffer.alloc(0);
        }
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

test('a tampered sealed frame is refused with DECRYPT_FAILED and the connection heals itself', async () => {
  const log = new MemoryLogger();
  const net = await startHosts(2, { logger: log });
  const [h0, h1] = net.hosts as [Host, Host];
  const proxy = new FlippingProxy(h1.redirectorPort);
  try {
    const proxyPort = await proxy.listen();
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const bystander = await Link.open(h0, c.id, h1, d.id, 70);
    await bystander.exchange(40_000, 'bystander before');

    // Point b's location at the proxy: the client's open (its first data socket) goes through it.
    const cur = await net.location.lookup(b.id);
    assert.ok(cur);
    await net.location.register({ ...cur, redirectorPort: proxyPort, epoch: cur.epoch + 1 });

    const link = await Link.open(h0, a.id, h1, b.id, 80);
    link.write(200_000);
    await waitFor(() => proxy.flipped, 5000, 'the proxy flipped a bit');
    // The server dropped the tampered socket: the proxy's upstream side was closed by the host.
    await waitFor(() => proxy.upstreamClosed >= 1, 5000, 'the server dropped the data socket');
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_DECRYPT_FAILED');
    assert.equal(log.lines.filter((l) => l.event === 'data_socket_refused' && l.fields['code'] === 'FERRY_ERR_DECRYPT_FAILED').length, 1);

    // Recovery with no agent involved: the stream completes, both ways, byte for byte.
    await link.settle('after the tampered frame', 8000);
    await link.exchange(100_000, 'after the recovery');
    const server = link.b.endpoint;
    assert.ok(server.stats.sockets >= 2, 'a new data socket replaced the tampered one');
    assert.ok(server.stats.resumes >= 1 || link.a.endpoint.stats.resumes >= 1, 'recovered by resuming');
    assert.ok(proxy.connections >= 1);
    await bystander.exchange(40_000, 'bystander after');
    // Only one frame was tampered with, so only one refusal anywhere.
    assert.equal(log.lines.filter((l) => l.fields['code'] === 'FERRY_ERR_DECRYPT_FAILED' && l.level === 'warn').length, 1);
  } finally {
    await proxy.close();
    await net.close();
  }
});

/** A TCP proxy to `target` that sends the first client->server frame with a `len`-byte body twice. */
class ReplayingProxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  replayed = false;
  constructor(target: number, len: number) {
    this.server = createServer((down) => {
      const up = netConnect({ host: '127.0.0.1', port: target });
      this.sockets.add(down).add(up);
      down.on('error', () => {});
      up.on('error', () => {});
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('data', (c: Buffer) => down.write(c));
      let pending = Buffer.alloc(0);
      down.on('data', (chunk: Buffer) => {
        if (this.replayed) return void up.write(chunk);
        pending = Buffer.concat([pending, chunk]);
        let at = 0;
        while (pending.length - at >= FRAME_LENGTH_BYTES) {
          const n = pending.readUInt32BE(at);
          if (pending.length - at < FRAME_LENGTH_BYTES + n) break;
          const frame = pending.subarray(at, at + FRAME_LENGTH_BYTES + n);
          up.write(frame);
          if (n === len && !this.replayed) {
            this.replayed = true;
            up.write(Buffer.from(frame));
          }
          at += FRAME_LENGTH_BYTES + n;
        }
        pending = pending.subarray(at);
        if (this.replayed && pending.length > 0) {
          up.write(pending);
          pending = Buffer.alloc(0);
        }
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

test('an in-band SUSPEND replayed on the kept socket is refused with DECRYPT_FAILED; the suspend stands and the resume dials anew', async () => {
  const log = new MemoryLogger();
  const net = await startHosts(2, { logger: log });
  const [h0, h1] = net.hosts as [Host, Host];
  // The sealed SUSPEND: 9-byte body + 16-byte tag (a DRAIN is the same size, but the client sends
  // none before its suspend; ACKs are 33 bytes).
  const proxy = new ReplayingProxy(h1.redirectorPort, 25);
  try {
    const proxyPort = await proxy.listen();
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const cur = await net.location.lookup(b.id);
    assert.ok(cur);
    await net.location.register({ ...cur, redirectorPort: proxyPort, epoch: cur.epoch + 1 });
    const link = await Link.open(h0, a.id, h1, b.id, 90);
    await link.exchange(50_000, 'before');
    await link.a.suspend();
    await waitFor(() => proxy.replayed, 5000, 'the proxy replayed the SUSPEND');
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_DECRYPT_FAILED');
    // The replay changed nothing but the kept socket: both ends stay suspended.
    assert.equal(link.b.state, 'SUSPENDED');
    assert.equal(link.a.state, 'SUSPENDED');
    link.write(20_000);
    await link.a.resumeConnection();
    await link.settle('after the resume');
    assert.equal(link.a.endpoint.stats.reused + link.b.endpoint.stats.reused, 0, 'the refused socket was not reused');
    await link.exchange(20_000, 'after');
  } finally {
    await proxy.close();
    await net.close();
  }
});
