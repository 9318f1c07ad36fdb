/**
 * A host's view of a networked rendezvous: {@link LocationService} over the control channel, so a
 * host uses a `RendezvousServer` exactly as it uses the in-process `MemoryLocationTable`.
 *
 * - `register` sends REGISTER (or REGISTER_PART fragments for a chain too long for a datagram),
 *   signed by the registering host when it carries a chain; `deregister` sends DEREGISTER, signed
 *   by the host that holds the entry.
 * - `lookup` is cached (bounded, short TTL); LANDED notifications and our own registrations
 *   refresh the cache, a failed registration drops the agent from it, and `invalidate` lets a
 *   caller that found a cached location wrong (UNKNOWN_AGENT, PEER_MOVING) drop it.
 * - `watch` sends WATCH and waits for a LANDED notification, polling meanwhile (LOOKUP every
 *   LOCATION_POLL_MS, renewing the WATCH when it lapses): a lost notification costs at most one
 *   poll interval. It never rejects: a rendezvous that does not answer yields the best location
 *   known when the wait ends, as the resume path expects.
 * - `relay` has a first CONNECT forwarded to the agent's current host (RFC 8004).
 * - With several rendezvous addresses (nodes over one shared directory), a request that one
 *   node does not answer within RENDEZVOUS_FAILOVER_MS, or that it answers with
 *   FERRY_ERR_DIRECTORY_UNAVAILABLE, is sent to the next; the client stays with the node that
 *   answered. A waiting watch re-arms its WATCH at the new node.
 *
 * Wire layouts: docs/PROTOCOL.md §12.
 */
import { randomBytes } from 'node:crypto';
import { ControlChannel, formatAddress, parseAddress, type ControlMessage, type ControlReply, type ControlRequestOptions, type DatagramSocketLike } from '../control/index.js';
import type { AgentId, Identity } from '../identity/index.js';
import { FerryError, isFerryError, limit, setBounded, silentLogger, systemClock, type Clock, type Logger, type TimerHandle } from '../util/index.js';
import {
  LocationMessageType as T,
  WATCH_TOKEN_BYTES,
  canonicalIp,
  decodeDeregisterAck,
  decodeLanded,
  decodeLocation,
  decodeLocationAnswer,
  decodeRegisterAck,
  decodeRegisterPartAck,
  decodeRelayAck,
  decodeWatchAck,
  deregisterSigned,
  encodeDeregister,
  encodeLookup,
  encodeRegister,
  encodeRegisterPart,
  encodeRelay,
  encodeUnwatch,
  encodeWatch,
  registerSigned,
  splitRegister,
  watchPaddingFor,
  UPLOAD_ID_BYTES,
  type LocationRecord,
  type Register,
} from '../wire/index.js';
import { registrationDigest } from './registration.js';
import type { HeldEntry, LocationEntry, LocationService, RegisterOptions } from './table.js';

/** Options of {@link RendezvousClient.connect}. */
export interface RendezvousClientOptions {
  /** The rendezvous's control address, `ip:port` (an IP literal). */
  readonly server: string;
  /**
   * More rendezvous nodes serving the same directory, tried in turn after `server` when a node
   * does not answer (failover). Each `ip:port` of the same address family as `server`.
   */
  readonly alternates?: readonly string[];
  /**
   * Local IP to bind (default: the loopback of the server's family when the server is on
   * loopback, else the unspecified address of its family).
   */
  readonly host?: string;
  /** Local port (default 0: any free port). */
  readonly port?: number;
  /** The registering host's identity, which signs registrations that carry a chain. */
  readonly signer?: Identity;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Wrap the bound socket (tests: loss, duplication, reordering). */
  readonly wrap?: (socket: DatagramSocketLike) => DatagramSocketLike;
  /** Cached lookups (default LOCATION_CACHE_ENTRIES). */
  readonly cacheEntries?: number;
  /** How long a cached lookup is served, ms (default LOCATION_CACHE_TTL_MS; 0 disables the cache). */
  readonly cacheTtlMs?: number;
  /** Poll interval while a watch waits, ms (default LOCATION_POLL_MS). */
  readonly pollMs?: number;
  /** LANDED notifications each WATCH pays for with padding (default WATCH_MAX_NOTIFICATIONS). */
  readonly watchNotifications?: number;
}

/** What {@link RendezvousClient.relay} returns: where the agent was reached and its host's reply. */
export interface RelayResult {
  readonly location: LocationEntry;
  readonly type: number;
  readonly body: Buffer;
}

/** A bounded LRU of lookups with a TTL. */
class LookupCache {
  private readonly map = new Map<AgentId, { entry: LocationEntry; at: number }>();
  constructor(private readonly max: number, private readonly ttlMs: number) {}

  /** A fresh entry, refreshed in LRU order. */
  get(agent: AgentId, now: number): LocationEntry | undefined {
    const hit = this.map.get(agent);
    if (!hit) return undefined;
    if (now - hit.at >= this.ttlMs) {
      this.map.delete(agent);
      return undefined;
    }
    this.map.delete(agent);
    this.map.set(agent, hit);
    return hit.entry;
  }

  /** The entry whatever its age (a best guess when nothing fresher is known). */
  peek(agent: AgentId): LocationEntry | undefined {
    return this.map.get(agent)?.entry;
  }

  set(entry: LocationEntry, now: number): void {
    if (this.ttlMs <= 0 || this.max <= 0) return;
    this.map.delete(entry.agent);
    setBounded(this.map, entry.agent, { entry, at: now }, this.max);
  }

  delete(agent: AgentId): void {
    this.map.delete(agent);
  }
}

/** One waiting {@link RendezvousClient.watch}. */
interface Waiter {
  readonly agent: AgentId;
  /** A location seen for the agent (reply or notification). */
  offer(entry: LocationEntry): void;
  /** Stop waiting (client closing). */
  stop(): void;
}

function entryOf(rec: LocationRecord): LocationEntry {
  return { agent: rec.agent, hostId: rec.hostId, ip: rec.ip, controlPort: rec.controlPort, redirectorPort: rec.redirectorPort, epoch: rec.epoch };
}

function expectType(reply: ControlReply, type: number, what: string): Buffer {
  if (reply.type !== type) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `rendezvous answered ${what} with type ${reply.type}`);
  return reply.body;
}

/** {@link LocationService} backed by a {@link RendezvousServer} over UDP. */
export class RendezvousClient implements LocationService {
  private readonly cache: LookupCache;
  private readonly inflight = new Map<AgentId, Promise<LocationEntry | undefined>>();
  /** Epochs deregistered last, as the latest LOOKUP that found no entry said (a launch registers above). */
  private readonly removed = new Map<AgentId, number>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly pollMs: number;
  private readonly watchPadding: number;
  private closed = false;
  /** Index in `servers` of the node in use. */
  private active = 0;
  /** Bumped at each failover, so a watch knows to re-arm at the new node. */
  private failovers = 0;

  private constructor(
    private readonly channel: ControlChannel,
    /** Every rendezvous node's canonical control address, the preferred first. */
    readonly servers: readonly string[],
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly signer: Identity | undefined,
    options: RendezvousClientOptions,
  ) {
    this.cache = new LookupCache(options.cacheEntries ?? limit('LOCATION_CACHE_ENTRIES'), options.cacheTtlMs ?? limit('LOCATION_CACHE_TTL_MS'));
    this.pollMs = Math.max(1, options.pollMs ?? limit('LOCATION_POLL_MS'));
    this.watchPadding = watchPaddingFor(Math.min(options.watchNotifications ?? limit('WATCH_MAX_NOTIFICATIONS'), limit('WATCH_MAX_NOTIFICATIONS')));
    channel.onRequest((req) => {
      throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `a rendezvous client serves no requests (type ${req.type})`);
    });
    channel.onOneway((msg) => this.onOneway(msg));
  }

  /**
   * Bind a local control socket for talking to the rendezvous at `options.server`. Nothing is
   * sent until the first call.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a server address that is not `ip:port`,
   *   or a local address that cannot be bound.
   */
  static async connect(options: RendezvousClientOptions): Promise<RendezvousClient> {
    const servers = [options.server, ...(options.alternates ?? [])].map((a) => {
      const { ip, port } = parseAddress(a);
      if (port === 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `rendezvous port 0 in ${a}`);
      return { ip: canonicalIp(ip), port };
    });
    const serverIp = servers[0]!.ip;
    const v6 = serverIp.includes(':');
    if (servers.some((s) => s.ip.includes(':') !== v6)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'the rendezvous addresses of one client share one address family');
    const loopback = servers.every((s) => (v6 ? s.ip === '::1' : s.ip.startsWith('127.')));
    const host = options.host ?? (loopback ? (v6 ? '::1' : '127.0.0.1') : v6 ? '::' : '0.0.0.0');
    const clock = options.clock ?? systemClock;
    const log = (options.logger ?? silentLogger).child({ role: 'rendezvous-client' });
    const channel = await ControlChannel.bind({ host, port: options.port ?? 0, clock, logger: log, ...(options.wrap ? { wrap: options.wrap } : {}) });
    const addresses = [...new Set(servers.map((s) => formatAddress(s.ip, s.port)))];
    return new RendezvousClient(channel, addresses, clock, log, options.signer, options);
  }

  /** The rendezvous node in use now, `ip:port`. */
  get server(): string {
    return this.servers[this.active]!;
  }

  /** The local control address, `ip:port` (where LANDED notifications arrive). */
  get address(): string {
    return this.channel.address;
  }

  /**
   * Register `entry`. With a chain, the registration is signed by `options.signer` or the
   * client's signer, which must be the host the entry names (the chain's last subject).
   * Rejects with the rendezvous's code: `FERRY_ERR_STALE_EPOCH`, `FERRY_ERR_REGISTRATION_UNPROVEN`,
   * `FERRY_ERR_REGISTRATION_MISMATCH`, a chain code, `FERRY_ERR_BAD_SIGNATURE`, or a control error.
   */
  async register(entry: LocationEntry, options: RegisterOptions = {}): Promise<void> {
    this.open();
    const fields = {
      agent: entry.agent,
      hostId: entry.hostId,
      ip: canonicalIp(entry.ip),
      controlPort: entry.controlPort,
      redirectorPort: entry.redirectorPort,
      epoch: entry.epoch,
      ...(entry.agentKey ? { agentKey: Buffer.from(entry.agentKey) } : {}),
      ...(entry.chain ? { chain: entry.chain } : {}),
    };
    let reg: Register = fields;
    if (entry.chain) {
      const signer = options.signer ?? this.signer;
      if (!entry.agentKey) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a registration with a chain needs the agent key');
      if (!signer) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a registration with a chain is signed by the registering host: give a signer');
      if (signer.id !== entry.hostId) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `the signer ${signer.id} is not the host ${entry.hostId} the entry names`);
      reg = { ...fields, signature: signer.sign(registerSigned(fields)) };
    }
    const body = encodeRegister(reg);
    try {
      const parts = splitRegister(body, randomBytes(UPLOAD_ID_BYTES));
      let reply: ControlReply;
      if (!parts) {
        reply = await this.request(T.REGISTER, body);
      } else {
        // One at a time: the server reassembles in order, and each answer paces the next.
        for (const p of parts.slice(0, -1)) {
          const ack = await this.request(T.REGISTER_PART, encodeRegisterPart(p));
          if (decodeRegisterPartAck(expectType(ack, T.REGISTER_PART_ACK, 'REGISTER_PART')) !== p.index) {
            throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `REGISTER_PART_ACK for another fragment than ${p.index}`);
          }
        }
        reply = await this.request(T.REGISTER_PART, encodeRegisterPart(parts[parts.length - 1]!));
      }
      const epoch = decodeRegisterAck(expectType(reply, T.REGISTER_ACK, 'REGISTER'));
      if (epoch !== entry.epoch) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `REGISTER_ACK for epoch ${epoch}, sent ${entry.epoch}`);
    } catch (err) {
      // Whatever we cached is suspect now (e.g. STALE_EPOCH: someone registered after it).
      this.cache.delete(entry.agent);
      throw err;
    }
    this.cache.set(entryOf(fields), this.clock.now());
    this.removed.delete(entry.agent);
  }

  /**
   * Remove the entry this host holds: DEREGISTER naming the agent, this host, the epoch and the
   * registration (the digest of the chain it registered), signed by `options.signer` or the
   * client's signer, which must be the host the entry names. Resolves true if the rendezvous
   * removed it, false if it had none. Rejects with `FERRY_ERR_NOT_HOLDER` (the entry is another
   * host's, epoch's or registration's: kept), or a control error (`FERRY_ERR_CONTROL_TIMEOUT`).
   */
  async deregister(entry: HeldEntry, options: RegisterOptions = {}): Promise<boolean> {
    this.open();
    const signer = options.signer ?? this.signer;
    if (!signer) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a deregistration is signed by the host that holds the entry: give a signer');
    if (signer.id !== entry.hostId) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `the signer ${signer.id} is not the host ${entry.hostId} the entry names`);
    const fields = { agent: entry.agent, hostId: entry.hostId, epoch: entry.epoch, registration: registrationDigest(entry.chain), hostKey: Buffer.from(signer.publicRaw) };
    // Whatever the answer, what we cached for the agent is no longer the truth.
    this.cache.delete(entry.agent);
    const reply = await this.request(T.DEREGISTER, encodeDeregister({ ...fields, signature: signer.sign(deregisterSigned(fields)) }));
    return decodeDeregisterAck(expectType(reply, T.DEREGISTER_ACK, 'DEREGISTER'));
  }

  /**
   * The agent's location: from the cache while fresh, else from the rendezvous (undefined when
   * it knows none). Rejects with `FERRY_ERR_CONTROL_TIMEOUT` when the rendezvous does not answer,
   * `FERRY_ERR_ABORTED` after {@link close}.
   */
  async lookup(agent: AgentId): Promise<LocationEntry | undefined> {
    this.open();
    return this.cache.get(agent, this.clock.now()) ?? this.fetch(agent);
  }

  /**
   * The epoch of `agent`'s entry deregistered last, as the latest LOOKUP that asked the rendezvous
   * said (undefined: none, or an entry was found). A launch registers above it: the rendezvous
   * refuses anything at or below as a replay (PROTOCOL.md §12.2.1).
   */
  removedEpoch(agent: AgentId): number | undefined {
    return this.removed.get(agent);
  }

  /** Forget the cached location of `agent` (a caller found it wrong). */
  invalidate(agent: AgentId): void {
    this.cache.delete(agent);
  }

  /**
   * The location once its epoch exceeds `newerThan`, waiting up to `waitMs`; after the wait, the
   * newest location seen (possibly the same, or undefined). With `waitMs` ≤ 0, one LOOKUP bounded
   * by CONTROL_MAX_RTO_MS. Never rejects: the rendezvous being unreachable is the same as it
   * knowing nothing newer.
   */
  async watch(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined> {
    if (this.closed) return this.cache.peek(agent);
    const cached = this.cache.get(agent, this.clock.now());
    if (cached && cached.epoch > newerThan) return cached;
    if (!(waitMs > 0)) {
      // "Now" is one exchange, bounded: a caller with no time left must not wait out a whole
      // retry schedule (about 5 s) for a rendezvous that is down.
      try {
        const reply = await this.request(T.LOOKUP, encodeLookup(agent), { timeoutMs: limit('CONTROL_MAX_RTO_MS') });
        return this.learn(agent, decodeLocation(expectType(reply, T.LOCATION, 'LOOKUP')));
      } catch {
        return this.cache.peek(agent);
      }
    }
    return this.waitFor(agent, newerThan, waitMs);
  }

  /**
   * Have the rendezvous forward a request (only CONNECT is relayed) to the current host of `to`,
   * and return that host's reply with its location, which the client then uses directly (CONNECT
   * then goes on as if sent to the host: CONNECT_CONFIRM and all later messages go straight there).
   * An error reply from the host rejects with its code; `FERRY_ERR_UNKNOWN_AGENT` when the
   * rendezvous does not know the agent.
   */
  async relay(to: AgentId, type: number, body: Uint8Array, options: ControlRequestOptions = {}): Promise<RelayResult> {
    this.open();
    const reply = await this.request(T.RELAY, encodeRelay({ to, innerType: type, innerBody: Buffer.from(body) }), options);
    const ack = decodeRelayAck(expectType(reply, T.RELAY_ACK, 'RELAY'));
    const location = entryOf(ack.location);
    if (location.agent !== to) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'RELAY_ACK names another agent');
    this.cache.set(location, this.clock.now());
    return { location, type: ack.innerType, body: Buffer.from(ack.innerBody) };
  }

  /** Stop: waiting watches resolve with what they know, requests reject with `FERRY_ERR_ABORTED`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.waiters.values()]) w.stop();
    this.channel.close();
  }

  // --- internals ------------------------------------------------------------------------------

  private open(): void {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'rendezvous client is closed');
  }

  /**
   * One request, failing over between nodes: each node gets RENDEZVOUS_FAILOVER_MS (or what is
   * left of the caller's `timeoutMs`), and a node that cannot reach the directory is passed over
   * too; every node is tried once per request, starting with the one in use. A request that is
   * not idempotent at the rendezvous is safe to resend to another node: REGISTER of the entry
   * already stored is acknowledged (server.ts, reregister), WATCH is keyed by its token, and
   * DEREGISTER of an entry already removed is acknowledged with 0.
   */
  private async request(type: number, body: Uint8Array, options: ControlRequestOptions = {}): Promise<ControlReply> {
    if (this.servers.length === 1) return this.channel.request(this.servers[0]!, type, body, options);
    const end = options.timeoutMs === undefined ? Infinity : this.clock.now() + options.timeoutMs;
    let last: unknown;
    for (let tried = 0; tried < this.servers.length; tried++) {
      const at = this.active;
      const left = end - this.clock.now();
      if (left <= 0) break;
      try {
        return await this.channel.request(this.servers[at]!, type, body, { ...options, timeoutMs: Math.min(left, limit('RENDEZVOUS_FAILOVER_MS')) });
      } catch (err) {
        last = err;
        if (!isFerryError(err, 'FERRY_ERR_CONTROL_TIMEOUT') && !isFerryError(err, 'FERRY_ERR_DIRECTORY_UNAVAILABLE')) throw err;
        if (options.signal?.aborted || this.closed) throw err;
        // Another caller may have failed over meanwhile: move on only from the node that failed.
        if (this.active === at) {
          this.active = (at + 1) % this.servers.length;
          this.failovers++;
          this.log.warn('location.rendezvous_failover', { from: this.servers[at], to: this.servers[this.active], code: (err as FerryError).code });
        }
      }
    }
    throw last ?? new FerryError('FERRY_ERR_CONTROL_TIMEOUT', `no rendezvous node answered (${this.servers.join(', ')})`);
  }

  /** LOOKUP, one at a time per agent (concurrent callers share the answer). */
  private fetch(agent: AgentId): Promise<LocationEntry | undefined> {
    let p = this.inflight.get(agent);
    if (!p) {
      p = this.request(T.LOOKUP, encodeLookup(agent))
        .then((reply) => {
          const a = decodeLocationAnswer(expectType(reply, T.LOCATION, 'LOOKUP'));
          this.removed.delete(agent);
          if (a.removed !== undefined) setBounded(this.removed, agent, a.removed, limit('LOCATION_CACHE_ENTRIES'));
          return this.learn(agent, a.record);
        })
        .finally(() => this.inflight.delete(agent));
      this.inflight.set(agent, p);
    }
    return p;
  }

  /** What the rendezvous said about `agent` now: the truth, cached as such. */
  private learn(agent: AgentId, rec: LocationRecord | undefined): LocationEntry | undefined {
    if (rec && rec.agent !== agent) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'LOCATION names another agent');
    if (!rec) {
      this.cache.delete(agent);
      return undefined;
    }
    const e = entryOf(rec);
    this.cache.set(e, this.clock.now());
    return e;
  }

  private onOneway(msg: ControlMessage): void {
    if (msg.type !== T.LANDED) {
      this.log.debug('location.oneway_ignored', { from: msg.from, type: msg.type });
      return;
    }
    // Only the rendezvous sends LANDED, and only with a token of ours: anything else is forged.
    if (!this.servers.includes(msg.from)) {
      this.log.refused('location.landed_refused', { code: 'FERRY_ERR_REFUSED', from: msg.from, why: 'not from the rendezvous' });
      return;
    }
    let landed;
    try {
      landed = decodeLanded(msg.body);
    } catch (err) {
      this.log.refused('location.landed_refused', { from: msg.from, code: (err as FerryError).code, why: (err as Error).message });
      return;
    }
    const w = this.waiters.get(landed.token.toString('hex'));
    if (!w || w.agent !== landed.location.agent) {
      this.log.debug('location.landed_unmatched', { agent: landed.location.agent });
      return;
    }
    const e = entryOf(landed.location);
    const cached = this.cache.peek(e.agent);
    if (!cached || e.epoch > cached.epoch) this.cache.set(e, this.clock.now());
    w.offer(e);
  }

  /** The waiting part of {@link watch}: WATCH, then LANDED or polls until found or `waitMs` passed. */
  private async waitFor(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined> {
    const deadline = this.clock.now() + waitMs;
    const token = randomBytes(WATCH_TOKEN_BYTES);
    const key = token.toString('hex');
    const abort = new AbortController();
    let best = this.cache.peek(agent);
    let found: LocationEntry | undefined;
    let stopped = false;
    let wake: (() => void) | undefined;
    const offer = (e: LocationEntry | undefined): void => {
      if (!e) return;
      if (!best || e.epoch >= best.epoch) best = e;
      if (e.epoch > newerThan && !found) {
        found = e;
        abort.abort();
        wake?.();
      }
    };
    this.waiters.set(key, {
      agent,
      offer,
      stop: () => {
        stopped = true;
        abort.abort();
        wake?.();
      },
    });
    /** When the rendezvous's watch lapses (monotonic ms); -Infinity: (re)send WATCH next. */
    let armedUntil = -Infinity;
    let armed = false;
    let armedAt = this.failovers;
    try {
      while (!found && !stopped) {
        const now = this.clock.now();
        const left = deadline - now;
        if (left <= 0) break;
        // The node holding our watch stopped answering: watch again through the one in use.
        if (armedAt !== this.failovers) {
          armedAt = this.failovers;
          armedUntil = -Infinity;
        }
        try {
          const opts = { signal: abort.signal, timeoutMs: left };
          if (now >= armedUntil) {
            const ttlMs = Math.min(Math.ceil(left), limit('WATCH_MAX_TTL_MS'));
            const reply = await this.request(T.WATCH, encodeWatch({ agent, newerThan, ttlMs, token, padding: this.watchPadding }), opts);
            const ack = decodeWatchAck(expectType(reply, T.WATCH_ACK, 'WATCH'));
            armed = ack.ttlMs > 0 && ack.notifications > 0;
            // Not granted (table full, or already newer): poll with LOOKUP for the rest.
            armedUntil = armed ? now + ack.ttlMs : Infinity;
            offer(this.learn(agent, ack.current));
          } else {
            const reply = await this.request(T.LOOKUP, encodeLookup(agent), opts);
            offer(this.learn(agent, decodeLocation(expectType(reply, T.LOCATION, 'LOOKUP'))));
          }
        } catch (err) {
          if (found || stopped) break;
          this.log.debug('location.watch_poll_failed', { agent, code: (err as FerryError).code });
        }
        if (found || stopped) break;
        const pause = Math.min(this.pollMs, deadline - this.clock.now());
        if (pause <= 0) break;
        await new Promise<void>((resolve) => {
          let timer: TimerHandle | undefined;
          wake = () => {
            wake = undefined;
            timer?.cancel();
            resolve();
          };
          timer = this.clock.setTimer(pause, () => wake?.());
        });
      }
    } finally {
      this.waiters.delete(key);
      // Free the rendezvous's slot early; it expires on its own if this is lost.
      if (armed && armedUntil > this.clock.now() && !this.closed) {
        this.request(T.UNWATCH, encodeUnwatch({ agent, token }), { maxTries: 2 }).catch(() => {});
      }
    }
    return found ?? best;
  }
}
