/**
 * The control channel's protocol logic (NapletSocket paper §3.4), with no I/O: every call takes
 * `now` (monotonic ms) and returns the datagrams to send and the events that happened. The
 * adapter in `channel.ts` owns the socket and one timer, set from {@link ControlCore.nextDeadline}.
 *
 * Reliability is request/reply over UDP:
 * - a requester retransmits on a timeout derived from the measured RTT to that peer address
 *   (RFC 6298 SRTT/RTTVAR), backing off exponentially up to a cap, and gives up after a fixed
 *   number of sends;
 * - at most `maxInFlightPerPeer` requests to one address are in flight at once (CoAP's NSTART,
 *   RFC 7252 §4.7); the rest wait in a FIFO queue per address and are sent as earlier ones
 *   complete, so a burst does not outrun the peer's CPU and retransmit itself into a storm;
 * - a responder answers each (address, requestId) once: the handler runs once, later duplicates
 *   get the cached reply datagram, so requests need not be idempotent.
 *
 * Addresses are opaque strings (`"ip:port"`, see {@link formatAddress}); a reply is matched only
 * when it comes from the very address the request went to, so a third party that guesses a
 * requestId cannot complete someone else's request from elsewhere. (Spoofed source addresses are
 * for the layers above to stop: control messages that matter carry MACs.)
 */
import { randomBytes } from 'node:crypto';
import { FerryError, LIMITS, limit } from '../util/index.js';
import {
  DATAGRAM_HEADER_BYTES,
  FLAG_ONEWAY,
  MAX_DATAGRAM_BODY,
  FLAG_REPLY,
  TYPE_ERROR,
  LocationMessageType,
  decodeDatagram,
  decodeErrorBody,
  decodePathChallenge,
  encodeDatagram,
  encodeErrorBody,
  encodePathResponse,
} from '../wire/index.js';

// ---------------------------------------------------------------------------------------------
// Addresses

/** Format an address as the opaque string the core keys on: `ip:port`, or `[ip]:port` for IPv6. */
export function formatAddress(ip: string, port: number): string {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `port ${port} outside 0..65535`);
  }
  if (ip.length === 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'empty IP address');
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Split an address made by {@link formatAddress} back into IP and port.
 *
 * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when it is not `ip:port` / `[ip]:port`.
 */
export function parseAddress(s: string): { ip: string; port: number } {
  const dotted = dottedAddress(s);
  if (dotted) return dotted;
  const m = /^(?:\[([0-9A-Fa-f:.%\w-]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s);
  const ip = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !ip || port > 0xffff) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `not an ip:port address: ${JSON.stringify(s)}`);
  return { ip, port };
}

/**
 * {@link parseAddress} of the common form, digits and dots, a colon, 1 to 5 digits, without a
 * regular expression (in a running host the expression measured 1.3-1.9 µs a call, and every
 * control datagram's source is parsed); undefined for anything else, which the expression decides.
 */
function dottedAddress(s: string): { ip: string; port: number } | undefined {
  if (typeof s !== 'string') return undefined; // what the expression makes of it stays its answer
  const colon = s.indexOf(':');
  const digits = s.length - colon - 1;
  if (colon < 1 || digits < 1 || digits > 5) return undefined;
  for (let i = 0; i < colon; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x2e && (c < 0x30 || c > 0x39)) return undefined;
  }
  let port = 0;
  for (let i = colon + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
    port = port * 10 + (c - 0x30);
  }
  return port > 0xffff ? undefined : { ip: s.slice(0, colon), port };
}

// ---------------------------------------------------------------------------------------------
// Public types

/** Limits of one core; each defaults to the row of the same meaning in `LIMITS`. */
export interface ControlLimits {
  /** Floor of the retransmission timeout, ms. */
  readonly minRtoMs: number;
  /** Cap of the exponential backoff, ms. */
  readonly maxRtoMs: number;
  /** Timeout before the first RTT sample from a peer, ms. */
  readonly initialRtoMs: number;
  /** Sends of one request before it fails with `FERRY_ERR_CONTROL_TIMEOUT`. */
  readonly maxTries: number;
  /** Outstanding outgoing requests, queued or in flight. */
  readonly maxPending: number;
  /** Requests to one peer address sent and awaiting a reply; more wait in a FIFO queue. */
  readonly maxInFlightPerPeer: number;
  /** Incoming requests delivered and not yet answered. */
  readonly maxIncoming: number;
  /** Of those, from one source IP (ports are free to pick). */
  readonly maxIncomingPerSource: number;
  /** Cached replies (and remembered one-way ids) for duplicate suppression. */
  readonly replyCacheEntries: number;
  /** How long a cached reply, or an unanswered incoming request, is kept, ms. */
  readonly replyCacheTtlMs: number;
  /** Peer addresses whose RTT estimate is kept. */
  readonly rttPeers: number;
}

function defaultLimits(): ControlLimits {
  return {
    minRtoMs: limit('CONTROL_MIN_RTO_MS'),
    maxRtoMs: limit('CONTROL_MAX_RTO_MS'),
    initialRtoMs: limit('CONTROL_INITIAL_RTO_MS'),
    maxTries: limit('CONTROL_MAX_TRIES'),
    maxPending: limit('CONTROL_MAX_PENDING'),
    maxInFlightPerPeer: limit('CONTROL_MAX_IN_FLIGHT_PER_PEER'),
    maxIncoming: limit('CONTROL_MAX_INCOMING'),
    maxIncomingPerSource: limit('CONTROL_INCOMING_PER_SOURCE'),
    replyCacheEntries: limit('CONTROL_REPLY_CACHE_ENTRIES'),
    replyCacheTtlMs: limit('CONTROL_REPLY_CACHE_TTL_MS'),
    rttPeers: limit('CONTROL_RTT_PEERS'),
  };
}

/** Options of a {@link ControlCore}. */
export interface ControlCoreOptions {
  /**
   * Uniform random number in [0, 1), used once to pick the first requestId (so ids of a restarted
   * host do not collide with the previous run's still-cached ones at the peer). Defaults to
   * `node:crypto`.
   */
  readonly random?: () => number;
  /** Overrides of {@link ControlLimits}. */
  readonly limits?: Partial<ControlLimits>;
}

/** Per-request overrides. */
export interface RequestOptions {
  /** Sends before giving up (default `CONTROL_MAX_TRIES`). */
  readonly maxTries?: number;
  /**
   * Give up this many ms after {@link ControlCore.request} even if tries remain. Time spent
   * queued behind the per-peer window counts, so a queued request can fail without being sent.
   */
  readonly timeoutMs?: number;
}

/** Identifies an outgoing request; returned by {@link ControlCore.request}. */
export interface RequestHandle {
  readonly requestId: number;
  /** The address it is sent to; only a reply from here completes it. */
  readonly to: string;
}

/** Result of {@link ControlCore.request}. */
export interface RequestStart {
  readonly handle: RequestHandle;
  /**
   * The first send, or undefined when the request is queued behind `maxInFlightPerPeer` others
   * to the same address: it then goes out in the `sends` of a later call (the one that
   * completes an earlier request).
   */
  readonly send: Outgoing | undefined;
}

/** A request from a peer awaiting {@link ControlCore.reply}; pass this very object back. */
export interface IncomingRequest {
  readonly from: string;
  readonly requestId: number;
  readonly type: number;
  /** A view into the received datagram. */
  readonly body: Buffer;
}

/** A datagram to send. */
export interface Outgoing {
  readonly to: string;
  readonly datagram: Buffer;
}

/** What happened while handling a datagram or a timer. */
export type ControlEvent =
  /** A request of ours was answered. */
  | { readonly kind: 'reply'; readonly handle: RequestHandle; readonly type: number; readonly body: Buffer }
  /** A request of ours failed: the peer's error reply, or `FERRY_ERR_CONTROL_TIMEOUT`. */
  | { readonly kind: 'failed'; readonly handle: RequestHandle; readonly error: FerryError }
  /** A new request from a peer: answer it with {@link ControlCore.reply} or `replyError`. */
  | { readonly kind: 'request'; readonly request: IncomingRequest }
  /** A new one-way message from a peer. */
  | { readonly kind: 'oneway'; readonly from: string; readonly requestId: number; readonly type: number; readonly body: Buffer }
  /** A datagram that did not decode; nothing else was affected. */
  | { readonly kind: 'malformed'; readonly from: string; readonly error: FerryError }
  /** A reply matching no outstanding request from that address (late, duplicate or forged). */
  | { readonly kind: 'unmatched-reply'; readonly from: string; readonly requestId: number; readonly type: number }
  /** A repeated request or one-way; `answered` says whether the cached reply was sent again. */
  | { readonly kind: 'duplicate'; readonly from: string; readonly requestId: number; readonly answered: boolean }
  /** A new request refused unanswered because too many are in progress. */
  | { readonly kind: 'dropped'; readonly from: string; readonly requestId: number; readonly error: FerryError };

/** Result of {@link ControlCore.onDatagram}, {@link ControlCore.onTimer} and {@link ControlCore.cancel}. */
export interface ControlOutput {
  readonly sends: Outgoing[];
  readonly events: ControlEvent[];
}

/** Counters, for logs and tests. */
export interface ControlStats {
  /** Datagrams handed out to send, of every kind (first sends, retransmissions, replies). */
  sent: number;
  /** Requests that had to wait in a per-peer queue (the window was full) before their first send. */
  queued: number;
  /** Retransmissions of our requests. */
  retransmitted: number;
  /** Datagrams given to {@link ControlCore.onDatagram}. */
  received: number;
  /** Duplicate requests answered again from the reply cache. */
  duplicatesAnswered: number;
  /** Duplicates ignored: of requests still in progress, and of one-way messages. */
  duplicatesIgnored: number;
  /** Datagrams that did not decode. */
  malformed: number;
  /** Replies that matched nothing. */
  unmatchedReplies: number;
  /** Incoming requests dropped because `maxIncoming` were in progress. */
  dropped: number;
  /** Our requests that failed with `FERRY_ERR_CONTROL_TIMEOUT`, sent or still queued. */
  timeouts: number;
}

/** A peer's RTT estimate (RFC 6298), ms. */
export interface RttEstimate {
  readonly srtt: number;
  readonly rttvar: number;
  /** The retransmission timeout the next request to this peer starts with. */
  readonly rto: number;
}

// ---------------------------------------------------------------------------------------------
// Internals

interface Pending {
  readonly handle: RequestHandle;
  readonly datagram: Buffer;
  readonly maxTries: number;
  /** Absolute give-up time from `timeoutMs` (counted from request()), or Infinity. */
  readonly giveUpAt: number;
  /** Sends so far; 0 while queued behind the window. */
  tries: number;
  /** Time of the first send (meaningless while `tries` is 0). */
  firstSentAt: number;
  /** The wait after the latest send, ms; doubles on every retransmission up to the cap. */
  rto: number;
  /** When onTimer next looks at it: a retransmission or failure, or `giveUpAt` while queued. */
  deadline: number;
  /** Bumped whenever `deadline` changes, so stale heap entries are recognised. */
  gen: number;
}

/** The window to one peer address; it exists only while requests to that address are outstanding. */
interface Flight {
  /** Requests sent and not yet completed. */
  inFlight: number;
  /** Requests never sent, in request() order (Map order is insertion order). */
  readonly queue: Map<number, Pending>;
  /** When the latest reply (answer or error) from this address completed a request of ours. */
  lastReplyAt: number;
}

interface PeerRtt {
  srtt: number | undefined;
  rttvar: number;
  /**
   * Karn's algorithm keeps a backed-off timeout for the next request until a clean sample
   * arrives; otherwise after an RTT jump every request would retransmit, none would yield a
   * sample, and the estimate would stay wrong forever.
   */
  backedOff: number | undefined;
}

interface CacheEntry {
  readonly at: number;
  /** The reply datagram, or undefined for a remembered one-way message. */
  readonly reply: Buffer | undefined;
}

interface InProgress {
  readonly at: number;
  readonly request: IncomingRequest;
}

interface HeapItem {
  at: number;
  id: number;
  gen: number;
}

/** A binary min-heap of deadlines with lazy deletion (stale items are skipped when popped). */
class DeadlineHeap {
  private readonly a: HeapItem[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): HeapItem | undefined {
    return this.a[0];
  }
  clear(): void {
    this.a.length = 0;
  }
  push(item: HeapItem): void {
    const a = this.a;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as HeapItem).at <= item.at) break;
      a[i] = a[p] as HeapItem;
      i = p;
    }
    a[i] = item;
  }
  pop(): HeapItem | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as HeapItem).at < (a[l] as HeapItem).at ? r : l;
      if ((a[c] as HeapItem).at >= last.at) break;
      a[i] = a[c] as HeapItem;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** RFC 6298 §2: clock granularity G, ms. Our clock is sub-millisecond; 1 ms keeps 4·RTTVAR > 0. */
const CLOCK_GRANULARITY_MS = 1;

const U32 = 2 ** 32;

function keyOf(from: string, requestId: number): string {
  return `${requestId}@${from}`;
}

/** The IP of an `ip:port` address (the port is the text after the last colon). */
function sourceIp(from: string): string {
  const i = from.lastIndexOf(':');
  return i < 0 ? from : from.slice(0, i);
}

function checkType(type: number): void {
  // TYPE_ERROR is reserved for error replies (see replyError); 0 is never valid.
  if (!Number.isInteger(type) || type < 1 || type >= TYPE_ERROR) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `control message type ${type} outside 1..254`);
  }
}

function positiveLimit(name: string, v: number, integer: boolean): number {
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// The core

/**
 * The sans-I/O control channel engine. Time must not go backwards between calls.
 *
 * Methods that take a request from the caller throw `FerryError` on local misuse or a full table;
 * methods that take input from the network never throw and report problems as events.
 */
export class ControlCore {
  private readonly limits: ControlLimits;
  private nextId: number;
  private readonly pending = new Map<number, Pending>();
  private readonly flights = new Map<string, Flight>();
  private readonly heap = new DeadlineHeap();
  private readonly peers = new Map<string, PeerRtt>();
  /** Insertion order is age order, so the oldest entry is first (eviction and TTL). */
  private readonly cache = new Map<string, CacheEntry>();
  private readonly incoming = new Map<string, InProgress>();
  /** How many of {@link incoming} each source IP holds (an IP is absent at 0). */
  private readonly incomingBySource = new Map<string, number>();
  private readonly counters: ControlStats = {
    sent: 0,
    queued: 0,
    retransmitted: 0,
    received: 0,
    duplicatesAnswered: 0,
    duplicatesIgnored: 0,
    malformed: 0,
    unmatchedReplies: 0,
    dropped: 0,
    timeouts: 0,
  };

  constructor(options: ControlCoreOptions = {}) {
    const l = { ...defaultLimits(), ...options.limits };
    for (const [k, v] of Object.entries(l)) positiveLimit(k, v, k !== 'minRtoMs' && k !== 'maxRtoMs' && k !== 'initialRtoMs' && k !== 'replyCacheTtlMs');
    if (l.minRtoMs > l.maxRtoMs) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'minRtoMs above maxRtoMs');
    this.limits = l;
    const r = options.random ? options.random() : randomBytes(4).readUInt32BE(0) / U32;
    this.nextId = Math.floor(r * U32) % U32;
  }

  /** Counters since construction (a live view; do not modify). */
  get stats(): Readonly<ControlStats> {
    return this.counters;
  }

  /** Outstanding outgoing requests, queued or in flight. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Outgoing requests waiting behind a full per-peer window, not yet sent. */
  get queuedCount(): number {
    let n = 0;
    for (const f of this.flights.values()) n += f.queue.size;
    return n;
  }

  /** Incoming requests delivered and not yet answered. */
  get incomingCount(): number {
    return this.incoming.size;
  }

  /** The RTT estimate for `address`, or undefined before its first clean sample. */
  rtt(address: string): RttEstimate | undefined {
    const p = this.peers.get(address);
    if (!p || p.srtt === undefined) return undefined;
    return { srtt: p.srtt, rttvar: p.rttvar, rto: this.rtoFor(address) };
  }

  /**
   * Start a request: returns its handle and, when the window to `to` has room, the first datagram
   * to send; otherwise the request is queued and sent by a later call. Completion arrives later
   * as a `reply` or `failed` event carrying the same handle.
   *
   * @throws FerryError `FERRY_ERR_LIMIT_EXCEEDED` when `maxPending` requests are outstanding;
   *   `FERRY_ERR_INVALID_ARGUMENT` for a bad type, body size or option.
   */
  request(now: number, to: string, type: number, body: Uint8Array, options: RequestOptions = {}): RequestStart {
    this.expire(now);
    checkType(type);
    const maxTries = options.maxTries === undefined ? this.limits.maxTries : positiveLimit('maxTries', options.maxTries, true);
    const timeoutMs = options.timeoutMs === undefined ? Infinity : positiveLimit('timeoutMs', options.timeoutMs, false);
    if (this.pending.size >= this.limits.maxPending) {
      throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${this.pending.size} control requests outstanding (limit ${this.limits.maxPending})`);
    }
    const requestId = this.allocateId();
    const datagram = encodeDatagram({ type, flags: 0, requestId }, body);
    const handle: RequestHandle = { requestId, to };
    const p: Pending = { handle, datagram, maxTries, giveUpAt: now + timeoutMs, tries: 0, firstSentAt: now, rto: 0, deadline: Infinity, gen: 0 };
    this.pending.set(requestId, p);
    let flight = this.flights.get(to);
    if (!flight) {
      flight = { inFlight: 0, queue: new Map(), lastReplyAt: -Infinity };
      this.flights.set(to, flight);
    }
    if (flight.inFlight < this.limits.maxInFlightPerPeer && flight.queue.size === 0) {
      return { handle, send: this.launch(now, p, flight) };
    }
    flight.queue.set(requestId, p);
    this.counters.queued++;
    // A queued request still honours its timeoutMs; without one it waits for its turn.
    if (p.giveUpAt !== Infinity) this.schedule(p, p.giveUpAt);
    return { handle, send: undefined };
  }

  /**
   * Build a one-way message. It takes a requestId from the same sequence as requests so the
   * receiver can suppress duplicates by (address, requestId); it is never retransmitted.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a bad type or body size.
   */
  oneway(now: number, to: string, type: number, body: Uint8Array): Outgoing {
    this.expire(now);
    checkType(type);
    const datagram = encodeDatagram({ type, flags: FLAG_ONEWAY, requestId: this.allocateId() }, body);
    this.counters.sent++;
    return { to, datagram };
  }

  /**
   * Stop retransmitting a request (or take it out of its queue) and forget it; no event follows
   * for it. Its place in the window goes to the next queued request, whose first send is in the
   * result. Undefined if it was not outstanding.
   */
  cancel(now: number, handle: RequestHandle): ControlOutput | undefined {
    this.expire(now);
    const p = this.pending.get(handle.requestId);
    if (!p || p.handle !== handle) return undefined;
    const out: ControlOutput = { sends: [], events: [] };
    this.settle(now, p, out);
    return out;
  }

  /**
   * Fail every outstanding request with `error` and forget requests in progress (their later
   * `reply` returns undefined). For closing the channel.
   */
  abortAll(error: FerryError): ControlEvent[] {
    const events: ControlEvent[] = [];
    for (const p of this.pending.values()) events.push({ kind: 'failed', handle: p.handle, error });
    this.pending.clear();
    this.flights.clear();
    this.heap.clear();
    this.incoming.clear();
    this.incomingBySource.clear();
    return events;
  }

  /** Handle one received datagram. Never throws: bad input becomes a `malformed` event. */
  onDatagram(now: number, from: string, bytes: Uint8Array): ControlOutput {
    this.expire(now);
    this.counters.received++;
    const out: ControlOutput = { sends: [], events: [] };
    let header;
    let body: Buffer;
    try {
      ({ header, body } = decodeDatagram(bytes));
    } catch (err) {
      this.counters.malformed++;
      out.events.push({ kind: 'malformed', from, error: asMalformed(err) });
      return out;
    }
    const { type, flags, requestId } = header;
    if (flags === FLAG_REPLY) {
      this.onReply(now, from, type, requestId, body, out);
      return out;
    }
    const key = keyOf(from, requestId);
    const cached = this.cache.get(key);
    if (cached) {
      if (cached.reply && cached.reply.length > LIMITS.AMPLIFICATION_FACTOR.value * bytes.length) {
        // A genuine retransmission is as long as the request it repeats; a short datagram that
        // only names a cached (address, requestId) could reflect a bigger reply at a spoofed
        // address, so it gets nothing (RFC 9000 §8's 3x rule, applied to the cache).
        this.counters.duplicatesIgnored++;
      } else if (cached.reply) {
        // The handler already ran: answer again from cache, never run it twice.
        this.counters.duplicatesAnswered++;
        this.counters.sent++;
        out.sends.push({ to: from, datagram: cached.reply });
      } else {
        this.counters.duplicatesIgnored++;
      }
      out.events.push({ kind: 'duplicate', from, requestId, answered: cached.reply !== undefined });
      return out;
    }
    if (flags === FLAG_ONEWAY) {
      this.remember(key, { at: now, reply: undefined });
      out.events.push({ kind: 'oneway', from, requestId, type, body });
      return out;
    }
    if (this.incoming.has(key)) {
      // Still being handled: the reply will go out when it is ready, and a retransmission of
      // the request will find it in the cache after that.
      this.counters.duplicatesIgnored++;
      out.events.push({ kind: 'duplicate', from, requestId, answered: false });
      return out;
    }
    if (this.incoming.size >= this.limits.maxIncoming) {
      // Dropped rather than refused: an error reply would have to be cached (or the handler
      // might run on a retransmission after the requester already failed), and silence costs
      // a flooder more than it costs an honest requester, who retransmits.
      this.counters.dropped++;
      out.events.push({
        kind: 'dropped',
        from,
        requestId,
        error: new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${this.incoming.size} control requests in progress (limit ${this.limits.maxIncoming})`),
      });
      return out;
    }
    const source = sourceIp(from);
    const held = this.incomingBySource.get(source) ?? 0;
    if (held >= this.limits.maxIncomingPerSource) {
      // One source IP may hold only its share, so a flood from one address (any ports) cannot
      // fill the table and have every other sender's requests dropped.
      this.counters.dropped++;
      out.events.push({
        kind: 'dropped',
        from,
        requestId,
        error: new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${held} control requests in progress from ${source} (limit ${this.limits.maxIncomingPerSource})`),
      });
      return out;
    }
    const request: IncomingRequest = { from, requestId, type, body };
    this.incoming.set(key, { at: now, request });
    this.incomingBySource.set(source, held + 1);
    if (type === LocationMessageType.PATH_CHALLENGE) {
      this.answerPathChallenge(now, request, out);
      return out;
    }
    out.events.push({ kind: 'request', request });
    return out;
  }

  /**
   * Path validation (PROTOCOL §8.4, RFC 9000 §8.2) is about this channel's address, not about
   * the service behind it, so every control endpoint echoes a PATH_CHALLENGE itself: a host
   * proves to the rendezvous that it receives where it registered. The echo is exactly as long as
   * the challenge (1x).
   */
  private answerPathChallenge(now: number, request: IncomingRequest, out: ControlOutput): void {
    let sent: Outgoing | undefined;
    try {
      sent = this.reply(now, request, LocationMessageType.PATH_RESPONSE, encodePathResponse(decodePathChallenge(Buffer.from(request.body))));
    } catch (err) {
      const error = asMalformed(err);
      out.events.push({ kind: 'malformed', from: request.from, error });
      sent = this.replyError(now, request, error);
    }
    if (sent) out.sends.push(sent);
  }

  /**
   * Answer a request delivered by a `request` event, caching the reply for its duplicates.
   * Returns undefined when it can no longer be answered (already answered, expired after
   * `replyCacheTtlMs`, or aborted): the requester has stopped waiting by then.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a bad type or body size; the request
   *   then stays unanswered, so the caller can still `replyError`.
   */
  reply(now: number, request: IncomingRequest, type: number, body: Uint8Array): Outgoing | undefined {
    checkType(type);
    if (body.length > MAX_DATAGRAM_BODY) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `reply body of ${body.length} bytes exceeds ${MAX_DATAGRAM_BODY}`);
    // Anti-amplification (RFC 9000 §8): the source address of a request is unproven, so a reply
    // is never more than AMPLIFICATION_FACTOR times the request. A handler whose answer is bigger
    // gets a (small) error reply instead, and the refusal is visible in `stats.dropped`.
    if (DATAGRAM_HEADER_BYTES + body.length > amplificationBudget(request)) {
      return this.replyError(now, request, new FerryError('FERRY_ERR_AMPLIFICATION_LIMIT', 'reply larger than 3x the request'));
    }
    return this.answer(now, request, type, body);
  }

  /** Answer a request with a `TYPE_ERROR` reply carrying `err`'s wire code. See {@link reply}. */
  replyError(now: number, request: IncomingRequest, err: FerryError): Outgoing | undefined {
    // The detail text is cut so that even an error reply stays within 3x the request.
    const room = amplificationBudget(request) - DATAGRAM_HEADER_BYTES - 3;
    return this.answer(now, request, TYPE_ERROR, encodeErrorBody(err, room));
  }

  /**
   * Handle the timer: retransmissions and failures due at `now`, and the first sends of queued
   * requests that the failures make room for.
   */
  onTimer(now: number): ControlOutput {
    this.expire(now);
    const out: ControlOutput = { sends: [], events: [] };
    for (;;) {
      const top = this.heap.peek();
      if (!top || top.at > now) break;
      this.heap.pop();
      const p = this.pending.get(top.id);
      if (!p || p.gen !== top.gen) continue;
      if (p.tries === 0) {
        this.failUnsent(p, 'its timeoutMs passed while it was queued behind the window', out);
        continue;
      }
      if (p.tries >= p.maxTries || now >= p.giveUpAt) {
        this.counters.timeouts++;
        this.noteBackoff(p);
        const error = new FerryError('FERRY_ERR_CONTROL_TIMEOUT', `no reply from ${p.handle.to} to request ${p.handle.requestId} after ${p.tries} sends`);
        out.events.push({ kind: 'failed', handle: p.handle, error });
        if (p.tries >= p.maxTries) this.failQueuedIfSilent(p, out);
        this.settle(now, p, out);
        continue;
      }
      p.tries++;
      p.rto = Math.min(p.rto * 2, this.limits.maxRtoMs);
      this.schedule(p, Math.min(now + p.rto, p.giveUpAt));
      this.counters.retransmitted++;
      this.counters.sent++;
      out.sends.push({ to: p.handle.to, datagram: p.datagram });
    }
    return out;
  }

  /**
   * The earliest time {@link onTimer} has work, or undefined when no request is outstanding.
   * Cache and in-progress expiry need no timer: they are applied lazily on every call, and both
   * tables are bounded regardless.
   */
  nextDeadline(): number | undefined {
    for (;;) {
      const top = this.heap.peek();
      if (!top) return undefined;
      const p = this.pending.get(top.id);
      if (p && p.gen === top.gen) return top.at;
      this.heap.pop(); // stale: answered, cancelled or rescheduled
    }
  }

  // --- internals ------------------------------------------------------------------------------

  /** First send of `p`: it joins the window and its RTO timer and try count start now. */
  private launch(now: number, p: Pending, flight: Flight): Outgoing {
    flight.inFlight++;
    p.tries = 1;
    p.firstSentAt = now;
    // Taken now, not at request(): a request that waited in the queue starts from the RTT the
    // requests ahead of it measured.
    p.rto = this.rtoFor(p.handle.to);
    this.schedule(p, Math.min(now + p.rto, p.giveUpAt));
    this.counters.sent++;
    return { to: p.handle.to, datagram: p.datagram };
  }

  private schedule(p: Pending, at: number): void {
    p.deadline = at;
    p.gen++;
    this.heap.push({ at, id: p.handle.requestId, gen: p.gen });
  }

  /**
   * Forget `p` (answered, failed or cancelled; the caller reports it) and, if it held a place in
   * the window, give that place to the next queued request. A queued request whose timeoutMs has
   * passed is failed on the way rather than sent.
   */
  private settle(now: number, p: Pending, out: ControlOutput): void {
    const { requestId, to } = p.handle;
    this.pending.delete(requestId);
    const flight = this.flights.get(to);
    if (!flight) return;
    if (p.tries === 0) flight.queue.delete(requestId);
    else flight.inFlight--;
    while (flight.inFlight < this.limits.maxInFlightPerPeer) {
      const next = flight.queue.values().next();
      if (next.done) break;
      const q = next.value;
      // Its timer is due but has not run yet (the adapter's timer fires late under load).
      if (now >= q.giveUpAt) this.failUnsent(q, 'its timeoutMs passed while it was queued behind the window', out);
      else {
        flight.queue.delete(q.handle.requestId);
        out.sends.push(this.launch(now, q, flight));
      }
    }
    if (flight.inFlight === 0 && flight.queue.size === 0) this.flights.delete(to);
  }

  /**
   * Head-of-line blocking on a dead peer: `p` has just used up its tries. If its peer sent no
   * reply at all since `p` was first sent, the peer is silent, not slow, and every request queued
   * behind `p` would only wait its turn to go through the same retry schedule into the same
   * silence: 1000 queued requests behind a window of W would take 1000/W whole schedules to fail,
   * where without a window they would all have failed together after one. So the queued requests
   * fail now, as they would have then. A peer that answers anything (even an error, to any of our
   * requests) is alive, and its queue is left alone: slow is not dead.
   *
   * Only queued requests whose own `maxTries` is no more than the sends `p` made are failed: a
   * request with a short schedule (a one-try CLS to a peer already given up on) is weak evidence,
   * and must not fail a more patient request queued behind it, which keeps its place.
   */
  private failQueuedIfSilent(p: Pending, out: ControlOutput): void {
    const flight = this.flights.get(p.handle.to);
    if (!flight || flight.lastReplyAt > p.firstSentAt) return;
    for (const q of flight.queue.values()) {
      if (q.maxTries <= p.tries) this.failUnsent(q, `the peer is silent: request ${p.handle.requestId} got no reply to ${p.tries} sends`, out);
    }
  }

  /**
   * Fail a queued request that was never sent. Its flight is not deleted here: a request is
   * queued only while the window is full, so the flight still has requests in flight (and
   * {@link settle}, which may empty one, deletes it itself).
   */
  private failUnsent(q: Pending, why: string, out: ControlOutput): void {
    this.pending.delete(q.handle.requestId);
    this.flights.get(q.handle.to)?.queue.delete(q.handle.requestId);
    this.counters.timeouts++;
    const error = new FerryError('FERRY_ERR_CONTROL_TIMEOUT', `request ${q.handle.requestId} to ${q.handle.to} was not sent: ${why}`);
    out.events.push({ kind: 'failed', handle: q.handle, error });
  }

  private allocateId(): number {
    // Skipping ids still outstanding keeps replies unambiguous even after a wrap; with at most
    // maxPending outstanding this loop is short.
    let id = this.nextId;
    while (this.pending.has(id)) id = (id + 1) % U32;
    this.nextId = (id + 1) % U32;
    return id;
  }

  private onReply(now: number, from: string, type: number, requestId: number, body: Buffer, out: ControlOutput): void {
    const p = this.pending.get(requestId);
    // A queued request was never sent, so nothing can be a reply to it.
    if (!p || p.handle.to !== from || p.tries === 0) {
      this.counters.unmatchedReplies++;
      out.events.push({ kind: 'unmatched-reply', from, requestId, type });
      return;
    }
    let error: FerryError | undefined;
    if (type === TYPE_ERROR) {
      try {
        error = decodeErrorBody(body);
      } catch (err) {
        // Leave the request pending: a garbled answer is no answer.
        this.counters.malformed++;
        out.events.push({ kind: 'malformed', from, error: asMalformed(err) });
        return;
      }
    }
    if (p.tries === 1) this.sample(from, now - p.firstSentAt);
    else this.noteBackoff(p); // Karn: a reply to a retransmitted request is an ambiguous sample.
    const flight = this.flights.get(from);
    if (flight) flight.lastReplyAt = now;
    out.events.push(error ? { kind: 'failed', handle: p.handle, error } : { kind: 'reply', handle: p.handle, type, body });
    this.settle(now, p, out);
  }

  private answer(now: number, request: IncomingRequest, type: number, body: Uint8Array): Outgoing | undefined {
    this.expire(now);
    const key = keyOf(request.from, request.requestId);
    const entry = this.incoming.get(key);
    if (!entry || entry.request !== request) return undefined;
    const datagram = encodeDatagram({ type, flags: FLAG_REPLY, requestId: request.requestId }, body);
    this.forgetIncoming(key, request.from);
    this.remember(key, { at: now, reply: datagram });
    this.counters.sent++;
    return { to: request.from, datagram };
  }

  private remember(key: string, entry: CacheEntry): void {
    this.cache.delete(key);
    while (this.cache.size >= this.limits.replyCacheEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(key, entry);
  }

  /** Drop cache and in-progress entries older than the TTL, oldest first. */
  private expire(now: number): void {
    const cutoff = now - this.limits.replyCacheTtlMs;
    for (const [k, e] of this.cache) {
      if (e.at > cutoff) break;
      this.cache.delete(k);
    }
    for (const [k, e] of this.incoming) {
      if (e.at > cutoff) break;
      this.forgetIncoming(k, e.request.from);
    }
  }

  /** An incoming request is over (answered or expired): it no longer counts for its source. */
  private forgetIncoming(key: string, from: string): void {
    if (!this.incoming.delete(key)) return;
    const source = sourceIp(from);
    const held = (this.incomingBySource.get(source) ?? 1) - 1;
    if (held > 0) this.incomingBySource.set(source, held);
    else this.incomingBySource.delete(source);
  }

  private peer(address: string): PeerRtt {
    let p = this.peers.get(address);
    if (p) {
      this.peers.delete(address); // re-insert below: Map order is LRU order
    } else {
      p = { srtt: undefined, rttvar: 0, backedOff: undefined };
      while (this.peers.size >= this.limits.rttPeers) {
        const oldest = this.peers.keys().next();
        if (oldest.done) break;
        this.peers.delete(oldest.value);
      }
    }
    this.peers.set(address, p);
    return p;
  }

  /** RFC 6298 §2.2–2.3. */
  private sample(address: string, r: number): void {
    const p = this.peer(address);
    if (p.srtt === undefined) {
      p.srtt = r;
      p.rttvar = r / 2;
    } else {
      p.rttvar = 0.75 * p.rttvar + 0.25 * Math.abs(p.srtt - r);
      p.srtt = 0.875 * p.srtt + 0.125 * r;
    }
    p.backedOff = undefined;
  }

  private noteBackoff(p: Pending): void {
    this.peer(p.handle.to).backedOff = p.rto;
  }

  /** The timeout for a new request to `address`: RFC 6298 §2, clamped, Karn's backoff kept. */
  private rtoFor(address: string): number {
    const { minRtoMs, maxRtoMs, initialRtoMs } = this.limits;
    const p = this.peers.get(address);
    let rto = p?.srtt === undefined ? initialRtoMs : p.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * p.rttvar);
    if (p?.backedOff !== undefined) rto = Math.max(rto, p.backedOff);
    return Math.min(maxRtoMs, Math.max(minRtoMs, rto));
  }
}

function asMalformed(err: unknown): FerryError {
  // decodeDatagram/decodeErrorBody only throw FerryError; anything else would be our bug, and
  // is still reported rather than thrown into the network path.
  return err instanceof FerryError ? err : new FerryError('FERRY_ERR_INTERNAL', 'control datagram decoder failed', { cause: err });
}

/** Most bytes a reply to `request` may take: AMPLIFICATION_FACTOR times the request datagram. */
function amplificationBudget(request: IncomingRequest): number {
  return LIMITS.AMPLIFICATION_FACTOR.value * (DATAGRAM_HEADER_BYTES + request.body.length);
}
