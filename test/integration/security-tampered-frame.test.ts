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
import type { AgentId } from '../../src/identity/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { FRAME_LENGTH_BYTES } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Link, assertLoggedOnce } from '../helpers/attacker.js';

/** Sealed frames at least this long carry DATA (an ACK is 17 + 16 bytes sealed). */
const DATA_BODY_MIN = 64;

type TestNet = Awaited<ReturnType<typeof startHosts>>;

/**
 * A TCP proxy to `target`. Server->client bytes pass as they come; client->server bytes are cut
 * into frames (length prefix + body), each shown to {@link onFrame}, until {@link done}: then
 * they pass as they come too.
 */
abstract class FrameProxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  connections = 0;
  upstreamClosed = 0;
  constructor(target: number) {
    this.server = createServer((down) => {
      const conn = ++this.connections;
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
      let pending = Buffer.alloc(0);
      let frames = 0;
      down.on('data', (chunk: Buffer) => {
        if (this.done) return void up.write(chunk);
        pending = Buffer.concat([pending, chunk]);
        // The complete frames go on in one write, split after a frame that onFrame adds bytes to.
        let from = 0;
        let at = 0;
        while (pending.length - at >= FRAME_LENGTH_BYTES) {
          const len = pending.readUInt32BE(at);
          if (pending.length - at < FRAME_LENGTH_BYTES + len) break;
          const frame = pending.subarray(at, at + FRAME_LENGTH_BYTES + len);
          at += frame.length;
          const extra = this.onFrame(frame, frames++, conn);
          if (extra) {
            up.write(pending.subarray(from, at));
            up.write(extra);
            from = at;
          }
        }
        if (at > from) up.write(pending.subarray(from, at));
        pending = pending.subarray(at);
        if (this.done && pending.length > 0) {
          up.write(pending);
          pending = Buffer.alloc(0);
        }
      });
    });
  }

  /** The proxy has done its one act: it only passes bytes from now on. */
  protected abstract get done(): boolean;

  /**
   * The `index`th client->server frame of the proxy's `conn`th connection (length prefix + body),
   * which may be changed in place before it goes on; returns bytes to send right after it, if any.
   */
  protected abstract onFrame(frame: Buffer, index: number, conn: number): Buffer | undefined;

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

/** Point `agent`'s location at a proxy on `port` (a new epoch): opens to it dial through the proxy. */
async function routeThrough(net: TestNet, agent: AgentId, port: number): Promise<void> {
  const cur = await net.location.lookup(agent);
  assert.ok(cur);
  await net.location.register({ ...cur, redirectorPort: port, epoch: cur.epoch + 1 });
}

/** A TCP proxy to `target` that flips one bit in the first client->server DATA frame it sees. */
class FlippingProxy extends FrameProxy {
  flipped = false;
  protected get done(): boolean {
    return this.flipped;
  }

  // After the first frame (the HELLO), corrupt the body of the first DATA-sized frame.
  protected onFrame(frame: Buffer, index: number): undefined {
    if (index > 0 && frame.length - FRAME_LENGTH_BYTES >= DATA_BODY_MIN && !this.flipped) {
      // A bit in the ciphertext of the DATA header: the GCM tag no longer matches.
      frame[FRAME_LENGTH_BYTES + 3]! ^= 0x10;
      this.flipped = true;
    }
    return undefined;
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
    await routeThrough(net, b.id, proxyPort);

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
class ReplayingProxy extends FrameProxy {
  replayed = false;
  constructor(
    target: number,
    private readonly len: number,
  ) {
    super(target);
  }

  protected get done(): boolean {
    return this.replayed;
  }

  protected onFrame(frame: Buffer): Buffer | undefined {
    if (frame.length - FRAME_LENGTH_BYTES !== this.len || this.replayed) return undefined;
    this.replayed = true;
    return Buffer.from(frame);
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
    await routeThrough(net, b.id, proxyPort);
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

/**
 * A TCP proxy to `target` that keeps the first client->server frame with a `len`-byte body from
 * its first connection, and sends it on its second connection right after that one's next frame.
 */
class CarryingProxy extends FrameProxy {
  kept: Buffer | undefined;
  carried = false;
  constructor(
    target: number,
    private readonly len: number,
  ) {
    super(target);
  }

  protected get done(): boolean {
    return this.carried;
  }

  protected onFrame(frame: Buffer, index: number, conn: number): Buffer | undefined {
    if (conn === 1 && !this.kept && frame.length - FRAME_LENGTH_BYTES === this.len) this.kept = Buffer.from(frame);
    if (conn !== 2 || !this.kept || index === 0 || this.carried) return undefined;
    this.carried = true;
    return this.kept;
  }
}

test("a sealed SUSPEND carried to another connection's socket is refused with DECRYPT_FAILED: that connection heals, the first is untouched", async () => {
  const log = new MemoryLogger();
  const net = await startHosts(2, { logger: log });
  const [h0, h1] = net.hosts as [Host, Host];
  const proxy = new CarryingProxy(h1.redirectorPort, 25);
  try {
    const proxyPort = await proxy.listen();
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    await routeThrough(net, b.id, proxyPort);
    await routeThrough(net, d.id, proxyPort);
    // Both connections' first data sockets go through the proxy: a->b is its first, c->d its second.
    const first = await Link.open(h0, a.id, h1, b.id, 91);
    const second = await Link.open(h0, c.id, h1, d.id, 92);
    await first.exchange(20_000, 'first before');
    await first.a.suspend();
    await waitFor(() => proxy.kept !== undefined, 5000, "the proxy kept the first connection's SUSPEND");
    // The second connection's next client frame carries the stolen SUSPEND behind it: sealed under
    // the first connection's keys, it cannot open under the second's.
    second.write(30_000);
    await waitFor(() => proxy.carried, 5000, 'the proxy carried the SUSPEND over');
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_DECRYPT_FAILED');
    // Like any frame that fails AEAD, it costs the second connection its data socket, nothing
    // more: both ends are ESTABLISHED again with no call from either agent, every byte once.
    await waitFor(() => second.a.state === 'ESTABLISHED' && second.b.state === 'ESTABLISHED', 8000, 'the second connection healed by itself');
    await second.settle('the second connection after the refusal', 8000);
    await second.exchange(20_000, 'second after');
    // The first connection stays as its owner left it, and resumes when asked.
    assert.equal(first.a.state, 'SUSPENDED');
    await first.a.resumeConnection();
    await first.exchange(20_000, 'first after');
  } finally {
    await proxy.close();
    await net.close();
  }
});
