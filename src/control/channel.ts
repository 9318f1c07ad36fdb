/**
 * The control channel's adapter: a UDP socket, one timer and promises around {@link ControlCore}.
 * All protocol decisions are the core's; this file only moves bytes and time between the core
 * and the outside world, so it stays small enough to trust without a fake network.
 */
import { createSocket } from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import {
  FerryError,
  limit,
  isFerryError,
  silentLogger,
  systemClock,
  type Clock,
  type Logger,
  type TimerHandle,
} from '../util/index.js';
import {
  ControlCore,
  formatAddress,
  parseAddress,
  type ControlEvent,
  type ControlLimits,
  type ControlOutput,
  type ControlStats,
  type IncomingRequest,
  type Outgoing,
  type RequestHandle,
  type RttEstimate,
} from './core.js';

/**
 * The part of a `node:dgram` socket the channel uses; small so tests can wrap or fake it
 * (see `testing/LossyDatagramSocket`).
 */
export interface DatagramSocketLike {
  /** Send one datagram. Delivery errors are not reported here (UDP has none to report). */
  send(buf: Buffer, port: number, address: string): void;
  /** Subscribe to received datagrams. */
  on(event: 'message', listener: (msg: Buffer, rinfo: { address: string; port: number }) => void): unknown;
  /** Stop sending and receiving. */
  close(): void;
  /** The local address the socket is bound to. */
  address(): { address: string; port: number };
}

/** A request or one-way message from a peer, as handlers see it. */
export interface ControlMessage {
  readonly type: number;
  /** A view into the received datagram; copy it to keep it past the handler. */
  readonly body: Buffer;
  /** The peer's address, `ip:port`. */
  readonly from: string;
}

/** A handler's answer: becomes the reply datagram. */
export interface ControlAnswer {
  readonly type: number;
  readonly body: Uint8Array;
}

/** A reply to one of our requests. */
export interface ControlReply {
  readonly type: number;
  readonly body: Buffer;
  /** The address it came from (always the one the request went to). */
  readonly from: string;
}

/**
 * Answers every incoming request (one handler for all types). A thrown `FerryError` is sent back
 * as an error reply with its wire code; anything else is logged and sent as `FERRY_ERR_INTERNAL`.
 * It runs once per request, however many duplicates arrive.
 */
export type RequestHandler = (req: ControlMessage) => Promise<ControlAnswer> | ControlAnswer;

/** Receives one-way messages; errors it throws are logged and otherwise ignored. */
export type OnewayHandler = (msg: ControlMessage) => void | Promise<void>;

/** Options of a {@link ControlChannel} over an existing socket. */
export interface ControlChannelOptions {
  /** Time source and the one timer (default: the system clock). */
  readonly clock?: Clock;
  /** Where malformed input, handler failures and socket errors are reported. */
  readonly logger?: Logger;
  /** Uniform [0, 1) source for the first requestId (default `node:crypto`). */
  readonly random?: () => number;
  /** Overrides of the core's limits (defaults from `LIMITS`). */
  readonly limits?: Partial<ControlLimits>;
}

/** Options of {@link ControlChannel.bind}. */
export interface ControlBindOptions extends ControlChannelOptions {
  /** Local IP to bind (default `127.0.0.1`); an IPv6 literal binds a udp6 socket. */
  readonly host?: string;
  /** Local port (default 0: any free port). */
  readonly port?: number;
  /** Wrap the bound socket, e.g. in a lossy test socket; the wrapper owns closing it. */
  readonly wrap?: (socket: DatagramSocketLike) => DatagramSocketLike;
}

/** Per-request options of {@link ControlChannel.request}. */
export interface ControlRequestOptions {
  /** Aborting rejects the request with `FERRY_ERR_ABORTED` and stops its retransmission. */
  readonly signal?: AbortSignal;
  /** Sends before failing with `FERRY_ERR_CONTROL_TIMEOUT` (default `CONTROL_MAX_TRIES`). */
  readonly maxTries?: number;
  /**
   * Fail this many ms after the call even if tries remain; time queued behind the per-peer
   * window (`CONTROL_MAX_IN_FLIGHT_PER_PEER`) counts.
   */
  readonly timeoutMs?: number;
}

interface Waiter {
  readonly handle: RequestHandle;
  resolve(reply: ControlReply): void;
  reject(err: FerryError): void;
}

/** A control channel endpoint: reliable request/reply and one-way messages over UDP. */
export class ControlChannel {
  private readonly core: ControlCore;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly waiters = new Map<number, Waiter>();
  private requestHandler: RequestHandler | undefined;
  private onewayHandler: OnewayHandler | undefined;
  private timer: TimerHandle | undefined;
  private timerAt: number | undefined;
  private closed = false;

  /**
   * Bind a UDP socket and start a channel on it.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when the address cannot be bound (the
   *   Node error, e.g. EADDRINUSE, is the `cause`).
   */
  static async bind(options: ControlBindOptions = {}): Promise<ControlChannel> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    // A host with thousands of connections moving at once receives bursts of control datagrams;
    // the kernel's default ~208 KiB receive buffer drops them (each then waits for a retransmit).
    const raw = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: limit('CONTROL_SOCKET_BUFFER_BYTES'), sendBufferSize: limit('CONTROL_SOCKET_BUFFER_BYTES') });
    try {
      await new Promise<void>((resolve, reject) => {
        raw.once('error', reject);
        raw.bind(port, host, () => {
          raw.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      raw.close();
      throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `cannot bind UDP ${host}:${port}: ${(err as Error).message}`, { cause: err });
    }
    const log = options.logger ?? silentLogger;
    // Without a listener an 'error' event would crash the process; on an unconnected UDP socket
    // errors are per-send and transient, so they are logged and the channel carries on.
    raw.on('error', (err) => log.warn('control.socket_error', { message: err.message }));
    const socket = options.wrap ? options.wrap(raw) : raw;
    return new ControlChannel(socket, options);
  }

  /** Run a channel over an already bound socket (for tests with in-memory sockets). */
  constructor(private readonly socket: DatagramSocketLike, options: ControlChannelOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? silentLogger;
    this.core = new ControlCore({ random: options.random, limits: options.limits });
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  /** The local address, `ip:port`. */
  get address(): string {
    const a = this.socket.address();
    return formatAddress(a.address, a.port);
  }

  /** The core's counters (live view). */
  get stats(): Readonly<ControlStats> {
    return this.core.stats;
  }

  /** The RTT estimate for a peer address, once measured. */
  rtt(address: string): RttEstimate | undefined {
    return this.core.rtt(address);
  }

  /** Set the handler for incoming requests (replacing any previous one). */
  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  /** Set the handler for incoming one-way messages (replacing any previous one). */
  onOneway(handler: OnewayHandler): void {
    this.onewayHandler = handler;
  }

  /**
   * Send a request to `to` (`ip:port`) and wait for its reply, retransmitting as needed. When
   * `CONTROL_MAX_IN_FLIGHT_PER_PEER` requests to `to` are already in flight, it waits its turn.
   * Rejects with `FERRY_ERR_CONTROL_TIMEOUT`, the error the peer replied with,
   * `FERRY_ERR_ABORTED` (signal or {@link close}), `FERRY_ERR_LIMIT_EXCEEDED` or
   * `FERRY_ERR_INVALID_ARGUMENT`.
   */
  request(to: string, type: number, body: Uint8Array, options: ControlRequestOptions = {}): Promise<ControlReply> {
    return new Promise<ControlReply>((resolve, reject) => {
      const { signal } = options;
      if (this.closed) return reject(new FerryError('FERRY_ERR_ABORTED', 'control channel is closed'));
      if (signal?.aborted) return reject(new FerryError('FERRY_ERR_ABORTED', undefined, { cause: signal.reason }));
      let started;
      try {
        const dest = this.destination(to);
        started = this.core.request(this.clock.now(), dest, type, body, { maxTries: options.maxTries, timeoutMs: options.timeoutMs });
      } catch (err) {
        return reject(err);
      }
      const { handle, send } = started;
      const onAbort = (): void => {
        if (this.waiters.get(handle.requestId)?.handle !== handle) return;
        this.waiters.delete(handle.requestId);
        const out = this.core.cancel(this.clock.now(), handle);
        if (out) this.apply(out);
        this.reschedule();
        reject(new FerryError('FERRY_ERR_ABORTED', undefined, { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      this.waiters.set(handle.requestId, {
        handle,
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
      });
      if (send) this.transmit(send);
      this.reschedule();
    });
  }

  /**
   * Send a one-way message: no reply, no retransmission, duplicates suppressed at the receiver.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a bad address, type or body;
   *   `FERRY_ERR_ABORTED` after {@link close}.
   */
  send(to: string, type: number, body: Uint8Array): void {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'control channel is closed');
    this.transmit(this.core.oneway(this.clock.now(), this.destination(to), type, body));
  }

  /** Reject outstanding requests with `FERRY_ERR_ABORTED` and close the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = undefined;
    this.dispatch(this.core.abortAll(new FerryError('FERRY_ERR_ABORTED', 'control channel closed')));
    this.socket.close();
  }

  // --- internals ------------------------------------------------------------------------------

  /** Canonical `ip:port` for `to`, so replies (keyed on rinfo) match the request's address. */
  private destination(to: string): string {
    const { ip, port } = parseAddress(to);
    // An IP literal only: a hostname would mean a DNS lookup per send, and a reply from
    // whichever address it resolved to would not match.
    if (isIP(ip) === 0 || port === 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `not an ip:port destination: ${to}`);
    return formatAddress(ip, port);
  }

  private onMessage(msg: Buffer, rinfo: { address: string; port: number }): void {
    if (this.closed) return;
    this.apply(this.core.onDatagram(this.clock.now(), formatAddress(rinfo.address, rinfo.port), msg));
    this.reschedule();
  }

  private apply(out: ControlOutput): void {
    for (const s of out.sends) this.transmit(s);
    this.dispatch(out.events);
  }

  private transmit(out: Outgoing): void {
    if (this.closed) return;
    const { ip, port } = parseAddress(out.to);
    try {
      this.socket.send(out.datagram, port, ip);
    } catch (err) {
      // A synchronous send failure loses one datagram, which retransmission already covers.
      this.log.warn('control.send_failed', { to: out.to, message: (err as Error).message });
    }
  }

  private dispatch(events: ControlEvent[]): void {
    for (const ev of events) {
      switch (ev.kind) {
        case 'reply': {
          const w = this.take(ev.handle);
          w?.resolve({ type: ev.type, body: ev.body, from: ev.handle.to });
          break;
        }
        case 'failed': {
          const w = this.take(ev.handle);
          this.log.debug('control.request_failed', { to: ev.handle.to, requestId: ev.handle.requestId, code: ev.error.code });
          w?.reject(ev.error);
          break;
        }
        case 'request':
          void this.serve(ev.request);
          break;
        case 'oneway':
          void this.deliverOneway({ type: ev.type, body: ev.body, from: ev.from });
          break;
        case 'malformed':
          this.log.refused('control.malformed', { code: ev.error.code, from: ev.from, message: ev.error.message });
          break;
        case 'dropped':
          this.log.refused('control.request_dropped', { code: ev.error.code, from: ev.from, requestId: ev.requestId });
          break;
        case 'unmatched-reply':
          this.log.debug('control.unmatched_reply', { from: ev.from, requestId: ev.requestId, type: ev.type });
          break;
        case 'duplicate':
          this.log.debug('control.duplicate', { from: ev.from, requestId: ev.requestId, answered: ev.answered });
          break;
      }
    }
  }

  private take(handle: RequestHandle): Waiter | undefined {
    const w = this.waiters.get(handle.requestId);
    if (!w || w.handle !== handle) return undefined;
    this.waiters.delete(handle.requestId);
    return w;
  }

  private async serve(req: IncomingRequest): Promise<void> {
    const msg: ControlMessage = { type: req.type, body: req.body, from: req.from };
    let out: Outgoing | undefined;
    try {
      const handler = this.requestHandler;
      if (!handler) throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `no handler for control request type ${req.type}`);
      const answer = await handler(msg);
      try {
        out = this.core.reply(this.clock.now(), req, answer.type, answer.body);
      } catch (err) {
        // The handler's answer cannot be encoded (bad type, too big): our bug, not the peer's.
        this.log.error('control.bad_answer', { from: req.from, type: req.type, message: (err as Error).message });
        out = this.core.replyError(this.clock.now(), req, new FerryError('FERRY_ERR_INTERNAL'));
      }
    } catch (err) {
      let reported: FerryError;
      if (isFerryError(err)) {
        reported = err;
        this.log.debug('control.request_refused', { from: req.from, type: req.type, code: err.code });
      } else {
        // Only the code goes to the peer: an arbitrary exception's message may hold internals.
        reported = new FerryError('FERRY_ERR_INTERNAL');
        this.log.error('control.handler_failed', { from: req.from, type: req.type, message: String((err as Error)?.message ?? err) });
      }
      out = this.core.replyError(this.clock.now(), req, reported);
    }
    if (out) this.transmit(out);
  }

  private async deliverOneway(msg: ControlMessage): Promise<void> {
    const handler = this.onewayHandler;
    if (!handler) {
      this.log.debug('control.oneway_unhandled', { from: msg.from, type: msg.type });
      return;
    }
    try {
      await handler(msg);
    } catch (err) {
      this.log.error('control.oneway_handler_failed', { from: msg.from, type: msg.type, message: String((err as Error)?.message ?? err) });
    }
  }

  /** Keep exactly one timer, at the core's next deadline. */
  private reschedule(): void {
    if (this.closed) return;
    const at = this.core.nextDeadline();
    if (at === this.timerAt) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = at;
    if (at === undefined) return;
    this.timer = this.clock.setTimer(Math.max(0, at - this.clock.now()), () => {
      this.timer = undefined;
      this.timerAt = undefined;
      if (this.closed) return;
      this.apply(this.core.onTimer(this.clock.now()));
      this.reschedule();
    });
  }
}
