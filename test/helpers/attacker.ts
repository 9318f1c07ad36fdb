/**
 * Tools for the security integration tests: an attacker's raw UDP socket and TCP client on
 * loopback, a recording wrapper for a host's control socket (to capture genuine datagrams and
 * to silence a host), a bidirectional stream checker, and the "refused and logged once" check.
 * Everything here talks real sockets; nothing reaches into the code under test except through
 * its public surface and the wire codecs.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import type { AgentSocket } from '../../src/connection/index.js';
import type { DatagramSocketLike } from '../../src/control/index.js';
import type { Host, HostOptions } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { MemoryLogger, errorFromWire, type ErrorCode, type FerryError } from '../../src/util/index.js';
import { FLAG_REPLY, FrameDecoder, FrameType, TYPE_ERROR, decodeDatagram, decodeErrorBody, decodeFrameBody, encodeDatagram } from '../../src/wire/index.js';
import { hostStarter, pattern, Reader, waitFor } from './harness.js';

/** Split "ip:port". */
export function splitAddress(a: string): { ip: string; port: number } {
  const i = a.lastIndexOf(':');
  return { ip: a.slice(0, i), port: Number(a.slice(i + 1)) };
}

/** A datagram seen by an {@link Attacker} socket. */
export interface Seen {
  readonly msg: Buffer;
  readonly from: string;
}

/** A decoded reply to a crafted control request. */
export interface CraftedReply {
  readonly type: number;
  readonly body: Buffer;
  /** Set when the reply is a TYPE_ERROR: the error the host reported, from its wire code. */
  readonly error: FerryError | undefined;
  /** The raw wire code of an error reply. */
  readonly wire: number | undefined;
}

/** A UDP socket of the attacker's own: a different source address from every host. */
export class Attacker {
  readonly seen: Seen[] = [];
  bytesIn = 0;
  bytesOut = 0;
  private constructor(readonly socket: UdpSocket) {
    socket.on('message', (msg, rinfo) => {
      this.bytesIn += msg.length;
      this.seen.push({ msg: Buffer.from(msg), from: `${rinfo.address}:${rinfo.port}` });
    });
  }

  /** Bind on `ip` (any 127.0.0.0/8 address works on loopback: a distinct source address). */
  static async bind(ip = '127.0.0.1'): Promise<Attacker> {
    const s = createSocket('udp4');
    s.bind(0, ip);
    await once(s, 'listening');
    return new Attacker(s);
  }

  get address(): string {
    const a = this.socket.address();
    return `${a.address}:${a.port}`;
  }

  /** Send raw bytes to "ip:port". */
  send(to: string, bytes: Buffer): void {
    const { ip, port } = splitAddress(to);
    this.bytesOut += bytes.length;
    this.socket.send(bytes, port, ip);
  }

  /**
   * Send a crafted request (fresh requestId, so no host's duplicate cache can answer it) and
   * wait for the reply with that id.
   */
  async request(to: string, type: number, body: Buffer, ms = 2000): Promise<CraftedReply> {
    const requestId = randomInt(0, 2 ** 31);
    return this.sendRaw(to, encodeDatagram({ type, flags: 0, requestId }, body), requestId, ms);
  }

  /** Send exact bytes (a captured datagram) and wait for the reply to its requestId. */
  async sendRaw(to: string, datagram: Buffer, requestId = datagram.readUInt32BE(4), ms = 2000): Promise<CraftedReply> {
    const start = this.seen.length;
    this.send(to, datagram);
    let found: Seen | undefined;
    await waitFor(
      () => {
        found = this.seen.slice(start).find((s) => s.msg.length >= 8 && s.msg.readUInt32BE(4) === requestId && s.msg[2] === FLAG_REPLY);
        return found !== undefined;
      },
      ms,
      `reply to request ${requestId}`,
    );
    const { header, body } = decodeDatagram(found!.msg);
    if (header.type !== TYPE_ERROR) return { type: header.type, body: Buffer.from(body), error: undefined, wire: undefined };
    return { type: header.type, body: Buffer.from(body), error: decodeErrorBody(body), wire: body.readUInt16BE(0) };
  }

  close(): void {
    this.socket.close();
  }
}

/** Assert a crafted request was answered with an error reply carrying `code` (and its wire value). */
export function assertRefused(reply: CraftedReply, code: ErrorCode, wire?: number): void {
  assert.equal(reply.type, TYPE_ERROR, `expected an error reply (${code}), got type ${reply.type}`);
  assert.equal(reply.error?.code, code);
  if (wire !== undefined) assert.equal(reply.wire, wire);
}

/**
 * Warn-level lines of `host` that carry `code`: every refusal of bad input is logged exactly once,
 * at warn, where it is decided (consequences are logged at info or below).
 */
export function warnings(log: MemoryLogger, host: string, code: ErrorCode): number {
  return log.lines.filter((l) => l.level === 'warn' && l.fields['host'] === host && l.fields['code'] === code).length;
}

/** Wait until the host logged exactly `n` warnings with `code`, then check it stays at `n`. */
export async function assertLoggedOnce(log: MemoryLogger, host: string, code: ErrorCode, n = 1): Promise<void> {
  await waitFor(() => warnings(log, host, code) >= n, 2000, `${code} logged on ${host}`);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(warnings(log, host, code), n, `${code} logged ${warnings(log, host, code)} times on ${host}, expected ${n}`);
}

/**
 * A control socket wrapper for `wrapControlSocket`: records every datagram the host sends and
 * receives (copies), can run a hook after the host handled an incoming one, and can go silent
 * (drop everything both ways) to play a crashed host.
 */
export class Tap implements DatagramSocketLike {
  readonly sent: { msg: Buffer; to: string }[] = [];
  readonly received: { msg: Buffer; from: string }[] = [];
  /** Called after the host has handled an incoming datagram (synchronously, same tick). */
  afterIncoming: ((msg: Buffer, from: string) => void) | undefined;
  silent = false;
  constructor(private readonly inner: DatagramSocketLike) {}

  send(buf: Buffer, port: number, address: string): void {
    if (this.silent) return;
    this.sent.push({ msg: Buffer.from(buf), to: `${address}:${port}` });
    this.inner.send(buf, port, address);
  }

  on(event: 'message', listener: (msg: Buffer, rinfo: { address: string; port: number }) => void): this {
    this.inner.on(event, (msg, rinfo) => {
      if (this.silent) return;
      const from = `${rinfo.address}:${rinfo.port}`;
      this.received.push({ msg: Buffer.from(msg), from });
      listener(msg, rinfo);
      this.afterIncoming?.(msg, from);
    });
    return this;
  }

  close(): void {
    this.inner.close();
  }

  address(): { address: string; port: number } {
    return this.inner.address();
  }

  /** Requests of `type` this host sent (first sends and retransmissions alike), oldest first. */
  sentRequests(type: number): { msg: Buffer; to: string }[] {
    return this.sent.filter((s) => s.msg[1] === type && s.msg[2] === 0);
  }
}

/** A `wrapControlSocket` option that keeps each host's {@link Tap}, in creation order. */
export function tapper(): { taps: Tap[]; wrap: (s: DatagramSocketLike) => DatagramSocketLike } {
  const taps: Tap[] = [];
  return {
    taps,
    wrap: (s) => {
      const t = new Tap(s);
      taps.push(t);
      return t;
    },
  };
}

/**
 * Both directions of one connection, written with known patterns and read back: `exchange`
 * proves bytes keep flowing both ways and that each side received exactly what the other wrote.
 */
export class Link {
  readonly ra = new Reader();
  readonly rb = new Reader();
  wa = 0;
  wb = 0;
  constructor(
    public a: AgentSocket,
    public b: AgentSocket,
    private readonly seed: number,
  ) {
    this.ra.attach(a);
    this.rb.attach(b);
  }

  /** After a move: carry on with the socket object on the destination host. */
  follow(side: 'a' | 'b', sock: AgentSocket): void {
    if (side === 'a') {
      this.a = sock;
      this.ra.attach(sock);
    } else {
      this.b = sock;
      this.rb.attach(sock);
    }
  }

  /** `from`'s agent connects to `to`'s agent (which starts listening here). */
  static async open(from: Host, fromAgent: AgentId, to: Host, toAgent: AgentId, seed: number): Promise<Link> {
    const server = to.listen(toAgent);
    const accepted = server.accept();
    const a = await from.connect(fromAgent, toAgent);
    return new Link(a, await accepted, seed);
  }

  /** Write `n` more bytes each way without waiting. */
  write(n: number): void {
    this.a.write(pattern(this.seed, this.wa, n));
    this.wa += n;
    this.b.write(pattern(this.seed + 1, this.wb, n));
    this.wb += n;
  }

  /** Wait until everything written has arrived, and compare both streams byte for byte. */
  async settle(what: string, ms = 8000): Promise<void> {
    await waitFor(() => this.rb.length >= this.wa && this.ra.length >= this.wb, ms, `${what}: bytes both ways`);
    assert.equal(this.rb.length, this.wa, `${what}: a -> b length`);
    assert.equal(this.ra.length, this.wb, `${what}: b -> a length`);
    assert.ok(this.rb.bytes().equals(pattern(this.seed, 0, this.wa)), `${what}: a -> b stream differs`);
    assert.ok(this.ra.bytes().equals(pattern(this.seed + 1, 0, this.wb)), `${what}: b -> a stream differs`);
  }

  /** Write `n` bytes each way and check both streams. */
  async exchange(n: number, what: string, ms = 8000): Promise<void> {
    this.write(n);
    await this.settle(what, ms);
    assert.equal(this.a.state, 'ESTABLISHED', `${what}: a state`);
    assert.equal(this.b.state, 'ESTABLISHED', `${what}: b state`);
  }
}

/**
 * Three hosts h0, h1, h2 on `location` (each with `opts`), agent a on h0 linked to agent b on h2
 * (20,000 bytes exchanged each way): h1 is free to be a move's destination. `close()` closes
 * every host started, also any started later with `start`.
 */
export async function linkedTrio(
  location: HostOptions['location'],
  seed: number,
  opts: Partial<HostOptions> = {},
  log: MemoryLogger = new MemoryLogger(),
): Promise<{ h0: Host; h1: Host; h2: Host; a: AgentId; b: AgentId; link: Link; start(name: string, o?: Partial<HostOptions>): Promise<Host>; close(): Promise<void> }> {
  const { hosts, start } = hostStarter(location, log);
  const close = async (): Promise<void> => void (await Promise.all(hosts.map((h) => h.close())));
  try {
    const [h0, h1, h2] = [await start('h0', opts), await start('h1', opts), await start('h2', opts)];
    const a = (await h0.addAgent()).id;
    const b = (await h2.addAgent()).id;
    const link = await Link.open(h0, a, h2, b, seed);
    await link.exchange(20_000, 'before');
    return { h0, h1, h2, a, b, link, start: (name, o = {}) => start(name, { ...opts, ...o }), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The answer of a redirector to raw bytes on a fresh TCP socket. */
export interface RedirectorAnswer {
  /** The REJECT frame's error, if one came. */
  readonly error: FerryError | undefined;
  readonly wire: number | undefined;
  /** The REJECT frame's detail (the code's name). */
  readonly detail: string | undefined;
  /** Whether the host closed the socket. */
  readonly closed: boolean;
  /** Bytes received. */
  readonly bytes: number;
}

/** Open a TCP socket to `port`, write `bytes`, and collect what comes back until the host closes. */
export async function probeRedirector(port: number, bytes: Buffer, ms = 3000): Promise<RedirectorAnswer> {
  const s = netConnect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let closed = false;
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  const done = new Promise<void>((resolve) => s.once('close', () => resolve()));
  await once(s, 'connect');
  s.write(bytes);
  const timer = new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  await Promise.race([done.then(() => (closed = true)), timer]);
  s.destroy();
  const all = Buffer.concat(chunks);
  const dec = new FrameDecoder();
  dec.push(all);
  const body = all.length > 0 ? dec.next() : undefined;
  if (!body) return { error: undefined, wire: undefined, detail: undefined, closed, bytes: all.length };
  const f = decodeFrameBody(body);
  assert.equal(f.type, FrameType.REJECT, 'the redirector answers bad input only with REJECT');
  if (f.type !== FrameType.REJECT) throw new Error('unreachable');
  return { error: errorFromWire(f.wireCode, f.detail), wire: f.wireCode, detail: f.detail, closed, bytes: all.length };
}

/** Sleep (for "nothing else happens" windows). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A TCP listener an attacker names as its redirector in forged messages: a host must never dial
 * it, and `dialed` says whether one did.
 */
export class TcpTrap {
  readonly dialed: Socket[] = [];
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (s) => this.dialed.push(s));
  }

  static async open(): Promise<TcpTrap> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new TcpTrap(server, (server.address() as { port: number }).port);
  }

  close(): void {
    for (const s of this.dialed) s.destroy();
    this.server.close();
  }
}

/** A copy of `b` with bit `bit` of byte `at` flipped (a forger's one-bit change). */
export function flipBit(b: Buffer, at: number, bit = 0): Buffer {
  const out = Buffer.from(b);
  out[at]! ^= 1 << bit;
  return out;
}
