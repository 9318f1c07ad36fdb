/**
 * The kept socket's rules: after a suspend in which both ends sent DRAIN on the data socket and
 * received the other's, the socket is quiet both ways and may be kept for a resume on it (in-band
 * RESUME / RESUME_ACK, no new TCP connection, no dial). Which transitions keep it, and what a frame
 * arriving on it comes to, and the kept socket's life by slot number ({@link KeptSocket}, part of
 * `slots.ts`'s {@link DataSlots}).
 */
import { limit, type FerryError } from '../../util/index.js';
import { FrameType } from '../../wire/index.js';
import type { State } from '../state-machine.js';
import type { ConnectionCore } from './connection-core.js';
import type { DataSlots, SlotCommand } from './slots.js';

/**
 * Whether a kept socket survives the transition: while suspending and suspended, and into the
 * resume that offers it (RESUME). Leaving a resume any other way than on it (a new socket, a
 * timeout, a suspend, a close) or leaving SUSPENDED for anything but our resume drops it.
 */
export function keepsSocket(from: State, to: State): boolean {
  if (to === 'SUS_SENT' || to === 'SUS_ACKED' || to === 'SUSPENDED') return from !== 'RES_SENT' && from !== 'RES_ACKED';
  return from === 'SUSPENDED' && to === 'RES_SENT';
}

/**
 * What a frame on the kept socket comes to:
 * - `peer_resumes`: the peer's RESUME while we are SUSPENDED and not moving: accept it (answer
 *   RESUME_ACK, carry the stream on on the socket: `recv_res_reuse`);
 * - `resume_accepted`: while our own RESUME is out on this socket, its RESUME_ACK, or the peer's
 *   crossing RESUME (both want it: as good as an acceptance both ways): `recv_res_ack_reuse`;
 * - `refuse`: anything else, or a RESUME we cannot take (moving): close the socket; when our
 *   RESUME was out on it (`fallback`), resume by RES datagram instead.
 */
export type KeptFrameVerdict = { readonly kind: 'peer_resumes' } | { readonly kind: 'resume_accepted' } | { readonly kind: 'refuse'; readonly fallback: boolean };

/** The verdict on a frame of type `frameType` on the kept socket, in `state`; `offered`: our RESUME went out on it. */
export function keptFrameVerdict(frameType: number, state: State, moving: boolean, offered: boolean): KeptFrameVerdict {
  if (frameType === FrameType.RESUME && state === 'SUSPENDED' && !moving) return { kind: 'peer_resumes' };
  if ((frameType === FrameType.RESUME_ACK || frameType === FrameType.RESUME) && state === 'RES_SENT' && offered) return { kind: 'resume_accepted' };
  return { kind: 'refuse', fallback: offered && state === 'RES_SENT' };
}

/**
 * Whether a drain that ended leaves its socket kept for a resume on it: only when the peer's DRAIN
 * came (quiet both ways), the socket is still up, no move is being prepared (a move carries no
 * socket) and the connection is suspending or suspended.
 */
export function keepsDrained(peerDrained: boolean, open: boolean, moving: boolean, state: State): boolean {
  return peerDrained && open && !moving && (state === 'SUS_ACKED' || state === 'SUSPENDED');
}

/**
 * The kept socket of one connection end, by slot number, and the reuse agreed on it: kept after a
 * drained suspend for KEPT_SOCKET_MS, offered by our in-band RESUME (`resume_offer` bounds the
 * wait for its answer), taken for a reuse by the peer's RESUME or its RESUME_ACK, dropped by a
 * transition that does not keep it ({@link keepsSocket}), by its deadline or by a stray frame. Part
 * of {@link DataSlots}; its inputs append {@link SlotCommand}s to `out`, in order.
 */
export class KeptSocket {
  /** The kept slot. While kept, only the in-band resume's RESUME / RESUME_ACK may arrive on it. */
  slot: number | undefined;
  /** The kept slot our outstanding RESUME offered. */
  offered: number | undefined;
  /** A reuse both ends agreed on, for the `reuse_socket` action. */
  private reuse: number | undefined;
  /** The reuse was the peer's RESUME that we accept: `reuse_socket` answers RESUME_ACK first. */
  private reuseAnswer = false;

  constructor(private readonly core: ConnectionCore) {}

  /** Keep drained `slot` (both DRAINs crossed on it) for a resume on it, for KEPT_SOCKET_MS; one kept before is dropped. */
  keep(slot: number, out: SlotCommand[]): void {
    if (this.slot !== undefined) this.drop('replaced', out);
    out.push({ kind: 'keep', slot });
    this.slot = slot;
    out.push({ kind: 'deadline', name: 'kept_socket', slot, ms: limit('KEPT_SOCKET_MS') });
  }

  /** The kept socket leaves the kept role (to be reused, or gone): no deadlines, no offer. */
  private take(out: SlotCommand[]): void {
    for (const slot of [this.slot, this.offered]) {
      if (slot === undefined) continue;
      out.push({ kind: 'clear', name: 'kept_socket', slot }, { kind: 'clear', name: 'resume_offer', slot });
    }
    this.slot = undefined;
    this.offered = undefined;
  }

  /** Close the kept socket, if any (the next resume dials). */
  drop(why: string, out: SlotCommand[]): SlotCommand[] {
    const slot = this.slot;
    this.take(out);
    if (slot !== undefined) out.push({ kind: 'log', level: 'debug', event: 'kept_socket_dropped', fields: { why } }, { kind: 'close', slot });
    return out;
  }

  /**
   * Our resume goes in-band on the kept socket (intent.ts `resumeInBand` chose it, and
   * `resumeOffered` set its `resume_offer` deadline): RESUME on it, offered until the peer answers
   * or the deadline passes.
   */
  offer(): SlotCommand[] {
    const slot = this.slot;
    if (slot === undefined) return [];
    this.offered = slot;
    return [{ kind: 'send', slot, frame: { type: FrameType.RESUME } }];
  }

  /**
   * A frame on the kept socket ({@link keptFrameVerdict}): the peer's RESUME taken for a reuse
   * (we answer RESUME_ACK), our RESUME accepted, or the socket closed, falling back to the RES
   * datagram when our RESUME was out on it. A frame on a slot that is not the kept one closes it.
   */
  frame(slot: number, type: number, moving: boolean): SlotCommand[] {
    if (slot !== this.slot) return [{ kind: 'close', slot }];
    const state = this.core.state;
    const verdict = keptFrameVerdict(type, state, moving, this.offered === slot);
    const out: SlotCommand[] = [];
    if (verdict.kind === 'peer_resumes') {
      this.take(out);
      this.reuse = slot;
      this.reuseAnswer = true;
      out.push({ kind: 'peer_resumes' }, { kind: 'fire', event: 'recv_res_reuse', ifAccepted: false });
      return out;
    }
    if (verdict.kind === 'resume_accepted') {
      this.take(out);
      this.reuse = slot;
      out.push({ kind: 'fire', event: 'recv_res_ack_reuse', ifAccepted: false });
      return out;
    }
    out.push({ kind: 'log', level: 'info', event: 'kept_socket_refused', fields: { type, state } });
    this.drop('unexpected frame', out);
    if (verdict.fallback) out.push({ kind: 'resume_by_datagram' });
    return out;
  }

  /** Deadline `kept_socket` of `slot` passed: the kept socket closes (if it is still that one). */
  expired(slot: number): SlotCommand[] {
    return this.slot === slot ? this.drop('expired', []) : [];
  }

  /** Deadline `resume_offer` of `slot` passed: our RESUME on it went unanswered; resume by datagram. */
  offerExpired(slot: number): SlotCommand[] {
    if (this.offered !== slot || this.core.state !== 'RES_SENT') return [];
    const out: SlotCommand[] = [{ kind: 'log', level: 'info', event: 'resume_offer_unanswered', fields: {} }];
    this.drop('unanswered', out);
    out.push({ kind: 'resume_by_datagram' });
    return out;
  }

  /** `slot` closed under us: if it was the kept one it is forgotten (our RESUME out on it falls back to the RES datagram). Returns whether it was. */
  closed(slot: number, err: FerryError | undefined, out: SlotCommand[]): boolean {
    if (slot !== this.slot) return false;
    const state = this.core.state;
    const offered = this.offered === slot && state === 'RES_SENT';
    this.take(out);
    out.push({ kind: 'log', level: 'debug', event: 'kept_socket_lost', fields: { code: err?.code, state } });
    // Our RESUME was out on it (declined by a close, or the socket died): resume by datagram.
    if (offered) out.push({ kind: 'resume_by_datagram' });
    return true;
  }

  /** The state went `from` → `to`: a kept socket the new state does not keep is dropped. */
  transition(from: State, to: State, out: SlotCommand[]): void {
    if (this.slot !== undefined && !keepsSocket(from, to)) this.drop('state', out);
  }

  /** The reuse agreed on (`answer`: ours is the acceptance, RESUME_ACK first), taken once. */
  takeReuse(): { slot: number; answer: boolean } | undefined {
    const slot = this.reuse;
    this.reuse = undefined;
    if (slot === undefined) return undefined;
    const answer = this.reuseAnswer;
    this.reuseAnswer = false;
    return { slot, answer };
  }

  /** The connection ended: the kept socket and one agreed for a reuse close. */
  ended(out: SlotCommand[]): void {
    this.drop('closed', out);
    if (this.reuse !== undefined) out.push({ kind: 'close', slot: this.reuse });
    this.reuse = undefined;
  }
}
