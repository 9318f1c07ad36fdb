/**
 * The deciding part of one connection end, sans I/O: its state, the events waiting to be applied,
 * and its deadlines. In the manner of quinn-proto's `Connection`: inputs go in with `now`
 * ({@link ConnectionCore.handle}, {@link ConnectionCore.handleTimeout}), and what to do comes out
 * of {@link ConnectionCore.poll} as commands, in order, for the adapter (`endpoint.ts`) to carry
 * out. It owns no socket, timer or promise; the adapter holds one clock timer set from
 * {@link ConnectionCore.nextDeadline}.
 *
 * Events are applied to completion, one at a time: the commands of one event (its transition,
 * then its actions, in the table's order) all come out of `poll()` before the next queued event is
 * applied. An event handed in while the adapter carries out a command (an action that fires
 * another event) waits its turn, so an action never sees the state change under it. An event the
 * state no longer accepts when its turn comes (it went stale behind an earlier one) comes out as a
 * `stale` command and changes nothing.
 *
 * The transition table (`state-machine.ts`) stays the one source of the 12 states; this file
 * adds the rules that hang on a transition alone, such as the resume deadline.
 */
import { limit } from '../../util/index.js';
import { lookup, type Action, type Event, type State } from '../state-machine.js';
import { TimerTable, type Expiry, type TimerName } from './timers.js';

/** What the adapter must do, from {@link ConnectionCore.poll}. */
export type CoreCommand =
  /** The state changed (`from` ≠ `to`): tell listeners, drop what the new state does not keep. */
  | { readonly kind: 'transition'; readonly event: Event; readonly from: State; readonly to: State }
  /** Carry out one action of the row just applied. */
  | { readonly kind: 'act'; readonly action: Action }
  /** A queued event the state no longer accepted: nothing changed (for the debug log). */
  | { readonly kind: 'stale'; readonly event: Event; readonly state: State };

/** Whether a state is part of a resume (the new data socket is being set up). */
const resuming = (s: State): boolean => s === 'RES_SENT' || s === 'RES_ACKED';

/** The state, event queue and deadlines of one connection end. */
export class ConnectionCore {
  private current: State;
  private readonly timers = new TimerTable();
  private readonly events: Event[] = [];
  private readonly out: CoreCommand[] = [];

  constructor(state: State) {
    this.current = state;
  }

  /** The state (as of the last event applied). */
  get state(): State {
    return this.current;
  }

  /** Whether the state accepts `event` now (an event that would not is stale if handed in). */
  accepts(event: Event): boolean {
    return lookup(this.current, event) !== undefined;
  }

  /** Queue `event`; it is applied when {@link poll} has given out every earlier command. */
  handle(event: Event): void {
    this.events.push(event);
  }

  /**
   * The next command, or undefined when there is nothing left to do. When the commands of the
   * last event are all out, the next queued event is applied at `now`: its row's transition, then
   * its actions.
   */
  poll(now: number): CoreCommand | undefined {
    while (this.out.length === 0) {
      const event = this.events.shift();
      if (event === undefined) return undefined;
      this.apply(event, now);
    }
    return this.out.shift();
  }

  private apply(event: Event, now: number): void {
    const row = lookup(this.current, event);
    if (!row) {
      this.out.push({ kind: 'stale', event, state: this.current });
      return;
    }
    const from = this.current;
    this.current = row.to;
    if (from !== row.to) {
      // A resume must finish (its data socket proven) within HANDSHAKE_TIMEOUT_MS of leaving
      // SUSPENDED; otherwise the adapter's `timeout` returns to SUSPENDED and the resumer retries.
      // Without this, an end waiting for the peer's dial would wait forever if that dial failed.
      if (resuming(row.to) && !resuming(from)) this.timers.set('resume_deadline', now + limit('HANDSHAKE_TIMEOUT_MS'));
      else if (!resuming(row.to)) this.timers.cancel('resume_deadline');
      this.out.push({ kind: 'transition', event, from, to: row.to });
    }
    for (const action of row.actions) this.out.push({ kind: 'act', action });
  }

  /**
   * The clock reached `now`: the earliest deadline due, removed, for the adapter to act on (one
   * at a time: acting on it may set or cancel others), or undefined when none is due.
   */
  handleTimeout(now: number): Expiry | undefined {
    return this.timers.nextExpired(now);
  }

  /** When the adapter's one clock timer should next fire, if any deadline is set. */
  nextDeadline(): number | undefined {
    return this.timers.nextDeadline();
  }

  /** Set (or move) deadline `name` of socket slot `slot` to `at`. */
  setDeadline(name: TimerName, at: number, slot = 0): void {
    this.timers.set(name, at, slot);
  }

  /** Cancel deadline `name` of `slot`; returns whether it was set. */
  cancelDeadline(name: TimerName, slot = 0): boolean {
    return this.timers.cancel(name, slot);
  }

  /** Whether deadline `name` of `slot` is set. */
  hasDeadline(name: TimerName, slot = 0): boolean {
    return this.timers.has(name, slot);
  }

  /** Cancel every deadline (the connection closed, or was checkpointed for a move). */
  clearDeadlines(): void {
    this.timers.clear();
  }
}
