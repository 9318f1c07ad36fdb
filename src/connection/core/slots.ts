/**
 * The data sockets' rules of one connection end, sans I/O. Sockets are named by slot numbers
 * only; the adapter (`adapters/socket-slots.ts`) holds the sockets behind them. This decides which
 * slot carries the connection, which drain, which is kept after a suspend (and what may arrive
 * on it, when it is taken for a resume or dropped), who dials a resume and when to dial again,
 * what a closed socket leads to, and what a peer's HELLO is answered with or parked for. Each input
 * returns {@link SlotCommand}s for the endpoint to carry out in order: frames to send on a slot,
 * slots to close, keep, carry or reuse, deadlines of a slot, and the events they lead to.
 *
 * Every input names the slot it is about, and one that names a slot no longer in the role it
 * answers (a late close, a HELLO_ACK of a dial given up, an expired deadline of a socket that is
 * gone) changes nothing: no "round" counters.
 */
import { deriveSessionKeys, equalBytes, type ConnectionKeys } from '../../identity/index.js';
import { FerryError, errorFromWire, limit } from '../../util/index.js';
import { FrameType, NONCE_BYTES, type Frame, type Hello, type HelloAck } from '../../wire/index.js';
import type { PeerLocator } from '../checkpoint.js';
import { rejectionFor, type Event, type State } from '../state-machine.js';
import type { ConnectionCore } from './connection-core.js';
import { drainVerdict, type AckStep, type DrainVerdict } from './data.js';
import { KeptSocket, keepsDrained } from './kept-socket.js';
import type { TimerName } from './timers.js';

/** The HELLO's cryptography (handshake.ts), injected: MACs under the connection's control key. */
export interface HelloCrypto {
  helloMac(keys: ConnectionKeys | undefined, h: Omit<Hello, 'mac' | 'type'>): Buffer;
  helloAckMac(keys: ConnectionKeys | undefined, a: Omit<HelloAck, 'mac' | 'type'>, dialerNonce: Buffer): Buffer;
}

/** Per-direction session keys of a data socket (sealing what we send, opening what we receive). */
export interface SocketKeys {
  readonly send: Buffer;
  readonly receive: Buffer;
}

/** A challenge of zeros: the open's HELLO echoes none (a resume's echoes the peer's). */
export const ZERO_CHALLENGE = Buffer.alloc(NONCE_BYTES);

/**
 * Dial `ip:port` as socket slot `slot`. The adapter takes the socket dialled ahead for `slot`, if
 * any, else dials; once the socket exists it says so at once ({@link ConnectionCore.dialStarted}:
 * a data socket's HELLO comes next), and a dial that throws is reported on a later turn
 * ({@link ConnectionCore.dialThrew}). `first`: the in-band open's socket, whose frames are the
 * open's raw frames and which sends `first` raw at once; `ahead`: only dial, the socket waits for
 * a later `dial` of the same slot (the control-channel open's data socket, dialled at `open()`).
 * Otherwise a data socket whose frames are the answer to our HELLO ({@link ConnectionCore.dialFrame})
 * and whose close fails the dial ({@link ConnectionCore.dialFailed}).
 */
export interface DialCommand {
  readonly kind: 'dial';
  readonly slot: number;
  readonly ip: string;
  readonly port: number;
  readonly first?: Buffer | undefined;
  readonly ahead?: true | undefined;
}

/** What the endpoint must do about the data sockets, in order. */
export type SlotCommand =
  /** Send control frame `frame` on `slot`. */
  | { readonly kind: 'send'; readonly slot: number; readonly frame: Frame }
  /** Close `slot` now (nothing of it comes back). */
  | { readonly kind: 'close'; readonly slot: number }
  /** `slot` is kept after a suspend: its frames are {@link DataSlots.keptFrame} from now on. */
  | { readonly kind: 'keep'; readonly slot: number }
  /** Set deadline `name` of `slot` `ms` from now. */
  | { readonly kind: 'deadline'; readonly name: TimerName; readonly slot: number; readonly ms: number }
  /** Cancel deadline `name` of `slot`. */
  | { readonly kind: 'clear'; readonly name: TimerName; readonly slot: number }
  /** Hand `event` to the state machine (`ifAccepted`: only if the state still accepts it). */
  | { readonly kind: 'fire'; readonly event: Event; readonly ifAccepted: boolean }
  /** Our in-band RESUME found no answer on the kept socket: resume by RES datagram. */
  | { readonly kind: 'resume_by_datagram' }
  /** Our in-band SUSPEND found no answer: suspend by SUS datagram (the state is still SUS_SENT). */
  | { readonly kind: 'suspend_by_datagram' }
  /** Our SUS datagram, if still out, is answered already (the peer drained first): its SUS_ACK will be stale. */
  | { readonly kind: 'forget_sus' }
  /** Our suspend is acknowledged (the peer's DRAIN on the socket): count it. */
  | { readonly kind: 'suspend_counted' }
  /** Our resume dials (again, when the failed dial was an earlier exchange's), if it still may ({@link DataSlots.mayDialResume}, decided in its turn). */
  | { readonly kind: 'dial_resume' }
  /** Dial a data socket (our resume's, or the control-channel open's). */
  | DialCommand
  /** Slot `slot` (a dial the acceptor answered, or a HELLO we answered) carries the connection: set `keys` on it, then attach it at the peer's stated offsets (then it reads what came after the HELLO). */
  | { readonly kind: 'attach'; readonly slot: number; readonly keys: SocketKeys | undefined; readonly received: number; readonly limit: number }
  /** `slot`, kept after a suspend, carries the stream on again: its frames are the carrying socket's, sending allowed again. */
  | { readonly kind: 'reuse'; readonly slot: number }
  /** Hand `event` to the table on a later turn (a drain with no live socket to drain is over then). */
  | { readonly kind: 'fire_later'; readonly event: Event }
  /** Slot `slot`, a socket the redirector handed us after the peer's HELLO, answers it: send `frame` (HELLO_ACK) on it; its `attach` follows. */
  | { readonly kind: 'accept'; readonly slot: number; readonly frame: Frame }
  /** The peer resumes on the kept socket: our own resume retry stops, the resume is timed from now. */
  | { readonly kind: 'peer_resumes' }
  /**
   * The peer suspends in-band on the carrying socket: `recv_sus` and the end of our drain, once
   * nothing else is being applied (the core takes it at once outside a row; inside one it comes
   * out, and the adapter hands it back as `ConnectionCore.peerSuspends` on a later microtask).
   */
  | { readonly kind: 'peer_suspends'; readonly slot: number }
  /** The connection lost its carrying socket while ESTABLISHED: it resumes by itself. */
  | { readonly kind: 'auto_resume' }
  /** A drain ended: listeners waiting for it judge again. */
  | { readonly kind: 'drained' }
  /** For the log. */
  | { readonly kind: 'log'; readonly level: 'debug' | 'info'; readonly event: string; readonly fields: Record<string, unknown> };

/** A dial asked of the adapter, until its socket exists: what its HELLO will say. */
interface AskedDial {
  readonly kind: 'open' | 'resume';
  readonly challenge: Buffer;
  readonly target: PeerLocator | undefined;
}

/** A dial that waits for its HELLO_ACK. */
interface PendingDial {
  readonly kind: 'open' | 'resume';
  readonly nonce: Buffer;
  readonly target: PeerLocator | undefined;
}

/** What the acceptor's answer to our HELLO comes to (see {@link DataSlots.dialAnswer}). */
export type DialAnswer =
  /** Not the answer of a dial still waiting (a frame after a failure): nothing. */
  | { readonly kind: 'ignore' }
  /** A refusal or a bad answer: the dial failed ({@link DataSlots.dialFailed} with `err`). */
  | { readonly kind: 'fail'; readonly err: FerryError }
  /** Proven, but no longer wanted (another socket was adopted, or a suspend began): close it. */
  | { readonly kind: 'close' }
  /** Adopt it: set `keys` on it, then attach it at the peer's stated offsets. */
  | { readonly kind: 'attach'; readonly keys: SocketKeys | undefined; readonly received: number; readonly limit: number };

/** What a peer's HELLO on a socket the redirector handed us comes to. */
export type HelloVerdict =
  /** Answer it ({@link DataSlots.answerHello}). */
  | { readonly kind: 'answer' }
  /** Held until the peer's proof verifies (a HELLO parked earlier is closed). */
  | { readonly kind: 'park' };

/** The answer to a HELLO: send `frame` (HELLO_ACK) on new slot `slot`, set `keys` on it, attach it at the peer's stated offsets. */
export interface HelloAnswer {
  readonly slot: number;
  readonly frame: Frame;
  readonly keys: SocketKeys | undefined;
  readonly received: number;
  readonly limit: number;
}

/** The data socket slots of one connection end and their rules. */
export class DataSlots {
  /** The slot carrying the connection. */
  data: number | undefined;
  /** Slots draining (our DRAIN or in-band SUSPEND out, the peer's awaited). */
  readonly draining = new Set<number>();
  /**
   * The data socket a suspend drained, kept for a resume on it: both ends sent DRAIN on it and
   * received the other's, so the session is quiet in both directions (core/kept-socket.ts).
   */
  private readonly keptSocket: KeptSocket;
  /** The socket our in-band SUSPEND went out on, while its answer (the peer's DRAIN) is awaited. */
  inbandSus: number | undefined;
  /** A socket carried the connection once (a checkpoint's end had one at its source). */
  hadSocket = false;
  /**
   * The outstanding dial (its slot): an answer is taken only while the one it answers is still
   * the outstanding one, so a late callback of an earlier attempt cannot act.
   */
  dialing: number | undefined;
  /** A resume exchange acknowledged while {@link dialing} was an earlier one's: dial again if that fails. */
  private redial = false;
  /** Dials asked of the adapter whose socket does not exist yet, by slot. */
  private readonly asked = new Map<number, AskedDial>();
  /** Dials waiting for their HELLO_ACK, by slot. */
  private readonly dials = new Map<number, PendingDial>();
  /** The slot the small DATA of a delayed ACK came on (its fallback if no socket carries the connection). */
  private ackOn: number | undefined;
  /** A resume HELLO held for the peer's proof, and the slot of its socket (the adapter's, held unread). */
  private parked: { hello: Hello; slot: number } | undefined;

  constructor(
    private readonly core: ConnectionCore,
    private readonly crypto: HelloCrypto,
    private readonly random: (n: number) => Buffer,
  ) {
    this.keptSocket = new KeptSocket(core);
  }

  /** A new slot number (a socket about to exist), from the core's one sequence of slots. */
  next(): number {
    return this.core.newSlot();
  }

  // ------------------------------------------------------------------ the kept socket

  /** The kept slot (core/kept-socket.ts). */
  get kept(): number | undefined {
    return this.keptSocket.slot;
  }

  /** The kept slot our outstanding RESUME offered. */
  get offered(): number | undefined {
    return this.keptSocket.offered;
  }

  /** Close the kept socket, if any (the next resume dials). */
  dropKept(why: string): SlotCommand[] {
    return this.keptSocket.drop(why, []);
  }

  /** Our resume goes in-band: RESUME on the kept socket (core/kept-socket.ts `KeptSocket.offer`). */
  offerResume(): SlotCommand[] {
    return this.keptSocket.offer();
  }

  /** A frame on the kept socket (core/kept-socket.ts `KeptSocket.frame`). */
  keptFrame(slot: number, type: number, moving: boolean): SlotCommand[] {
    return this.keptSocket.frame(slot, type, moving);
  }

  /** Deadline `kept_socket` of `slot` passed. */
  keptExpired(slot: number): SlotCommand[] {
    return this.keptSocket.expired(slot);
  }

  /** Deadline `resume_offer` of `slot` passed. */
  offerExpired(slot: number): SlotCommand[] {
    return this.keptSocket.offerExpired(slot);
  }

  /**
   * `reuse_socket`: the slot both ends agreed to carry the stream on again (the kept one), or
   * undefined. The carrying socket, if any, is closed first; `answer`: ours is the acceptance
   * (RESUME_ACK goes before anything else we send on it: the peer switches on it).
   */
  takeReuse(): { slot: number; replaced: SlotCommand[]; answer: boolean } | undefined {
    const r = this.keptSocket.takeReuse();
    if (!r) return undefined;
    const replaced = this.dropSocket();
    this.data = r.slot;
    return { slot: r.slot, replaced, answer: r.answer };
  }

  // ------------------------------------------------------------------ drains

  /**
   * Our in-band SUSPEND may go on the carrying socket (`open` per the adapter): it is our DRAIN
   * too, and the peer's DRAIN answers it within DRAIN_TIMEOUT_MS. Returns the slot it goes on;
   * the socket no longer carries the connection.
   */
  suspendInband(): number | undefined {
    const slot = this.data;
    this.data = undefined;
    return slot;
  }

  /** The in-band SUSPEND on `slot` went out (or the socket is still up): its drain is awaited. */
  suspendSent(slot: number): SlotCommand[] {
    this.inbandSus = slot;
    this.draining.add(slot);
    return [{ kind: 'deadline', name: 'drain', slot, ms: limit('DRAIN_TIMEOUT_MS') }];
  }

  /**
   * The `drain` action: the carrying socket (`open` per the adapter) sends our DRAIN and waits
   * for the peer's; no TCP FIN, so the socket may be kept for the resume. Without a live socket
   * the drain is over at once (`drained` on a later turn: undefined returned).
   */
  drain(open: boolean): SlotCommand[] | undefined {
    const slot = this.data;
    this.data = undefined;
    if (slot === undefined || !open) return undefined;
    this.draining.add(slot);
    return [
      { kind: 'send', slot, frame: this.core.flow.drain() },
      { kind: 'deadline', name: 'drain', slot, ms: limit('DRAIN_TIMEOUT_MS') },
    ];
  }

  /**
   * A drain of `slot` ended: `peerDrained` when the peer's DRAIN came (then, still `open`, the
   * socket may be kept), else the socket closed or DRAIN_TIMEOUT_MS passed. An unanswered in-band
   * SUSPEND falls back to the SUS datagram.
   */
  drainEnded(slot: number, peerDrained: boolean, open: boolean, moving: boolean): SlotCommand[] {
    if (!this.draining.delete(slot)) return [];
    const out: SlotCommand[] = [{ kind: 'clear', name: 'drain', slot }];
    if (slot === this.inbandSus) {
      // Our in-band SUSPEND went unanswered (the socket died, or no DRAIN in DRAIN_TIMEOUT_MS):
      // suspend over the control channel instead, which never waits for the peer past its tries.
      this.inbandSus = undefined;
      out.push({ kind: 'close', slot });
      if (this.core.state === 'SUS_SENT') out.push({ kind: 'suspend_by_datagram' });
      return out;
    }
    if (keepsDrained(peerDrained, open, moving, this.core.state)) this.keptSocket.keep(slot, out);
    else out.push({ kind: 'close', slot });
    out.push({ kind: 'fire', event: 'drained', ifAccepted: true }, { kind: 'drained' });
    return out;
  }

  /** Deadline `drain` of `slot` passed. */
  drainExpired(slot: number, open: boolean, moving: boolean): SlotCommand[] {
    return this.draining.has(slot) ? this.drainEnded(slot, false, open, moving) : [];
  }

  /**
   * The state went `from` → `to`: a resume HELLO held for a proof is dropped when the resume is
   * over, a kept socket the new state does not keep is dropped (kept-socket.ts `keepsSocket`), and
   * leaving SUS_SENT ends the wait for our in-band SUSPEND's answer.
   */
  transition(from: State, to: State): SlotCommand[] {
    const out: SlotCommand[] = [];
    if (!(to === 'RES_SENT' || to === 'RES_ACKED')) this.dropParked(out);
    this.keptSocket.transition(from, to, out);
    if (from === 'SUS_SENT') this.inbandSus = undefined;
    return out;
  }

  /**
   * The peer's DRAIN or SUSPEND on `slot` (after the data path took its final ack): what it comes
   * to (core/data.ts `drainVerdict`). `open`: whether the socket is still up.
   */
  peerDrain(slot: number, type: number, open: boolean, moving: boolean): SlotCommand[] {
    const verdict: DrainVerdict = drainVerdict(type, slot === this.inbandSus, slot === this.data, this.core.state, moving);
    const out: SlotCommand[] = [];
    switch (verdict) {
      case 'suspend_acked':
        this.inbandSus = undefined;
        this.draining.delete(slot);
        out.push({ kind: 'clear', name: 'drain', slot });
        this.keptSocket.keep(slot, out);
        out.push({ kind: 'fire', event: 'recv_sus_ack', ifAccepted: false }, { kind: 'suspend_counted' });
        return out;
      case 'peer_suspends':
        return [{ kind: 'peer_suspends', slot }];
      case 'answer_drain':
        this.data = undefined;
        out.push({ kind: 'send', slot, frame: this.core.flow.drain() });
        this.keptSocket.keep(slot, out);
        // Suspended now; the SUS_ACK, when it comes, is stale (no longer the outstanding SUS).
        out.push({ kind: 'forget_sus' }, { kind: 'fire', event: 'recv_sus_ack', ifAccepted: false }, { kind: 'suspend_counted' });
        return out;
      case 'socket_lost':
        this.data = undefined;
        // Lost under a live connection, as by a socket close (closed()): it recovers by itself,
        // whatever an earlier suspend() said (the connection has been resumed since).
        if (this.core.state === 'ESTABLISHED') out.push({ kind: 'auto_resume' });
        out.push({ kind: 'close', slot }, { kind: 'fire', event: 'socket_lost', ifAccepted: true });
        return out;
      case 'drain_done':
        return this.drainEnded(slot, true, open, moving);
    }
  }

  /**
   * The peer's in-band SUSPEND, on its turn (`peer_suspends`): still the carrying socket of an
   * ESTABLISHED connection not being moved, `recv_sus` (our DRAIN answers it) and our drain then
   * ends at once, the socket kept. Returns whether it applies.
   */
  peerSuspendsNow(slot: number, moving: boolean): boolean {
    return slot === this.data && this.core.state === 'ESTABLISHED' && !moving;
  }

  // ------------------------------------------------------------------ closes

  /** `slot` closed under us (`err`: why): what that comes to. */
  closed(slot: number, err: FerryError | undefined, open: boolean, moving: boolean): SlotCommand[] {
    if (this.draining.has(slot)) return this.drainEnded(slot, false, open, moving);
    const state = this.core.state;
    const out: SlotCommand[] = [];
    if (this.keptSocket.closed(slot, err, out)) return out;
    if (slot !== this.data) return [];
    this.data = undefined;
    out.push({ kind: 'log', level: 'info', event: 'data_socket_lost', fields: { code: err?.code, state } });
    if (state === 'ESTABLISHED') out.push({ kind: 'auto_resume' });
    out.push({ kind: 'fire', event: 'socket_lost', ifAccepted: true });
    return out;
  }

  /** The slots a network cut would take: the carrying one and the kept one, if any. */
  live(): number[] {
    return [this.data, this.kept].filter((s): s is number => s !== undefined);
  }

  /** `drop_socket`: the carrying socket closes (a dial still out is no longer awaited). */
  dropSocket(): SlotCommand[] {
    const slot = this.data;
    this.data = undefined;
    this.dialing = undefined;
    return slot === undefined ? [] : [{ kind: 'close', slot }];
  }

  /**
   * The connection ended: every slot closes (the carrying one, the dials still waiting for their
   * HELLO_ACK, the draining ones, the kept one, one agreed for a reuse, a parked HELLO's).
   */
  ended(): SlotCommand[] {
    const out = this.dropSocket();
    for (const slot of [...this.dials.keys()]) out.push(...this.dialFailed(slot, undefined));
    for (const slot of this.draining) out.push({ kind: 'close', slot });
    this.draining.clear();
    this.asked.clear();
    this.keptSocket.ended(out);
    this.dropParked(out);
    return out;
  }

  // ------------------------------------------------------------------ ACKs

  /** What arrived on `slot` is acknowledged as `step` says: remember where, for a delayed ACK. */
  ackArranged(slot: number, step: AckStep): void {
    if (step === 'delay') this.ackOn = slot;
  }

  /** Deadline `ack` passed: the delayed ACK goes on the carrying socket (a resume may have replaced the one the DATA came on), else on that one. */
  ackTarget(): number | undefined {
    const to = this.data ?? this.ackOn;
    this.ackOn = undefined;
    return to;
  }

  // ------------------------------------------------------------------ dials and HELLOs

  /**
   * Ask the adapter to dial a data socket to `to` as slot `slot` (a new one unless given: the
   * socket dialled ahead for it): `open`, the control-channel open's; `resume`, ours after a
   * resume, to `target`, echoing the peer's `challenge`. Its HELLO is built once the socket exists
   * ({@link dialStarted}).
   */
  askDial(kind: 'open' | 'resume', challenge: Buffer, target: PeerLocator | undefined, to: { ip: string; port: number }, slot = this.next()): DialCommand {
    this.asked.set(slot, { kind, challenge, target });
    return { kind: 'dial', slot, ip: to.ip, port: to.port };
  }

  /**
   * The adapter dialled slot `slot`: if it is a data socket we asked for, it is the outstanding
   * dial now, and its HELLO goes out (its HELLO_ACK deadline first). Nothing for another slot.
   */
  dialStarted(slot: number): SlotCommand[] {
    const a = this.asked.get(slot);
    if (!a) return [];
    this.asked.delete(slot);
    const d = this.dial(a.kind, a.challenge, a.target, slot);
    return [d.deadline, { kind: 'send', slot, frame: d.hello }];
  }

  /**
   * The adapter's dial of data socket `slot` threw (`err`, reported on a later turn): no socket,
   * no HELLO. The resume's socket is lost (`socket_lost`, if the state still takes it); the open's
   * is lost as a failed dial's (a connection ESTABLISHED resumes by itself).
   */
  dialThrew(slot: number, err: unknown): SlotCommand[] {
    const a = this.asked.get(slot);
    if (!a) return [];
    this.asked.delete(slot);
    const out: SlotCommand[] = [{ kind: 'log', level: 'info', event: 'dial_failed', fields: { detail: String(err) } }];
    if (a.kind === 'open' && this.core.state === 'ESTABLISHED') out.push({ kind: 'auto_resume' });
    out.push({ kind: 'fire', event: 'socket_lost', ifAccepted: true });
    return out;
  }

  /**
   * Dial a data socket (`open`: the control-channel open's; `resume`: ours after a resume, to
   * `target`, echoing the peer's `challenge`) as slot `slot` (a new one unless given): it is the
   * outstanding dial, and its HELLO (our received offset and window edge, a fresh nonce, the MAC)
   * must be answered within HELLO_TIMEOUT_MS.
   */
  dial(kind: 'open' | 'resume', challenge: Buffer, target: PeerLocator | undefined, slot = this.next()): { slot: number; hello: Frame; deadline: SlotCommand } {
    this.dialing = slot;
    const nonce = this.random(NONCE_BYTES);
    const c = this.core;
    const fields = { kind, connectionId: c.connectionId, dialerRole: c.role, dialerNonce: nonce, challenge, received: c.recv.received, limit: c.flow.announceEdge() };
    this.dials.set(slot, { kind, nonce, target });
    return { slot, hello: { type: FrameType.HELLO, ...fields, mac: this.crypto.helloMac(c.keys, fields) }, deadline: { kind: 'deadline', name: 'hello', slot, ms: limit('HELLO_TIMEOUT_MS') } };
  }

  /**
   * Whether this end dials the data socket after a resume: the lower AgentId, the client on a tie
   * (an agent connected to itself). Both ends know both ids, so exactly one of them dials.
   */
  get isDialer(): boolean {
    const c = this.core;
    return c.localAgent < c.peerAgent || (c.localAgent === c.peerAgent && c.role === 'client');
  }

  /**
   * Whether our resume dials now (`dial_if_dialer`, the dialer's side): not while a socket
   * carries the connection, and not while a dial of an earlier exchange is out. That one may
   * succeed (any proven socket will do), but if it fails (the peer refused it in the state it was
   * in then, e.g. SUSPENDED by a SUS that crossed the earlier RES), that failure is not this
   * exchange's: dial again then. Taken as this exchange's socket_lost, it left the dialer
   * SUSPENDED and the peer waiting in RES_SENT for a dial that never came.
   */
  mayDialResume(): boolean {
    if (this.data !== undefined) return false;
    if (this.dialing !== undefined) {
      this.redial = true;
      return false;
    }
    this.redial = false;
    return true;
  }

  /**
   * A frame on our dial `slot` (the acceptor's answer to our HELLO): what it comes to, in order
   * ({@link dialAnswer}): nothing, the dial failed, or its HELLO deadline cleared and the socket
   * closed (no longer wanted) or attached.
   */
  dialFrame(slot: number, f: Frame): SlotCommand[] {
    const a = this.dialAnswer(slot, f);
    if (a.kind === 'ignore') return [];
    if (a.kind === 'fail') return this.dialFailed(slot, a.err);
    const clear: SlotCommand = { kind: 'clear', name: 'hello', slot };
    if (a.kind === 'close') return [clear, { kind: 'close', slot }];
    return [clear, { kind: 'attach', slot, keys: a.keys, received: a.received, limit: a.limit }];
  }

  /** The frame that answers our HELLO on `slot`. */
  dialAnswer(slot: number, f: Frame): DialAnswer {
    const d = this.dials.get(slot);
    if (!d) return { kind: 'ignore' };
    if (f.type === FrameType.REJECT) return { kind: 'fail', err: errorFromWire(f.wireCode, `redirector: ${f.detail}`) };
    if (f.type !== FrameType.HELLO_ACK) return { kind: 'fail', err: new FerryError('FERRY_ERR_MALFORMED_FRAME', 'expected HELLO_ACK') };
    const keys = this.core.keys;
    const expect = this.crypto.helloAckMac(keys, { acceptorNonce: f.acceptorNonce, received: f.received, limit: f.limit }, d.nonce);
    if (keys && !equalBytes(expect, f.mac)) return { kind: 'fail', err: new FerryError('FERRY_ERR_BAD_MAC', 'HELLO_ACK MAC') };
    this.dials.delete(slot);
    if (this.dialing !== slot) return { kind: 'close' };
    this.dialing = undefined;
    // A suspend (the application's or a move's) that began while this resume dial was out
    // wins: the socket is not adopted. Adopted in SUS_SENT it stayed live through the move,
    // acknowledging bytes the checkpoint did not carry (found by the simulator, seed 83473).
    if (d.kind === 'resume' && this.core.state !== 'RES_SENT' && this.core.state !== 'RES_ACKED') return { kind: 'close' };
    // The acceptor answered our nonce under the connection key at this address: validated.
    if (d.target) this.core.path.dialAnswered(d.target);
    return { kind: 'attach', keys: keys && this.sessionKeys(keys, d.nonce, f.acceptorNonce), received: f.received, limit: f.limit };
  }

  /** Whether `slot` is a dial still waiting for its HELLO_ACK (its `hello` deadline is set). */
  isDialing(slot: number): boolean {
    return this.dials.has(slot);
  }

  /**
   * Our dial on `slot` failed (`err`: why; undefined when the connection ended): it closes; if it
   * was the outstanding one, a connection that was ESTABLISHED resumes by itself, and the resume
   * dials again if the failure was an earlier exchange's, or its socket is lost.
   */
  dialFailed(slot: number, err: FerryError | undefined): SlotCommand[] {
    if (!this.dials.delete(slot)) return [];
    const out: SlotCommand[] = [{ kind: 'clear', name: 'hello', slot }, { kind: 'close', slot }];
    if (this.dialing !== slot) return out;
    this.dialing = undefined;
    const state = this.core.state;
    out.push({ kind: 'log', level: 'info', event: 'dial_failed', fields: { code: err?.code, detail: err?.message } });
    // A connection that was established (the open's own dial) recovers by itself.
    if (state === 'ESTABLISHED') out.push({ kind: 'auto_resume' });
    if (this.redial && (state === 'RES_SENT' || state === 'RES_ACKED')) {
      out.push({ kind: 'log', level: 'info', event: 'redial', fields: { detail: "the failed dial was an earlier exchange's" } });
      out.push({ kind: 'dial_resume' });
      return out;
    }
    this.redial = false;
    out.push({ kind: 'fire', event: 'socket_lost', ifAccepted: true });
    return out;
  }

  /**
   * The peer's HELLO (its MAC checked first) on a socket the redirector handed us. Throws the
   * typed refusal (the redirector answers REJECT): an open HELLO only for a control-channel open's
   * server end that has no socket yet; a resume HELLO only while resuming, echoing a challenge of
   * ours. One that overtook the peer's proof we asked for is parked until it verifies.
   */
  hello(h: Hello): HelloVerdict {
    const c = this.core;
    const fields = { kind: h.kind, connectionId: h.connectionId, dialerRole: h.dialerRole, dialerNonce: h.dialerNonce, challenge: h.challenge, received: h.received, limit: h.limit };
    if (c.keys && !equalBytes(this.crypto.helloMac(c.keys, fields), h.mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'HELLO MAC');
    const state = c.state;
    if (h.kind === 'open') {
      const ok = !c.open.inband && c.role === 'server' && (state === 'CONNECT_ACKED' || (state === 'ESTABLISHED' && !this.hadSocket));
      if (!ok) throw new FerryError(rejectionFor(state, 'socket_ready'), `open HELLO in state ${state}`);
    } else {
      if (state !== 'RES_SENT' && state !== 'RES_ACKED') throw new FerryError(rejectionFor(state, 'socket_ready'), `resume HELLO in state ${state}`);
      // Path validation: the dialer must echo a challenge we issued in RES or RES_ACK.
      c.path.redeemChallenge(h.challenge);
      // We asked the peer's new location for a proof and its RES_ACK has not been verified yet (the
      // dial can overtake it): the MAC keys alone do not resume the connection. Hold the socket.
      if (c.path.awaitingProof) return { kind: 'park' };
    }
    return { kind: 'answer' };
  }

  /**
   * The peer's HELLO `h` on a socket the redirector handed us (from `remote`), which is slot
   * `slot` from now on ({@link hello} throws the refusal): answered, or held unread until
   * the peer's proof verifies (a HELLO held before is dropped, its socket closed).
   */
  handed(h: Hello, slot: number, remote: string | undefined): SlotCommand[] {
    if (this.hello(h).kind === 'answer') return this.answer(h, slot, remote);
    const out: SlotCommand[] = [];
    if (this.parked) out.push({ kind: 'close', slot: this.parked.slot });
    this.parked = { hello: h, slot };
    out.push({ kind: 'log', level: 'info', event: 'resume_hello_parked', fields: { remote } });
    return out;
  }

  /**
   * The HELLO held for the peer's proof, now that the proof verified: answered if the state still
   * resumes, else its socket closes. `remote`: where its socket comes from now.
   */
  unpark(remote: (slot: number) => string | undefined): SlotCommand[] {
    const p = this.parked;
    this.parked = undefined;
    if (!p) return [];
    if (this.core.state === 'RES_SENT' || this.core.state === 'RES_ACKED') return this.answer(p.hello, p.slot, remote(p.slot));
    return [{ kind: 'close', slot: p.slot }];
  }

  /** Answer HELLO `h` on `slot`: the carrying socket closes ({@link dropSocket}), HELLO_ACK goes on `slot`, which is attached. */
  private answer(h: Hello, slot: number, remote: string | undefined): SlotCommand[] {
    const out = this.dropSocket();
    const a = this.answerHello(h, remote, slot);
    out.push({ kind: 'accept', slot, frame: a.frame }, { kind: 'attach', slot, keys: a.keys, received: a.received, limit: a.limit });
    return out;
  }

  /**
   * Answer HELLO `h` (from `remote`) on slot `slot` (a new one unless given): HELLO_ACK with our
   * offsets, a fresh nonce and the MAC over the peer's. A resume HELLO (its challenge redeemed)
   * proves a candidate address at `remote`.
   */
  answerHello(h: Hello, remote: string | undefined, slot = this.next()): HelloAnswer {
    const c = this.core;
    const acceptorNonce = this.random(NONCE_BYTES);
    const ackFields = { acceptorNonce, received: c.recv.received, limit: c.flow.announceEdge() };
    const frame: Frame = { type: FrameType.HELLO_ACK, ...ackFields, mac: this.crypto.helloAckMac(c.keys, ackFields, h.dialerNonce) };
    const keys = c.keys && this.sessionKeys(c.keys, h.dialerNonce, acceptorNonce);
    if (h.kind === 'resume') c.path.helloAccepted(remote);
    return { slot, keys, frame, received: h.received, limit: h.limit };
  }

  /** Whether a HELLO is held for the peer's proof. */
  get holdsHello(): boolean {
    return this.parked !== undefined;
  }

  /** Forget a resume HELLO held for a proof (the resume it belonged to is over, or its proof was refused); its socket closes. */
  dropParked(out: SlotCommand[] = []): SlotCommand[] {
    this.core.path.stopAwaiting();
    if (this.parked) out.push({ kind: 'close', slot: this.parked.slot });
    this.parked = undefined;
    return out;
  }

  private sessionKeys(keys: ConnectionKeys, dialerNonce: Buffer, acceptorNonce: Buffer): SocketKeys {
    const s = deriveSessionKeys(keys.master, dialerNonce, acceptorNonce);
    const client = this.core.role === 'client';
    return { send: client ? s.c2s : s.s2c, receive: client ? s.s2c : s.c2s };
  }

  // ------------------------------------------------------------------ attach

  /** `slot` carries the connection from now on (after `socket_ready` the endpoint sends the first ACK and pumps, if it still does). */
  attached(slot: number): void {
    this.data = slot;
    this.hadSocket = true;
  }
}
