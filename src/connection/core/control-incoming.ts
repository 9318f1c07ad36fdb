/**
 * What the peer's SUS, RES or CLS does, sans I/O: the checks in their order (PROTOCOL.md §4.3),
 * the reply or the typed refusal (remembered, so a retransmission gets the same, byte for byte),
 * the event to fire, and the follow-ups the adapter carries out around it.
 *
 * The order is the security argument: the MAC first (a forgery changes nothing and learns
 * nothing), then the counter (a replay changes nothing), then a RES's location proof (a refused
 * RES changes nothing, not even the replay window), then "moving" (a RES while this end is being
 * moved is answered PEER_MOVING), then the transition table.
 */
import { FerryError, isFerryError } from '../../util/index.js';
import { parseAddress } from '../../control/index.js';
import { MessageType, NONCE_BYTES, RESUME_FLAG_PROOF, RESUME_FLAG_PROOF_WANTED, encodeConnControl, type ConnControl, type ResumeProof } from '../../wire/index.js';
import { rejectionFor, type Event } from '../state-machine.js';
import { controlTypeName } from './control-auth.js';
import type { ConnectionCore } from './connection-core.js';
import type { ControlCommand, ControlRequests } from './control-requests.js';

const ZERO_CHALLENGE = Buffer.alloc(NONCE_BYTES);

/** Bit 0 of a SUS's reason: the peer suspends to move (it resumes when it lands). */
const SUS_TO_MOVE = 1;
/** A CLS's reason 1: the peer destroyed the connection (the application sees PEER_ABORTED). */
const CLS_ABORT = 1;

/** What the adapter knows that the core does not (yet): its move, its application's calls. */
export interface IncomingContext {
  /** The host is preparing a move of this end: a RES is answered PEER_MOVING. */
  readonly moving: boolean;
  /** An application resume() is pending (a SUS crossing it does not cancel it). */
  readonly resumePending: boolean;
}

/** Proofs, injected: the core neither signs nor verifies. */
export interface IncomingProofs {
  /** Verify the location proof a RES carries (its epoch), throwing the refusal. */
  verify(m: ConnControl, peerEpoch: number): number;
  /**
   * Sign `ack` (a RES_ACK that was asked for our proof, flagged as carrying one) with this
   * host's proof for our agent; undefined when the host has none (the RES_ACK goes unproved).
   */
  prover(): ((ack: ConnControl) => ResumeProof) | undefined;
}

/**
 * The decision on one request of the peer:
 * - `refuse`: answer with `error` (after carrying out `commands`: a CLS towards a resuming peer);
 * - `answer`: a retransmission of the request last accepted: `reply`, the same bytes as before;
 * - `accept`: answer `reply`, fire `event`, and around it:
 *   `stopAutoResume` (before the event): no resume of ours the peer overtook;
 *   `dropKept` (before): the peer's SUS is newer than anything it sent on the kept socket;
 *   `peerAborted`: the connection ends PEER_ABORTED;
 *   `resumeAfter` (after, if then SUSPENDED): the peer's SUS crossed an application resume(),
 *   which goes on now (`peerMoving`: find the peer through the location service).
 */
export type IncomingDecision =
  | { readonly kind: 'refuse'; readonly error: FerryError; readonly commands: readonly ControlCommand[] }
  | { readonly kind: 'answer'; readonly reply: Buffer }
  | {
      readonly kind: 'accept';
      readonly type: number;
      readonly event: Event;
      readonly reply: Buffer;
      readonly stopAutoResume: boolean;
      readonly dropKept: boolean;
      readonly peerAborted: boolean;
      readonly resumeAfter: boolean;
      readonly peerMoving: boolean;
    };

const EVENT: Readonly<Record<number, Event>> = { [MessageType.SUS]: 'recv_sus', [MessageType.RES]: 'recv_res', [MessageType.CLS]: 'recv_cls' };
const REPLY: Readonly<Record<number, ConnControl['type']>> = { [MessageType.SUS]: MessageType.SUS_ACK, [MessageType.RES]: MessageType.RES_ACK, [MessageType.CLS]: MessageType.CLS_ACK };

/** A refusal with nothing else to do. */
function refuse(error: FerryError, commands: readonly ControlCommand[] = []): IncomingDecision {
  return { kind: 'refuse', error, commands };
}

/**
 * A RES from `from`: a proof is required unless it comes from where the peer last proved itself
 * (a plain suspend/resume). A proof that is present is always checked. Throws the refusal;
 * nothing has changed then. Returns the proven epoch, if any.
 */
function checkResProof(core: ConnectionCore, m: ConnControl, from: string, proofs: IncomingProofs): number | undefined {
  const { ip, port } = parseAddress(from);
  const here = { ip, controlPort: port, redirectorPort: m.redirectorPort };
  if (!core.path.resProofNeeded(core.keys !== undefined, here, m.proof !== undefined)) return undefined;
  const epoch = proofs.verify(m, core.path.peerEpoch);
  core.path.proofAccepted(epoch, here);
  return epoch;
}

/**
 * Decide the peer's request `m` (decoded) from `from`. Changes the control counters, the peer's
 * candidate address and challenges, and the resume retry as decided; the adapter replies (or
 * throws the refusal) and carries out the rest.
 */
export function decideIncoming(
  core: ConnectionCore,
  requests: ControlRequests,
  m: ConnControl,
  from: string,
  ctx: IncomingContext,
  o: { readonly redirectorPort: number; readonly proofs: IncomingProofs },
): IncomingDecision {
  let provenEpoch: number | undefined;
  try {
    const admission = core.auth.admit(core.keys, m, from);
    if (admission.kind === 'retransmission') return admission.reply instanceof FerryError ? refuse(admission.reply) : { kind: 'answer', reply: admission.reply };
    // Checked before the counter is recorded: a refused RES changes nothing, not even the window.
    if (m.type === MessageType.RES) provenEpoch = checkResProof(core, m, from, o.proofs);
  } catch (err) {
    if (isFerryError(err)) return refuse(err);
    throw err;
  }
  core.auth.accept(m);
  const remember = (reply: Buffer | FerryError): void => core.auth.remember(m, from, reply);
  if (ctx.moving && m.type === MessageType.RES) {
    const e = new FerryError('FERRY_ERR_PEER_MOVING', 'endpoint is moving');
    remember(e);
    return refuse(e);
  }
  const event = EVENT[m.type];
  const replyType = REPLY[m.type];
  if (event === undefined || replyType === undefined) return refuse(new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `unexpected request type ${m.type}`));
  const state = core.state;
  if (!core.accepts(event)) {
    const e = new FerryError(rejectionFor(state, event), `${controlTypeName(m.type)} in state ${state}`);
    remember(e);
    // A closing end sends the source of a peer's RES one CLS (core/control-requests.ts).
    return refuse(e, m.type === MessageType.RES && state === 'CLOSE_SENT' ? requests.closeTowards(from) : []);
  }
  let challenge: Buffer = ZERO_CHALLENGE;
  if (m.type === MessageType.RES) {
    // Authenticated and fresh, but another address is only a candidate until a HELLO proves it.
    core.path.resReceived(parseAddress(from), m.redirectorPort, m.challenge, provenEpoch);
    challenge = core.path.issueChallenge();
    requests.stopResumeRetry();
  }
  // A RES that asks for our proof (it reached us at a location the peer has not verified) gets it.
  const sign = m.type === MessageType.RES && m.reason & RESUME_FLAG_PROOF_WANTED ? o.proofs.prover() : undefined;
  const ack = core.auth.reply(core.keys, {
    type: replyType,
    connectionId: core.connectionId,
    senderRole: core.role,
    counter: m.counter,
    reason: sign ? RESUME_FLAG_PROOF : 0,
    redirectorPort: m.type === MessageType.RES ? o.redirectorPort : 0,
    challenge,
  });
  if (sign) ack.proof = sign(ack);
  const reply = encodeConnControl(ack);
  remember(reply);
  // An application resume() still pending when the peer's SUS crosses it is not dropped: the
  // suspend happens (acknowledged), then our resume goes on, as if called right after it.
  // Without this both ends sat SUSPENDED with the resume() pending for ever (seen after both
  // ends moved: both were resuming, so a user suspend there went by datagram and crossed a RES).
  const resumeAfter = m.type === MessageType.SUS && ctx.resumePending;
  // The peer's SUS is newer than anything it sent on the kept socket (an in-band RESUME carries
  // no counter): no reuse after it, and no automatic resume of ours that the peer has overtaken.
  // It resumes when it wants to (a moving peer, when it lands).
  const stopAutoResume = m.type === MessageType.SUS && !resumeAfter && (state === 'SUSPENDED' || (m.reason & SUS_TO_MOVE) === 0);
  return {
    kind: 'accept',
    type: m.type,
    event,
    reply,
    stopAutoResume,
    dropKept: m.type === MessageType.SUS,
    peerAborted: m.type === MessageType.CLS && m.reason === CLS_ABORT,
    resumeAfter,
    peerMoving: resumeAfter && (m.reason & SUS_TO_MOVE) !== 0,
  };
}
