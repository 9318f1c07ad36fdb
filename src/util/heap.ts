/**
 * A binary min-heap whose items know their own position, so any item can be removed in
 * O(log n) without a scan and without stale copies left behind (unlike lazy deletion, whose
 * heap grows with every renewal until the stale copies surface).
 */

/** An item of an {@link IndexedHeap}: ordered by `at`; `heapIndex` belongs to the heap. */
export interface HeapItem {
  /** The ordering key (a deadline, ms). Must not change while the item is in a heap. */
  readonly at: number;
  /** The item's slot, maintained by the heap; -1 when it is in none. */
  heapIndex: number;
}

/** A min-heap on `at` with O(log n) push, pop and remove of any item. */
export class IndexedHeap<T extends HeapItem> {
  private readonly a: T[] = [];

  /**
   * @param before the order: whether `x` comes out before `y` (default: smaller `at`). A clock
   *   that must fire equal deadlines in creation order passes a tie-break here.
   */
  constructor(private readonly before: (x: T, y: T) => boolean = (x, y) => x.at < y.at) {}

  /** Items held. */
  get size(): number {
    return this.a.length;
  }

  /** The item with the smallest `at`, or undefined when empty. */
  peek(): T | undefined {
    return this.a[0];
  }

  /** Add `item` (which must not be in a heap already). */
  push(item: T): void {
    item.heapIndex = this.a.length;
    this.a.push(item);
    this.up(item.heapIndex);
  }

  /** Remove and return the item with the smallest `at`. */
  pop(): T | undefined {
    const top = this.a[0];
    if (top) this.remove(top);
    return top;
  }

  /** Remove `item`; false when it is not in this heap. */
  remove(item: T): boolean {
    const i = item.heapIndex;
    if (i < 0 || this.a[i] !== item) return false;
    const last = this.a.pop() as T;
    item.heapIndex = -1;
    if (last !== item) {
      this.a[i] = last;
      last.heapIndex = i;
      this.down(i);
      this.up(last.heapIndex);
    }
    return true;
  }

  private up(i: number): void {
    const a = this.a;
    const item = a[i] as T;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as T;
      if (!this.before(item, parent)) break;
      a[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    a[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const a = this.a;
    const item = a[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && this.before(a[r] as T, a[l] as T) ? r : l;
      const child = a[c] as T;
      if (!this.before(child, item)) break;
      a[i] = child;
      child.heapIndex = i;
      i = c;
    }
    a[i] = item;
    item.heapIndex = i;
  }
}
