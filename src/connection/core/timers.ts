/**
 * The timer table of one connection: every deadline it waits on, by name (and by socket slot for
 * the deadlines one socket owns), in one place. The adapter holds ONE clock timer, set from
 * {@link TimerTable.nextDeadline}, and when it fires hands each {@link TimerTable.nextExpired} back
 * to the core as an input. A deadline that was cancelled or replaced never comes back: there is
 * no late callback to ignore (the smell of one clock timer per concern, each with a "round").
 *
 * Times are the caller's monotonic milliseconds (`now`); the table never reads a clock.
 * In the manner of quinn-proto's `connection/timer.rs` (`TimerTable`).
 */

/** The deadlines of a connection. */
export type TimerName =
  /** The open must complete (CONNECT_ACK, or the client's confirmation) by then. */
  | 'handshake'
  /** A resume left SUSPENDED must have its new data socket proven by then. */
  | 'resume_deadline'
  /** The next automatic resume attempt (backoff). */
  | 'resume_retry'
  /** The next try of a CLS the peer has not acknowledged (backoff). */
  | 'close_retry'
  /** A drained socket kept for a resume on it is closed then (slot: the socket). */
  | 'kept_socket'
  /** Our in-band RESUME on the kept socket falls back to a RES datagram then (slot: the socket). */
  | 'resume_offer'
  /** A drain, or an in-band SUSPEND, ends then without the peer's DRAIN (slot: the socket). */
  | 'drain'
  /** A dialed data socket's HELLO_ACK must have arrived by then (slot: the socket). */
  | 'hello'
  /** A delayed ACK (ACK_DELAY_MS): one ACK for the small DATA that arrived meanwhile. */
  | 'ack';

/** A deadline that passed: its name and the socket slot it belongs to (0: the connection's own). */
export interface Expiry<N extends string = TimerName> {
  readonly name: N;
  readonly slot: number;
  /** When it was due (never later than the `now` it expired at). */
  readonly at: number;
}

/** Named deadlines, each optionally per socket slot. Generic over the names for reuse and tests. */
export class TimerTable<N extends string = TimerName> {
  private readonly due = new Map<string, { name: N; slot: number; at: number; seq: number }>();
  private seq = 0;

  private static key(name: string, slot: number): string {
    return `${name}/${slot}`;
  }

  /** Set (or move) deadline `name` of `slot` to `at`. */
  set(name: N, at: number, slot = 0): void {
    this.due.set(TimerTable.key(name, slot), { name, slot, at, seq: this.seq++ });
  }

  /** Cancel deadline `name` of `slot`; returns whether it was set. */
  cancel(name: N, slot = 0): boolean {
    return this.due.delete(TimerTable.key(name, slot));
  }

  /** Cancel every deadline of `slot` (the socket is gone). */
  cancelSlot(slot: number): void {
    for (const [k, t] of this.due) if (t.slot === slot) this.due.delete(k);
  }

  /** Cancel everything (the connection closed). */
  clear(): void {
    this.due.clear();
  }

  /** When deadline `name` of `slot` is due, if set. */
  get(name: N, slot = 0): number | undefined {
    return this.due.get(TimerTable.key(name, slot))?.at;
  }

  /** Whether deadline `name` of `slot` is set. */
  has(name: N, slot = 0): boolean {
    return this.due.has(TimerTable.key(name, slot));
  }

  /** Number of deadlines set. */
  get size(): number {
    return this.due.size;
  }

  /** The earliest deadline, or undefined when none is set: the adapter's one timer. */
  nextDeadline(): number | undefined {
    let min: number | undefined;
    for (const t of this.due.values()) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /**
   * Remove and return the earliest deadline due at `now` (ties: the one set first), or undefined.
   * One at a time: handling an expiry may cancel or set others, which the next call then sees.
   */
  nextExpired(now: number): Expiry<N> | undefined {
    let best: { k: string; name: N; slot: number; at: number; seq: number } | undefined;
    for (const [k, t] of this.due) {
      if (t.at > now) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = { k, ...t };
    }
    if (!best) return undefined;
    this.due.delete(best.k);
    return { name: best.name, slot: best.slot, at: best.at };
  }

  /** Remove and return every deadline due at `now`, earliest first (ties: the one set first). */
  expired(now: number): Expiry<N>[] {
    const out: Expiry<N>[] = [];
    for (let e = this.nextExpired(now); e; e = this.nextExpired(now)) out.push(e);
    return out;
  }
}
