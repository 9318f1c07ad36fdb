/**
 * Injected time. Core code never calls `Date.now()` or `setTimeout` directly, so protocol logic
 * can run under a {@link ManualClock} in tests: fast, deterministic, no sleeping.
 */

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

/** A clock that moves only when told: for sans-I/O tests of retransmission and timeouts. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = this.seq++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { cancel: () => void this.timers.delete(id) };
  }

  /** Advance time by `ms`, firing due timers in deadline order (ties in creation order). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
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
    let at: number | undefined;
    for (const e of this.timers.values()) if (at === undefined || e.at < at) at = e.at;
    return at;
  }

  /**
   * Fire only the earliest pending timer (ties in creation order), moving time to its deadline:
   * a simulator runs the promise callbacks it caused before the next one. False when none is pending.
   */
  fireNext(): boolean {
    let next: [number, { at: number; fn: () => void }] | undefined;
    for (const e of this.timers) if (!next || e[1].at < next[1].at) next = e;
    if (!next) return false;
    this.timers.delete(next[0]);
    this.t = Math.max(this.t, next[1].at);
    next[1].fn();
    return true;
  }

  /** Number of pending timers (for tests that check nothing leaks). */
  get pending(): number {
    return this.timers.size;
  }
}
