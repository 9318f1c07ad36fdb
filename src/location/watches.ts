/**
 * The rendezvous's watch table: who asked to be told when an agent lands, until when, and how
 * many notifications each may still receive. Pure (no I/O, time passed in): the server sends
 * what {@link WatchTable.landed} returns.
 *
 * Every watch is bounded four ways: a lifetime (WATCH_MAX_TTL_MS), a notification count paid
 * for by the WATCH datagram's size (the watcher's address is unproven: RFC 9000 §8's 3x rule
 * applies to everything sent there), and the table's size, in all, per agent and per source IP.
 *
 * No operation looks at more than a bounded number of watches: expiry is a min-heap on the
 * deadline (each `add` drops at most WATCH_EXPIRE_PER_ADD expired watches from its top, each in
 * O(log n)), and a full table refuses in O(1). A WATCH flood into a full table once made every
 * WATCH scan all 16 384 watches for expired ones: 1,000 WATCH/s held the rendezvous at 87 % CPU
 * and LOOKUPs waited seconds.
 */
import { FerryError, IndexedHeap, limit, type HeapItem } from '../util/index.js';
import type { AgentId } from '../identity/index.js';

/** Bounds of a {@link WatchTable}; each defaults to its row in LIMITS. */
export interface WatchLimits {
  readonly maxEntries: number;
  readonly maxPerAgent: number;
  readonly maxPerSource: number;
  readonly maxTtlMs: number;
  readonly maxNotifications: number;
}

/** A watch to add. */
export interface WatchRequest {
  readonly agent: AgentId;
  /** The watcher's control address, `ip:port` (where LANDED goes). */
  readonly from: string;
  readonly token: Buffer;
  readonly newerThan: number;
  readonly ttlMs: number;
  /** Notifications the request paid for (before the table's own cap). */
  readonly notifications: number;
}

/** What {@link WatchTable.add} granted; zeros when nothing was kept. */
export interface WatchGrant {
  readonly ttlMs: number;
  readonly notifications: number;
}

/** A notification to send. */
export interface Notification {
  readonly to: string;
  readonly token: Buffer;
}

interface Entry extends HeapItem {
  readonly agent: AgentId;
  readonly key: string;
  readonly source: string;
  readonly from: string;
  readonly token: Buffer;
  readonly newerThan: number;
  /** When the watch lapses (monotonic ms): the heap's order. */
  readonly at: number;
  remaining: number;
}

/**
 * Expired watches dropped per `add`, at most: more than the one `add` inserts, so expired
 * watches drain faster than they can pile up, yet no `add` pays for a whole table lapsing at once.
 */
const WATCH_EXPIRE_PER_ADD = 8;

const NOTHING: WatchGrant = { ttlMs: 0, notifications: 0 };

function defaults(): WatchLimits {
  return {
    maxEntries: limit('WATCH_MAX_ENTRIES'),
    maxPerAgent: limit('WATCH_MAX_PER_AGENT'),
    maxPerSource: limit('WATCH_MAX_PER_SOURCE'),
    maxTtlMs: limit('WATCH_MAX_TTL_MS'),
    maxNotifications: limit('WATCH_MAX_NOTIFICATIONS'),
  };
}

const keyOf = (from: string, token: Buffer): string => `${from}/${token.toString('hex')}`;

/**
 * The IP part of `ip:port` (or `[v6]:port`): the per-source budget counts addresses, not ports,
 * which a sender picks freely.
 */
const sourceOf = (from: string): string => from.slice(0, Math.max(0, from.lastIndexOf(':')));

/** Watches by agent, expiring in deadline order. */
export class WatchTable {
  private readonly byAgent = new Map<AgentId, Map<string, Entry>>();
  private readonly bySource = new Map<string, number>();
  private readonly expiry = new IndexedHeap<Entry>();
  private readonly limits: WatchLimits;

  constructor(limits: Partial<WatchLimits> = {}) {
    this.limits = { ...defaults(), ...limits };
  }

  /** Watches held (some may have lapsed and not been dropped yet; they notify no one). */
  get size(): number {
    return this.expiry.size;
  }

  /**
   * Keep a watch, replacing one with the same watcher and token (a renewal). Grants nothing
   * (zeros) when the request paid for no notification, asked for no time, or when the table, the
   * agent's share or the source's share is full: the watcher then polls (LOOKUP every
   * LOCATION_POLL_MS), so an honest watcher refused by a flooded table still learns of a landing,
   * up to one poll interval later.
   */
  add(now: number, w: WatchRequest): WatchGrant {
    const ttlMs = Math.min(w.ttlMs, this.limits.maxTtlMs);
    const notifications = Math.min(w.notifications, this.limits.maxNotifications);
    if (ttlMs <= 0 || notifications <= 0) return NOTHING;
    this.remove(w.agent, w.from, w.token);
    this.expire(now);
    const source = sourceOf(w.from);
    const set = this.byAgent.get(w.agent);
    if (this.expiry.size >= this.limits.maxEntries) return NOTHING;
    if ((set?.size ?? 0) >= this.limits.maxPerAgent) return NOTHING;
    if ((this.bySource.get(source) ?? 0) >= this.limits.maxPerSource) return NOTHING;
    const key = keyOf(w.from, w.token);
    const entry: Entry = { agent: w.agent, key, source, from: w.from, token: Buffer.from(w.token), newerThan: w.newerThan, at: now + ttlMs, remaining: notifications, heapIndex: -1 };
    if (set) set.set(key, entry);
    else this.byAgent.set(w.agent, new Map([[key, entry]]));
    this.bySource.set(source, (this.bySource.get(source) ?? 0) + 1);
    this.expiry.push(entry);
    return { ttlMs, notifications };
  }

  /** The agents watched now (a node re-reads them after its change feed was interrupted). */
  agents(): AgentId[] {
    return [...this.byAgent.keys()];
  }

  /** Drop the watch of `from` with `token` on `agent`; true if there was one. */
  remove(agent: AgentId, from: string, token: Buffer): boolean {
    const e = this.byAgent.get(agent)?.get(keyOf(from, token));
    if (!e) return false;
    this.drop(e);
    return true;
  }

  /**
   * `agent` was registered at `epoch`: the notifications to send now. Each live watch below that
   * epoch gets one and loses one from its count; exhausted and expired watches are dropped. A
   * watch stays after a notification while it has count left, so a later, newer landing (the
   * agent moves on at once) still reaches a watcher that missed the first datagram. Looks only
   * at this agent's watches (at most `maxPerAgent`).
   */
  landed(now: number, agent: AgentId, epoch: number): Notification[] {
    const set = this.byAgent.get(agent);
    if (!set) return [];
    const out: Notification[] = [];
    for (const e of set.values()) {
      if (e.at <= now) {
        this.drop(e);
        continue;
      }
      if (epoch <= e.newerThan) continue;
      out.push({ to: e.from, token: e.token });
      if (--e.remaining <= 0) this.drop(e);
    }
    return out;
  }

  /** Drop up to WATCH_EXPIRE_PER_ADD lapsed watches, earliest first. */
  private expire(now: number): void {
    for (let i = 0; i < WATCH_EXPIRE_PER_ADD; i++) {
      const top = this.expiry.peek();
      if (!top || top.at > now) return;
      this.drop(top);
    }
  }

  private drop(e: Entry): void {
    this.expiry.remove(e);
    const set = this.byAgent.get(e.agent);
    if (set?.delete(e.key) && set.size === 0) this.byAgent.delete(e.agent);
    const n = (this.bySource.get(e.source) ?? 1) - 1;
    if (n > 0) this.bySource.set(e.source, n);
    else this.bySource.delete(e.source);
  }
}

/** Refuse a bad limit override early (a zero would silently disable watches). */
export function checkWatchLimits(l: Partial<WatchLimits>): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isInteger(v) || (v as number) < 1) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `watch limit ${k} must be a positive integer, got ${String(v)}`);
  }
}
