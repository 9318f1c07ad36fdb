/**
 * A table of slots that strangers can fill (sockets waiting for their first frame, opens waiting
 * for their confirmation), shared fairly among source addresses: a source holds at most
 * `perSource` slots, and when the whole table is full a newcomer takes the idlest slot of the
 * source that holds the most. So one source, however many sockets it opens, never holds more
 * than its share, and every other source still gets in. Pure bookkeeping: the caller ends what
 * {@link SourceSlots.admit} names as evicted.
 */

/** What {@link SourceSlots.admit} decided. */
export type SlotAdmission<T> = { admitted: true; evicted?: T } | { admitted: false };

/** Slots per source address, the idlest of a source first in line to be evicted. */
export class SourceSlots<T> {
  /** Per source: its items, least recently active first (Map insertion order). */
  private readonly bySource = new Map<string, Map<T, true>>();
  private count = 0;

  constructor(
    /** Slots in all. */
    readonly total: number,
    /** Slots one source may hold. */
    readonly perSource: number,
  ) {}

  /** Slots in use. */
  get size(): number {
    return this.count;
  }

  /** Slots `source` holds. */
  held(source: string): number {
    return this.bySource.get(source)?.size ?? 0;
  }

  /**
   * Take a slot for `item` from `source`. A source at its share gives up its own idlest slot; a
   * full table takes the idlest slot of the source holding the most (the newcomer's own, when
   * that is the largest). Refused only when the limits are 0. The evicted item, if any, is
   * already forgotten here; the caller ends it.
   */
  admit(source: string, item: T): SlotAdmission<T> {
    if (this.total <= 0 || this.perSource <= 0) return { admitted: false };
    let evicted: T | undefined;
    if (this.held(source) >= this.perSource) evicted = this.evictIdlest(source);
    else if (this.count >= this.total) evicted = this.evictIdlest(this.largest());
    let mine = this.bySource.get(source);
    if (!mine) this.bySource.set(source, (mine = new Map()));
    mine.set(item, true);
    this.count++;
    return evicted === undefined ? { admitted: true } : { admitted: true, evicted };
  }

  /** `item` showed activity: it becomes the last of its source to be evicted. */
  touch(source: string, item: T): void {
    const mine = this.bySource.get(source);
    if (!mine?.delete(item)) return;
    mine.set(item, true);
  }

  /** Give back the slot of `item` (idempotent). */
  release(source: string, item: T): boolean {
    const mine = this.bySource.get(source);
    if (!mine?.delete(item)) return false;
    this.count--;
    if (mine.size === 0) this.bySource.delete(source);
    return true;
  }

  private evictIdlest(source: string): T | undefined {
    const mine = this.bySource.get(source);
    const idlest = mine?.keys().next();
    if (!mine || !idlest || idlest.done) return undefined;
    this.release(source, idlest.value);
    return idlest.value;
  }

  /** The source holding the most slots. Linear in the sources present, at most `total`. */
  private largest(): string {
    let best = '';
    let most = -1;
    for (const [s, m] of this.bySource) {
      if (m.size > most) {
        best = s;
        most = m.size;
      }
    }
    return best;
  }
}
