/**
 * The kept socket's rules: after a suspend in which both ends sent DRAIN on the data socket and
 * received the other's, the socket is quiet both ways and may be kept for a resume on it (in-band
 * RESUME / RESUME_ACK, no new TCP connection, no dial). Which transitions keep it, and what a frame
 * arriving on it comes to. Pure: `slots.ts` asks, and its commands carry the verdict out.
 */
import { FrameType } from '../../wire/index.js';
import type { State } from '../state-machine.js';

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
