/**
 * The data sockets of one connection end, by socket slot: the mechanism under the rules of
 * `core/`. The core names sockets by slot number only ("send frame F on slot S", "close slot S",
 * "keep slot S"); this holds the map from those numbers to {@link DataSocket} objects, builds the
 * socket objects (the in-band open's, a dialled one, an accepted one), binds their handlers so
 * that every frame and close comes back as an input naming its slot, and runs the write pump:
 * DATA and FIN from the send buffer onto the socket carrying the connection, many small writes
 * coalesced into one frame at the end of the turn (and, after TCP drained, the next frame too).
 *
 * A slot that is gone (destroyed here, or closed under us) has no socket: a command or deadline
 * naming it finds nothing to do, so no late callback of an earlier socket can act.
 */
import type { Logger } from '../../util/index.js';
import { limit } from '../../util/index.js';
import { FrameType, type Frame } from '../../wire/index.js';
import { mayPump, type DataFlow } from '../core/index.js';
import { DataSocket, type DataSocketHandlers, type StreamSocket } from '../data-socket.js';
import type { FerryError } from '../../util/index.js';
import type { State } from '../state-machine.js';

/** Largest DATA payload per frame (read once: the pump asks for it on every frame). */
const MAX_FRAME_PAYLOAD = limit('MAX_FRAME_PAYLOAD');

/**
 * The inputs the sockets' events are, each naming its slot: the connection core's
 * (core/connection-core.ts), which the host's `drive` then carries out.
 */
export interface SlotInputs {
  /** A frame on a socket carrying the connection. */
  frame(slot: number, f: Frame): void;
  /** A frame of type `type` on the socket kept after a suspend. */
  keptFrame(slot: number, type: number): void;
  /** A carrying or kept socket closed (`err`: why, when a peer's bad input or an error ended it; `open`: whether it still looks usable). */
  socketClosed(slot: number, err: FerryError | undefined, open: boolean): void;
  /** A frame on our dialled socket, the acceptor's answer to its HELLO. */
  dialFrame(slot: number, f: Frame): void;
  /** Our dialled socket closed before it carried the connection. */
  dialFailed(slot: number, err: FerryError | undefined): void;
  /** A raw frame on an in-band open's socket (it throws the typed error that refuses it). */
  openingFrame(slot: number, body: Buffer): void;
  /** An in-band open's socket closed (`dialError`: what our dial of it reported). */
  openingClosed(slot: number, err: FerryError | undefined, dialError?: { code?: string | undefined; message: string }): void;
}

/** What the pump and the ACKs need from the connection end. */
export interface SlotsHost {
  readonly log: Logger;
  /** Offsets, acknowledgements and credit (the core's): the frames to send come from here. */
  readonly flow: DataFlow;
  /** The slot carrying the connection now, if any. */
  carrier(): number | undefined;
  state(): State;
  /** Run `fn` after the current turn, once the I/O it started has been queued. */
  defer(fn: () => void): void;
  /** Carry out what an input came to (the endpoint's drive loop). */
  drive(): void;
  /** A DATA piece on the carrying `slot`: the core's input, and what it comes to carried out (the endpoint's fast path). */
  data(slot: number, offset: number, payload: Buffer): void;
}

/** The slot-to-socket map of one connection end, and its write pump. */
export class SocketSlots {
  private readonly sockets = new Map<number, DataSocket>();
  private pumpScheduled = false;
  /**
   * Sockets the redirector handed us after a HELLO, by slot, with what it read past the HELLO:
   * held unread (no listener: what arrives waits in the socket) until the core answers the HELLO
   * ({@link accept}) or closes the slot (a HELLO held for the peer's proof that went nowhere).
   */
  private readonly handedOver = new Map<number, { sock: StreamSocket; rest: Buffer }>();
  /** What was read past the HELLO of an answered slot, for it to read once attached ({@link feedRest}). */
  private readonly rest = new Map<number, Buffer>();
  /** Control-channel open: the data socket dialled ahead at `open()` for its slot, until the open dials that slot. */
  private predial: { slot: number; sock: StreamSocket } | undefined;

  constructor(
    private readonly host: SlotsHost,
    private readonly inputs: SlotInputs,
  ) {}

  /** The socket of `slot`, if it is still there. */
  socket(slot: number | undefined): DataSocket | undefined {
    return slot === undefined ? undefined : this.sockets.get(slot);
  }

  /** Whether `slot` has a socket that is still usable. */
  isOpen(slot: number | undefined): boolean {
    return this.socket(slot)?.open === true;
  }

  /** Hand an input to the core and carry out what it comes to. */
  private input(give: () => void): void {
    give();
    this.host.drive();
  }

  /**
   * The socket of an in-band open (slot `slot` until it is attached): its frames are the open's
   * raw frames, undecoded, its close the open's loss (`dialled`: ours, whose error it reports).
   * Until the peer's CONNECT_ACK or CONNECT_CONFIRM verifies it has proved nothing: frames keep
   * the redirector's first-frame bound.
   */
  opening(slot: number, sock: StreamSocket, dialled = false): DataSocket {
    let dialError: NodeJS.ErrnoException | undefined;
    if (dialled) sock.on('error', (e) => (dialError = e));
    const closed = (err: FerryError | undefined): void => {
      const e = dialError;
      this.input(() => this.inputs.openingClosed(slot, err, e && { code: e.code, message: e.message }));
    };
    const ds = new DataSocket(sock, { frame: () => {}, close: (err) => this.gone(slot, () => closed(err)), writable: () => {} }, this.host.log, {
      maxFrameBytes: limit('HANDOFF_FRAME_BYTES'),
      raw: (body) => this.input(() => this.inputs.openingFrame(slot, body)),
    });
    this.sockets.set(slot, ds);
    return ds;
  }

  /** A socket we dialled (slot `slot`), waiting for the acceptor's first frame. */
  dialed(slot: number, sock: StreamSocket): DataSocket {
    const ds = new DataSocket(
      sock,
      { frame: (f) => this.input(() => this.inputs.dialFrame(slot, f)), close: (err) => this.gone(slot, () => this.input(() => this.inputs.dialFailed(slot, err))), writable: () => {} },
      this.host.log,
    );
    this.sockets.set(slot, ds);
    return ds;
  }

  /** Hold `sock`, handed to us after its HELLO (`rest`: read past it), unread as slot `slot`. */
  handed(slot: number, sock: StreamSocket, rest: Buffer): void {
    this.handedOver.set(slot, { sock, rest });
  }

  /** The handed-over socket of `slot` answers its HELLO with `frame`: silent until it is attached (then it reads {@link feedRest}). */
  accept(slot: number, frame: Frame): void {
    const h = this.handedOver.get(slot);
    if (!h) return;
    this.handedOver.delete(slot);
    this.rest.set(slot, h.rest);
    this.accepted(slot, h.sock).send(frame);
  }

  /** A socket handed to us (slot `slot`) after its HELLO: silent until it is attached. */
  accepted(slot: number, sock: StreamSocket): DataSocket {
    const ds = new DataSocket(sock, { frame: () => {}, close: () => this.gone(slot, () => {}), writable: () => {} }, this.host.log);
    this.sockets.set(slot, ds);
    return ds;
  }

  /** An answered slot, attached: it reads what came after its HELLO. */
  feedRest(slot: number): void {
    const rest = this.rest.get(slot);
    if (rest === undefined) return;
    this.rest.delete(slot);
    this.socket(slot)?.feed(rest);
  }

  /** Where the socket of `slot` (handed over or in use) comes from. */
  remoteAddress(slot: number): string | undefined {
    return (this.handedOver.get(slot)?.sock ?? this.socket(slot)?.socket)?.remoteAddress;
  }

  /** Keep `sock`, dialled ahead for slot `slot` (the control-channel open's data socket: its errors are the open's, later). */
  predialed(slot: number, sock: StreamSocket): void {
    this.predial = { slot, sock };
    sock.on('error', () => {});
  }

  /** The socket dialled ahead for `slot`, taken (undefined: none). */
  takePredial(slot: number): StreamSocket | undefined {
    const p = this.predial;
    if (p?.slot !== slot) return undefined;
    this.predial = undefined;
    return p.sock;
  }

  /** Close the socket dialled ahead, if it was never used (the open ended first). */
  dropPredial(): void {
    this.predial?.sock.destroy();
    this.predial = undefined;
  }

  /** Slot `slot` carries the connection: its frames and close are inputs, its drain pumps. */
  carry(slot: number): void {
    this.socket(slot)?.setHandlers(this.carrying(slot));
  }

  /** Slot `slot`, kept after a suspend, carries the stream on (same keys, counters going on). */
  reuse(slot: number): void {
    this.socket(slot)?.reuse(this.carrying(slot));
  }

  /** Slot `slot` is kept after a suspend: its frames are the kept socket's inputs. */
  keep(slot: number): void {
    this.socket(slot)?.setHandlers({
      frame: (f) => this.input(() => this.inputs.keptFrame(slot, f.type)),
      close: (err) => this.gone(slot, () => this.closed(slot, err)),
      writable: () => {},
    });
  }

  private carrying(slot: number): DataSocketHandlers {
    const frame = (f: Frame): void => (f.type === FrameType.DATA ? this.host.data(slot, f.offset, f.payload) : this.input(() => this.inputs.frame(slot, f)));
    // After a drain the pump runs at the end of the turn, not at once: a frame TCP takes whole
    // drains in the same turn, so pumping from here chained frames until the peer's whole window
    // sat unread in the kernel, and a peer in the same process fell behind its TCP receive
    // buffer (whose autotuning often stalls below 1 MiB) and went on window-limited at two
    // thirds of the speed (docs/BENCHMARKS.md, "Plain 1 MiB against 6c254fa: the TCP receive
    // window"). Deferred, the peer's reads come between our frames.
    return { frame, close: (err) => this.gone(slot, () => this.closed(slot, err)), writable: () => this.schedulePump() };
  }

  /** A carrying or kept socket closed: the input, with whether the socket still looks usable (asked before it is forgotten). */
  private closed(slot: number, err: FerryError | undefined): void {
    this.input(() => this.inputs.socketClosed(slot, err, this.isOpen(slot)));
  }

  /** The socket of `slot` closed under us: its input runs, then the slot is forgotten. */
  private gone(slot: number, then: () => void): void {
    try {
      then();
    } finally {
      this.sockets.delete(slot);
    }
  }

  /** Send control frame `f` on `slot`; false when the slot is gone or TCP asks us to wait. */
  send(slot: number | undefined, f: Frame): boolean {
    return this.socket(slot)?.send(f) ?? false;
  }

  /** Close `slot` now (no input follows) and forget it. */
  destroy(slot: number | undefined): void {
    if (slot === undefined) return;
    const h = this.handedOver.get(slot);
    if (h) {
      this.handedOver.delete(slot);
      h.sock.destroy();
      return;
    }
    if (this.predial?.slot === slot) return this.dropPredial();
    this.rest.delete(slot);
    const ds = this.sockets.get(slot);
    if (!ds) return;
    this.sockets.delete(slot);
    ds.destroy();
  }

  /**
   * Reset the connection under `slot` as a network cut would: the raw socket, so that its close
   * comes back as the slot's input (a {@link destroy} reports nothing). Returns whether it was open.
   */
  cut(slot: number | undefined, reset: boolean): boolean {
    const ds = this.socket(slot);
    if (!ds || !ds.open) return false;
    if (reset && ds.socket.resetAndDestroy) ds.socket.resetAndDestroy();
    else ds.socket.destroy();
    return true;
  }

  /**
   * The ACK (from {@link DataFlow.ack}) on `slot`, if it still takes frames from us: once our DRAIN
   * or SUSPEND is out, what arrived after it is restated on the next socket. Returns whether sent.
   */
  sendAck(slot: number | undefined): boolean {
    const ds = this.socket(slot);
    if (!ds || !ds.open || ds.drainSent) return false;
    ds.send(this.host.flow.ack());
    return true;
  }

  /**
   * Pump at the end of the turn: many small writes coalesce into one frame, and after a drain the
   * reads waiting in this turn come before our next frame.
   */
  schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.host.defer(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Write DATA (and the FIN once due) on the socket carrying the connection until TCP asks us to wait. */
  pump(): void {
    const ds = this.socket(this.host.carrier());
    if (!ds || !ds.open || !mayPump(this.host.state())) return;
    const send = this.host.flow.send;
    // A delayed ACK does not ride along with the DATA sent here: it waits for its deadline
    // (ACK_DELAY_MS) and then covers every exchange of that time. On a sealed connection each
    // frame costs an AEAD operation at each end (a cipher set up per frame), and an ACK in front
    // of every response cost request/response traffic a fifth more CPU than the ACK write per
    // ACK_DELAY_MS it saved (docs/BENCHMARKS.md, redis -P 16 through the tunnel).
    // A socket whose session key runs out stops reading as open and ends itself (DataSocket.seal);
    // what was framed for it is sent again on the next socket, from the peer's received offset.
    while (ds.open && !ds.blocked) {
      const f = send.nextFrame(MAX_FRAME_PAYLOAD);
      if (!f) break;
      ds.sendData(f.offset, f.parts, f.length);
    }
    if (ds.open && !ds.blocked) {
      const fin = this.host.flow.finDue();
      if (fin) ds.send(fin);
    }
  }
}
