/**
 * The directory on Redis, shared by any number of rendezvous nodes (docs/ARCHITECTURE.md,
 * "The directory on Redis"). Each node still verifies every registration itself (chain, host
 * signature, epoch: registration.ts); Redis only orders the commits:
 *
 * - `put` is one Lua script: store the entry only if the stored epoch is lower (a compare-and-set
 *   on the epoch, read at a fixed offset of the stored value), count new agents against
 *   `maxEntries`, and PUBLISH the change, all atomically. Two nodes racing for one agent cannot
 *   both win; the loser is told the winner's entry.
 * - `remove` (deregistration) is the same: delete only if the stored entry is still the
 *   deregistering host's at the caller's epoch.
 * - Every change is published on one channel with the writing node's tag; each node subscribes,
 *   tells its server about the others' changes (LANDED to local watchers), and keeps a cache that
 *   is true only while that subscription is up: a disconnect empties it, and the reconnect asks
 *   the server to re-read what its watchers wait for ({@link StoreListener.resync}).
 * - Anything Redis does not answer (down, unreachable, slower than LOCATION_STORE_TIMEOUT_MS)
 *   is `FERRY_ERR_DIRECTORY_UNAVAILABLE`: commands are never queued while disconnected, so a
 *   refused registration was not stored later behind the host's back.
 *
 * Keys (PREFIX defaults to `ferry`): `PREFIX:a:AGENT` the entry (stored-entry.ts), `PREFIX:t` and
 * `PREFIX:to` the tombstones (each agent's last deregistered epoch and when, and the same agents
 * by time, at most LOCATION_STORE_TOMBSTONE_MAX_ENTRIES), `PREFIX:n` the
 * number of agents, `PREFIX:dir` a random marker of this directory (a flush removes it, and nodes
 * that read it gone drop their caches), channel `PREFIX:changes`.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { createClient } from 'redis';
import type { AgentId } from '../identity/index.js';
import { idFromBytes, idToBytes, ID_BYTES } from '../identity/index.js';
import { FerryError, isFerryError, limit, setBounded, silentLogger, type Logger } from '../util/index.js';
import { decodeStoredEntry, encodeStoredEntry, STORED_ENTRY_HOST_OFFSET, STORED_ENTRY_VERSION } from './stored-entry.js';
import type { LocationStore, PutOutcome, StoreListener } from './store.js';
import type { LocationEntry } from './table.js';

/** Options of {@link RedisStore.open}. */
export interface RedisStoreOptions {
  /** `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`, or `rediss://` for TLS. */
  readonly url: string;
  /** Key and channel prefix (default `ferry`), so several directories can share one Redis. */
  readonly prefix?: string;
  /** Most agents (default LOCATION_STORE_MAX_ENTRIES). */
  readonly maxEntries?: number;
  /** Most tombstones kept (default LOCATION_STORE_TOMBSTONE_MAX_ENTRIES); the oldest go first. */
  readonly maxTombstones?: number;
  /** How long a tombstone holds, ms (default LOCATION_TOMBSTONE_TTL_MS). */
  readonly tombstoneTtlMs?: number;
  /** Per-command deadline, ms (default LOCATION_STORE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Entries cached while subscribed (default LOCATION_STORE_CACHE_ENTRIES; 0 disables). */
  readonly cacheEntries?: number;
  /** How often the directory marker is read, ms (default LOCATION_STORE_MARKER_CHECK_MS; 0: never). */
  readonly markerCheckMs?: number;
  readonly logger?: Logger;
}

/** Counters, for tests, logs and the bench. */
export interface RedisStoreStats {
  /** `get` answered from the cache. */
  cacheHits: number;
  /** Commands sent to Redis. */
  commands: number;
  /** Change messages received from other nodes. */
  changesHeard: number;
  /** Times the change subscription came back after a disconnect. */
  resyncs: number;
  /** Times the directory marker was found gone or replaced (the directory was flushed). */
  flushes: number;
}

/** Change message kinds (first byte of a published message). */
const CHANGE_LANDED = 1;
const CHANGE_REMOVED = 2;
const TAG_BYTES = 8;

/**
 * KEYS: entry, count. ARGV: value, epoch, max entries, channel, message head (kind + tag).
 * Returns {1} stored, {0, current} not stored (stored epoch at or above), {2} directory full.
 */
const PUT_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.byte(cur, 1) ~= ${STORED_ENTRY_VERSION} then return redis.error_reply('FERRYCORRUPT stored entry version') end
  if struct.unpack('>I4', cur, 2) >= tonumber(ARGV[2]) then return {0, cur} end
else
  if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return {2} end
  redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ARGV[1])
return {1}`;

/** Redis's own clock in ms, so that every node ages tombstones alike. */
const REDIS_NOW_MS = `local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: entry, count, tombstone hash, tombstone order. ARGV: epoch, channel, message, host id (16
 * raw bytes), agent id, most tombstones. Returns 1 if removed: only when the stored entry is still
 * that host's at that epoch (a compare-and-delete, so a stale deregistration cannot remove a newer
 * registration). The removed epoch is kept as the agent's tombstone ("epoch:ms" in the hash, the
 * agent in a sorted set by time) in the same step, so no node ever reads the entry gone without
 * it; beyond the most, the oldest tombstones go.
 */
const REMOVE_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if not cur or string.byte(cur, 1) ~= ${STORED_ENTRY_VERSION} or struct.unpack('>I4', cur, 2) ~= tonumber(ARGV[1]) then return 0 end
if string.sub(cur, ${STORED_ENTRY_HOST_OFFSET + 1}, ${STORED_ENTRY_HOST_OFFSET + ID_BYTES}) ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[1])
${REDIS_NOW_MS}
redis.call('HSET', KEYS[3], ARGV[5], ARGV[1] .. ':' .. nowMs)
redis.call('ZADD', KEYS[4], nowMs, ARGV[5])
while redis.call('ZCARD', KEYS[4]) > tonumber(ARGV[6]) do
  local old = redis.call('ZPOPMIN', KEYS[4])
  redis.call('HDEL', KEYS[3], old[1])
end
redis.call('DECR', KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/**
 * KEYS: tombstone hash. ARGV: agent id, tombstone lifetime (ms). Returns the agent's tombstone
 * epoch while it is younger than the lifetime, else nil.
 */
const TOMBSTONE_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local sep = string.find(v, ':', 1, true)
${REDIS_NOW_MS}
if tonumber(string.sub(v, sep + 1)) + tonumber(ARGV[2]) <= nowMs then return false end
return tonumber(string.sub(v, 1, sep - 1))`;

interface Script {
  readonly text: string;
  readonly sha: string;
}

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

type Client = ReturnType<typeof createClient>;
type RedisModule = typeof import('redis');

let loading: Promise<RedisModule> | undefined;
/**
 * node-redis, loaded on first use: an optional dependency, so a process that keeps its directory
 * in memory (the default) neither needs it installed nor pays for loading it.
 */
function loadRedis(): Promise<RedisModule> {
  loading ??= import('redis').catch((err: unknown) => {
    loading = undefined;
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `the Redis store needs the 'redis' package (npm install redis): ${(err as Error).message}`, { cause: err });
  });
  return loading;
}

/** {@link LocationStore} on Redis, shared by the rendezvous nodes that use the same URL and prefix. */
export class RedisStore implements LocationStore {
  /** Counters (live view). */
  readonly stats: RedisStoreStats = { cacheHits: 0, commands: 0, changesHeard: 0, resyncs: 0, flushes: 0 };
  /** The directory marker this node last saw (`PREFIX:dir`), and its check timer. */
  private marker: Buffer | undefined;
  private markerTimer: ReturnType<typeof setInterval> | undefined;
  private readonly tag = randomBytes(TAG_BYTES);
  private readonly listeners = new Set<StoreListener>();
  private readonly cache = new Map<AgentId, LocationEntry>();
  /** Change messages heard; a read is cached only if none arrived while it was in flight. */
  private seq = 0;
  /** The subscription is up, so the cache is kept true. */
  private live = false;
  private everLive = false;
  private failing = false;
  private closed = false;
  private readonly prefix: string;
  private readonly maxEntries: number;
  private readonly maxTombstones: number;
  private readonly tombstoneTtlMs: number;
  private readonly timeoutMs: number;
  private readonly cacheEntries: number;
  private readonly log: Logger;

  /** Binary replies: entries are bytes, not UTF-8 text. */
  private readonly buffers: Record<number, BufferConstructor>;

  private constructor(
    private readonly client: Client,
    private readonly sub: Client,
    private readonly scripts: { put: Script; remove: Script; tombstone: Script },
    blobString: number,
    /** The URL without credentials, for messages. */
    readonly where: string,
    options: RedisStoreOptions,
  ) {
    this.prefix = options.prefix ?? 'ferry';
    this.maxEntries = options.maxEntries ?? limit('LOCATION_STORE_MAX_ENTRIES');
    this.maxTombstones = options.maxTombstones ?? limit('LOCATION_STORE_TOMBSTONE_MAX_ENTRIES');
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? limit('LOCATION_TOMBSTONE_TTL_MS');
    this.timeoutMs = options.timeoutMs ?? limit('LOCATION_STORE_TIMEOUT_MS');
    this.cacheEntries = options.cacheEntries ?? limit('LOCATION_STORE_CACHE_ENTRIES');
    this.log = options.logger ?? silentLogger;
    this.buffers = { [blobString]: Buffer };
  }

  /**
   * Connect (one client for commands, one for the change subscription) and subscribe.
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a URL that is not `redis://` or
   *   `rediss://`; `FERRY_ERR_DIRECTORY_UNAVAILABLE` when Redis cannot be reached within
   *   a few LOCATION_STORE_TIMEOUT_MS.
   */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    let u: URL;
    try {
      u = new URL(options.url);
    } catch {
      throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `not a Redis URL: ${JSON.stringify(options.url)}`);
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `a Redis URL starts redis:// or rediss://, not ${u.protocol}//`);
    const where = `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
    const timeoutMs = options.timeoutMs ?? limit('LOCATION_STORE_TIMEOUT_MS');
    const { createClient, RESP_TYPES } = await loadRedis();
    const make = (): Client =>
      createClient({
        url: options.url,
        // A command while disconnected fails at once: a registration must be refused, never
        // queued and stored later behind the host's back.
        disableOfflineQueue: true,
        commandOptions: { timeout: timeoutMs, rejectInFlight: true },
        socket: {
          connectTimeout: timeoutMs * 4,
          // Retry quickly: the cache and watches are dead until the subscription is back.
          reconnectStrategy: (retries: number) => Math.min(25 * 2 ** retries, 1000),
        },
      });
    const client = make();
    const sub = make();
    const scripts = { put: { text: PUT_SCRIPT, sha: sha1(PUT_SCRIPT) }, remove: { text: REMOVE_SCRIPT, sha: sha1(REMOVE_SCRIPT) }, tombstone: { text: TOMBSTONE_SCRIPT, sha: sha1(TOMBSTONE_SCRIPT) } };
    const store = new RedisStore(client, sub, scripts, RESP_TYPES.BLOB_STRING, where, options);
    store.attach();
    const deadline = new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', `Redis at ${where} not reachable within ${timeoutMs * 4} ms`)), timeoutMs * 4);
      t.unref();
    });
    try {
      await Promise.race([Promise.all([client.connect(), sub.connect()]), deadline]);
      await Promise.race([sub.subscribe(store.channel, (m: Buffer) => store.onChange(m), true), deadline]);
    } catch (err) {
      store.closed = true;
      client.destroy();
      sub.destroy();
      if (isFerryError(err)) throw err;
      throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', `Redis at ${where}: ${(err as Error).message}`, { cause: err });
    }
    store.live = true;
    store.everLive = true;
    try {
      store.marker = await store.claimMarker();
    } catch (err) {
      await store.close();
      throw err;
    }
    const checkMs = options.markerCheckMs ?? limit('LOCATION_STORE_MARKER_CHECK_MS');
    if (checkMs > 0) {
      store.markerTimer = setInterval(() => void store.checkMarker(), checkMs);
      store.markerTimer.unref();
    }
    store.log.info('location.redis_connected', { where });
    return store;
  }

  /** The directory's marker: set to a fresh random value if there is none (SET NX), then read. */
  private async claimMarker(): Promise<Buffer> {
    await this.command(['SET', this.markerKey, randomBytes(16).toString('hex'), 'NX']);
    const v = (await this.command(['GET', this.markerKey])) as Buffer | null;
    if (v === null) throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', `Redis at ${this.where}: the directory marker vanished as it was set`);
    return v;
  }

  /**
   * A FLUSHALL or FLUSHDB empties Redis without a word on the change channel, so the cache would
   * go on serving entries that are gone (and hosts, asking through this node, would never learn
   * that they must register again: PROTOCOL.md §12.9). The marker key goes with the rest: when it
   * is missing or another node has set a new one, the cache is dropped and watchers re-read.
   */
  private async checkMarker(): Promise<void> {
    if (this.closed || !this.live) return;
    try {
      const v = (await this.command(['GET', this.markerKey])) as Buffer | null;
      if (v !== null && this.marker && v.equals(this.marker)) return;
      this.cache.clear();
      this.seq++;
      this.marker = await this.claimMarker();
      this.stats.flushes++;
      this.log.warn('location.redis_directory_flushed', { where: this.where, detail: 'the directory marker was gone or replaced: cache dropped, hosts register again what they run' });
      for (const l of this.listeners) l.resync();
    } catch {
      // Redis does not answer: its outage is logged and handled where commands fail.
    }
  }

  /** The change channel. */
  get channel(): string {
    return `${this.prefix}:changes`;
  }

  /** Whether the change subscription is up (and so the cache in use). */
  get subscribed(): boolean {
    return this.live;
  }

  /** Both connections are up: commands are sent and changes heard. */
  get ready(): boolean {
    return this.client.isReady && this.live;
  }

  /** Entries cached now. */
  get cached(): number {
    return this.cache.size;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async get(agent: AgentId): Promise<LocationEntry | undefined> {
    const hit = this.cache.get(agent);
    if (hit && this.live) {
      this.stats.cacheHits++;
      return hit;
    }
    const seq = this.seq;
    const raw = (await this.command(['GET', this.keyOf(agent)])) as Buffer | null;
    if (raw === null) return undefined;
    const e = this.decode(raw, agent);
    if (seq === this.seq) this.remember(e);
    return e;
  }

  async put(entry: LocationEntry): Promise<PutOutcome> {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'location store is closed');
    const value = encodeStoredEntry(entry);
    const head = Buffer.concat([Buffer.of(CHANGE_LANDED), this.tag]);
    const seq = this.seq;
    const reply = (await this.script(this.scripts.put, [this.keyOf(entry.agent), this.countKey], [value, String(entry.epoch), String(this.maxEntries), this.channel, head])) as [number, Buffer?];
    if (reply[0] === 2) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `location directory full (${this.maxEntries} agents, LOCATION_STORE_MAX_ENTRIES)`);
    if (reply[0] === 0) {
      const current = this.decode(reply[1]!, entry.agent);
      if (seq === this.seq) this.remember(current);
      return { stored: false, current };
    }
    if (seq === this.seq) this.remember(entry);
    return { stored: true };
  }

  async remove(agent: AgentId, epoch: number, hostId: string): Promise<boolean> {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'location store is closed');
    const msg = Buffer.alloc(1 + TAG_BYTES + ID_BYTES + 4);
    msg[0] = CHANGE_REMOVED;
    this.tag.copy(msg, 1);
    idToBytes(agent).copy(msg, 1 + TAG_BYTES);
    msg.writeUInt32BE(epoch, 1 + TAG_BYTES + ID_BYTES);
    const n = (await this.script(this.scripts.remove, [this.keyOf(agent), this.countKey, this.tombstonesKey, this.tombstoneOrderKey], [String(epoch), this.channel, msg, idToBytes(hostId), agent, String(this.maxTombstones)])) as number;
    // Removed, or not there to remove: either way a cached copy may no longer be served.
    if (n === 1) this.forget(agent, epoch);
    else this.cache.delete(agent);
    return n === 1;
  }

  async removedEpoch(agent: AgentId): Promise<number | undefined> {
    // Not cached: read only for a LOOKUP or REGISTER of an agent with no entry.
    const v = (await this.script(this.scripts.tombstone, [this.tombstonesKey], [agent, String(this.tombstoneTtlMs)])) as number | null;
    if (v === null) return undefined;
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', `tombstone of ${agent} is not an epoch`);
    return v;
  }

  /** Agents in the directory (the script's counter: one O(1) read). */
  async count(): Promise<number> {
    const v = (await this.command(['GET', this.countKey])) as Buffer | null;
    return v === null ? 0 : Number(v.toString());
  }

  async *list(): AsyncIterable<LocationEntry> {
    let cursor = '0';
    do {
      const [next, keys] = (await this.command(['SCAN', cursor, 'MATCH', `${this.prefix}:a:*`, 'COUNT', '1000'])) as [Buffer, Buffer[]];
      cursor = next.toString();
      if (keys.length === 0) continue;
      const values = (await this.command(['MGET', ...keys])) as (Buffer | null)[];
      for (const v of values) if (v !== null) yield this.decode(v);
    } while (cursor !== '0');
  }

  /** Disconnect both clients. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    if (this.markerTimer) clearInterval(this.markerTimer);
    this.cache.clear();
    this.listeners.clear();
    await Promise.allSettled([this.client.close(), this.sub.close()]);
    this.client.destroy();
    this.sub.destroy();
  }

  // --- internals ------------------------------------------------------------------------------

  private get countKey(): string {
    return `${this.prefix}:n`;
  }

  private get markerKey(): string {
    return `${this.prefix}:dir`;
  }

  private keyOf(agent: AgentId): string {
    return `${this.prefix}:a:${agent}`;
  }

  /** Tombstones: agent id -> "epoch:removed at (Redis ms)". */
  private get tombstonesKey(): string {
    return `${this.prefix}:t`;
  }

  /** The same agents by removal time, oldest first: evicted beyond the most. */
  private get tombstoneOrderKey(): string {
    return `${this.prefix}:to`;
  }

  private attach(): void {
    // One line per outage, not one per reconnect attempt.
    const down = (why: string): void => {
      if (!this.failing && !this.closed) this.log.warn('location.redis_unavailable', { where: this.where, why });
      this.failing = true;
    };
    this.client.on('error', (err: Error) => down(err.message));
    this.client.on('ready', () => {
      if (this.failing) this.log.info('location.redis_back', { where: this.where });
      this.failing = false;
    });
    this.sub.on('error', (err: Error) => {
      down(err.message);
      this.lost();
    });
    this.sub.on('reconnecting', () => this.lost());
    this.sub.on('end', () => this.lost());
    // 'ready' comes after the client re-subscribed on the new connection: from now on every
    // change is heard, so re-reading now catches whatever happened while it was down.
    this.sub.on('ready', () => {
      if (this.closed || !this.everLive || this.live) return;
      this.live = true;
      this.stats.resyncs++;
      this.log.info('location.redis_resubscribed', { where: this.where });
      for (const l of this.listeners) l.resync();
    });
  }

  /** The subscription is down: changes may go unheard, so nothing cached may be served. */
  private lost(): void {
    this.live = false;
    this.cache.clear();
  }

  private onChange(m: Buffer): void {
    this.seq++;
    try {
      if (m.length < 1 + TAG_BYTES) throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', `change message of ${m.length} bytes`);
      const own = m.subarray(1, 1 + TAG_BYTES).equals(this.tag);
      const body = m.subarray(1 + TAG_BYTES);
      if (m[0] === CHANGE_LANDED) {
        const e = decodeStoredEntry(Buffer.from(body));
        const cur = this.cache.get(e.agent);
        if (!cur || cur.epoch < e.epoch) this.remember(e);
        if (own) return;
        this.stats.changesHeard++;
        for (const l of this.listeners) l.landed(e);
      } else if (m[0] === CHANGE_REMOVED) {
        if (body.length !== ID_BYTES + 4) throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', 'removal message length');
        this.forget(idFromBytes(body.subarray(0, ID_BYTES)), body.readUInt32BE(ID_BYTES));
        if (!own) this.stats.changesHeard++;
      } else {
        throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', `change message kind ${m[0]}`);
      }
    } catch (err) {
      // Someone else publishes on our channel (another program, another version): drop the
      // cache, whose truth depended on hearing every change.
      this.cache.clear();
      this.log.warn('location.redis_change_refused', { code: (err as FerryError).code, detail: (err as Error).message });
    }
  }

  private remember(e: LocationEntry): void {
    if (!this.live || this.cacheEntries <= 0) return;
    this.cache.delete(e.agent);
    setBounded(this.cache, e.agent, e, this.cacheEntries);
  }

  private forget(agent: AgentId, epoch: number): void {
    const cur = this.cache.get(agent);
    if (cur && cur.epoch <= epoch) this.cache.delete(agent);
  }

  private decode(raw: Buffer, agent?: AgentId): LocationEntry {
    const e = decodeStoredEntry(raw);
    if (agent !== undefined && e.agent !== agent) throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', `the key of ${agent} holds an entry of ${e.agent}`);
    return e;
  }

  private async script(s: Script, keys: string[], args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.command(['EVALSHA', s.sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      // A restarted Redis has an empty script cache: send the text once, which caches it again.
      if (!isFerryError(err, 'FERRY_ERR_DIRECTORY_UNAVAILABLE') || !/NOSCRIPT/.test(err.message)) throw err;
      return this.command(['EVAL', s.text, String(keys.length), ...keys, ...args]);
    }
  }

  private async command(args: (string | Buffer)[]): Promise<unknown> {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'location store is closed');
    this.stats.commands++;
    try {
      return await this.client.sendCommand(args, { typeMapping: this.buffers, timeout: this.timeoutMs, rejectInFlight: true });
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      if (/FERRYCORRUPT/.test(msg)) throw new FerryError('FERRY_ERR_DIRECTORY_CORRUPT', msg, { cause: err });
      throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', `Redis at ${this.where}: ${msg}`, { cause: err });
    }
  }
}
