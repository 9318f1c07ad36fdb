/**
 * The resume intent of one connection end, sans I/O: what the application and the host want of
 * the connection, and what that makes of our SUS, RES and CLS. Whether the connection resumes by
 * itself (`autoResume`, which a move carries in the checkpoint), a move's preparation and which
 * wish wins when it lands (the application's last suspend() or resume() during the preparation,
 * else the state it left in), the reason our SUS carries and our CLS's (an abort), whether our next
 * SUSPEND or RESUME goes in-band on the live or kept socket or as a datagram, whether a resume
 * attempt is scheduled or given up, what an application's suspend(), resume() and close() come to
 * in each state, and what the peer's accepted SUS, RES or CLS changes of all this.
 *
 * The adapter keeps the promises: it asks {@link ResumeIntent.suspend} or
 * {@link ResumeIntent.resumeStep} what a call comes to, fires the event, and waits (its `until()`)
 * for the condition given here ({@link ResumeIntent.resumeWaitOver}, {@link SuspendWatch}).
 *
 * Also the suspend and resume metrics' start times (when the SUS or the resume began), so the
 * adapter's `stats` get the durations from here.
 */
import { FerryError, limit } from '../../util/index.js';
import { MessageType } from '../../wire/index.js';
import { rejectionFor, type State } from '../state-machine.js';
import type { ConnectionCore } from './connection-core.js';
import type { IncomingContext, IncomingDecision } from './control-incoming.js';
import type { CancelCommand, LogLine, LookupCommand } from './control-requests.js';
import type { RecoveryDecision } from './recovery.js';

/** Our SUS's reason: 1 when suspending to move (the peer then resumes us through the location service). */
const SUS_REASON_MOVE = 1;
/** Our CLS's reason 1: the connection was destroyed or failed (the peer reports PEER_ABORTED). */
const CLS_REASON_ABORT = 1;

/** What an application's (or a move's) suspend() comes to now. */
export type SuspendStep =
  /** Fire `suspend` (the state is live or resuming). */
  | { readonly kind: 'suspend' }
  /** A suspend is under way or done (SUS_SENT, SUS_ACKED, SUSPENDED): wait for it. */
  | { readonly kind: 'join' }
  /** The state takes no suspend: reject with this. */
  | { readonly kind: 'refuse'; readonly error: FerryError };

/**
 * One turn of an application's resume() (the adapter loops: after each wait, it asks again):
 * - `done`: ESTABLISHED, resolve;
 * - `refuse`: reject with `error` (superseded by a later suspend(), or a state that takes no resume);
 * - `wait_move`: a move is being prepared: the wish travels in the checkpoint; wait until the
 *   move ends (landed elsewhere: the adapter rejects SOCKET_MOVED; cancelled: ask again);
 * - `wait_suspend`: a suspend is under way: wait for it to finish, then ask again;
 * - `resume`: fire `resume`, then wait as in `wait_resume`;
 * - `wait_resume`: a resume is under way: wait until ESTABLISHED (or a move overtakes it).
 */
export type ResumeStep =
  | { readonly kind: 'done' }
  | { readonly kind: 'refuse'; readonly error: FerryError }
  | { readonly kind: 'wait_move' }
  | { readonly kind: 'wait_suspend' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'wait_resume' };

/** What `schedule_resume` comes to: nothing (no automatic resume wanted, or moving), a retry set in the timer table, or give up (the adapter closes). */
export type ScheduleOutcome = { readonly kind: 'none' } | { readonly kind: 'scheduled' } | Extract<RecoveryDecision, { kind: 'give_up' }>;

/** An accepted request of the peer (the `accept` of {@link IncomingDecision}). */
export type AcceptedIncoming = Extract<IncomingDecision, { kind: 'accept' }>;

const suspending = (s: State): boolean => s === 'SUS_SENT' || s === 'SUS_ACKED' || s === 'SUSPENDED';
const resuming = (s: State): boolean => s === 'RES_SENT' || s === 'RES_ACKED';
const closing = (s: State): boolean => s === 'CLOSE_SENT' || s === 'CLOSE_ACKED';

/**
 * When a suspend() is done, judged between transitions: once SUSPENDED with the drain finished,
 * or once the connection has been suspended (SUSPENDED, or SUS_ACKED: the peer's suspend, which
 * ours joined) and the peer already resumed it (either end may resume: the suspend did happen).
 * Waiting only for the first would hang when a peer's RES arrives while a drain is still running,
 * ours or the peer's: from SUS_ACKED that RES leads to RES_ACKED without ever passing SUSPENDED.
 */
export class SuspendWatch {
  private reached = false;

  /** The state changed (or is being judged): remember whether it reached a suspended state. */
  observe(state: State): void {
    if (state === 'SUSPENDED' || state === 'SUS_ACKED') this.reached = true;
  }

  /** Whether the suspend is done in `state` with `draining` sockets still draining. */
  done(state: State, draining: number): boolean {
    this.observe(state);
    if (state === 'SUSPENDED' && draining === 0) return true;
    return this.reached && !suspending(state);
  }
}

/** The resume intent of one connection end (the core's `intent`). */
export class ResumeIntent {
  /** Resume by ourselves after a loss or when a move lands; carried by the checkpoint. */
  autoResume = false;
  /** The host is preparing a move of this end: it suspends, answers RES with PEER_MOVING, starts no resume. */
  private preparing = false;
  /** The application's last suspend or resume while a move was being prepared (it wins at landing). */
  private moveWish: 'resume' | 'suspend' | undefined;
  /** The reason our SUS carries: 1 for a move's suspend (or a user suspend that joined one). */
  private suspendReason = 0;
  /** destroy() was called: our CLS carries reason 1 (abort) and the peer reports PEER_ABORTED. */
  private aborting = false;
  /** The error the connection ends (or ended) with, if any. */
  closedError: FerryError | undefined;
  /** Application resume() calls not yet settled: a peer's SUS that crosses them does not cancel them. */
  private resumeCalls = 0;
  /** Application suspend() calls so far: a resume() pending across one is superseded by it. */
  private userSuspends = 0;
  /** When the suspend being measured began (0: none), for the suspend metric. */
  private suspendStarted = 0;
  /** When the resume being measured began (0: none), for the resume metric. */
  private resumeStarted = 0;

  constructor(private readonly core: ConnectionCore) {}

  /** Whether the host is preparing a move of this end. */
  get moving(): boolean {
    return this.preparing;
  }

  /** The reason our CLS carries: 1 when the connection is destroyed or failed. */
  get clsReason(): number {
    return this.aborting || this.closedError ? CLS_REASON_ABORT : 0;
  }

  /** What the peer's requests are decided with (core/control-incoming.ts). */
  incomingContext(): IncomingContext {
    return { moving: this.preparing, resumePending: this.resumeCalls > 0 };
  }

  // ---------------------------------------------------------------- the application's calls

  /**
   * suspend(): `user` (the application's) or `move` (the host's, preparing a move). A user suspend
   * during a move's preparation joins the move's suspend (its reason stays "move") and is what the
   * destination honours: the connection lands suspended. A user suspend supersedes any resume()
   * pending (the later call wins) and ends the automatic resume. Any suspend stops the resume
   * retry (and forgets its lookup).
   */
  suspend(reason: 'user' | 'move', now: number): SuspendStep {
    // No automatic resume goes on across a suspend.
    this.core.control.stopResumeRetry();
    this.suspendReason = reason === 'move' || this.preparing ? SUS_REASON_MOVE : 0;
    if (reason === 'user') {
      this.userSuspends++;
      this.autoResume = false;
      if (this.preparing) this.moveWish = 'suspend';
    }
    const state = this.core.state;
    if (state === 'ESTABLISHED' || resuming(state)) {
      this.suspendStarted = now;
      return { kind: 'suspend' };
    }
    if (suspending(state)) return { kind: 'join' };
    return { kind: 'refuse', error: new FerryError(rejectionFor(state, 'suspend'), `cannot suspend in state ${state}`) };
  }

  /** A resume() begins: returns its token (what it is superseded against). */
  resumeCalled(): number {
    this.resumeCalls++;
    return this.userSuspends;
  }

  /** A resume() settled (either way). */
  resumeSettled(): void {
    this.resumeCalls--;
  }

  /** Whether a suspend() came after the resume() of token `call`. */
  superseded(call: number): boolean {
    return this.userSuspends !== call;
  }

  /**
   * The next turn of resume() `call`. While a move is being prepared the resume is not started
   * here (that would leave the connection live on a host its agent is leaving): the wish is
   * recorded and travels in the checkpoint. A resume from SUSPENDED counts the reconnect limit
   * from now.
   */
  resumeStep(call: number, now: number): ResumeStep {
    if (this.superseded(call)) return { kind: 'refuse', error: new FerryError('FERRY_ERR_SUPERSEDED', 'suspend() was called while this resume was pending') };
    const state = this.core.state;
    if (state === 'ESTABLISHED') return { kind: 'done' };
    if (this.preparing) {
      this.moveWish = 'resume';
      this.autoResume = true;
      return { kind: 'wait_move' };
    }
    this.autoResume = true;
    // Finish the suspend first; resuming is then an ordinary SUSPENDED -> RES_SENT (unless a
    // move began meanwhile: then the wish is held for the destination).
    if (state === 'SUS_SENT' || state === 'SUS_ACKED') return { kind: 'wait_suspend' };
    if (state === 'SUSPENDED') {
      this.resumeStarted = now;
      this.core.recovery.userResume();
      return { kind: 'resume' };
    }
    if (resuming(state)) return { kind: 'wait_resume' };
    return { kind: 'refuse', error: new FerryError(rejectionFor(state, 'resume'), `cannot resume in state ${state}`) };
  }

  /** Whether the wait after step `kind` of resume() `call` is over (then the adapter asks {@link resumeStep} again). */
  resumeWaitOver(kind: 'wait_move' | 'wait_suspend' | 'wait_resume', call: number): boolean {
    const state = this.core.state;
    if (this.superseded(call)) return true;
    if (kind === 'wait_move') return !this.preparing || state === 'ESTABLISHED';
    // A move that overtakes the suspend or the resume (RES_SENT -> SUS_SENT) hands it to `wait_move`.
    if (kind === 'wait_suspend') return (state !== 'SUS_SENT' && state !== 'SUS_ACKED') || this.preparing;
    return state === 'ESTABLISHED' || this.preparing;
  }

  /** close(): `done` when CLOSED, `wait` for a close that has begun, else `close` (fire it, then wait). */
  close(): 'done' | 'wait' | 'close' {
    const state = this.core.state;
    return state === 'CLOSED' ? 'done' : closing(state) ? 'wait' : 'close';
  }

  /** destroy(`err`): an abortive close (our CLS says abort). Returns whether to fire `close`. */
  destroy(err: FerryError | undefined): boolean {
    if (this.core.state === 'CLOSED') return false;
    this.closedError ??= err;
    this.aborting = true;
    return !closing(this.core.state);
  }

  /** The host is stopping: a close still retrying its CLS ends now with `err`. Returns whether to end it (fire `timeout`). */
  stop(err: FerryError): boolean {
    if (this.core.state !== 'CLOSE_SENT') return false;
    this.closedError ??= err;
    return true;
  }

  /**
   * Whether a wait of the application's (a suspend(), a resume(), a move's preparation) fails now,
   * and with what: once CLOSED, or once a close has begun unless `toClosed` (close() waits for
   * CLOSED; a close may take up to the reconnect limit to reach its peer, and nothing else waits
   * for it). With the error the connection ends with, else FERRY_ERR_CONNECTION_CLOSED.
   */
  waitFails(toClosed: boolean): FerryError | undefined {
    const state = this.core.state;
    if (state !== 'CLOSED' && (toClosed || !closing(state))) return undefined;
    return this.closedError ?? new FerryError('FERRY_ERR_CONNECTION_CLOSED');
  }

  // ---------------------------------------------------------------- moves

  /**
   * The host prepares a move of this end: it suspends (the adapter waits for an open to finish
   * first), answers RES with PEER_MOVING meanwhile and starts no resume (its resume retry
   * stops). Returns whether the
   * connection was live or resuming (it then lands live, unless the application decides otherwise
   * meanwhile): hand it to {@link movePrepared}.
   */
  prepareMove(): boolean {
    this.preparing = true;
    this.moveWish = undefined;
    // The destination resumes: no retry here.
    this.core.control.stopResumeRetry();
    const state = this.core.state;
    return this.autoResume || state === 'ESTABLISHED' || resuming(state);
  }

  /** Whether the move's preparation must first wait for the open to finish. */
  get moveWaitsForOpen(): boolean {
    const state = this.core.state;
    return state === 'CONNECT_SENT' || state === 'CONNECT_ACKED';
  }

  /** Whether the move's preparation must suspend (or wait for a drain still running, `draining` sockets). */
  moveSuspends(draining: number): boolean {
    return this.core.state !== 'SUSPENDED' || draining > 0;
  }

  /**
   * Suspended for the move: the application's own suspend or resume during the preparation
   * decides; otherwise the connection lands as it was (`resumeWanted`, from {@link prepareMove}).
   */
  movePrepared(resumeWanted: boolean): void {
    if (this.moveWish === undefined) this.autoResume = resumeWanted;
  }

  /** The move is abandoned (rollback): returns whether to resume here now. */
  cancelMove(): boolean {
    this.preparing = false;
    this.moveWish = undefined;
    return this.autoResume && this.core.state === 'SUSPENDED';
  }

  /** A moved end was attached and indexed: returns whether to resume it now (it left live). */
  start(now: number): boolean {
    if (!this.autoResume || this.core.state !== 'SUSPENDED') return false;
    this.resumeStarted = now;
    return true;
  }

  // ---------------------------------------------------------------- what goes out

  /**
   * `send_sus`: whether our SUSPEND goes in-band, on the live data socket (`liveOpen`: there is
   * one and it is open): only a user suspend, not a move's (the peer must learn that we move, and
   * a move's suspend must not wait on a socket), and only while SUS_SENT.
   */
  suspendInBand(liveOpen: boolean): boolean {
    return this.suspendReason === 0 && !this.preparing && liveOpen && this.core.state === 'SUS_SENT';
  }

  /** The reason our SUS datagram carries. */
  get susReason(): number {
    return this.suspendReason;
  }

  /**
   * `send_res`: whether our RESUME goes in-band on the kept socket (`keptOpen`: there is one and it
   * is open): only with no proof due either way (the socket is already proven, an in-band RESUME
   * carries none) and no move being prepared.
   */
  resumeInBand(keptOpen: boolean): boolean {
    const path = this.core.path;
    return keptOpen && !path.mustProve && !path.wantsProof(this.core.keys !== undefined) && !this.preparing;
  }

  /**
   * Our RESUME goes out in-band on the kept socket, slot `slot` ({@link resumeInBand}): a RES of an
   * earlier attempt, if any is still out, is not this attempt's (its fresh counter reaching the
   * peer later would only tear down what this attempt builds): returned to cancel. No resume HELLO
   * waits for a proof, and the peer's answer is awaited until DRAIN_TIMEOUT_MS (the slot's
   * `resume_offer` deadline; past it, the RES datagram).
   */
  resumeOffered(slot: number, now: number): CancelCommand | undefined {
    const cancel = this.core.control.cancelRes();
    this.core.path.stopAwaiting();
    this.core.setDeadline('resume_offer', now + limit('DRAIN_TIMEOUT_MS'), slot);
    return cancel;
  }

  /**
   * `schedule_resume`: the next automatic resume attempt (its `resume_retry` deadline set), or give
   * up (the connection closes with the error, kept here), or nothing: no automatic resume is wanted,
   * or a move is being prepared (the destination resumes).
   */
  scheduleResume(now: number): ScheduleOutcome {
    if (!this.autoResume || this.preparing) return { kind: 'none' };
    const d = this.core.control.scheduleResume(now);
    if (d.kind === 'give_up') {
      this.closedError = d.error;
      return d;
    }
    if (this.resumeStarted === 0) this.resumeStarted = now;
    return { kind: 'scheduled' };
  }

  /**
   * `resume_retry`: undefined (nothing: no longer SUSPENDED, or moving), the lookup to make first,
   * or `resume`: fire it now.
   */
  resumeDue(now: number): LookupCommand | 'resume' | undefined {
    if (this.core.state !== 'SUSPENDED' || this.preparing) return undefined;
    return this.core.control.resumeDue(now) ?? 'resume';
  }

  /**
   * The proof our RES carries: `p`, this host's for our agent (undefined: it has none), if it fits
   * a RES; one past RESUME_PROOF_MAX_LINKS links would only be refused by the peer. With the line
   * to log when there is none to send.
   */
  fittingProof<P extends { readonly chain: readonly unknown[] }>(p: P | undefined): { readonly proof: P | undefined; readonly log?: LogLine } {
    if (p && p.chain.length > limit('RESUME_PROOF_MAX_LINKS')) return { proof: undefined, log: { level: 'warn', event: 'resume_proof_too_long', fields: { links: p.chain.length } } };
    if (!p) return { proof: undefined, log: { level: 'info', event: 'resume_no_proof', fields: { agent: this.core.localAgent } } };
    return { proof: p };
  }

  // ---------------------------------------------------------------- what happened

  /** The data socket of a live connection was lost (or its dial failed): it recovers by itself. */
  socketLost(): void {
    if (this.core.state === 'ESTABLISHED') this.autoResume = true;
  }

  /** The peer's SUSPEND arrived in-band on the live socket: the suspend metric starts. */
  peerSuspends(now: number): void {
    this.suspendStarted = now;
  }

  /** The peer resumes on the kept socket: the resume metric starts, if not already. */
  peerResumes(now: number): void {
    if (this.resumeStarted === 0) this.resumeStarted = now;
  }

  /** A suspend may be complete: its duration (ms) when SUSPENDED and one was being measured, once. */
  suspendMeasured(now: number): number | undefined {
    if (this.core.state !== 'SUSPENDED' || this.suspendStarted <= 0) return undefined;
    const ms = now - this.suspendStarted;
    this.suspendStarted = 0;
    return ms;
  }

  /** ESTABLISHED: the resume's duration (ms) if one was being measured, once. */
  resumeMeasured(now: number): number | undefined {
    if (this.resumeStarted <= 0) return undefined;
    const ms = now - this.resumeStarted;
    this.resumeStarted = 0;
    return ms;
  }

  /**
   * The peer's request was accepted (`d`), before its event fires: the metrics, the peer's abort,
   * and the end of an automatic resume of ours that the peer overtook (the adapter also stops the
   * resume retry when `d.stopAutoResume`).
   */
  incomingAccepted(d: AcceptedIncoming, now: number): void {
    if (d.type === MessageType.RES && this.resumeStarted === 0) this.resumeStarted = now;
    if (d.peerAborted) this.closedError ??= new FerryError('FERRY_ERR_PEER_ABORTED', 'the peer destroyed the connection');
    if (d.type === MessageType.SUS && this.core.state === 'ESTABLISHED') this.suspendStarted = now;
    if (d.stopAutoResume) this.autoResume = false;
  }

  /**
   * After the accepted request's event fired: whether our resume goes on now (the adapter then
   * runs `schedule_resume`). The peer's SUS crossed an application resume() and left us
   * SUSPENDED: the suspend happened, our resume follows it; a peer that suspended to move is found
   * again through the location service (it registers when it lands).
   */
  resumeAfterIncoming(d: AcceptedIncoming): boolean {
    if (!d.resumeAfter || this.core.state !== 'SUSPENDED') return false;
    if (d.peerMoving) this.core.recovery.peerMoving();
    this.autoResume = true;
    return true;
  }
}
