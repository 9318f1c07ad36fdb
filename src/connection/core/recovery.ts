/**
 * Recovery decisions of one connection end: after a socket loss or a failed resume, when to try
 * again (exponential backoff, or at once after a location lookup), whether that lookup waits for
 * a peer in transit, how long one RES may still take, and when to give up, with which code.
 * Pure: the endpoint passes `now` and the failure it saw, and carries out what comes back (a
 * deadline in its timer table, a lookup, a close).
 *
 * The reconnect limit counts from the first failure of a broken stretch (or from the
 * application's own resume() after a suspend it chose), never from the last try: a connection
 * that keeps failing gives up after `reconnectLimitMs`, whatever the backoff did meanwhile. It
 * gives up with the refusal of the peer's location proof when that was the last answer heard (a
 * refused proof is an answer; silence is not), else with FERRY_ERR_PEER_UNREACHABLE.
 */
import { FerryError, limit, type ErrorCode } from '../../util/index.js';

/** Codes of a refused location proof: a connection that gives up after one fails with it. */
export const PROOF_REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'FERRY_ERR_RESUME_UNPROVEN',
  'FERRY_ERR_RESUME_HOST_MISMATCH',
  'FERRY_ERR_STALE_EPOCH',
  'FERRY_ERR_CHAIN_TRUNCATED',
  'FERRY_ERR_CHAIN_BROKEN',
  'FERRY_ERR_CHAIN_FORGED',
  'FERRY_ERR_CHAIN_EXPIRED',
  'FERRY_ERR_CHAIN_TOO_LONG',
  'FERRY_ERR_MALFORMED_CERTIFICATE',
  'FERRY_ERR_BAD_SIGNATURE',
  'FERRY_ERR_IDENTITY_MISMATCH',
]);

/** Answers to a RES that say the peer is not where we looked: ask the location service next. */
const LOOKUP_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['FERRY_ERR_PEER_MOVING', 'FERRY_ERR_UNKNOWN_CONNECTION', 'FERRY_ERR_CONTROL_TIMEOUT', 'FERRY_ERR_UNKNOWN_AGENT']);

/** The bounds recovery works within (defaults: LIMITS). */
export interface RecoveryLimits {
  /** Give up after this long broken. */
  readonly reconnectLimitMs: number;
  /** First pause between attempts; doubles per failure up to {@link maxRetryMs}. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
  /** Longest wait for a peer in transit to register its new location. */
  readonly peerMoveWaitMs: number;
}

/** What to do after a failure: try again after `delayMs` (first asking the location service when `lookup`), or give up. */
export type RecoveryDecision =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly lookup: boolean }
  | { readonly kind: 'give_up'; readonly error: FerryError; readonly brokenMs: number };

/** The resume backoff, the reconnect limit and the lookups of one connection end. */
export class Recovery {
  private readonly limits: RecoveryLimits;
  private brokenSince: number | undefined;
  private delay: number;
  private lookup = false;
  /** Whether that lookup waits for a newer epoch (a peer in transit) or only asks (a silent one). */
  private lookupWaits = true;
  private refusal: FerryError | undefined;

  constructor(limits: Partial<RecoveryLimits> & { reconnectLimitMs: number }) {
    this.limits = {
      retryMs: limit('RESUME_RETRY_MS'),
      maxRetryMs: limit('CONTROL_MAX_RTO_MS'),
      peerMoveWaitMs: limit('PEER_MOVE_WAIT_MS'),
      ...limits,
    };
    this.delay = this.limits.retryMs;
  }

  /** Since when the connection has been broken (undefined: it is not). */
  get broken(): number | undefined {
    return this.brokenSince;
  }

  /** Whether the next attempt first asks the location service. */
  get lookupNeeded(): boolean {
    return this.lookup;
  }

  /** The refusal of a location proof that giving up would fail with, if it was the last answer. */
  get proofRefusal(): FerryError | undefined {
    return this.refusal;
  }

  /** Resumed: a later failure starts a new broken stretch, with the first pause again. */
  established(): void {
    this.brokenSince = undefined;
    this.delay = this.limits.retryMs;
    this.lookup = false;
    this.lookupWaits = true;
    this.refusal = undefined;
  }

  /**
   * The application resumes now: the reconnect limit counts from here, not from a socket loss
   * before a suspend it chose (else a resume after a long suspend gave up at once).
   */
  userResume(): void {
    this.brokenSince = undefined;
    this.delay = this.limits.retryMs;
  }

  /** The connection is down and wants to resume (`schedule_resume`): when, or give up. */
  next(now: number): RecoveryDecision {
    this.brokenSince ??= now;
    const brokenMs = now - this.brokenSince;
    if (brokenMs > this.limits.reconnectLimitMs) {
      return { kind: 'give_up', brokenMs, error: this.refusal ?? new FerryError('FERRY_ERR_PEER_UNREACHABLE', `peer unreachable for ${Math.round(brokenMs)} ms`) };
    }
    // A peer in transit is waited for by the location watch (bounded), not by a blind pause;
    // other failures back off exponentially.
    if (this.lookup) return { kind: 'retry', delayMs: 0, lookup: true };
    const delayMs = this.delay;
    this.delay = Math.min(this.delay * 2, this.limits.maxRetryMs);
    return { kind: 'retry', delayMs, lookup: false };
  }

  /**
   * How long one RES may still take: while broken, no single RES may outlive the reconnect limit
   * (the backoff of a dead address would otherwise carry the give-up far past it). Undefined: the
   * request's own default.
   */
  requestTimeout(now: number): number | undefined {
    return this.brokenSince === undefined ? undefined : Math.max(1, this.limits.reconnectLimitMs - (now - this.brokenSince));
  }

  /** How long the lookup before the next attempt waits for a newer location (0: only ask). */
  lookupWait(now: number): number {
    if (!this.lookupWaits) return 0;
    const left = this.limits.reconnectLimitMs - (now - (this.brokenSince ?? now));
    return Math.max(0, Math.min(this.limits.peerMoveWaitMs, left));
  }

  /** The lookup answered: `moved` when it named a newer or other location (tries start over). */
  located(moved: boolean): void {
    if (moved) this.delay = this.limits.retryMs;
    this.lookup = false;
    this.lookupWaits = true;
  }

  /**
   * Our RES failed with `code` (`err` its error). A refused proof is kept to fail with at the
   * limit (the host may renew its delegation meanwhile); any other answer replaces it, silence
   * does not. An answer that says the peer is elsewhere, or silence, asks the location service
   * first; only a peer said to be moving is waited for.
   */
  resumeFailed(err: FerryError): void {
    const code = err.code;
    if (PROOF_REFUSAL_CODES.has(code)) this.refusal = err;
    else if (code !== 'FERRY_ERR_CONTROL_TIMEOUT') this.refusal = undefined;
    if (LOOKUP_CODES.has(code)) {
      this.lookup = true;
      // Silence says nothing of a move (lost datagrams, a dead host): take a newer location if
      // there is one, but do not wait up to the move wait for one that may never come.
      this.lookupWaits = code !== 'FERRY_ERR_CONTROL_TIMEOUT';
    }
  }

  /** The peer's answer came from a location that could not prove itself: fail with that, look it up. */
  proofRefused(err: FerryError): void {
    this.refusal = err;
    this.lookup = true;
  }

  /** The peer suspended to move: find it again through the location service, waiting for it to land. */
  peerMoving(): void {
    this.lookup = true;
    this.lookupWaits = true;
  }
}
