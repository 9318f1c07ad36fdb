/**
 * Where a rendezvous keeps its directory. {@link LocationStore} is the interface a backend
 * implements: the in-memory {@link MemoryStore} (with an optional snapshot file, the default),
 * and {@link RedisStore} (redis-store.ts), for several rendezvous nodes sharing one directory.
 *
 * The operations that must be atomic are {@link LocationStore.put}, "store if newer", and
 * {@link LocationStore.remove}, "delete if still this host's entry at this epoch". Epochs
 * make a location update idempotent and ordered only if no two writers can both see epoch 4 and
 * both write epoch 5; a single process gets that for free, a shared store has to make it a
 * compare-and-set (Redis: one Lua script comparing the stored epoch, or WATCH/MULTI/EXEC).
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { FerryError, limit, setBounded, silentLogger, systemClock, type Clock, type Logger, type TimerHandle } from '../util/index.js';
import { decodeChain, encodeChain, parseId, type AgentId } from '../identity/index.js';
import { canonicalIp } from '../wire/index.js';
import type { LocationEntry } from './table.js';

/** The outcome of {@link LocationStore.put}. */
export type PutOutcome =
  /** Stored: there was no entry, or its epoch was lower. */
  | { readonly stored: true }
  /** Not stored: the current entry's epoch is at or above the offered one. */
  | { readonly stored: false; readonly current: LocationEntry };

/**
 * What a shared store tells the rendezvous node using it about the changes other nodes made
 * (its own changes the node already knows).
 */
export interface StoreListener {
  /** Another node stored `entry` (its watchers here are due a LANDED). */
  landed(entry: LocationEntry): void;
  /**
   * The change feed was interrupted and is back: changes may have been missed meanwhile (Redis
   * pub/sub does not queue for a disconnected subscriber), so re-read what is watched.
   */
  resync(): void;
}

/** A rendezvous directory: `AgentId -> LocationEntry`. */
export interface LocationStore {
  /** The entry of `agent`, if any. */
  get(agent: AgentId): Promise<LocationEntry | undefined>;
  /**
   * Store `entry` if there is no entry for its agent or the stored epoch is lower, atomically
   * (a compare-and-set on the epoch: see the file comment).
   *
   * @throws FerryError `FERRY_ERR_LIMIT_EXCEEDED` for a new agent when the store is full.
   */
  put(entry: LocationEntry): Promise<PutOutcome>;
  /**
   * Deregister: drop the entry of `agent` if it is still the one at exactly `epoch` held by
   * `hostId`, atomically (a compare-and-delete: an agent that moved on since, or was registered
   * again, keeps its entry, so a stale deregistration cannot remove a newer registration). True
   * if it was dropped. The caller has verified the deregistration (registration.ts).
   */
  remove(agent: AgentId, epoch: number, hostId: string): Promise<boolean>;
  /**
   * The epoch of the agent's entry last removed by {@link remove}, while a REGISTER seen before the
   * removal could still verify (a tombstone, LOCATION_TOMBSTONE_TTL_MS); undefined when there is
   * none. Registrations at or below it are replays (PROTOCOL.md §12.2.1).
   */
  removedEpoch(agent: AgentId): Promise<number | undefined>;
  /**
   * Changes made by other users of the same directory (shared stores only; a store only this
   * process writes has none). Returns the unsubscribe function.
   */
  subscribe?(listener: StoreListener): () => void;
  /** Every entry, in no particular order (a backend may stream them, e.g. Redis SCAN). */
  list(): AsyncIterable<LocationEntry>;
  /** Persist what is pending and release resources. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link MemoryStore.open}. */
export interface MemoryStoreOptions {
  /**
   * Snapshot file: loaded at open (a missing file is an empty directory), rewritten atomically
   * (temporary file, fsync, rename) after changes, at most every `snapshotIntervalMs`, and on
   * close. Without it the directory lives only in memory.
   */
  readonly snapshotFile?: string;
  /** Coalescing interval of snapshot writes, ms (default LOCATION_SNAPSHOT_INTERVAL_MS). */
  readonly snapshotIntervalMs?: number;
  /** Most agents held (default LOCATION_MAX_ENTRIES). */
  readonly maxEntries?: number;
  /** Most tombstones kept (default LOCATION_TOMBSTONE_MAX_ENTRIES); the oldest go first. */
  readonly maxTombstones?: number;
  /** Monotonic clock for the coalescing timer (default: the system clock). */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The JSON form of one entry in a snapshot file. */
interface SnapshotEntry {
  agent: string;
  hostId: string;
  ip: string;
  controlPort: number;
  redirectorPort: number;
  epoch: number;
  /** Hex of the raw agent key. */
  agentKey?: string;
  /** Hex of the encoded chain (docs/DELEGATION.md, chain layout). */
  chain?: string;
}

/** The JSON form of one tombstone in a snapshot file: how long it still holds when written. */
interface SnapshotTombstone {
  agent: string;
  epoch: number;
  remainingMs: number;
}

/**
 * Snapshot file format marker and version. Version 2 adds the tombstones; a version 1 file (no
 * tombstones) is still read.
 */
const SNAPSHOT_FORMAT = 'ferry-rendezvous-snapshot';
const SNAPSHOT_VERSION = 2;

/**
 * The in-memory directory of one rendezvous process, optionally backed by a snapshot file so a
 * restarted rendezvous keeps its directory. A crash loses at most the changes of the last
 * `snapshotIntervalMs`; hosts re-register on their next move or renewal anyway.
 */
export class MemoryStore implements LocationStore {
  private readonly entries = new Map<AgentId, LocationEntry>();
  /**
   * Deregistered epochs (tombstones), oldest first, each until its deadline on `clock`. In the
   * snapshot with the time each still holds, counted again from the restart (the time the
   * rendezvous was down is added: a tombstone held longer only refuses replays longer, since a
   * genuine registration after a deregistration carries a newer epoch). Without them a restart
   * would let a REGISTER captured before a DEREGISTER be replayed.
   */
  private readonly tombstones = new Map<AgentId, { epoch: number; until: number }>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly maxEntries: number;
  private readonly maxTombstones: number;
  private dirty = false;
  private timer: TimerHandle | undefined;
  /** The write in progress; never rejects (errors are reported to the flush that started it). */
  private writing: Promise<void> | undefined;
  private lastWriteAt = -Infinity;
  private failing = false;
  private closed = false;
  /** Completed snapshot writes (for tests and metrics). */
  writes = 0;

  private constructor(private readonly file: string | undefined, options: MemoryStoreOptions) {
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? silentLogger;
    this.intervalMs = options.snapshotIntervalMs ?? limit('LOCATION_SNAPSHOT_INTERVAL_MS');
    this.maxEntries = options.maxEntries ?? limit('LOCATION_MAX_ENTRIES');
    this.maxTombstones = options.maxTombstones ?? limit('LOCATION_TOMBSTONE_MAX_ENTRIES');
  }

  /**
   * Open a store, loading the snapshot file if one is given and exists.
   *
   * @throws FerryError `FERRY_ERR_SNAPSHOT_UNREADABLE` when the file exists but cannot be read,
   *   is over LOCATION_SNAPSHOT_MAX_BYTES, or is not a valid snapshot (starting with an empty
   *   directory instead would silently forget every agent), or when it cannot be written.
   */
  static async open(options: MemoryStoreOptions = {}): Promise<MemoryStore> {
    const store = new MemoryStore(options.snapshotFile, options);
    if (options.snapshotFile) {
      await store.load(options.snapshotFile);
      // Write once now, so an unwritable path fails the start, not the first registration.
      store.dirty = true;
      try {
        await store.flush();
      } catch (err) {
        throw new FerryError('FERRY_ERR_SNAPSHOT_UNREADABLE', `snapshot ${options.snapshotFile}: cannot write (${((err as FerryError).cause as Error | undefined)?.message ?? (err as Error).message})`, { cause: err });
      }
    }
    return store;
  }

  /** Number of agents held. */
  get size(): number {
    return this.entries.size;
  }

  async get(agent: AgentId): Promise<LocationEntry | undefined> {
    return this.entries.get(agent);
  }

  async put(entry: LocationEntry): Promise<PutOutcome> {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'location store is closed');
    const cur = this.entries.get(entry.agent);
    if (cur && cur.epoch >= entry.epoch) return { stored: false, current: cur };
    if (!cur && this.entries.size >= this.maxEntries) {
      throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `location directory full (${this.maxEntries} agents, LOCATION_MAX_ENTRIES)`);
    }
    this.entries.set(entry.agent, entry);
    this.changed();
    return { stored: true };
  }

  async remove(agent: AgentId, epoch: number, hostId: string): Promise<boolean> {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'location store is closed');
    const cur = this.entries.get(agent);
    if (cur?.epoch !== epoch || cur.hostId !== hostId) return false;
    this.entries.delete(agent);
    // Re-inserted so the map stays oldest first for setBounded's eviction.
    this.tombstones.delete(agent);
    setBounded(this.tombstones, agent, { epoch, until: this.clock.now() + limit('LOCATION_TOMBSTONE_TTL_MS') }, this.maxTombstones);
    this.changed();
    return true;
  }

  async removedEpoch(agent: AgentId): Promise<number | undefined> {
    const t = this.tombstones.get(agent);
    if (!t) return undefined;
    if (t.until > this.clock.now()) return t.epoch;
    this.tombstones.delete(agent);
    return undefined;
  }

  async *list(): AsyncIterable<LocationEntry> {
    for (const e of [...this.entries.values()]) yield e;
  }

  /**
   * Write the snapshot now if anything changed since the last write (waiting for a write in
   * progress first). Rejects with the write's error; the store stays dirty and retries later.
   */
  async flush(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    while (this.writing) await this.writing;
    if (!this.file || !this.dirty) return;
    this.dirty = false;
    this.lastWriteAt = this.clock.now();
    const text = this.serialize();
    const done = this.write(this.file, text);
    this.writing = done.then(
      () => undefined,
      () => undefined,
    );
    try {
      await done;
      this.writes++;
      if (this.failing) this.log.info('location.snapshot_recovered', { file: this.file });
      this.failing = false;
    } catch (err) {
      this.dirty = true;
      // One line per failure streak: a full disk would otherwise log ten lines a second.
      if (!this.failing) this.log.error('location.snapshot_failed', { file: this.file, message: (err as Error).message });
      this.failing = true;
      throw new FerryError('FERRY_ERR_INTERNAL', `cannot write snapshot ${this.file}: ${(err as Error).message}`, { cause: err });
    } finally {
      this.writing = undefined;
      if (this.dirty && !this.closed) this.schedule();
    }
  }

  /** Write a final snapshot if needed and stop. Rejects if that write fails. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.flush();
  }

  // --- internals ------------------------------------------------------------------------------

  private changed(): void {
    if (!this.file) return;
    this.dirty = true;
    this.schedule();
  }

  /** At most one write per interval: the timer fires `intervalMs` after the previous write began. */
  private schedule(): void {
    if (this.timer || this.writing || this.closed) return;
    const wait = Math.max(0, this.lastWriteAt + this.intervalMs - this.clock.now());
    this.timer = this.clock.setTimer(wait, () => {
      this.timer = undefined;
      this.flush().catch(() => {
        /* logged in flush; retried by schedule() */
      });
    });
  }

  private serialize(): string {
    const entries: SnapshotEntry[] = [];
    for (const e of this.entries.values()) {
      const s: SnapshotEntry = { agent: e.agent, hostId: e.hostId, ip: e.ip, controlPort: e.controlPort, redirectorPort: e.redirectorPort, epoch: e.epoch };
      if (e.agentKey) s.agentKey = Buffer.from(e.agentKey).toString('hex');
      if (e.chain) s.chain = encodeChain(e.chain).toString('hex');
      entries.push(s);
    }
    const now = this.clock.now();
    const tombstones: SnapshotTombstone[] = [];
    for (const [agent, t] of this.tombstones) if (t.until > now) tombstones.push({ agent, epoch: t.epoch, remainingMs: Math.ceil(t.until - now) });
    return JSON.stringify({ format: SNAPSHOT_FORMAT, v: SNAPSHOT_VERSION, entries, tombstones }) + '\n';
  }

  /** Temporary file in the same directory, fsync, then rename: a reader sees the old file or the new, never half. */
  private async write(file: string, text: string): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  private async load(file: string): Promise<void> {
    const unreadable = (why: string, cause?: unknown): FerryError =>
      new FerryError('FERRY_ERR_SNAPSHOT_UNREADABLE', `snapshot ${file}: ${why}`, cause === undefined ? undefined : { cause });
    let text: string;
    try {
      const fh = await open(file, 'r');
      try {
        const { size } = await fh.stat();
        if (size > limit('LOCATION_SNAPSHOT_MAX_BYTES')) throw unreadable(`${size} bytes exceeds LOCATION_SNAPSHOT_MAX_BYTES`);
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      if (err instanceof FerryError) throw err;
      throw unreadable((err as Error).message, err);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw unreadable(`not JSON (${(err as Error).message})`, err);
    }
    const d = doc as { format?: unknown; v?: unknown; entries?: unknown; tombstones?: unknown };
    if (typeof d !== 'object' || d === null || d.format !== SNAPSHOT_FORMAT) throw unreadable('not a Ferry rendezvous snapshot');
    if (d.v !== 1 && d.v !== SNAPSHOT_VERSION) throw unreadable(`version ${String(d.v)}, expected 1 or ${SNAPSHOT_VERSION}`);
    if (!Array.isArray(d.entries)) throw unreadable('no entries array');
    if (d.entries.length > this.maxEntries) throw unreadable(`${d.entries.length} entries exceed ${this.maxEntries}`);
    d.entries.forEach((raw: unknown, i: number) => {
      let e: LocationEntry;
      try {
        e = parseSnapshotEntry(raw);
      } catch (err) {
        throw unreadable(`entry ${i}: ${(err as Error).message}`, err);
      }
      if (this.entries.has(e.agent)) throw unreadable(`entry ${i}: agent ${e.agent} appears twice`);
      this.entries.set(e.agent, e);
    });
    if (d.v === SNAPSHOT_VERSION) {
      if (!Array.isArray(d.tombstones)) throw unreadable('no tombstones array');
      if (d.tombstones.length > this.maxTombstones) throw unreadable(`${d.tombstones.length} tombstones exceed ${this.maxTombstones}`);
      const now = this.clock.now();
      d.tombstones.forEach((raw: unknown, i: number) => {
        let t: { agent: AgentId; epoch: number; remainingMs: number };
        try {
          t = parseSnapshotTombstone(raw);
        } catch (err) {
          throw unreadable(`tombstone ${i}: ${(err as Error).message}`, err);
        }
        if (this.tombstones.has(t.agent)) throw unreadable(`tombstone ${i}: agent ${t.agent} appears twice`);
        this.tombstones.set(t.agent, { epoch: t.epoch, until: now + t.remainingMs });
      });
    }
    this.log.info('location.snapshot_loaded', { file, agents: this.entries.size, tombstones: this.tombstones.size });
  }
}

const HEX = /^(?:[0-9a-f]{2})*$/;

/** One snapshot tombstone, checked as strictly as an entry (its time left at most the tombstone lifetime). */
function parseSnapshotTombstone(raw: unknown): { agent: AgentId; epoch: number; remainingMs: number } {
  const bad = (why: string): FerryError => new FerryError('FERRY_ERR_INVALID_ARGUMENT', why);
  if (typeof raw !== 'object' || raw === null) throw bad('not an object');
  const o = raw as Record<string, unknown>;
  if (typeof o.agent !== 'string') throw bad('agent is not a string');
  const int = (k: string, min: number, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${k} is not an integer in ${min}..${max}`);
    return v;
  };
  return { agent: parseId(o.agent), epoch: int('epoch', 0, 0xffff_ffff), remainingMs: int('remainingMs', 1, limit('LOCATION_TOMBSTONE_TTL_MS')) };
}

/** One snapshot entry, checked as strictly as a wire message (the file may have been edited). */
function parseSnapshotEntry(raw: unknown): LocationEntry {
  const bad = (why: string): FerryError => new FerryError('FERRY_ERR_INVALID_ARGUMENT', why);
  if (typeof raw !== 'object' || raw === null) throw bad('not an object');
  const o = raw as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof o[k] !== 'string') throw bad(`${k} is not a string`);
    return o[k] as string;
  };
  const int = (k: string, min: number, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${k} is not an integer in ${min}..${max}`);
    return v;
  };
  const agent = parseId(str('agent'));
  const hostId = parseId(str('hostId')) as string;
  const ip = canonicalIp(str('ip'));
  const entry: { -readonly [K in keyof LocationEntry]: LocationEntry[K] } = {
    agent,
    hostId,
    ip,
    controlPort: int('controlPort', 1, 0xffff),
    redirectorPort: int('redirectorPort', 1, 0xffff),
    epoch: int('epoch', 0, 0xffff_ffff),
  };
  if (o.agentKey !== undefined) {
    const k = str('agentKey');
    if (!HEX.test(k) || k.length !== 64) throw bad('agentKey is not 32 bytes of hex');
    entry.agentKey = Buffer.from(k, 'hex');
  }
  if (o.chain !== undefined) {
    const c = str('chain');
    if (!HEX.test(c)) throw bad('chain is not hex');
    const bytes = Buffer.from(c, 'hex');
    const { value, bytes: used } = decodeChain(bytes, 0);
    if (used !== bytes.length) throw bad('trailing bytes after the chain');
    entry.chain = value;
  }
  return entry;
}
