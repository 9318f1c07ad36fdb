/**
 * A location service that lags, for the simulator: registrations are decided at once against the
 * real table (the epoch compare-and-set stays exact), but while a lag is on, lookups and watches
 * keep answering the location as it was before, for `ms` after each registration, as a
 * rendezvous reached through a slow replica would.
 */
import type { AgentId } from '../../src/identity/index.js';
import { MemoryLocationTable, type LocationEntry, type LocationService } from '../../src/location/index.js';
import type { Clock } from '../../src/util/index.js';

/** The table as lookups see it. */
export class LaggingLocation implements LocationService {
  private readonly table: MemoryLocationTable;
  /** Per agent, the entries registered while lagging that lookups do not see yet. */
  private readonly hidden = new Map<AgentId, { entry: LocationEntry; visibleAt: number }[]>();
  /** Registrations until this time are hidden for `lagMs`. */
  private lagUntil = -1;
  private lagMs = 0;

  constructor(private readonly clock: Clock) {
    this.table = new MemoryLocationTable(clock);
  }

  /** From now on, for `ms`, each registration stays invisible to lookups for `ms`. */
  lag(ms: number): void {
    this.lagUntil = this.clock.now() + ms;
    this.lagMs = ms;
  }

  async register(entry: LocationEntry): Promise<void> {
    const before = await this.table.lookup(entry.agent);
    await this.table.register(entry);
    if (this.clock.now() <= this.lagUntil && before) {
      const list = this.hidden.get(entry.agent) ?? [];
      list.push({ entry: before, visibleAt: this.clock.now() + this.lagMs });
      this.hidden.set(entry.agent, list);
    }
  }

  async lookup(agent: AgentId): Promise<LocationEntry | undefined> {
    return this.seen(agent, await this.table.lookup(agent));
  }

  async watch(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined> {
    const cur = this.seen(agent, await this.table.lookup(agent));
    if ((cur && cur.epoch > newerThan) || waitMs <= 0) return cur;
    // Ask the table for what is newer, then wait until this view shows it (or the wait ends).
    const end = this.clock.now() + waitMs;
    await this.table.watch(agent, newerThan, waitMs);
    for (;;) {
      const e = this.seen(agent, await this.table.lookup(agent));
      const left = end - this.clock.now();
      if ((e && e.epoch > newerThan) || left <= 0) return e;
      await new Promise<void>((r) => this.clock.setTimer(Math.min(left, 10), r));
    }
  }

  /** Whether lookups of `agent` answer a previous location now. */
  stale(agent: AgentId): boolean {
    return this.seen(agent, undefined) !== undefined;
  }

  /** What a lookup sees: the oldest entry still hidden stands in for the newer ones. */
  private seen(agent: AgentId, cur: LocationEntry | undefined): LocationEntry | undefined {
    const list = this.hidden.get(agent);
    if (!list) return cur;
    const now = this.clock.now();
    while (list.length > 0 && list[0]!.visibleAt <= now) list.shift();
    if (list.length === 0) {
      this.hidden.delete(agent);
      return cur;
    }
    return list[0]!.entry;
  }
}
