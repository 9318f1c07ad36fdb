/**
 * An in-memory stream network: listeners and dials that give pairs of `node:stream` Duplex
 * sockets, with no kernel and no real time, so whole hosts can run in one process under a
 * `ManualClock` (the simulator, test/sim/). Bytes are delivered in order after a seeded delay, in
 * seeded segments (a write may arrive as several reads, as over TCP). Each connection is a
 * {@link MemoryStreamLink} whose faults a test can trigger: a cut (both ends see the stream end,
 * at different times), a reset (both ends get ECONNRESET), a stall (bytes held until it lifts:
 * a slow path or a peer that stopped reading) and a black hole (bytes vanish silently until the
 * link resets, as TCP's user timeout would). A whole address can go down ({@link
 * MemoryStreamNetwork.hostDown}): a host whose process died, or whose machine did.
 *
 * Backpressure ({@link MemoryStreamOptions.window}): each direction holds at most `window` bytes
 * written and not yet read by the peer's reader (in flight, held by a stall or a black hole, or
 * received and unread), as TCP's send buffer and window do: the write that crosses it is sent,
 * and its callback waits (so `write()` returns false once the socket's own buffer fills, and
 * 'drain' comes later) until the peer's reader has read enough and, one path delay later, the
 * window update arrives.
 *
 * Determinism: every delay and segment size comes from the injected `random`, and delivery is
 * by the injected clock's timers, so a seed fixes what happens.
 */
import { Duplex } from 'node:stream';
import { FerryError, type Clock } from '../util/index.js';

/** Options of a {@link MemoryStreamNetwork}. */
export interface MemoryStreamOptions {
  readonly clock: Clock;
  /** Uniform [0, 1) source (seeded in simulations). */
  readonly random: () => number;
  /** One-way delay of each segment, uniform in [min, max] ms (default [0.1, 2]). */
  readonly delayMs?: readonly [number, number];
  /** Largest segment a write is cut into (default 16 KiB). */
  readonly maxSegment?: number;
  /**
   * Bytes one direction may hold written and not yet read at the other end (default: no limit).
   * A stalled reader then backs up its peer's writes, as over TCP.
   */
  readonly window?: number;
  /** Told of each segment as it reaches an end (`bytes` null: the end of stream), e.g. for a trace. */
  readonly onSegment?: (link: number, to: 0 | 1, bytes: number | null) => void;
}

/** A listener of a {@link MemoryStreamNetwork}. */
export interface MemoryStreamListener {
  readonly port: number;
  close(): Promise<void>;
}

type Dir = 0 | 1;

/** One connection: its two ends and the faults a test can trigger on it. */
export class MemoryStreamLink {
  /** The dialing end (index 0) and the accepting end (index 1). */
  readonly ends: [MemoryStreamSocket, MemoryStreamSocket];
  private readonly lastAt: [number, number] = [0, 0];
  private readonly held: [Array<() => void>, Array<() => void>] = [[], []];
  /** Per direction (by sending end): bytes sent, and bytes that reached the other end. */
  private readonly sentBytes: [number, number] = [0, 0];
  private readonly arrivedBytes: [number, number] = [0, 0];
  /** Per direction: a window update on its way back to the sender. */
  private readonly updating: [boolean, boolean] = [false, false];
  private stalled = false;
  private holed = false;
  /** Bytes a direction may hold unread (the network's {@link MemoryStreamOptions.window}). */
  get window(): number {
    return this.net.window;
  }

  /** Whether either end still runs. */
  live = true;
  /** Whether the listener has the accepting end (before that, nobody could see its errors). */
  accepted = false;

  constructor(
    private readonly net: MemoryStreamNetwork,
    readonly id: number,
    /** The dialing end's address and the accepting end's. */
    readonly dialerIp: string,
    readonly acceptorIp: string,
    acceptorPort: number,
  ) {
    this.ends = [new MemoryStreamSocket(this, 0, acceptorIp, acceptorPort), new MemoryStreamSocket(this, 1, dialerIp, 0)];
  }

  /** @internal No byte of either direction arrives before `at` (the connection is accepted then). */
  openAt(at: number): void {
    this.lastAt[0] = this.lastAt[1] = at;
  }

  /**
   * @internal Bytes end `from` wrote that the other end's reader has not read yet: in flight,
   * held, dropped by a black hole (never acknowledged), or received and unread.
   */
  unread(from: Dir): number {
    const to = (1 - from) as Dir;
    return this.sentBytes[from] - this.arrivedBytes[from] + this.ends[to].readableLength;
  }

  /**
   * @internal The reader of end `to` read, or bytes reached it: if its peer waits for room, a
   * window update goes back to it (after a path delay) and lets it go on if there is room then.
   */
  consumed(to: Dir): void {
    const from = (1 - to) as Dir;
    if (this.updating[from] || !this.ends[from].waitingForRoom()) return;
    this.updating[from] = true;
    this.net.clock.setTimer(this.net.delay(), () => {
      this.updating[from] = false;
      if (this.unread(from) <= this.net.window) this.ends[from].release();
    });
  }

  /** @internal A segment (or the end of stream when `chunk` is null) from end `from`. */
  send(from: Dir, chunk: Buffer | null): void {
    if (!this.live) return;
    if (this.holed) {
      // Bytes into a black hole are never acknowledged: they hold the window until the reset.
      if (chunk !== null) this.sentBytes[from] += chunk.length;
      return;
    }
    const to = (1 - from) as Dir;
    if (chunk !== null) this.sentBytes[from] += chunk.length;
    const pieces: (Buffer | null)[] = [];
    if (chunk === null) pieces.push(null);
    else for (let o = 0; o < chunk.length; ) {
      const n = Math.max(1, Math.min(chunk.length - o, Math.ceil(this.net.random() * this.net.maxSegment)));
      pieces.push(Buffer.from(chunk.subarray(o, o + n)));
      o += n;
    }
    for (const p of pieces) {
      // In order, as TCP: never before the previous segment of this direction.
      const at = Math.max(this.lastAt[from], this.net.clock.now() + this.net.delay());
      this.lastAt[from] = at;
      this.net.clock.setTimer(at - this.net.clock.now(), () => this.arrive(to, p));
    }
  }

  private arrive(to: Dir, p: Buffer | null): void {
    const deliver = (): void => {
      this.net.onSegment?.(this.id, to, p === null ? null : p.length);
      if (p !== null) this.arrivedBytes[(1 - to) as Dir] += p.length;
      this.ends[to].receive(p);
      this.consumed(to);
    };
    if (this.stalled) this.held[to].push(deliver);
    else deliver();
  }

  /** Both ends see the stream end (no error), each after its own delay: a cut path with FINs. */
  cut(): void {
    if (!this.live) return;
    this.live = false;
    for (const e of this.ends) this.net.clock.setTimer(this.net.delay(), () => e.destroy());
  }

  /** Both ends fail with ECONNRESET, each after its own delay. */
  reset(): void {
    if (!this.live) return;
    this.live = false;
    for (const e of this.ends) this.net.clock.setTimer(this.net.delay(), () => e.destroy(this.seen(e) ? resetError() : undefined));
  }

  /** Hold every byte in both directions until {@link unstall}. */
  stall(): void {
    this.stalled = true;
  }

  /** Deliver what was held, in order, and go on. */
  unstall(): void {
    this.stalled = false;
    for (const q of this.held) for (const d of q.splice(0)) d();
  }

  /** Drop every byte from now on, silently; after `ms` the link resets (TCP's user timeout). */
  blackhole(ms: number): void {
    if (!this.live) return;
    this.holed = true;
    this.net.clock.setTimer(ms, () => this.reset());
  }

  /** @internal One end went away: the other sees the end of stream after the path's delay. */
  closedBy(from: Dir, err: Error | null): void {
    if (!this.live) return;
    this.live = false;
    const other = this.ends[1 - from]!;
    const at = Math.max(this.lastAt[from], this.net.clock.now() + this.net.delay());
    this.net.clock.setTimer(at - this.net.clock.now(), () => other.destroy(err && this.seen(other) ? resetError() : undefined));
  }

  /** An accepting end not yet handed to its listener ends silently, as in a kernel's backlog. */
  private seen(e: MemoryStreamSocket): boolean {
    return e !== this.ends[1] || this.accepted;
  }
}

function resetError(): Error {
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
}

/** One end of a {@link MemoryStreamLink}: a Duplex with the parts of `net.Socket` Ferry uses. */
export class MemoryStreamSocket extends Duplex {
  private ended = false;
  /** The callback of a write past the window, held until there is room (see {@link release}). */
  private waiting: ((err?: Error | null) => void) | undefined;

  constructor(
    private readonly link: MemoryStreamLink,
    private readonly side: Dir,
    readonly remoteAddress: string,
    readonly remotePort: number,
  ) {
    super({ allowHalfOpen: true });
  }

  /** @internal */
  receive(p: Buffer | null): void {
    if (this.destroyed || this.ended) return;
    if (p === null) this.ended = true;
    this.push(p);
  }

  override _read(): void {}

  /** Reading takes bytes out of the receive buffer: the peer may learn that there is room. */
  override read(size?: number): unknown {
    const r: unknown = super.read(size);
    if (r !== null) this.link.consumed(this.side);
    return r;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.link.send(this.side, chunk);
    if (this.link.unread(this.side) <= this.link.window) cb();
    else this.waiting = cb;
  }

  /** @internal Whether a write waits for room. */
  waitingForRoom(): boolean {
    return this.waiting !== undefined;
  }

  /** @internal There is room again: the held write completes. */
  release(): void {
    const cb = this.waiting;
    this.waiting = undefined;
    if (cb && !this.destroyed) cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.link.send(this.side, null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A write still waiting for room is dropped with the socket (its callback never comes).
    this.waiting = undefined;
    this.link.closedBy(this.side, err);
    cb(err);
  }

  setNoDelay(): this {
    return this;
  }

  /** Abort with a reset, as `net.Socket.resetAndDestroy`. */
  resetAndDestroy(): this {
    this.link.closedBy(this.side, resetError());
    this.destroy();
    return this;
  }
}

/** Listeners and dials by address, for hosts that run in one process. */
export class MemoryStreamNetwork {
  readonly clock: Clock;
  readonly random: () => number;
  readonly maxSegment: number;
  readonly onSegment: MemoryStreamOptions['onSegment'];
  /** Bytes a direction may hold unread (Infinity: no limit). */
  readonly window: number;
  private readonly delayMs: readonly [number, number];
  private readonly listeners = new Map<string, (s: MemoryStreamSocket) => void>();
  /** Addresses that went down, and how a dial to or from one fails. */
  private readonly down = new Map<string, 'process' | 'machine'>();
  private nextPort = 50000;
  private nextLink = 0;
  /** Every link ever made, for faults (filter on `live`). */
  readonly links: MemoryStreamLink[] = [];

  constructor(opts: MemoryStreamOptions) {
    this.clock = opts.clock;
    this.random = opts.random;
    this.maxSegment = opts.maxSegment ?? 16 * 1024;
    this.onSegment = opts.onSegment;
    this.window = opts.window ?? Infinity;
    this.delayMs = opts.delayMs ?? [0.1, 2];
  }

  /** @internal A one-way delay draw. */
  delay(): number {
    const [min, max] = this.delayMs;
    return min + this.random() * (max - min);
  }

  /**
   * Listen at `ip:port` (0 picks a free port).
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when the address is taken.
   */
  listen(ip: string, port: number, onConnection: (s: MemoryStreamSocket) => void): MemoryStreamListener {
    let p = port;
    if (p === 0) {
      do p = this.nextPort++;
      while (this.listeners.has(`${ip}:${p}`));
    }
    const key = `${ip}:${p}`;
    if (this.listeners.has(key)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${key} is already bound`);
    this.listeners.set(key, onConnection);
    return {
      port: p,
      close: async () => {
        if (this.listeners.get(key) === onConnection) this.listeners.delete(key);
      },
    };
  }

  /**
   * Take address `ip` down for good. `process`: the host's process died and its kernel answers
   * for it: every connection of the address is reset, and dials to or from it are refused.
   * `machine`: the machine died: bytes to and from it vanish, its connections reset only after
   * `silentMs` (TCP's user timeout), and a dial to or from it times out after `silentMs`.
   */
  hostDown(ip: string, how: 'process' | 'machine', silentMs = 3000): void {
    this.down.set(ip, how);
    for (const [key] of this.listeners) if (key.startsWith(`${ip}:`)) this.listeners.delete(key);
    for (const l of this.links) {
      if (!l.live || (l.dialerIp !== ip && l.acceptorIp !== ip)) continue;
      if (how === 'process') l.reset();
      else l.blackhole(silentMs);
    }
    this.silentMs = silentMs;
  }
  private silentMs = 3000;

  /** Dial `ip:port` from `fromIp`: the listener gets the other end after a delay; nobody there: ECONNREFUSED. */
  dial(fromIp: string, ip: string, port: number): MemoryStreamSocket {
    const link = new MemoryStreamLink(this, this.nextLink++, fromIp, ip, port);
    this.links.push(link);
    const [dialer, acceptor] = link.ends;
    const down = this.down.get(ip) ?? this.down.get(fromIp);
    if (down) {
      link.live = false;
      const [code, ms] = down === 'process' ? ['ECONNREFUSED', this.delay()] : ['ETIMEDOUT', this.silentMs];
      this.clock.setTimer(ms, () => dialer.destroy(Object.assign(new Error(`connect ${code} ${ip}:${port}`), { code })));
      return dialer;
    }
    // The accepting end reaches the listener before any byte (delays in one direction are ordered).
    const acceptIn = this.delay();
    link.openAt(this.clock.now() + acceptIn);
    this.clock.setTimer(acceptIn, () => {
      const accept = this.listeners.get(`${ip}:${port}`);
      if (!accept || !link.live) {
        link.live = false;
        dialer.destroy(Object.assign(new Error(`connect ECONNREFUSED ${ip}:${port}`), { code: 'ECONNREFUSED' }));
        return;
      }
      link.accepted = true;
      accept(acceptor);
    });
    return dialer;
  }
}
