/**
 * Retrying a CLS the peer has not acknowledged. A close is the last word the peer hears of a
 * connection: given up after a few tries, the closing end ended CLOSED while the peer was never
 * told (found by the simulator: a CLS sent to the address a moving peer had just left was refused
 * PEER_MOVING, and the peer then resumed for nothing until its reconnect limit; lost under control
 * loss while the peer waited for the closer to resume it, the peer stayed SUSPENDED for good).
 *
 * So a CLS is retried as a resume is: with backoff, following the peer through the location
 * service when it is said to be elsewhere (PEER_MOVING, UNKNOWN_AGENT) or is silent, until the
 * reconnect limit counted from the close. UNKNOWN_CONNECTION from where the location service says
 * the peer is means the peer holds no such connection any more (it closed, or failed): the close
 * is then done. Pure: the endpoint passes `now` and the failure it saw, and carries out what
 * comes back.
 */
import { limit, type FerryError } from '../../util/index.js';
import { Recovery } from './recovery.js';

/** Answers to a CLS after which it is sent again (after a lookup where the answer says so). */
const RETRY_CODES: ReadonlySet<string> = new Set([
  'FERRY_ERR_CONTROL_TIMEOUT',
  'FERRY_ERR_PEER_MOVING',
  'FERRY_ERR_UNKNOWN_AGENT',
  'FERRY_ERR_UNKNOWN_CONNECTION',
  // A reply that does not verify (forged, or mangled): as if unanswered.
  'FERRY_ERR_BAD_MAC',
  'FERRY_ERR_MALFORMED_DATAGRAM',
]);

/** What to do after a CLS failed: send it again after `delayMs` (first asking the location service, waiting up to `lookupWaitMs`), or end CLOSED. */
export type CloseDecision =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly lookup: boolean; readonly lookupWaitMs: number }
  | { readonly kind: 'closed'; readonly why: string };

/** The retries of one close. */
export class CloseRetry {
  private readonly recovery: Recovery;
  /** The last answer was UNKNOWN_CONNECTION: done, unless the lookup finds the peer elsewhere. */
  private unknown = false;

  constructor(limits: { reconnectLimitMs: number; retryMs?: number; maxRetryMs?: number; peerMoveWaitMs?: number }) {
    this.recovery = new Recovery({ retryMs: limit('RESUME_RETRY_MS'), ...limits });
  }

  /** Our CLS failed with `err` at `now`: when to try again, or whether the close is over. */
  failed(err: FerryError, now: number): CloseDecision {
    if (!RETRY_CODES.has(err.code)) return { kind: 'closed', why: err.code };
    this.unknown = err.code === 'FERRY_ERR_UNKNOWN_CONNECTION';
    this.recovery.resumeFailed(err);
    const d = this.recovery.next(now);
    if (d.kind === 'give_up') return { kind: 'closed', why: `no CLS_ACK within ${Math.round(d.brokenMs)} ms` };
    // An unknown connection is looked up at once: the peer moved long ago (its old host forgot
    // it) or closed; a peer said to be moving is waited for until it lands (bounded).
    return { kind: 'retry', delayMs: d.delayMs, lookup: d.lookup, lookupWaitMs: this.unknown ? 0 : this.recovery.lookupWait(now) };
  }

  /**
   * The lookup failed (the location service unreachable): it said nothing, so an UNKNOWN_CONNECTION
   * before it proves nothing either; the CLS goes again where it went.
   */
  lookupFailed(): void {
    this.recovery.located(false);
  }

  /** The lookup answered: `moved` when it named another location. Returns whether to send the CLS again. */
  located(moved: boolean): boolean {
    this.recovery.located(moved);
    return moved || !this.unknown;
  }
}
