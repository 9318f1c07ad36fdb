/**
 * Adapter between one TCP data socket and an endpoint: framing, AEAD sealing, vectored writes,
 * and TCP backpressure. Holds no connection state: a resume on a new socket or a move replaces the
 * whole object, and a resume on the socket kept after a suspend rebinds it ({@link DataSocket.reuse}).
 * The socket itself is created by the host (redirector or dial), so this layer never imports
 * `node:net`.
 */
import type { Duplex } from 'node:stream';
import { FrameOpener, FrameSealer } from '../identity/index.js';
import { FerryError, LIMITS, isFerryError, type Logger } from '../util/index.js';
import { DATA_HEADER_BYTES, MAX_FRAME_BYTES, FrameDecoder, FrameType, dataHeader, decodeFrameBody, encodeFrameBody, lengthPrefix, readU64, type Frame } from '../wire/index.js';

/** The socket shape Ferry needs: a Duplex plus the few `net.Socket` extras it uses if present. */
export interface StreamSocket extends Duplex {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  setNoDelay?(noDelay?: boolean): this;
  resetAndDestroy?(): this;
}

/** Callbacks from a data socket to its endpoint. */
export interface DataSocketHandlers {
  /** A decoded (and opened) frame. */
  frame(frame: Frame): void;
  /** The socket is gone: `err` is set when a peer's bad input or a socket error ended it. */
  close(err: FerryError | undefined): void;
  /** The socket can take more bytes after a write returned false. */
  writable(): void;
}

const AEAD_TAG = 16;
/** Frames up to this size are joined into one buffer before the write (see writeParts). */
const SMALL_FRAME_BYTES = 4096;

/** One data socket, framed and (after the HELLO exchange) sealed. */
export class DataSocket {
  private readonly decoder: FrameDecoder;
  /**
   * While set (the in-band open, before the socket is attached), every frame body goes here
   * undecoded: the open's own frames have their own codecs.
   */
  private raw: ((body: Buffer) => void) | undefined;
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  private done = false;
  /** The session key ran out while sealing a control frame: the socket is ending. */
  private spent = false;
  /** True after a write returned false, until 'drain'. */
  blocked = false;
  /** DRAIN went out: this session sends nothing more (the socket may be kept for a reuse). */
  drainSent = false;
  /** Bytes written to and read from the socket, for metrics and the amplification guard. */
  bytesOut = 0;
  bytesIn = 0;

  constructor(
    readonly socket: StreamSocket,
    private handlers: DataSocketHandlers,
    private readonly logger: Logger,
    opts: { maxFrameBytes?: number; raw?: (body: Buffer) => void } = {},
  ) {
    this.decoder = new FrameDecoder(opts.maxFrameBytes);
    this.raw = opts.raw;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.blocked = false;
      if (!this.done) this.handlers.writable();
    });
    socket.on('error', (err) => this.finish(isFerryError(err) ? err : undefined));
    socket.on('close', () => this.finish(undefined));
    socket.on('end', () => this.finish(undefined));
    // A socket that died before it was handed to us (a resume HELLO parked for the peer's proof
    // while its link reset) emits no 'close' any more: report it once the caller has attached us,
    // or the connection would sit ESTABLISHED on it for ever (found by the simulator).
    if (socket.destroyed) queueMicrotask(() => this.finish(undefined));
  }

  /** Replace the handlers (the redirector reads HELLO, then hands the socket to the endpoint). */
  setHandlers(h: DataSocketHandlers): void {
    this.handlers = h;
  }

  /**
   * End the raw (in-band open) phase: frames are decoded and go to the handlers from now on, and
   * the decoder takes full-size frames (until then it keeps the small bound it was built with).
   */
  endRaw(): void {
    this.raw = undefined;
    this.decoder.maxFrameBytes = MAX_FRAME_BYTES;
  }

  /** Send a plaintext frame body as it is (the in-band open's frames). */
  sendRaw(body: Buffer): boolean {
    if (this.done) return false;
    return this.writeParts([lengthPrefix(body.length), body]);
  }

  /** Feed bytes read before the handoff (the redirector may have read past the HELLO). */
  feed(initial: Buffer): void {
    if (initial.length > 0) this.onData(initial);
  }

  /** Start sealing/opening with per-direction session keys (after HELLO / HELLO_ACK). */
  setKeys(sendKey: Buffer, receiveKey: Buffer): void {
    this.sealer = new FrameSealer(sendKey);
    this.opener = new FrameOpener(receiveKey);
  }

  /** Whether the socket is still usable. */
  get open(): boolean {
    // A socket destroyed under us (a fault injection, a reset) is not usable even before its
    // 'close' event has run.
    return !this.done && !this.spent && !this.socket.destroyed;
  }

  /**
   * Send a control frame (anything but DATA). Returns false when TCP asks us to wait. After our
   * DRAIN (or SUSPEND) only the in-band resume's RESUME and RESUME_ACK may still go out.
   */
  send(frame: Frame): boolean {
    if (this.done || this.spent || (this.drainSent && frame.type !== FrameType.RESUME && frame.type !== FrameType.RESUME_ACK)) return false;
    if (frame.type === FrameType.DRAIN || frame.type === FrameType.SUSPEND) this.drainSent = true;
    const body = encodeFrameBody(frame);
    if (!this.sealer) return this.writeParts([lengthPrefix(body.length), body]);
    const prefix = lengthPrefix(body.length + AEAD_TAG);
    const sealed = this.seal(prefix, [body], frame.type);
    return sealed !== undefined && this.writeParts([prefix, ...sealed]);
  }

  /** Send a DATA frame from slices of the send buffer, in one vectored write. */
  sendData(offset: number, parts: Buffer[], length: number): boolean {
    if (this.done || this.spent || this.drainSent) return false;
    const header = dataHeader(offset);
    if (!this.sealer) return this.writeParts([lengthPrefix(DATA_HEADER_BYTES + length), header, ...parts]);
    const prefix = lengthPrefix(DATA_HEADER_BYTES + length + AEAD_TAG);
    const sealed = this.seal(prefix, [header, ...parts], FrameType.DATA);
    return sealed !== undefined && this.writeParts([prefix, ...sealed]);
  }

  /**
   * Seal a frame, or, if the session key is spent (AEAD_MAX_FRAMES / AEAD_MAX_BLOCKS), end the
   * socket: it reads as closed at once and ends after the caller's transition, so the connection
   * goes on as after any lost socket, on a new one with new keys, the stream resent from the
   * peer's received offset.
   */
  private seal(prefix: Buffer, parts: Buffer[], type: number): Buffer[] | undefined {
    try {
      return this.sealer!.sealParts(prefix, parts);
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err), { cause: err });
      this.logger.warn('data_socket_rekey', { code: e.code, frame: type });
      this.spent = true;
      queueMicrotask(() => this.finish(e));
      return undefined;
    }
  }

  private writeParts(parts: Buffer[]): boolean {
    let total = 0;
    for (const p of parts) total += p.length;
    this.bytesOut += total;
    // A small frame is copied into one buffer: one plain write costs less than the stream's
    // corked writev of its parts (a request/response message is small, and its cost per message
    // is what bounds it). A large one stays in its parts, one writev: no payload copy.
    if (total <= SMALL_FRAME_BYTES) {
      const ok = this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
      if (!ok) this.blocked = true;
      return ok;
    }
    // cork/uncork turns the parts into one writev syscall: the frame goes out whole.
    this.socket.cork();
    let ok = true;
    for (const p of parts) ok = this.socket.write(p);
    this.socket.uncork();
    if (!ok) this.blocked = true;
    return ok;
  }

  /**
   * Carry the stream on again on a kept socket (same keys, frame counters going on): new
   * handlers (frames after the one being handled go to them), sending allowed again.
   */
  reuse(handlers: DataSocketHandlers): void {
    this.handlers = handlers;
    this.drainSent = false;
    this.blocked = false;
  }

  /** Tear the socket down now; no callback follows. */
  destroy(): void {
    this.done = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.bytesIn += chunk.length;
    this.decoder.push(chunk);
    try {
      for (;;) {
        if (this.done) return;
        const raw = this.decoder.nextParts();
        if (!raw) return;
        if (this.raw && !this.opener) {
          this.raw(raw.length === 1 ? raw[0]! : Buffer.concat(raw));
          continue;
        }
        let body = raw;
        if (this.opener) {
          let n = 0;
          for (const p of raw) n += p.length;
          body = this.opener.openParts(lengthPrefix(n), raw);
        }
        const head = body[0];
        if (head && head.length >= DATA_HEADER_BYTES && head[0] === FrameType.DATA) {
          this.dataFrame(head, body);
          continue;
        }
        const frame = decodeFrameBody(body.length === 1 ? body[0]! : Buffer.concat(body));
        if (frame.type === FrameType.HELLO) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'HELLO after the handoff');
        this.handlers.frame(frame);
      }
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err), { cause: err });
      this.logger.refused('data_socket_refused', { code: e.code, detail: e.message, from: this.socket.remoteAddress });
      this.finish(e);
    }
  }

  /**
   * A DATA frame whose payload may lie in several slices: each slice is handed on at its own
   * offset (the receive buffer takes contiguous pieces), so no payload byte is copied here.
   */
  private dataFrame(head: Buffer, body: Buffer[]): void {
    let length = -DATA_HEADER_BYTES;
    for (const p of body) length += p.length;
    if (length === 0) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'empty DATA frame');
    if (length > LIMITS.MAX_FRAME_PAYLOAD.value) throw new FerryError('FERRY_ERR_FRAME_TOO_LARGE', `DATA payload ${length} bytes`);
    let offset = readU64(head, 1);
    if (offset > Number.MAX_SAFE_INTEGER - length) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'DATA offset exceeds 2^53');
    for (let i = 0; i < body.length; i++) {
      const payload = i === 0 ? head.subarray(DATA_HEADER_BYTES) : body[i]!;
      if (payload.length === 0) continue;
      this.handlers.frame({ type: FrameType.DATA, offset, payload });
      offset += payload.length;
      if (this.done) return;
    }
  }

  private finish(err: FerryError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.socket.destroy();
    this.handlers.close(err);
  }
}
