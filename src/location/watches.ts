/**
 * The rendezvous's watch table: who asked to be told when an agent lands, until when, and how
 * many notifications each may still receive. Pure (no I/O, time passed in): the server sends
 * what {@link WatchTable.landed} returns.
 *
 * Every watch is bounded three ways: a lifetime (WATCH_MAX_TTL_MS), a notification count paid
 * for by the WATCH datagram's size (the watcher's address is unproven: RFC 9000 §8's 3x rule
 * applies to everything sent there), and the table's size, in all and per agent.
 */
import { FerryError, limit } from '../util/index.js';
import type { AgentId } from '../identity/index.js';

/** Bounds of a {@link WatchTable}; each defaults to its row in LIMITS. */
export interface WatchLimits {
  readonly maxEntries: number;
  readonly maxPerAgent: number;
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

interface Entry {
  readonly from: string;
  readonly token: Buffer;
  readonly newerThan: number;
  readonly expiresAt: number;
  remaining: number;
}

function defaults(): WatchLimits {
  return {
    maxEntries: limit('WATCH_MAX_ENTRIES'),
    maxPerAgent: limit('WATCH_MAX_PER_AGENT'),
    maxTtlMs: limit('WATCH_MAX_TTL_MS'),
    maxNotifications: limit('WATCH_MAX_NOTIFICATIONS'),
  };
}

const keyOf = (from: string, token: Buffer): string => `${from}/${token.toString('hex')}`;

/** Watches by agent. */
export class WatchTable {
  private readonly byAgent = new Map<AgentId, Map<string, Entry>>();
  private count = 0;
  private readonly limits: WatchLimits;

  constructor(limits: Partial<WatchLimits> = {}) {
    this.limits = { ...defaults(), ...limits };
  }

  /** Watches held. */
  get size(): number {
    return this.count;
  }

  /**
   * Keep a watch, replacing one with the same watcher and token (a renewal). Grants nothing
   * (zeros) when the request paid for no notification, asked for no time, or the table is full
   * even after dropping expired watches: the watcher then polls.
   */
  add(now: number, w: WatchRequest): WatchGrant {
    const ttlMs = Math.min(w.ttlMs, this.limits.maxTtlMs);
    const notifications = Math.min(w.notifications, this.limits.maxNotifications);
    if (ttlMs <= 0 || notifications <= 0) return { ttlMs: 0, notifications: 0 };
    const key = keyOf(w.from, w.token);
    this.remove(w.agent, w.from, w.token);
    let set = this.byAgent.get(w.agent);
    if (set) this.pruneAgent(now, w.agent, set);
    if (this.count >= this.limits.maxEntries) this.prune(now);
    set = this.byAgent.get(w.agent);
    if (this.count >= this.limits.maxEntries || (set?.size ?? 0) >= this.limits.maxPerAgent) return { ttlMs: 0, notifications: 0 };
    if (!set) this.byAgent.set(w.agent, (set = new Map()));
    set.set(key, { from: w.from, token: Buffer.from(w.token), newerThan: w.newerThan, expiresAt: now + ttlMs, remaining: notifications });
    this.count++;
    return { ttlMs, notifications };
  }

  /** Drop the watch of `from` with `token` on `agent`; true if there was one. */
  remove(agent: AgentId, from: string, token: Buffer): boolean {
    const set = this.byAgent.get(agent);
    if (!set || !set.delete(keyOf(from, token))) return false;
    this.count--;
    if (set.size === 0) this.byAgent.delete(agent);
    return true;
  }

  /**
   * `agent` was registered at `epoch`: the notifications to send now. Each live watch below that
   * epoch gets one and loses one from its count; exhausted and expired watches are dropped. A
   * watch stays after a notification while it has count left, so a later, newer landing (the
   * agent moves on at once) still reaches a watcher that missed the first datagram.
   */
  landed(now: number, agent: AgentId, epoch: number): Notification[] {
    const set = this.byAgent.get(agent);
    if (!set) return [];
    const out: Notification[] = [];
    for (const [key, e] of set) {
      if (e.expiresAt <= now) {
        set.delete(key);
        this.count--;
        continue;
      }
      if (epoch <= e.newerThan) continue;
      out.push({ to: e.from, token: e.token });
      if (--e.remaining <= 0) {
        set.delete(key);
        this.count--;
      }
    }
    if (set.size === 0) this.byAgent.delete(agent);
    return out;
  }

  /** Drop every expired watch (O(n): called only when the table is full). */
  prune(now: number): void {
    for (const [agent, set] of this.byAgent) this.pruneAgent(now, agent, set);
  }

  private pruneAgent(now: number, agent: AgentId, set: Map<string, Entry>): void {
    for (const [key, e] of set) {
      if (e.expiresAt <= now) {
        set.delete(key);
        this.count--;
      }
    }
    if (set.size === 0) this.byAgent.delete(agent);
  }
}

/** Refuse a bad limit override early (a zero would silently disable watches). */
export function checkWatchLimits(l: Partial<WatchLimits>): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isInteger(v) || (v as number) < 1) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `watch limit ${k} must be a positive integer, got ${String(v)}`);
  }
}
