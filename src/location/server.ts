/**
 * The rendezvous server (HIP paper §III, RFC 8004): the directory `AgentId -> (HostId, locator,
 * epoch)` on one UDP control port. Hosts register where an agent landed, proven by a delegation
 * chain, and deregister it when it ends there; peers look agents up, watch for a landing, or have
 * a first CONNECT relayed.
 *
 * This file is the adapter: it owns the control channel, the store and the clocks, and runs the
 * pure decisions of registration.ts (what is accepted), watches.ts (who is told) and uploads.ts
 * (long registrations). Wire layouts: docs/PROTOCOL.md §12.
 */
import { ControlChannel, formatAddress, parseAddress, type ControlAnswer, type ControlMessage, type DatagramSocketLike } from '../control/index.js';
import type { ChainPolicy } from '../identity/index.js';
import { FerryError, isFerryError, limit, silentLogger, systemClock, type Clock, type Logger } from '../util/index.js';
import {
  DATAGRAM_HEADER_BYTES,
  LocationMessageType as T,
  MessageType,
  decodeDeregister,
  decodeLookup,
  decodeRegister,
  decodeRegisterPart,
  decodeRelay,
  decodeRelayedAck,
  decodeUnwatch,
  decodeWatch,
  encodeDeregisterAck,
  encodeLanded,
  encodeLocation,
  encodeRegisterAck,
  encodeRegisterPartAck,
  encodeRelayAck,
  encodeRelayed,
  encodeUnwatchAck,
  encodeWatchAck,
  encodePathChallenge,
  decodePathResponse,
  notificationsPaidBy,
  pathChallengeTries,
  PATH_CHALLENGE_BYTES,
  type Deregister,
  type Register,
} from '../wire/index.js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ProvenAddresses, type ProvenAddressLimits } from './paths.js';
import { checkDeregistration, checkRegistration } from './registration.js';
import { MemoryStore, type LocationStore } from './store.js';
import { sameRegistration, type LocationEntry } from './table.js';
import { UploadTable, type UploadLimits } from './uploads.js';
import { WatchTable, checkWatchLimits, type WatchLimits } from './watches.js';

/** Options of {@link RendezvousServer.start}. */
export interface RendezvousServerOptions {
  /** IP to bind (default 127.0.0.1; an IPv6 literal binds udp6). */
  readonly host?: string;
  /** UDP port (default 0: any free port). */
  readonly port?: number;
  /** The directory (default: a fresh in-memory {@link MemoryStore} without snapshot). Closed with the server. */
  readonly store?: LocationStore;
  /**
   * Refuse registrations without a delegation chain (default true). `false` is development mode,
   * for hosts that do not send chains yet: see {@link RegistrationPolicy}.
   */
  readonly requireChains?: boolean;
  /** Bounds for chain verification (default: LIMITS). */
  readonly chainPolicy?: ChainPolicy;
  /** Wall time, Unix ms, for delegation windows (default `Date.now`). */
  readonly now?: () => number;
  /** Monotonic clock for watches, uploads and the channel (default: the system clock). */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Wrap the bound socket (tests: loss, duplication). */
  readonly wrap?: (socket: DatagramSocketLike) => DatagramSocketLike;
  /** Overrides of the watch table's bounds. */
  readonly watchLimits?: Partial<WatchLimits>;
  /** Overrides of the upload table's bounds. */
  readonly uploadLimits?: Partial<UploadLimits>;
  /** Overrides of the proven-address table's bounds. */
  readonly provenLimits?: Partial<ProvenAddressLimits>;
}

/** Counters, for logs, metrics and tests. */
export interface RendezvousStats {
  registered: number;
  /** Entries removed by their holding host (DEREGISTER). */
  deregistered: number;
  refused: number;
  lookups: number;
  /** WATCH requests answered. */
  watches: number;
  /** Watches kept (granted notifications). */
  watchesKept: number;
  notified: number;
  relayed: number;
  /** PATH_CHALLENGEs started (each one paid for by the RELAY that asked). */
  challenges: number;
  /** Challenges answered with the right echo. */
  proven: number;
}

/** Request types the rendezvous relays (RELAY): only the first message of an open. */
const RELAYABLE = new Set<number>([MessageType.CONNECT]);

/** A running rendezvous. */
export class RendezvousServer {
  /** Counters (live view). */
  readonly stats: RendezvousStats = { registered: 0, deregistered: 0, refused: 0, lookups: 0, watches: 0, watchesKept: 0, notified: 0, relayed: 0, challenges: 0, proven: 0 };
  private readonly watches: WatchTable;
  private readonly uploads: UploadTable;
  private readonly proven: ProvenAddresses;
  /** Challenges in flight by address: relays to one address wait for one challenge. */
  private readonly challenging = new Map<string, Promise<boolean>>();
  private readonly requireChains: boolean;
  private readonly now: () => number;
  private relaying = 0;
  private readonly unsubscribe: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly channel: ControlChannel,
    /** The directory this server serves. */
    readonly store: LocationStore,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: RendezvousServerOptions,
  ) {
    this.requireChains = options.requireChains ?? true;
    this.now = options.now ?? (() => Date.now());
    this.watches = new WatchTable(options.watchLimits);
    this.uploads = new UploadTable(options.uploadLimits);
    // A shared directory (Redis) tells us what other nodes stored: our watchers are due a LANDED
    // for those too, and after an interrupted feed we re-read what they wait for.
    this.unsubscribe = store.subscribe?.({ landed: (e) => this.notify(e), resync: () => void this.resync() });
    this.proven = new ProvenAddresses(options.provenLimits);
    channel.onRequest((req) => this.onRequest(req));
    channel.onOneway((msg) => this.log.debug('rendezvous.oneway_ignored', { from: msg.from, type: msg.type }));
  }

  /**
   * Bind the control port and serve.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when the address cannot be bound (e.g. in
   *   use: the Node error is the `cause`) or an option is out of range.
   */
  static async start(options: RendezvousServerOptions = {}): Promise<RendezvousServer> {
    if (options.watchLimits) checkWatchLimits(options.watchLimits);
    const clock = options.clock ?? systemClock;
    const log = (options.logger ?? silentLogger).child({ role: 'rendezvous' });
    const store = options.store ?? (await MemoryStore.open({ clock, logger: log }));
    let channel: ControlChannel;
    try {
      channel = await ControlChannel.bind({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, clock, logger: log, ...(options.wrap ? { wrap: options.wrap } : {}) });
    } catch (err) {
      if (!options.store) await store.close();
      throw err;
    }
    const server = new RendezvousServer(channel, store, clock, log, options);
    log.info('rendezvous.started', { address: channel.address, requireChains: server.requireChains });
    return server;
  }

  /** The control address, `ip:port`. */
  get address(): string {
    return this.channel.address;
  }

  /** Whether registrations must carry a chain (false: development mode). */
  get chainsRequired(): boolean {
    return this.requireChains;
  }

  /** Watches kept now. */
  get watchCount(): number {
    return this.watches.size;
  }

  /** Stop serving, then close the store (which writes its final snapshot). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.channel.close();
      this.unsubscribe?.();
      await this.store.close();
      this.log.info('rendezvous.closed', { registered: this.stats.registered });
    })();
    return this.closing;
  }

  // --- requests -------------------------------------------------------------------------------

  private async onRequest(req: ControlMessage): Promise<ControlAnswer> {
    try {
      return await this.dispatch(req);
    } catch (err) {
      if (isFerryError(err)) {
        // The one log line of this refusal (the channel retells it only at debug level).
        this.stats.refused++;
        this.log.refused('rendezvous.refused', { code: err.code, type: req.type, from: req.from, detail: err.message });
      }
      throw err;
    }
  }

  private dispatch(req: ControlMessage): Promise<ControlAnswer> | ControlAnswer {
    switch (req.type) {
      case T.REGISTER:
        return this.register(decodeRegister(req.body), req.from);
      case T.REGISTER_PART:
        return this.registerPart(req);
      case T.DEREGISTER:
        return this.deregister(decodeDeregister(req.body), req.from);
      case T.LOOKUP:
        return this.lookup(req);
      case T.WATCH:
        return this.watch(req);
      case T.UNWATCH: {
        const u = decodeUnwatch(req.body);
        return { type: T.UNWATCH_ACK, body: encodeUnwatchAck(this.watches.remove(u.agent, req.from, u.token)) };
      }
      case T.RELAY:
        return this.relay(req);
      default:
        throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `rendezvous does not serve request type ${req.type}`);
    }
  }

  private async register(reg: Register, from: string): Promise<ControlAnswer> {
    const current = await this.store.get(reg.agent);
    if (current && sameRegistration(reg, current)) return this.reregister(reg, current, from);
    if (!current) {
      // A REGISTER seen on the wire before the agent was deregistered, replayed: it would name
      // the host the agent left, or outbid the agent launched again elsewhere (which that host
      // then fences). Cheap, before any signature: the tombstone's epoch is the floor.
      const removed = await this.store.removedEpoch(reg.agent);
      if (removed !== undefined && reg.epoch <= removed) throw new FerryError('FERRY_ERR_STALE_EPOCH', `epoch ${reg.epoch} ≤ ${removed}, deregistered for ${reg.agent}`);
    }
    const entry = checkRegistration(reg, current, this.now(), { requireChains: this.requireChains, ...(this.options.chainPolicy ? { chain: this.options.chainPolicy } : {}) });
    const out = await this.store.put(entry);
    // Another registration won the compare-and-set between our read and write.
    if (!out.stored) throw new FerryError('FERRY_ERR_STALE_EPOCH', `epoch ${entry.epoch} ≤ registered ${out.current.epoch} for ${entry.agent}`);
    this.stats.registered++;
    this.log.info('rendezvous.registered', { agent: entry.agent, host: entry.hostId, epoch: entry.epoch, proven: Boolean(entry.chain), from });
    this.notify(entry);
    return { type: T.REGISTER_ACK, body: encodeRegisterAck(entry.epoch) };
  }

  /**
   * The registration stored is this one (same host, locator and epoch): a host whose REGISTER
   * was committed through another node that died before answering retries here. It is verified
   * like any registration, then acknowledged without a write, so the host's move commits exactly
   * once instead of being told STALE_EPOCH for its own commit.
   */
  private reregister(reg: Register, current: LocationEntry, from: string): ControlAnswer {
    checkRegistration(reg, undefined, this.now(), { requireChains: this.requireChains || Boolean(current.chain), ...(this.options.chainPolicy ? { chain: this.options.chainPolicy } : {}) });
    this.log.info('rendezvous.reregistered', { agent: reg.agent, host: reg.hostId, epoch: reg.epoch, from });
    return { type: T.REGISTER_ACK, body: encodeRegisterAck(reg.epoch) };
  }

  /**
   * DEREGISTER: the holding host removes its entry (checkDeregistration says who may), then the
   * store deletes it only if it is still that host's at that epoch (a compare-and-delete: another
   * node may have stored a newer registration meanwhile, which stays). No entry: acknowledged
   * with 0, so a retransmission, or a retry through another node after a lost answer, succeeds.
   */
  private async deregister(d: Deregister, from: string): Promise<ControlAnswer> {
    const current = await this.store.get(d.agent);
    if (!checkDeregistration(d, current)) return { type: T.DEREGISTER_ACK, body: encodeDeregisterAck(false) };
    if (!(await this.store.remove(d.agent, d.epoch, d.hostId))) {
      const now = await this.store.get(d.agent);
      // Registered anew between our read and the delete: that entry is not the one named.
      if (now) throw new FerryError('FERRY_ERR_NOT_HOLDER', `${d.agent} was registered again (host ${now.hostId}, epoch ${now.epoch}) while its deregistration was checked`);
      return { type: T.DEREGISTER_ACK, body: encodeDeregisterAck(false) };
    }
    this.stats.deregistered++;
    this.log.info('rendezvous.deregistered', { agent: d.agent, host: d.hostId, epoch: d.epoch, from });
    return { type: T.DEREGISTER_ACK, body: encodeDeregisterAck(true) };
  }

  /** After an interrupted change feed: what the watched agents' entries are now (newer ones notify). */
  private async resync(): Promise<void> {
    for (const agent of this.watches.agents()) {
      try {
        const e = await this.store.get(agent);
        if (e) this.notify(e);
      } catch (err) {
        this.log.warn('rendezvous.resync_failed', { agent, code: (err as FerryError).code });
        return;
      }
    }
  }

  private async registerPart(req: ControlMessage): Promise<ControlAnswer> {
    const part = decodeRegisterPart(req.body);
    const whole = this.uploads.part(this.clock.now(), req.from, part);
    if (!whole) return { type: T.REGISTER_PART_ACK, body: encodeRegisterPartAck(part.index) };
    return this.register(decodeRegister(whole), req.from);
  }

  private async lookup(req: ControlMessage): Promise<ControlAnswer> {
    const agent = decodeLookup(req.body);
    this.stats.lookups++;
    const e = await this.store.get(agent);
    // No entry: a launch must know the epoch last deregistered, to register above it.
    return { type: T.LOCATION, body: encodeLocation(e, e ? undefined : await this.store.removedEpoch(agent)) };
  }

  private async watch(req: ControlMessage): Promise<ControlAnswer> {
    const w = decodeWatch(req.body);
    let current = await this.store.get(w.agent);
    this.stats.watches++;
    let grant = { ttlMs: 0, notifications: 0 };
    // Already newer: the reply answers the watch; keeping it would only cost notifications.
    if (!current || current.epoch <= w.newerThan) {
      grant = this.watches.add(this.clock.now(), {
        agent: w.agent,
        from: req.from,
        token: w.token,
        newerThan: w.newerThan,
        ttlMs: w.ttlMs,
        notifications: notificationsPaidBy(DATAGRAM_HEADER_BYTES + req.body.length),
      });
      if (grant.notifications > 0) {
        // A registration may have landed while we read the store, before the watch existed:
        // read again, now that any later one will notify it.
        const again = await this.store.get(w.agent);
        if (again && again.epoch > w.newerThan) {
          this.watches.remove(w.agent, req.from, w.token);
          grant = { ttlMs: 0, notifications: 0 };
          current = again;
        } else {
          this.stats.watchesKept++;
        }
      }
    }
    return { type: T.WATCH_ACK, body: encodeWatchAck({ ...grant, current }) };
  }

  /** Tell the watchers of `entry.agent` that it landed: one-way, unretransmitted; they poll too. */
  private notify(entry: LocationEntry): void {
    for (const n of this.watches.landed(this.clock.now(), entry.agent, entry.epoch)) {
      try {
        this.channel.send(n.to, T.LANDED, encodeLanded({ token: n.token, location: entry }));
        this.stats.notified++;
      } catch (err) {
        this.log.warn('rendezvous.notify_failed', { to: n.to, message: (err as Error).message });
      }
    }
  }

  /**
   * RELAY: forward a first CONNECT to the agent's current host as RELAYED (naming the requester's
   * address, as RFC 8004's FROM parameter does), and return the host's answer with the location,
   * so the requester talks to the host directly from then on. An error reply of the host is
   * passed on with its code. The host's address is proven first (PROTOCOL §8.4): a registration
   * may name anyone's address, and RELAYED with its retransmissions is about 5x the RELAY.
   */
  private async relay(req: ControlMessage): Promise<ControlAnswer> {
    const m = decodeRelay(req.body);
    if (!RELAYABLE.has(m.innerType)) throw new FerryError('FERRY_ERR_REFUSED', `the rendezvous relays only CONNECT, not type ${m.innerType}`);
    const entry = await this.store.get(m.to);
    if (!entry) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `no location for agent ${m.to}`);
    if (this.relaying >= limit('RELAY_MAX_INFLIGHT')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${this.relaying} relays in progress (RELAY_MAX_INFLIGHT)`);
    const origin = parseAddress(req.from);
    const body = encodeRelayed({ originIp: origin.ip, originPort: origin.port, innerType: m.innerType, innerBody: m.innerBody });
    const to = formatAddress(entry.ip, entry.controlPort);
    const deadline = this.clock.now() + limit('RELAY_TIMEOUT_MS');
    this.relaying++;
    try {
      if (!(await this.prove(to, DATAGRAM_HEADER_BYTES + req.body.length))) {
        throw new FerryError('FERRY_ERR_REFUSED', `relay: host ${entry.hostId} at ${to} did not answer the path challenge`);
      }
      const timeoutMs = Math.max(1, deadline - this.clock.now());
      const reply = await this.channel.request(to, T.RELAYED, body, { timeoutMs });
      if (reply.type !== T.RELAYED_ACK) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `host answered RELAYED with type ${reply.type}`);
      const inner = decodeRelayedAck(reply.body);
      this.stats.relayed++;
      return { type: T.RELAY_ACK, body: encodeRelayAck({ location: entry, ...inner }) };
    } catch (err) {
      if (isFerryError(err, 'FERRY_ERR_CONTROL_TIMEOUT')) throw new FerryError('FERRY_ERR_REFUSED', `relay: host ${entry.hostId} did not answer`);
      throw err;
    } finally {
      this.relaying--;
    }
  }

  /**
   * Whether `address` receives: proven recently, or it echoes a fresh PATH_CHALLENGE now. The
   * challenge is paid for by the request that needs it (`paidBytes`, its datagram): its sends,
   * retransmissions included, stay within AMPLIFICATION_FACTOR times that (pathChallengeTries).
   * Relays to an address already being challenged wait for that challenge and send nothing, so
   * an unproven address never gets more than 3x the bytes of the RELAYs that named it.
   */
  private prove(address: string, paidBytes: number): Promise<boolean> {
    if (this.proven.has(this.clock.now(), address)) return Promise.resolve(true);
    let p = this.challenging.get(address);
    if (!p) {
      p = this.challenge(address, pathChallengeTries(paidBytes)).finally(() => this.challenging.delete(address));
      this.challenging.set(address, p);
    }
    return p;
  }

  private async challenge(address: string, maxTries: number): Promise<boolean> {
    const challenge = randomBytes(PATH_CHALLENGE_BYTES);
    this.stats.challenges++;
    try {
      const reply = await this.channel.request(address, T.PATH_CHALLENGE, encodePathChallenge(challenge), { maxTries, timeoutMs: limit('RELAY_TIMEOUT_MS') });
      if (reply.type !== T.PATH_RESPONSE || !timingSafeEqual(decodePathResponse(reply.body), challenge)) {
        this.log.debug('rendezvous.challenge_failed', { to: address, type: reply.type });
        return false;
      }
    } catch (err) {
      this.log.debug('rendezvous.challenge_failed', { to: address, code: isFerryError(err) ? err.code : String(err) });
      return false;
    }
    this.stats.proven++;
    this.proven.add(this.clock.now(), address);
    return true;
  }
}
