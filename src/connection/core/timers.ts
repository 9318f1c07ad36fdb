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

/** One deadline in the table. */
interface Entry<N extends string> {
  readonly name: N;
  readonly slot: number;
  at: number;
  /** Order of setting: ties between deadlines due at the same time go to the one set first. */
  seq: number;
}

/**
 * Named deadlines, each optionally per socket slot. Generic over the names for reuse and tests.
 * A connection has a handful at most, so they sit in a short list (no keys to build), and the
 * earliest is remembered until the table changes: the adapter asks for it after every drive.
 */
export class TimerTable<N extends string = TimerName> {
  private readonly due: Entry<N>[] = [];
  private seq = 0;
  /** The earliest deadline, computed when first asked after a change (null: not known). */
  private earliest: number | undefined | null = undefined;
  /** Counts every change of the table: an adapter that saw the same count has nothing to re-arm. */
  private changes = 0;

  private find(name: string, slot: number): number {
    const due = this.due;
    for (let i = 0; i < due.length; i++) if (due[i]!.name === name && due[i]!.slot === slot) return i;
    return -1;
  }

  private changed(): void {
    this.earliest = null;
    this.changes++;
  }

  /** Set (or move) deadline `name` of `slot` to `at`. */
  set(name: N, at: number, slot = 0): void {
    const i = this.find(name, slot);
    if (i < 0) this.due.push({ name, slot, at, seq: this.seq++ });
    else {
      this.due[i]!.at = at;
      this.due[i]!.seq = this.seq++;
    }
    this.changed();
  }

  /** Cancel deadline `name` of `slot`; returns whether it was set. */
  cancel(name: N, slot = 0): boolean {
    if (this.due.length === 0) return false;
    const i = this.find(name, slot);
    if (i < 0) return false;
    this.due.splice(i, 1);
    this.changed();
    return true;
  }

  /** Cancel every deadline of `slot` (the socket is gone). */
  cancelSlot(slot: number): void {
    const before = this.due.length;
    for (let i = before - 1; i >= 0; i--) if (this.due[i]!.slot === slot) this.due.splice(i, 1);
    if (this.due.length !== before) this.changed();
  }

  /** Cancel everything (the connection closed). */
  clear(): void {
    if (this.due.length === 0) return;
    this.due.length = 0;
    this.changed();
  }

  /** When deadline `name` of `slot` is due, if set. */
  get(name: N, slot = 0): number | undefined {
    const i = this.find(name, slot);
    return i < 0 ? undefined : this.due[i]!.at;
  }

  /** Whether deadline `name` of `slot` is set. */
  has(name: N, slot = 0): boolean {
    return this.find(name, slot) >= 0;
  }

  /** Number of deadlines set. */
  get size(): number {
    return this.due.length;
  }

  /** How many times the table changed so far: the same count means the same {@link nextDeadline}. */
  get version(): number {
    return this.changes;
  }

  /** The earliest deadline, or undefined when none is set: the adapter's one timer. */
  nextDeadline(): number | undefined {
    if (this.earliest !== null) return this.earliest;
    let min: number | undefined;
    for (const t of this.due) if (min === undefined || t.at < min) min = t.at;
    this.earliest = min;
    return min;
  }

  /**
   * Remove and return the earliest deadline due at `now` (ties: the one set first), or undefined.
   * One at a time: handling an expiry may cancel or set others, which the next call then sees.
   */
  nextExpired(now: number): Expiry<N> | undefined {
    let best = -1;
    const due = this.due;
    for (let i = 0; i < due.length; i++) {
      const t = due[i]!;
      if (t.at > now) continue;
      if (best < 0 || t.at < due[best]!.at || (t.at === due[best]!.at && t.seq < due[best]!.seq)) best = i;
    }
    if (best < 0) return undefined;
    const t = due[best]!;
    due.splice(best, 1);
    this.changed();
    return { name: t.name, slot: t.slot, at: t.at };
  }

  /** Remove and return every deadline due at `now`, earliest first (ties: the one set first). */
  expired(now: number): Expiry<N>[] {
    const out: Expiry<N>[] = [];
    for (let e = this.nextExpired(now); e; e = this.nextExpired(now)) out.push(e);
    return out;
  }
}
