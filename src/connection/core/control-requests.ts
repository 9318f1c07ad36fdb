/**
 * Our control requests (SUS, RES, CLS) and the location lookups between tries, sans I/O: what
 * each one carries (counter, reason, path challenge, proof wanted or carried, padding), which one
 * is outstanding, and what its answer comes to. The core owns it (`ConnectionCore.control`) and
 * queues its commands and outcomes in its `poll()`; the adapter carries out the commands (send this
 * request, cancel it, look this agent up) and hands each result back through the core's inputs
 * (`replied`, `requestFailed`, `located`, `lookupFailed`) with the id of the command it answers; an answer whose id is no longer the outstanding one changes nothing, so a late
 * callback of an earlier attempt cannot act (no "round" counters).
 *
 * What stays in the adapter: signing a proof (the host's batch signer) and verifying one
 * (injected as {@link ControlHooks.verifyProof}), the sockets, and the application's promises.
 * Deadlines go into the core's timer table (`resume_retry`, `close_retry`).
 */
import { FerryError, isFerryError, limit } from '../../util/index.js';
import { formatAddress } from '../../control/index.js';
import type { AgentId } from '../../identity/index.js';
import { MessageType, NONCE_BYTES, RESUME_FLAG_PROOF, RESUME_FLAG_PROOF_WANTED, encodeConnControl, type ConnControl, type ResumeProof } from '../../wire/index.js';
import type { PeerLocator } from '../checkpoint.js';
import type { Event } from '../state-machine.js';
import { CloseRetry } from './closing.js';
import type { ConnectionCore } from './connection-core.js';
import { proofWantedPadding } from './path.js';
import type { RecoveryDecision } from './recovery.js';

const ZERO_CHALLENGE = Buffer.alloc(NONCE_BYTES);
/** Tries for a SUS before a move: a peer that does not answer fast is itself moving. */
export const MOVE_SUSPEND_TRIES = 4;
/** Tries for one RES (each try's wait follows the measured RTT). */
export const RES_TRIES = 5;
/** Tries for a CLS to the peer's proven or located address. */
export const CLS_TRIES = 4;
/** The one CLS to an unreachable peer, or a half-open given up: one try, this long. */
export const CLS_ONCE_TIMEOUT_MS = 200;

/** Which of our requests a command or an answer belongs to (`connect`: the control-channel open's CONNECT, core/open.ts). */
export type RequestPurpose = 'sus' | 'res' | 'cls' | 'connect';

/** Send control request `type` with `body` to `to`; its answer comes back as {@link ControlRequests.replied} or {@link ControlRequests.failed} with `id`. */
export interface RequestCommand {
  readonly kind: 'request';
  readonly id: number;
  readonly purpose: RequestPurpose;
  readonly to: string;
  readonly type: number;
  readonly body: Buffer;
  /** The request's options (absent: the channel's defaults). */
  readonly opts: { readonly maxTries?: number; readonly timeoutMs?: number };
  /** It may be cancelled by a later {@link CancelCommand} (a RES, the CONNECT): give it an abort signal. */
  readonly cancellable: boolean;
}

/** Stop request `id` (a RES that is over, the CONNECT of an open that ended): no more retransmissions; its answer is ignored. */
export interface CancelCommand {
  readonly kind: 'cancel';
  readonly id: number;
}

/** Ask the location service where `agent` is, waiting up to `waitMs` for an epoch newer than `newerThan`; the answer comes back as {@link ControlRequests.located} with `id`. */
export interface LookupCommand {
  readonly kind: 'lookup';
  readonly id: number;
  readonly agent: AgentId;
  readonly newerThan: number;
  readonly waitMs: number;
}

/** What the adapter carries out for our control requests. */
export type ControlCommand = RequestCommand | CancelCommand | LookupCommand;

/** A line to log (the core decides what is worth saying; the adapter's logger says it). */
export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn';
  readonly event: string;
  readonly fields: Record<string, unknown>;
}

/**
 * What an answer (a reply, a failure, a lookup) comes to, in this order: the refusal to count,
 * the line to log, the commands to carry out, then the event to fire (if the state still accepts
 * it). `resAcked`: our RES was acknowledged (a resume HELLO held for its proof may go on).
 */
export interface ControlOutcome {
  readonly refused?: FerryError;
  readonly log?: LogLine;
  readonly commands?: readonly ControlCommand[];
  readonly event?: Event;
  readonly resAcked?: boolean;
}

/** Nothing to do (a stale answer, or one that only changed bookkeeping). */
const NOTHING: ControlOutcome = {};

/** What the requests need from outside the core. */
export interface ControlHooks {
  /** This host's redirector port, announced in RES and RES_ACK. */
  readonly redirectorPort: number;
  /** Give up closing after this long without a CLS_ACK. */
  readonly reconnectLimitMs: number;
  /**
   * Verify the location proof `m` carries, against the peer agent and the highest epoch accepted
   * (`peerEpoch`); returns its epoch, throws the refusal (a FerryError). Injected: it checks
   * signatures and reads the wall clock.
   */
  verifyProof(m: ConnControl, peerEpoch: number): number;
}

/** Our RES while it is being built (a proved one is built at the batch signer's flush). */
export interface ResPlan {
  readonly id: number;
  /** Take the RES's counter and build it; undefined when the resume it belonged to is over. */
  build(): ConnControl | undefined;
  /** The request of the RES just built, with its proof (signed in by the adapter) if any. */
  request(proof: ResumeProof | undefined, now: number): RequestCommand;
}

interface Sus {
  readonly id: number;
  readonly counter: number;
}
interface Res {
  readonly id: number;
  readonly target: PeerLocator;
  readonly wantProof: boolean;
  readonly challenge: Buffer;
  msg?: ConnControl;
}
interface Cls {
  readonly id: number;
  readonly counter: number;
  readonly target: string;
  readonly retry: CloseRetry | undefined;
}

function asFerry(err: unknown): FerryError {
  return isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err));
}

/** The outstanding SUS, RES, CLS and lookup of one connection end, and the retries of its close. */
export class ControlRequests {
  private sus: Sus | undefined;
  /** Our SUS requests not settled yet, even one forgotten since: each is counted when it settles ({@link susSettled}). */
  private readonly susOut = new Set<number>();
  private res: Res | undefined;
  private cls: Cls | undefined;
  private lookup: { readonly id: number; readonly purpose: 'resume' | 'close' } | undefined;
  /** The retries of our close (none: one CLS to an unreachable peer). */
  private closeRetry: CloseRetry | undefined;
  /** The next CLS try first looks the peer up, waiting up to this long for a newer location. */
  private closeLookup: number | undefined;

  constructor(
    private readonly core: ConnectionCore,
    private readonly hooks: ControlHooks,
  ) {}

  // ---------------------------------------------------------------- building

  /**
   * Our next control request, MAC'd: it takes the next counter, so it must be sent before any
   * other is built (a RES with a proof is built by the batch signer's flush and sent in the same
   * synchronous run). `proved`: a proof will follow (the flag is under the MAC).
   */
  message(type: ConnControl['type'], extra: { reason?: number; challenge?: Buffer; proved?: boolean; wantProof?: boolean } = {}): ConnControl {
    return this.core.auth.request(this.core.keys, {
      type,
      connectionId: this.core.connectionId,
      senderRole: this.core.role,
      reason: (extra.reason ?? 0) | (extra.proved ? RESUME_FLAG_PROOF : 0) | (extra.wantProof ? RESUME_FLAG_PROOF_WANTED : 0),
      redirectorPort: type === MessageType.RES ? this.hooks.redirectorPort : 0,
      challenge: extra.challenge ?? ZERO_CHALLENGE,
    });
  }

  /** The body of a control request; a RES that asks for a proof is padded to pay for it (§8.4: the RES_ACK carrying one stays within 3x). */
  static body(msg: ConnControl): Buffer {
    const body = encodeConnControl(msg);
    const pad = proofWantedPadding(body.length, (msg.reason & RESUME_FLAG_PROOF_WANTED) !== 0);
    return pad > 0 ? Buffer.concat([body, Buffer.alloc(pad)]) : body;
  }

  /** Verify a reply to our request `counter`: its type, echoed counter and connection id, the peer's role, MAC. */
  private checkReply(reply: { type: number; body: Buffer }, type: number, counter: number): ConnControl {
    return this.core.auth.checkReply(this.core.keys, reply, { type, counter, connectionId: this.core.connectionId, senderRole: this.core.role === 'client' ? 'server' : 'client' });
  }

  // ---------------------------------------------------------------- SUS

  /** Our SUS datagram (`reason` 1: to move, which tries only {@link MOVE_SUSPEND_TRIES} times). */
  suspend(reason: number): RequestCommand {
    const id = this.core.newRequestId();
    const msg = this.message(MessageType.SUS, { reason });
    this.sus = { id, counter: msg.counter };
    this.susOut.add(id);
    const opts = reason === 1 ? { maxTries: MOVE_SUSPEND_TRIES } : {};
    return { kind: 'request', id, purpose: 'sus', to: formatAddress(this.core.path.peer.ip, this.core.path.peer.controlPort), type: MessageType.SUS, body: ControlRequests.body(msg), opts, cancellable: false };
  }

  /**
   * Whether request `id`, answered or failed now, was one of our SUS (the suspend is then counted
   * once what its answer led to is applied, whether or not it was still the outstanding one).
   */
  susSettled(id: number): boolean {
    return this.susOut.delete(id);
  }

  /** Our SUS, if one is out, is over (answered in-band, cancelled by a resume or close): its answer is ignored. */
  forgetSus(): void {
    this.sus = undefined;
  }

  // ---------------------------------------------------------------- RES

  /**
   * Our RES datagram to where the peer is now. One to a location where the peer has not proven
   * itself asks for its proof (docs/DELEGATION.md); `proved`: ours goes with it (built at the
   * batch signer's flush). Replaces any RES still out (that one's answer is ignored from now on).
   */
  resume(proved: boolean): ResPlan {
    const path = this.core.path;
    const id = this.core.newRequestId();
    const target = path.peer;
    const wantProof = path.wantsProof(this.core.keys !== undefined, target);
    path.resSent(wantProof);
    const res: Res = { id, target, wantProof, challenge: path.issueChallenge() };
    this.res = res;
    return {
      id,
      build: () => {
        // A proved RES waits for the flush: cancelled or superseded meanwhile, it is not built.
        if (this.res !== res || (proved && this.core.state !== 'RES_SENT')) return undefined;
        return (res.msg = this.message(MessageType.RES, { challenge: res.challenge, proved, wantProof }));
      },
      request: (proof, now) => {
        const msg = proof ? { ...res.msg!, proof } : res.msg!;
        res.msg = msg;
        const opts: { maxTries: number; timeoutMs?: number } = { maxTries: RES_TRIES };
        // While broken, no single RES may outlive the reconnect limit (core/recovery.ts).
        const timeoutMs = this.core.recovery.requestTimeout(now);
        if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
        return { kind: 'request', id, purpose: 'res', to: formatAddress(res.target.ip, res.target.controlPort), type: MessageType.RES, body: ControlRequests.body(msg), opts, cancellable: true };
      },
    };
  }

  /** Whether RES `id` is still the outstanding one. */
  resCurrent(id: number): boolean {
    return this.res?.id === id;
  }

  /** Our RES, if one is out, is over: stop retransmitting it, ignore its answer. */
  cancelRes(): CancelCommand | undefined {
    const res = this.res;
    this.res = undefined;
    return res && { kind: 'cancel', id: res.id };
  }

  /**
   * The RES_ACK to a RES that went to `target`: a proof is checked when the RES asked for one or
   * the answer carries one. Throws the refusal; the proof's epoch is recorded when it verifies.
   */
  private checkResAckProof(m: ConnControl, res: Res): void {
    const path = this.core.path;
    const here = { ip: res.target.ip, controlPort: res.target.controlPort, redirectorPort: m.redirectorPort };
    if (!path.resAckProofNeeded(this.core.keys !== undefined, here, m.proof !== undefined, res.wantProof)) return;
    const epoch = this.hooks.verifyProof(m, path.peerEpoch);
    path.proofAccepted(epoch, here);
    res.target.epoch = Math.max(res.target.epoch, epoch);
  }

  // ---------------------------------------------------------------- resume retries

  /**
   * `schedule_resume`: when to try again, or give up (the adapter closes with the error). A
   * lookup of an earlier attempt still in flight is not this attempt's: forgotten.
   */
  scheduleResume(now: number): RecoveryDecision {
    const d = this.core.recovery.next(now);
    if (d.kind === 'retry') {
      this.lookup = undefined;
      this.core.setDeadline('resume_retry', now + d.delayMs);
    }
    return d;
  }

  /** `resume_retry` (SUSPENDED, not moving): the lookup to make first, or undefined: resume now. */
  resumeDue(now: number): LookupCommand | undefined {
    const recovery = this.core.recovery;
    if (!recovery.lookupNeeded) return undefined;
    return this.lookUp('resume', recovery.lookupWait(now));
  }

  /**
   * `resume_deadline`: a resume left SUSPENDED without its data socket proven in time. Silence,
   * as a CONTROL_TIMEOUT of the RES: the next try asks the location service first (the RES's own
   * failure, of a cancelled attempt, is never acted on). Without this a peer that moved while its
   * old host went silent was retried there until the reconnect limit.
   */
  resumeDeadline(): ControlOutcome {
    const log: LogLine = { level: 'info', event: 'resume_deadline', fields: { state: this.core.state } };
    this.core.recovery.resumeFailed(new FerryError('FERRY_ERR_CONTROL_TIMEOUT', 'no data socket before the resume deadline'));
    return { log, event: 'timeout' };
  }

  /** No resume is due any more (ours or the peer's began, a suspend, a close): forget the retry and its lookup. Returns whether a retry was set. */
  stopResumeRetry(): boolean {
    this.forgetLookup();
    return this.core.cancelDeadline('resume_retry');
  }

  /** The lookup in flight, if any, is no longer wanted: its answer changes nothing. */
  forgetLookup(): void {
    this.lookup = undefined;
  }

  private lookUp(purpose: 'resume' | 'close', waitMs: number): LookupCommand {
    const id = this.core.newRequestId();
    this.lookup = { id, purpose };
    return { kind: 'lookup', id, agent: this.core.peerAgent, newerThan: this.core.path.peer.epoch, waitMs };
  }

  // ---------------------------------------------------------------- CLS

  /**
   * `send_cls`: whatever SUS, RES or resume retry is out is over (its late failure must not end
   * the close as a CLS timeout). The code the connection is closing with (the intent's) decides: giving up
   * on an unreachable peer, or a half-open whose client confirmed by RES but never finished the
   * resume: one CLS, in case it comes back (never handed to the agent, a half-open must not hold
   * its entry until the reconnect limit on a stranger's word). Any other close is retried,
   * following the peer, until the reconnect limit (core/closing.ts).
   */
  close(): ControlCommand[] {
    const closedWith = this.core.intent.closedError?.code;
    this.stopResumeRetry();
    this.sus = undefined;
    const out: ControlCommand[] = [];
    const cancel = this.cancelRes();
    if (cancel) out.push(cancel);
    const once = closedWith === 'FERRY_ERR_PEER_UNREACHABLE' || closedWith === 'FERRY_ERR_HANDSHAKE_TIMEOUT';
    this.closeRetry = once ? undefined : new CloseRetry({ reconnectLimitMs: this.hooks.reconnectLimitMs });
    out.push(this.sendCls());
    return out;
  }

  /**
   * One CLS (a fresh counter each time), to where the peer is now, or once to `to`, an address a
   * RES came from. That one is only a candidate (PROTOCOL.md §8.4: a relayed RES can name any
   * source), so it gets at most AMPLIFICATION_FACTOR sends (85 B each; the RES that named it was
   * at least as long) and the retries go back to the peer's proven or located address. Its reason
   * is the intent's at the time it is sent (1: the connection was destroyed or failed).
   */
  private sendCls(to?: string): RequestCommand {
    const id = this.core.newRequestId();
    const msg = this.message(MessageType.CLS, { reason: this.core.intent.clsReason });
    const retry = this.closeRetry;
    const proven = formatAddress(this.core.path.peer.ip, this.core.path.peer.controlPort);
    const target = to ?? proven;
    this.cls = { id, counter: msg.counter, target, retry };
    const tries = target === proven ? CLS_TRIES : limit('AMPLIFICATION_FACTOR');
    const opts = retry ? { maxTries: tries } : { maxTries: 1, timeoutMs: CLS_ONCE_TIMEOUT_MS };
    return { kind: 'request', id, purpose: 'cls', to: target, type: MessageType.CLS, body: ControlRequests.body(msg), opts, cancellable: false };
  }

  /**
   * The peer resumes from `from` (its RES authenticated and fresh) while our CLS has no answer:
   * that is likely where it is, whatever the location service still says (it lags, or the peer
   * moved since the CLS left). One CLS goes there now; the refusal of the RES alone is not
   * authenticated, so the peer could not take it as our close. Only that one: the retries go to
   * the proven or located address, and each further RES from the peer sends one more there.
   */
  closeTowards(from: string): ControlCommand[] {
    if (!this.closeRetry) return [];
    if (this.cls !== undefined && this.cls.target === from) return [];
    this.core.cancelDeadline('close_retry');
    this.lookup = undefined;
    this.closeLookup = undefined;
    return [this.sendCls(from)];
  }

  /** `close_retry` (CLOSE_SENT): look the peer up first if the last answer said so, else send the CLS again. */
  closeRetryDue(): ControlCommand | undefined {
    if (this.core.state !== 'CLOSE_SENT' || !this.closeRetry) return undefined;
    const waitMs = this.closeLookup;
    this.closeLookup = undefined;
    return waitMs !== undefined ? this.lookUp('close', waitMs) : this.sendCls();
  }

  /** The host is stopping: the close ends now, without further tries or lookups. */
  stopClose(): void {
    this.closeRetry = undefined;
    this.cls = undefined;
    this.closeLookup = undefined;
    this.lookup = undefined;
    this.core.cancelDeadline('close_retry');
  }

  // ---------------------------------------------------------------- answers

  /** The reply to request `id` arrived (`now`: when). */
  replied(id: number, reply: { type: number; body: Buffer }, now: number): ControlOutcome {
    try {
      if (this.sus?.id === id) {
        this.checkReply(reply, MessageType.SUS_ACK, this.sus.counter);
        this.sus = undefined;
        return { event: 'recv_sus_ack' };
      }
      if (this.res?.id === id) return this.resAcked(this.res, this.checkReply(reply, MessageType.RES_ACK, this.res.msg!.counter));
      if (this.cls?.id === id) {
        this.checkReply(reply, MessageType.CLS_ACK, this.cls.counter);
        this.cls = undefined;
        return { event: 'recv_cls_ack' };
      }
    } catch (err) {
      // A reply that does not match or verify is as if unanswered.
      return this.failed(id, err, now);
    }
    return NOTHING;
  }

  private resAcked(res: Res, m: ConnControl): ControlOutcome {
    try {
      this.checkResAckProof(m, res);
    } catch (err) {
      // The location that answered cannot prove it speaks for the peer: refused here, logged
      // once; this attempt ends as if unanswered and the next one asks the location service.
      const e = asFerry(err);
      const from = formatAddress(res.target.ip, res.target.controlPort);
      const log: LogLine = { level: 'warn', event: 'resume_refused', fields: { code: e.code, detail: e.message, from } };
      // Unless the peer's own RES leads this resume (RES_ACKED): then only our crossing RES is over.
      if (this.crossingOver(res)) return { refused: e, log };
      this.core.recovery.proofRefused(e);
      return { refused: e, log, event: 'timeout' };
    }
    // The peer answered from `target`: that is where it is now.
    this.core.path.resAckReceived(res.target, m.redirectorPort, m.challenge, res.msg!.proof !== undefined);
    return { event: 'recv_res_ack', resAcked: true };
  }

  /**
   * Our RES `res` went unanswered or its answer was refused while RES_ACKED: the peer's own RES,
   * authenticated, fresh and proven where it had to be, leads this resume (crossing resumes), and
   * ours was only a second way to the same end. It alone is over: the resume goes on within its
   * deadline, and what the answer said of the location our RES went to is neither this resume's
   * end nor the code a give-up fails with. (Our RES may have gone where the peer no longer is: its
   * old host answers a retransmission from its reply cache, naming the redirector port the peer
   * had there. Judged against the location the peer's RES proved since, that RES_ACK was refused
   * RESUME_UNPROVEN, ended the resume and, the peer's host then dying, closed the connection with
   * RESUME_UNPROVEN instead of PEER_UNREACHABLE: found by the simulator.) Returns whether it was so.
   */
  private crossingOver(res: Res): boolean {
    if (this.core.state !== 'RES_ACKED') return false;
    if (this.res === res) this.res = undefined;
    return true;
  }

  /** Request `id` failed with `err` (no answer, a refusal, aborted) at `now`. */
  failed(id: number, err: unknown, now: number): ControlOutcome {
    if (this.sus?.id === id) {
      this.sus = undefined;
      return { log: { level: 'info', event: 'suspend_unanswered', fields: { code: isFerryError(err) ? err.code : String(err) } }, event: 'timeout' };
    }
    if (this.res?.id === id) {
      const e = asFerry(err);
      // Cancelled by us: the state moved on, nothing to do.
      if (e.code === 'FERRY_ERR_ABORTED') return NOTHING;
      // The peer has not seen us prove where we are (an on-path attacker may have made it take
      // our proof from its own address, and stop wanting one from us): our next RES carries a
      // proof. Without this a resume of ours alone was refused to the reconnect limit. A forged
      // refusal costs only a proof on our next RES.
      if (e.code === 'FERRY_ERR_RESUME_UNPROVEN') this.core.path.proveOurLocation();
      const log: LogLine = { level: 'info', event: 'resume_unanswered', fields: { code: e.code } };
      if (this.crossingOver(this.res)) return { log };
      // A refused proof is kept to fail with at the limit; the peer elsewhere, or silent: the
      // next try asks the location service first (core/recovery.ts).
      this.core.recovery.resumeFailed(e);
      return { log, event: 'timeout' };
    }
    if (this.cls?.id === id) {
      const retry = this.cls.retry;
      this.cls = undefined;
      const e = asFerry(err);
      const d = retry && this.core.state === 'CLOSE_SENT' ? retry.failed(e, now) : undefined;
      if (d?.kind === 'retry') {
        this.closeLookup = d.lookup ? d.lookupWaitMs : undefined;
        this.core.setDeadline('close_retry', now + d.delayMs);
        return { log: { level: 'info', event: 'close_unanswered', fields: { code: e.code, retryMs: d.delayMs } } };
      }
      const log: LogLine | undefined = retry ? { level: 'info', event: 'close_given_up', fields: { code: e.code, why: d?.why } } : undefined;
      return log ? { log, event: 'timeout' } : { event: 'timeout' };
    }
    return NOTHING;
  }

  /** Lookup `id` failed (the location service did not answer). */
  lookupFailed(id: number): ControlOutcome {
    const l = this.lookup;
    if (l?.id !== id) return NOTHING;
    // A resume tries where the peer was, as after a lookup that found nothing newer.
    if (l.purpose === 'resume') return this.located(id, undefined);
    const retry = this.closeRetry;
    if (this.core.state !== 'CLOSE_SENT' || !retry) return NOTHING;
    this.lookup = undefined;
    // Not "the peer forgot": a failed lookup does not say where the peer is. The CLS goes again.
    retry.lookupFailed();
    return { commands: [this.sendCls()] };
  }

  /**
   * Lookup `id` answered with `loc` (undefined: nothing newer). While the host prepares a move of
   * this end (the intent's), a resume waits for the destination.
   */
  located(id: number, loc: PeerLocator | undefined): ControlOutcome {
    const l = this.lookup;
    if (l?.id !== id) return NOTHING;
    if (l.purpose === 'resume') {
      if (this.core.state !== 'SUSPENDED' || this.core.intent.moving) return NOTHING;
      this.lookup = undefined;
      this.core.recovery.located(this.core.path.located(loc));
      return { event: 'resume' };
    }
    const retry = this.closeRetry;
    if (this.core.state !== 'CLOSE_SENT' || !retry) return NOTHING;
    this.lookup = undefined;
    if (!retry.located(this.core.path.located(loc))) {
      // UNKNOWN_CONNECTION from where the peer is: it holds the connection no more.
      return { log: { level: 'info', event: 'close_peer_forgot', fields: {} }, event: 'timeout' };
    }
    return { commands: [this.sendCls()] };
  }
}
