/**
 * The exactly-once data path, without I/O: per-direction 64-bit byte offsets, a send buffer that
 * keeps every byte until the peer acknowledges its offset, and a receive buffer that delivers in
 * order and drops what it already has. Both are bounded (send budget, receive window) and both
 * travel in a move's checkpoint, which is what makes a move lose and duplicate nothing.
 */
import { FerryError } from '../util/index.js';

/** Bytes kept by the sender: [acked, written), plus the end-of-stream marker. */
export class SendBuffer {
  /** Unacknowledged bytes, oldest first; together they span [acked, written). */
  private chunks: Buffer[] = [];
  /** Offset of the first byte in `chunks` (everything below is acknowledged). */
  acked: number;
  /** Offset after the last byte the application wrote. */
  written: number;
  /** Next offset to send on the current data socket. */
  sent: number;
  /** Peer's window edge: the sender may send offsets below this. */
  peerLimit = 0;
  /** Offset where the stream ends, once the application ended it. */
  fin: number | undefined;
  /** Whether FIN went out on the current data socket. */
  finSent = false;
  /** Cursor into `chunks` for `sent`, so framing small writes is O(1) per frame. */
  private cursorIndex = 0;
  private cursorPos = 0;

  constructor(
    /** Maximum unacknowledged bytes kept (the send budget). */
    readonly budget: number,
    start = 0,
    data?: Buffer,
  ) {
    this.acked = start;
    this.written = start;
    this.sent = start;
    if (data && data.length > 0) this.append(data);
  }

  /** Bytes written but not acknowledged. */
  get unacked(): number {
    return this.written - this.acked;
  }

  /** True while the application may write without exceeding the budget. */
  get hasRoom(): boolean {
    return this.unacked < this.budget;
  }

  /** Whether every byte up to the end of the stream is acknowledged (FIN is resent per session). */
  get finAcked(): boolean {
    return this.fin !== undefined && this.acked === this.fin;
  }

  /** Accept application bytes. */
  append(buf: Buffer): void {
    if (this.fin !== undefined) throw new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'write after end');
    if (buf.length === 0) return;
    this.chunks.push(buf);
    this.written += buf.length;
  }

  /** Mark the end of the stream at the current write offset. */
  end(): void {
    if (this.fin === undefined) this.fin = this.written;
  }

  /**
   * Process the peer's cumulative acknowledgement and window edge. An ack beyond what was
   * written is a protocol violation by the peer; an older ack is stale and ignored.
   * Returns the number of bytes freed.
   */
  onAck(received: number, limit: number): number {
    if (received > this.written) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `peer acknowledged offset ${received} beyond written ${this.written}`);
    if (limit > this.peerLimit) this.peerLimit = limit;
    if (received <= this.acked) return 0;
    const freed = received - this.acked;
    let drop = freed;
    while (drop > 0) {
      const c = this.chunks[0]!;
      if (c.length <= drop) {
        this.chunks.shift();
        drop -= c.length;
        if (this.cursorIndex > 0) this.cursorIndex--;
        else this.cursorPos = 0;
      } else {
        this.chunks[0] = c.subarray(drop);
        if (this.cursorIndex === 0) this.cursorPos = Math.max(0, this.cursorPos - drop);
        drop = 0;
      }
    }
    this.acked = received;
    if (this.sent < this.acked) this.seek(this.acked);
    return freed;
  }

  /**
   * Start a new data-socket session where the peer says it has received `received`:
   * everything from there on is sent again (the receiver drops any overlap).
   */
  rewind(received: number, limit: number): void {
    if (received < this.acked) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `peer resumes at ${received}, below its own earlier ack ${this.acked}`);
    this.onAck(received, limit);
    this.peerLimit = limit;
    this.finSent = false;
    this.seek(this.acked);
  }

  private seek(offset: number): void {
    this.sent = offset;
    let rel = offset - this.acked;
    this.cursorIndex = 0;
    while (this.cursorIndex < this.chunks.length && rel >= this.chunks[this.cursorIndex]!.length) {
      rel -= this.chunks[this.cursorIndex]!.length;
      this.cursorIndex++;
    }
    this.cursorPos = rel;
  }

  /**
   * The next frame's worth of bytes at `sent`, up to `max` bytes and the peer's window, as a
   * list of slices (no copy: small writes coalesce into one frame by vectored write).
   */
  nextFrame(max: number): { offset: number; parts: Buffer[]; length: number } | undefined {
    const end = Math.min(this.written, this.peerLimit, this.sent + max);
    if (end <= this.sent) return undefined;
    const offset = this.sent;
    const parts: Buffer[] = [];
    let need = end - this.sent;
    while (need > 0) {
      const c = this.chunks[this.cursorIndex]!;
      const avail = c.length - this.cursorPos;
      const take = Math.min(avail, need);
      parts.push(take === c.length ? c : c.subarray(this.cursorPos, this.cursorPos + take));
      need -= take;
      if (take === avail) {
        this.cursorIndex++;
        this.cursorPos = 0;
      } else {
        this.cursorPos += take;
      }
    }
    this.sent = end;
    return { offset, parts, length: end - offset };
  }

  /** Whether FIN should be sent now: ended, all data sent, not yet sent on this socket. */
  get finDue(): boolean {
    return this.fin !== undefined && !this.finSent && this.sent === this.fin;
  }

  /** All unacknowledged bytes as one buffer, for a checkpoint. */
  snapshot(): { acked: number; data: Buffer; fin: number | undefined } {
    return { acked: this.acked, data: Buffer.concat(this.chunks), fin: this.fin };
  }

  /** Restore the end-of-stream mark from a checkpoint. */
  restoreFin(fin: number | undefined): void {
    this.fin = fin;
  }
}

/** Bytes received but not yet read by the application: [delivered, received). */
export class ReceiveBuffer {
  private queue: Buffer[] = [];
  /** Next offset expected from the peer (everything below is held or delivered). */
  received: number;
  /** Offset after the last byte handed to the application. */
  delivered: number;
  /** Where the peer's stream ends, once its FIN arrived. */
  fin: number | undefined;
  /**
   * The highest window edge announced to the peer: it may send below it, so it never goes back.
   * A receive budget may announce less than {@link limit}; DATA is checked against this.
   */
  edge: number;

  constructor(
    /** Most bytes accepted beyond what the application has read. */
    readonly window: number,
    start = 0,
    data?: Buffer,
  ) {
    this.delivered = start;
    this.received = start;
    if (data && data.length > 0) {
      this.queue.push(data);
      this.received += data.length;
    }
    this.edge = this.received;
  }

  /** The farthest edge the window allows now (the announced {@link edge} may be lower). */
  get limit(): number {
    return this.delivered + this.window;
  }

  /** Announce an edge (never beyond {@link limit}, never back): returns the edge now announced. */
  announce(edge: number): number {
    if (edge > this.limit) edge = this.limit;
    if (edge > this.edge) this.edge = edge;
    return this.edge;
  }

  /** Bytes held for the application. */
  get queued(): number {
    return this.received - this.delivered;
  }

  /** True once every byte up to the peer's FIN has been handed over. */
  get ended(): boolean {
    return this.fin !== undefined && this.delivered === this.fin;
  }

  /**
   * Accept a DATA frame. Bytes below `received` are duplicates (a retransmission after resume)
   * and are dropped; a gap or bytes past the window are protocol violations.
   * Returns the number of new bytes.
   */
  onData(offset: number, payload: Buffer): number {
    const end = offset + payload.length;
    if (offset > this.received) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `gap: DATA at ${offset}, expected ${this.received}`);
    if (end <= this.received) return 0;
    if (end > this.edge) throw new FerryError('FERRY_ERR_BUFFER_BUDGET', `DATA to ${end} beyond window edge ${this.edge}`);
    if (this.fin !== undefined && end > this.fin) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `DATA past FIN at ${this.fin}`);
    const fresh = offset === this.received ? payload : payload.subarray(this.received - offset);
    this.queue.push(fresh);
    this.received = end;
    return fresh.length;
  }

  /** Accept a FIN at `offset`; it must not contradict what was received. */
  onFin(offset: number): void {
    if (this.fin === offset) return; // FIN is resent on every new data socket: idempotent
    if (offset < this.received || this.fin !== undefined) {
      throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `FIN at ${offset} contradicts stream (received ${this.received}, fin ${this.fin})`);
    }
    if (offset !== this.received) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `FIN at ${offset} before all data (received ${this.received})`);
    this.fin = offset;
  }

  /** Hand up to `max` bytes to the application. */
  take(max: number): Buffer | undefined {
    const c = this.queue[0];
    if (!c) return undefined;
    if (c.length <= max) {
      this.queue.shift();
      this.delivered += c.length;
      return c;
    }
    this.queue[0] = c.subarray(max);
    this.delivered += max;
    return c.subarray(0, max);
  }

  /** Everything held, for a checkpoint. */
  snapshot(): { delivered: number; data: Buffer; fin: number | undefined } {
    return { delivered: this.delivered, data: Buffer.concat(this.queue), fin: this.fin };
  }
}
