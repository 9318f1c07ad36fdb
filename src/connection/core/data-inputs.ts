/**
 * The data path's inputs of one connection end, sans I/O: what a frame on the socket carrying the
 * connection, a new carrying socket (the attach), the kept socket carrying the stream on again
 * (the reuse), the end of a turn, the delayed ACK's deadline, the peer's in-band SUSPEND on its
 * turn and the reader come to. Each returns steps for the core's queue (`connection-core.ts`):
 * commands the adapter carries out (tell listeners, our ACK on slot S, pump, carry slot S…),
 * events for the table, and decisions that must see the state as it is when their turn comes (a
 * DATA frame's ACK is decided after the reader, told that bytes are readable, took what it wanted;
 * an attach's first ACK after its `socket_ready` was applied).
 *
 * The rules themselves stay where they were: offsets, ACK timing and credit in `data.ts`
 * ({@link DataFlow}), the slots' roles and the peer's DRAIN or SUSPEND in `slots.ts`.
 */
import { FerryError, limit } from '../../util/index.js';
import { FrameType, type Frame } from '../../wire/index.js';
import type { ConnectionCore, CoreCommand, QueuedStep } from './connection-core.js';
import type { AckStep } from './data.js';

/** How long the delayed ACK waits (read once: asked for at every one). */
const ACK_DELAY_MS = limit('ACK_DELAY_MS');

/** What the endpoint counts of one connection end, for metrics (kept by the core, read by the host and tests). */
export interface ConnectionStats {
  /** Suspends acknowledged, and how long the last one took (ms). */
  suspends: number;
  lastSuspendMs: number;
  /** Resumes that reached ESTABLISHED, and how long the last one took (ms). */
  resumes: number;
  lastResumeMs: number;
  /** Data sockets attached (each a new TCP connection). */
  sockets: number;
  /** Resumes that carried the stream on on the socket kept after a suspend. */
  reused: number;
  /** Bytes sent again after a rewind to the peer's stated or acknowledged offset. */
  bytesReplayed: number;
}

/** Our ACK on `slot` (built by {@link DataFlow.ack} when it goes), if that socket still takes frames from us. */
export type SendAck = Extract<CoreCommand, { readonly kind: 'send_ack' }>;

/** How the ACK of arrived DATA goes: the delayed ACK's deadline, or at the end of the turn. */
export type DataAckCommand = Extract<CoreCommand, { readonly kind: 'deadline' | 'ack_at_turn_end' }>;

const ROOM: CoreCommand = { kind: 'notify', event: 'room' };
const READABLE: CoreCommand = { kind: 'notify', event: 'readable' };
const PUMP: CoreCommand = { kind: 'pump' };

/** The data path's inputs of one connection end (part of {@link ConnectionCore}). */
export class DataInputs {
  readonly stats: ConnectionStats = { suspends: 0, resumes: 0, sockets: 0, reused: 0, bytesReplayed: 0, lastSuspendMs: 0, lastResumeMs: 0 };

  constructor(private readonly core: ConnectionCore) {}

  /**
   * Frame `f` on `slot`, the socket carrying the connection. What it delivers, acknowledges or
   * ends is taken at once (a bad offset or a frame that has no place here throws the typed error:
   * the socket ends with it); the rest is queued. DATA: the reader is told, then its ACK is
   * arranged (core/data.ts `dataAck`). ACK: room for the writer, and the pump. FIN: its ACK this
   * turn, the reader told. The peer's DRAIN or SUSPEND: its final ack frees room, then what it
   * comes to (core/slots.ts `peerDrain`, the socket's usability asked then).
   */
  frame(slot: number, f: Frame): QueuedStep[] {
    const { flow, slots, intent } = this.core;
    switch (f.type) {
      case FrameType.DATA: {
        const n = flow.deliver(f.offset, f.payload);
        const out: QueuedStep[] = n > 0 ? [READABLE] : [];
        out.push({ kind: 'decide', then: () => this.ackOf(slot, flow.dataAck(n)) });
        return out;
      }
      case FrameType.ACK:
        return flow.acked(f.received, f.limit) ? [ROOM, PUMP] : [PUMP];
      case FrameType.FIN:
        return [...this.ackOf(slot, flow.fin(f.offset)), READABLE];
      case FrameType.SUSPEND:
      case FrameType.DRAIN: {
        flow.peerDrained(f.received);
        const type = f.type;
        return [ROOM, { kind: 'decide', then: () => slots.peerDrain(slot, type, this.core.socketUsable(slot), intent.moving) }];
      }
      default:
        throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `unexpected frame type ${f.type} on an established socket`);
    }
  }

  /** The slot and the bytes delivered of the last {@link piece}, until {@link pieceAck}. */
  private pieceSlot = 0;
  private pieceDelivered = 0;

  /**
   * A DATA piece on `slot`, the carrying socket, on the core's fast path (ConnectionCore `data`):
   * what {@link frame} does with it, without the steps: delivered now (returns the bytes, 0 for a
   * duplicate), its ACK decided by {@link pieceAck} once the reader was told.
   */
  piece(slot: number, offset: number, payload: Buffer): number {
    const n = this.core.flow.deliver(offset, payload);
    this.pieceSlot = slot;
    this.pieceDelivered = n;
    return n;
  }

  /** The ACK of the last {@link piece}, decided now that the reader took what it wanted: at most one command. */
  pieceAck(): DataAckCommand[] {
    return this.ackOf(this.pieceSlot, this.core.flow.dataAck(this.pieceDelivered));
  }

  /**
   * How the ACK of what arrived on `slot` goes (core/data.ts `AckStep`): the delayed ACK's deadline
   * (a deadline of the connection; it goes on the carrying socket, else on this one), or at the end
   * of this turn on this socket, or nothing.
   */
  private ackOf(slot: number, step: AckStep): DataAckCommand[] {
    if (step === 'delay') {
      this.core.slots.ackArranged(slot, step);
      return [{ kind: 'deadline', name: 'ack', slot: 0, ms: ACK_DELAY_MS }];
    }
    return step === 'turn' ? [{ kind: 'ack_at_turn_end', slot }] : [];
  }

  /**
   * The turn in which an ACK on `slot` was arranged ended: it goes, unless an ACK went meanwhile
   * on the socket still carrying the connection (core/data.ts `turnEnded`).
   */
  turnEnded(slot: number): QueuedStep[] {
    return this.core.flow.turnEnded() || slot !== this.core.slots.data ? [{ kind: 'send_ack', slot }] : [];
  }

  /** The `ack` deadline passed: the delayed ACK goes on the carrying socket (a resume may have replaced the one the DATA came on), else on that one. */
  ackExpired(): QueuedStep[] {
    const to = this.core.slots.ackTarget();
    return to === undefined ? [] : [{ kind: 'send_ack', slot: to }];
  }

  /**
   * Slot `slot` carries the connection from now on, its first words exchanged: the peer stated it
   * received `peerReceived` and lets us send up to `peerLimit`. Two phases. First the sender
   * rewinds to there (what was in flight is sent again; a writer waiting for room hears of room
   * the stated offset freed), the slot carries and `socket_ready` is applied. Then, in whatever
   * state that left: an established open needs its CONNECT no longer, and if the slot still
   * carries the connection our offsets are restated (`initialAck`: an ACK; else the open's window
   * stands as announced) and the pump runs.
   */
  attach(slot: number, peerReceived: number, peerLimit: number, initialAck: boolean): QueuedStep[] {
    const { flow, slots } = this.core;
    const r = flow.rewind(peerReceived, peerLimit);
    this.stats.bytesReplayed += r.replayed;
    const carry: QueuedStep = {
      kind: 'decide',
      then: () => {
        slots.attached(slot);
        this.stats.sockets++;
        flow.advertiseEdge();
        return [
          { kind: 'carry', slot },
          { kind: 'fire', event: 'socket_ready', ifAccepted: false },
          { kind: 'decide', then: () => this.attached(slot, initialAck) },
        ];
      },
    };
    return r.room ? [ROOM, carry] : [carry];
  }

  /** The attach's second phase, after `socket_ready` (see {@link attach}). */
  private attached(slot: number, initialAck: boolean): QueuedStep[] {
    const { flow, slots } = this.core;
    if (this.core.state === 'ESTABLISHED') this.core.open.socketEstablished();
    if (slots.data !== slot) return [];
    if (initialAck) return [{ kind: 'send_ack', slot }, PUMP];
    flow.advertiseEdge();
    return [PUMP];
  }

  /**
   * `reuse_socket`: both ends agreed (RESUME and RESUME_ACK, or crossing RESUMEs) to carry the
   * stream on again on the socket they kept after the suspend, `slot`. The socket keeps its session
   * keys and frame counters (one TCP stream, one unbroken AEAD sequence: no nonce repeats). The
   * sender rewinds to what the peer last acknowledged (its DRAIN at least). `answer`: ours is the
   * acceptance, RESUME_ACK goes before anything else on it (the peer switches on it). If it
   * carries the connection, an ACK always restates our offsets (DATA the peer had in flight under
   * our SUSPEND arrived after our DRAIN, and the peer rewinds to the DRAIN's offset until it hears
   * otherwise), and the pump runs.
   */
  reuse(slot: number, answer: boolean): QueuedStep[] {
    this.stats.bytesReplayed += this.core.flow.rewindToAcked();
    this.stats.reused++;
    const out: QueuedStep[] = [{ kind: 'reuse', slot }];
    if (answer) out.push({ kind: 'send', slot, frame: { type: FrameType.RESUME_ACK } });
    if (this.core.slots.data === slot) out.push({ kind: 'send_ack', slot }, PUMP);
    return out;
  }

  /**
   * The peer's in-band SUSPEND on `slot`, on its turn (core/slots.ts `peerSuspendsNow`): if it
   * still applies, the suspend metric starts, `recv_sus` (our DRAIN answers it) and our drain of
   * the slot ends at once, the peer's SUSPEND being its DRAIN (the socket may be kept).
   */
  peerSuspends(slot: number, now: number): QueuedStep[] {
    const { slots, intent } = this.core;
    if (!slots.peerSuspendsNow(slot, intent.moving)) return [];
    intent.peerSuspends(now);
    return [
      { kind: 'fire', event: 'recv_sus', ifAccepted: false },
      { kind: 'decide', then: () => slots.drainEnded(slot, true, this.core.socketUsable(slot), intent.moving) },
    ];
  }

  /**
   * `established` (the open or a resume completed): the open's part (core/open.ts `established`),
   * and the resume's time, if one was being timed.
   */
  established(now: number): void {
    this.core.open.established(this.core.slots.hadSocket);
    const ms = this.core.intent.resumeMeasured(now);
    if (ms === undefined) return;
    this.stats.resumes++;
    this.stats.lastResumeMs = ms;
  }

  /** Our suspend was acknowledged at `now`: counted, with its time, if one was being timed. */
  suspendCounted(now: number): void {
    const ms = this.core.intent.suspendMeasured(now);
    if (ms === undefined) return;
    this.stats.suspends++;
    this.stats.lastSuspendMs = ms;
  }

  /**
   * The reader takes up to `max` bytes, which it holds until {@link holding} says otherwise; with
   * them, the ACK that reopens the peer's window, if due (core/data.ts `reopenDue`). The reader may
   * call at any time, also while a row is carried out: the ACK goes at once.
   */
  read(max: number): { readonly bytes: Buffer | undefined; readonly ack: SendAck | undefined } {
    const bytes = this.core.flow.read(max);
    return { bytes, ack: bytes ? this.reopen() : undefined };
  }

  /** The reader holds `bytes` of what it read (they stay charged): the ACK that reopens the peer's window if room freed. */
  holding(bytes: number): SendAck | undefined {
    return this.core.flow.hold(bytes) ? this.reopen() : undefined;
  }

  private reopen(): SendAck | undefined {
    const slot = this.core.slots.data;
    return slot !== undefined && this.core.flow.reopenDue() ? { kind: 'send_ack', slot } : undefined;
  }
}
