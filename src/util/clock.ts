/**
 * Injected time. Core code never calls `Date.now()` or `setTimeout` directly, so protocol logic
 * can run under a {@link ManualClock} in tests: fast, deterministic, no sleeping.
 */
import { IndexedHeap, type HeapItem } from './heap.js';

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/** Monotonic milliseconds and one-shot timers. */
export interface Clock {
  /** Milliseconds on a monotonic scale (not wall time). */
  now(): number;
  /** Run `fn` once after `ms` milliseconds. Timers never keep the process alive. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** One pending timer of a {@link ManualClock}. */
interface ManualTimer extends HeapItem {
  /** Creation order: breaks ties between equal deadlines. */
  readonly id: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told: for sans-I/O tests of retransmission and timeouts.
 * Pending timers sit in a heap on (deadline, creation order): a simulator with tens of thousands
 * of pending timers (one per segment in flight) would otherwise scan all of them at every step.
 */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new IndexedHeap<ManualTimer>((x, y) => x.at < y.at || (x.at === y.at && x.id < y.id));

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer: ManualTimer = { at: this.t + Math.max(0, ms), id: this.seq++, fn, heapIndex: -1 };
    this.timers.push(timer);
    return { cancel: () => void this.timers.remove(timer) };
  }

  /** Advance time by `ms`, firing due timers in deadline order (ties in creation order). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let next = this.timers.peek(); next && next.at <= end; next = this.timers.peek()) this.fire(next);
    this.t = end;
  }

  /**
   * Jump forward by `ms` without firing anything: the process was paused (a stopped VM, a
   * laptop's sleep) and time moved on. The timers that came due meanwhile fire late, in deadline
   * order, at the next {@link fireNext} or {@link advance}; time never goes back for them.
   */
  jump(ms: number): void {
    this.t += Math.max(0, ms);
  }

  /** When the earliest pending timer is due, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    return this.timers.peek()?.at;
  }

  /**
   * Fire only the earliest pending timer (ties in creation order), moving time to its deadline:
   * a simulator runs the promise callbacks it caused before the next one. False when none is pending.
   */
  fireNext(): boolean {
    const next = this.timers.peek();
    if (!next) return false;
    this.fire(next);
    return true;
  }

  /** Number of pending timers (for tests that check nothing leaks). */
  get pending(): number {
    return this.timers.size;
  }

  private fire(timer: ManualTimer): void {
    this.timers.remove(timer);
    this.t = Math.max(this.t, timer.at);
    timer.fn();
  }
}
