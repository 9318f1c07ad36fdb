/**
 * The data path's rules of one connection end, sans I/O: what a received DATA, ACK, FIN, DRAIN or
 * SUSPEND comes to, when and with what offsets we acknowledge (the delayed ACK, PROTOCOL.md §7.1),
 * what a new data socket starts from (the rewind to the offset the peer states), how much credit
 * we announce within the host's receive budget, and the FIN's turn. The bytes themselves stay in
 * {@link SendBuffer} and {@link ReceiveBuffer}; the sockets are named by slot (`slots.ts`), and the adapter
 * (`adapters/socket-slots.ts`) owns them, the write loop and its coalescing, and sends the frames
 * this returns on the slot they belong to.
 *
 * Exactly-once rests on two rules kept here and in the buffers: a new socket rewinds the sender to
 * the offset the peer says it received (never past what it acknowledged), and the receiver drops
 * what lies below its received offset.
 */
import { limit } from '../../util/index.js';
import { FrameType, type Ack, type Drain, type Fin, type Suspend } from '../../wire/index.js';
import type { ReceiveBuffer, SendBuffer } from '../data-path.js';
import type { State } from '../state-machine.js';
import type { TimerTable } from './timers.js';

/** Unacknowledged bytes at which the ACK goes this turn (read once: asked for every DATA piece). */
const ACK_NOW_BYTES = limit('ACK_NOW_BYTES');

/** This connection's charge in the host's receive budget (receive-budget.ts `ReceiveAccount`). */
export interface BudgetAccount {
  /** Credit the connection keeps whatever the budget says. */
  readonly floor: number;
  /** Bytes charged now. */
  readonly charge: number;
  /** Bytes the budget can still grant it (may be negative when squeezed). */
  room(): number;
  set(bytes: number): void;
  close(): void;
}

/** What the adapter arranges for the ACK of what just arrived. */
export type AckStep =
  /** Nothing: an ACK already pending (this turn's, or the delayed one) covers it. */
  | 'none'
  /**
   * Little arrived and the peer has credit left: arm the delayed ACK, a deadline of the connection
   * ACK_DELAY_MS away (core/data-inputs.ts). When it expires the ACK goes on the socket carrying
   * the connection, else on this one.
   */
  | 'delay'
  /** At the end of this turn, on this socket (a FIN, a duplicate, bulk, a peer short of credit). */
  | 'turn';

/** What a received DRAIN or SUSPEND comes to (the peer sends nothing more on that socket). */
export type DrainVerdict =
  /**
   * It answers our in-band SUSPEND (the peer's DRAIN, or its own crossing SUSPEND): both DRAINs
   * are on the socket, quiet both ways; keep it. That is our suspend acknowledged (`recv_sus_ack`).
   */
  | 'suspend_acked'
  /**
   * The peer suspends in-band on the live socket: as a SUS (`recv_sus`), acknowledged by our DRAIN,
   * and its SUSPEND was its DRAIN too, so our drain ends at once with the socket kept.
   */
  | 'peer_suspends'
  /**
   * Our SUS reached the peer and it drained first: answer with our own DRAIN (our final ack on
   * this session) and keep the socket for the resume. The peer drains only once it has our SUS (or
   * is suspending itself): its DRAIN is as good as the SUS_ACK, usually still behind it.
   */
  | 'answer_drain'
  /** The peer suspended on the live socket without our SUS reaching us (it never waits for a moving peer): the socket is lost. */
  | 'socket_lost'
  /** The peer's half of a drain we began (or of a socket no longer carrying the connection). */
  | 'drain_done';

/**
 * The verdict on the peer's DRAIN or SUSPEND (`type`), on our in-band SUSPEND's socket
 * (`onInbandSuspend`) or on the socket carrying the connection (`onCurrent`), in `state`.
 */
export function drainVerdict(type: number, onInbandSuspend: boolean, onCurrent: boolean, state: State, moving: boolean): DrainVerdict {
  if (onInbandSuspend && state === 'SUS_SENT') return 'suspend_acked';
  if (!onCurrent) return 'drain_done';
  if (type === FrameType.SUSPEND && state === 'ESTABLISHED' && !moving) return 'peer_suspends';
  if (state === 'SUS_SENT' && !moving) return 'answer_drain';
  return 'socket_lost';
}

/** Whether the pump may write DATA and FIN: only on an established connection's live socket. */
export function mayPump(state: State): boolean {
  return state === 'ESTABLISHED';
}

/** A new data socket's rewind: bytes to be sent again, and whether its stated offset freed room. */
export interface Rewind {
  readonly replayed: number;
  readonly room: boolean;
}

/** The offsets, acknowledgements and credit of one connection end. */
export class DataFlow {
  /** The `received` we last stated to the peer on the current socket (ACK, DRAIN, SUSPEND). */
  private announced = -1;
  /** The window edge our last ACK (or the socket's first words) announced. */
  private advertised = 0;
  /**
   * The window this connection offers beyond what was delivered: with a receive budget it starts
   * at the floor and doubles each time the peer used more than half of what it had (or sent a
   * quarter of it between two ACKs), up to the whole window, so an idle connection holds no more
   * than the floor of the budget.
   */
  private credit: number;
  /** Bytes read from this end that the reader still holds (its stream buffer): still charged. */
  private held = 0;
  private account: BudgetAccount | undefined;
  /** An ACK at the end of this turn is pending (the adapter deferred it: `ack_at_turn_end`). */
  private ackTurn = false;
  /** The connection closed: nothing more can arrive; only what is left unread stays charged. */
  private closed = false;

  constructor(
    readonly send: SendBuffer,
    readonly recv: ReceiveBuffer,
    private readonly timers: TimerTable,
  ) {
    this.credit = recv.window;
  }

  /** Charge this connection to `account` (the host's receive budget); credit starts at its floor. */
  useBudget(account: BudgetAccount | undefined): void {
    this.account = account;
    this.credit = Math.min(this.recv.window, account ? account.floor : this.recv.window);
  }

  // ------------------------------------------------------------------ received frames

  /**
   * A DATA frame: the bytes it delivers, 0 when it brings nothing new (a duplicate; what lies
   * below the receive offset is dropped, never delivered twice).
   */
  deliver(offset: number, payload: Buffer): number {
    return this.recv.onData(offset, payload);
  }

  /**
   * When to acknowledge a DATA frame that delivered `delivered` bytes. Little of it, with room left
   * in the peer's window: after ACK_DELAY_MS, one ACK for everything that came meanwhile, so
   * request/response traffic does not pay a sealed ACK frame, a write and a wake-up of the peer per
   * exchange (that cost, not bandwidth, bounded pipelined traffic through a tunnel). A duplicate
   * (its sender is behind on what we have), ACK_NOW_BYTES unacknowledged or a peer down to half
   * its credit: at the end of this turn, so bulk transfers and window growth do not wait.
   */
  dataAck(delivered: number): AckStep {
    return this.ackStep(delivered === 0);
  }

  /** A FIN: the peer's stream ends at `offset` (checked against what arrived); acknowledged this turn. */
  fin(offset: number): AckStep {
    this.recv.onFin(offset);
    return this.ackStep(true);
  }

  private ackStep(now: boolean): AckStep {
    const due = now || this.recv.received - this.announced >= ACK_NOW_BYTES || this.recv.edge - this.recv.received < this.credit / 2;
    if (!due) return this.ackTurn || this.timers.has('ack') ? 'none' : 'delay';
    if (this.ackTurn) return 'none';
    this.ackTurn = true;
    return 'turn';
  }

  /** Whether a delayed ACK is waiting for its deadline (DATA we send does not carry it: it goes alone, then). */
  get ackDelayed(): boolean {
    return this.timers.has('ack');
  }

  /**
   * The turn of a pending ACK ended: returns whether the adapter should still send {@link ack}
   * (on its socket, if that still takes frames). Not when an ACK went during the turn: a window
   * reopened by a read ({@link reopenDue}) already said everything, and a second ACK was a second
   * sealed frame, write and wake-up of the peer per DATA frame of a bulk transfer.
   */
  turnEnded(): boolean {
    const due = this.ackTurn;
    this.ackTurn = false;
    return due;
  }

  /** The peer's ACK: returns whether it freed room in the send buffer (a writer waits for it). */
  acked(received: number, edge: number): boolean {
    return this.send.onAck(received, edge) > 0;
  }

  /** The peer's DRAIN or SUSPEND: its final ack on that socket frees what it received. */
  peerDrained(received: number): void {
    this.send.onAck(received, this.send.peerLimit);
  }

  // ------------------------------------------------------------------ what we send

  /**
   * The ACK to send now: what we received and the edge we announce. It covers the delayed ACK
   * (cancelled). The adapter sends it only on a socket that still takes frames from us: once our
   * DRAIN or SUSPEND is out, what arrived after it is restated on the next socket or the reuse.
   */
  ack(): Ack {
    this.timers.cancel('ack');
    // It covers the ACK pending at the end of this turn.
    this.ackTurn = false;
    const edge = this.announceEdge();
    this.advertised = edge;
    this.announced = this.recv.received;
    return { type: FrameType.ACK, received: this.recv.received, limit: edge };
  }

  /** Our DRAIN: we send nothing more on the socket; its `received` is our final ack there. */
  drain(): Drain {
    this.announced = this.recv.received;
    return { type: FrameType.DRAIN, received: this.recv.received };
  }

  /** Our in-band SUSPEND, which is our DRAIN too. */
  suspend(): Suspend {
    this.announced = this.recv.received;
    return { type: FrameType.SUSPEND, received: this.recv.received };
  }

  /** The FIN, once every byte before it went out (marked sent), or undefined. */
  finDue(): Fin | undefined {
    if (!this.send.finDue) return undefined;
    this.send.finSent = true;
    return { type: FrameType.FIN, offset: this.send.fin! };
  }

  // ------------------------------------------------------------------ new sockets

  /**
   * A data socket starts carrying the connection: the peer stated it received `peerReceived` and
   * lets us send up to `peerLimit` (HELLO / HELLO_ACK). The sender rewinds to there: what was in
   * flight on the old socket is sent again, and never more than once delivered. The stated offset
   * may acknowledge bytes no ACK had: `room` then, and a write() waiting for room (backpressure)
   * must be released, or it would wait for ever (found by the simulator).
   */
  rewind(peerReceived: number, peerLimit: number): Rewind {
    const before = this.send.sent;
    const ackedBefore = this.send.acked;
    this.send.rewind(peerReceived, peerLimit);
    return { replayed: Math.max(0, before - this.send.sent), room: this.send.acked > ackedBefore };
  }

  /**
   * A kept socket carries the stream on: rewind to what the peer last acknowledged (its DRAIN at
   * least). Returns the bytes to be sent again.
   */
  rewindToAcked(): number {
    return this.rewind(this.send.acked, this.send.peerLimit).replayed;
  }

  /** The socket's first words announced our edge (HELLO, HELLO_ACK, the open's window). */
  advertiseEdge(): void {
    this.advertised = this.recv.edge;
  }

  // ------------------------------------------------------------------ receive budget

  /** The edge this connection may announce now: its credit, as far as the budget allows. */
  private grantable(): number {
    const a = this.account;
    if (!a) return this.recv.limit;
    const consumed = this.recv.delivered - this.held;
    return Math.max(this.recv.edge, Math.min(this.recv.delivered + this.credit, consumed + a.charge + Math.max(0, a.room())));
  }

  /** Announce as far as the window and the budget allow (the edge never goes back). */
  announceEdge(): number {
    // The peer used more than half of what it had, or sent a quarter of its credit since our last
    // ACK: it has use for more. (The second: a receiver that keeps up reopens the window every
    // quarter credit, so the peer never got below half, and the credit of a bulk transfer stayed
    // at 256 KiB: an ACK every 64 KiB.)
    if (this.recv.edge - this.recv.received < this.credit / 2 || (this.announced >= 0 && this.recv.received - this.announced >= this.credit / 4)) {
      this.credit = Math.min(this.recv.window, this.credit * 2);
    }
    this.settleBudget();
    const edge = this.recv.announce(this.grantable());
    this.settleBudget();
    return edge;
  }

  /**
   * Charge what this connection holds and lets its peer send: from what the reader consumed up
   * to the announced edge, at least the floor while open. Once closed nothing more can arrive:
   * it is charged what is left unread, and gives its charge back once that is read.
   */
  settleBudget(): void {
    const a = this.account;
    if (!a) return;
    const consumed = this.recv.delivered - this.held;
    if (this.closed) {
      const left = this.recv.received - consumed;
      if (left > 0) a.set(left);
      else this.releaseBudget();
      return;
    }
    a.set(Math.max(a.floor, this.recv.edge - consumed));
  }

  /** Give this connection's charge back: its bytes left this host (moved, or dropped unread). */
  releaseBudget(): void {
    this.account?.close();
    this.account = undefined;
  }

  /** The connection closed: from now on only what is left unread stays charged. */
  close(): void {
    this.closed = true;
  }

  /** Take up to `max` received bytes for the reader, which holds them until {@link hold} says otherwise. */
  read(max: number): Buffer | undefined {
    const b = this.recv.take(max);
    if (!b) return b;
    this.held += b.length;
    this.settleBudget();
    return b;
  }

  /** The reader holds `bytes` of what it read: they stay charged. Returns whether that changed. */
  hold(bytes: number): boolean {
    if (bytes === this.held) return false;
    this.held = bytes;
    this.settleBudget();
    return true;
  }

  /**
   * Whether to reopen the peer's window now (an {@link ack}): it can grow by a quarter of the credit
   * (at most a quarter window), or, once the reader has taken everything that arrived, by more than
   * the peer has left. Not at every read of a peer short of window: a bulk sender that the
   * receiver cannot keep up with always is, and an ACK per read (64 KiB) cost the receiver a
   * sealed frame and a write, and the sender a wake-up, per DATA frame. While bytes wait for the
   * reader, its next read asks again (and reading them all grants the whole credit), so the peer
   * still never waits for an ACK that does not come.
   */
  reopenDue(): boolean {
    const gain = this.grantable() - this.advertised;
    if (gain <= 0) return false;
    return gain >= Math.min(this.recv.window, this.credit) / 4 || (this.recv.queued === 0 && gain >= this.advertised - this.recv.received);
  }
}
