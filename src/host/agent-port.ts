/**
 * Worker-side proxies: {@link PortSocket}, a `node:stream` Duplex that stands for one of the
 * agent's connections, and {@link PortServer}, its listening socket. They run inside the agent's
 * worker and talk to the host runtime over the worker's MessagePort; the real `AgentSocket` and
 * every authoritative buffer stay on the host.
 *
 * Reading: the host pushes bytes (`data`) up to a window and keeps a copy of each until this proxy
 * acknowledges (`ack`) that agent code has *read* it — taken it through `'data'`, `read()` or async
 * iteration, not merely received it into the Readable buffer. Consumed = bytes pushed minus
 * `readableLength`. So when the worker is torn down for a move, the host knows exactly which bytes
 * agent code never saw and delivers them first on the destination: none lost, none twice.
 * `setEncoding()` and `unshift()` are refused because they would break that count.
 *
 * Writing: each write is posted to the host at once; `write()` returns false once
 * `writeWindow` bytes are unacknowledged by the host (`wack`), and `'drain'` follows, so the agent
 * feels the connection's backpressure. At a move the proxy posts what agent code has already
 * written (freeze), then holds any later write: those happen after the state snapshot, and the
 * agent will run again from that snapshot on the destination.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { FerryError, abortedError, queueWaiter, type ErrorCode, type Waiter } from '../util/index.js';
import type { SocketInfo } from './agent-protocol.js';

/** How the proxies reach the host: a captured, bound `postMessage` of the worker's port. */
export type Post = (msg: unknown, transfer?: ArrayBuffer[]) => void;

/** Consumption is acknowledged in steps of at least this much (or when the buffer empties). */
const ACK_STEP_BYTES = 16 * 1024;
/** Largest write message (AGENT_MESSAGE_BYTES is 1 MiB; stay well under it). */
const WRITE_MESSAGE_BYTES = 256 * 1024;

type Mode = 'normal' | 'flushing' | 'frozen';

/** One of the agent's connections, as agent code sees it. */
export class PortSocket extends Duplex {
  readonly sid: number;
  /** The peer agent's id. */
  readonly remoteAgent: string;
  /** The connection id (hex). */
  readonly connectionId: string;
  readonly initiator: boolean;
  private pushed = 0;
  private ackedSent = 0;
  private ackQueued = false;
  private inflight = 0;
  private heldWrite: (() => void) | undefined;
  private mode: Mode = 'normal';
  private readonly frozenWrites: { bufs: Buffer[]; cb: (err?: Error | null) => void }[] = [];
  private frozenFinal: ((err?: Error | null) => void) | undefined;
  private finalCb: ((err?: Error | null) => void) | undefined;
  private readonly startedEnded: boolean;
  private hostClosed = false;
  private readEndPushed = false;
  private heldBytes = 0;
  private readonly closeWaiters: (() => void)[] = [];
  /** In its server's listen queue: agent code has not taken it (accept, 'connection', iteration). */
  unaccepted = false;
  private droppedPosted = false;

  constructor(
    private readonly post: Post,
    info: SocketInfo,
    private readonly writeWindow: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: Math.min(64 * 1024, writeWindow) });
    this.sid = info.sid;
    this.remoteAgent = info.remoteAgent;
    this.connectionId = info.connectionId;
    this.initiator = info.initiator;
    this.startedEnded = info.writeEnded;
    // The agent ended its side before a move; the FIN travelled in the connection checkpoint.
    if (info.writeEnded) this.end();
  }

  /** Bytes agent code has taken out of this socket. */
  consumed(): number {
    return this.pushed - this.readableLength;
  }

  /** Bytes written by agent code that the host has not yet accepted (posted or still buffered here). */
  unsent(): number {
    return this.inflight + this.writableLength;
  }

  override setEncoding(): this {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'setEncoding() is not supported on agent sockets (it would hide how many bytes were read); decode with TextDecoder');
  }

  override unshift(): void {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'unshift() is not supported on agent sockets (bytes handed back would be counted as unread twice); keep leftovers yourself');
  }

  /**
   * A socket error never crashes the agent by itself. Node would throw an 'error' no one listens
   * to, and in a worker that is the agent's end: a stranger who connects and vanishes, or any
   * peer that dies, would take down the agent and every connection it holds. So an error on a
   * socket agent code has not accepted yet, or on one it holds without an 'error' listener, is
   * reported to the host (one `agent_connection_dropped` line) instead of emitted; the socket is
   * destroyed all the same ('close' follows, `errored` holds the error, reads and async iteration
   * reject with it). An agent that listens for 'error' gets it as usual.
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && (this.unaccepted || this.listenerCount('error') === 0)) {
      this.reportDropped();
      return false;
    }
    return super.emit(event, ...args);
  }

  private reportDropped(): void {
    if (this.droppedPosted) return;
    this.droppedPosted = true;
    this.post({ t: 'dropped', sid: this.sid, why: this.unaccepted ? 'unaccepted' : 'unhandled' });
  }

  override read(size?: number): unknown {
    const r = super.read(size) as unknown;
    this.noteConsumed();
    return r;
  }

  override _read(): void {
    this.noteConsumed();
  }

  /** Host: bytes for agent code. */
  onData(chunk: Uint8Array): void {
    if (this.destroyed || this.readEndPushed) return;
    this.pushed += chunk.byteLength;
    this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.noteConsumed();
  }

  /** Host: the peer ended its direction. */
  onReadEnd(): void {
    if (this.destroyed || this.readEndPushed) return;
    this.readEndPushed = true;
    this.push(null);
  }

  private noteConsumed(): void {
    if (this.ackQueued) return;
    this.ackQueued = true;
    queueMicrotask(() => {
      this.ackQueued = false;
      this.sendAck(false);
    });
  }

  private sendAck(force: boolean): void {
    if (this.destroyed || this.mode === 'frozen') return;
    const c = this.consumed();
    if (c > this.ackedSent && (force || c - this.ackedSent >= ACK_STEP_BYTES || this.readableLength === 0)) {
      this.ackedSent = c;
      this.post({ t: 'ack', sid: this.sid, offset: c });
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeBufs([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], cb: (err?: Error | null) => void): void {
    this.writeBufs(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private writeBufs(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    if (this.hostClosed) return cb(new FerryError('FERRY_ERR_CONNECTION_CLOSED'));
    if (this.mode === 'frozen') {
      this.frozenWrites.push({ bufs, cb });
      return;
    }
    this.postWrite(bufs);
    if (this.mode === 'flushing' || this.inflight < this.writeWindow) return cb();
    // Posted already; only the callback waits, so these bytes are not "unsent".
    this.heldBytes = bufs.reduce((n, b) => n + b.length, 0);
    this.heldWrite = () => {
      this.heldBytes = 0;
      cb();
    };
  }

  private postWrite(bufs: Buffer[]): void {
    // Copy into fresh ArrayBuffers and transfer them: a Buffer may be a view on a shared pool,
    // and transferring the pool would detach the agent's other buffers.
    let batch: Uint8Array[] = [];
    let size = 0;
    const flush = (): void => {
      if (batch.length === 0) return;
      this.post({ t: 'write', sid: this.sid, chunks: batch }, batch.map((u) => u.buffer as ArrayBuffer));
      this.inflight += size;
      batch = [];
      size = 0;
    };
    for (const b of bufs) {
      for (let o = 0; o < b.length; o += WRITE_MESSAGE_BYTES) {
        const part = b.subarray(o, Math.min(b.length, o + WRITE_MESSAGE_BYTES));
        if (size + part.length > WRITE_MESSAGE_BYTES) flush();
        const u = new Uint8Array(part.length);
        u.set(part);
        batch.push(u);
        size += part.length;
      }
    }
    flush();
  }

  /** Host: it took `n` written bytes into the connection. */
  onWriteAck(n: number): void {
    this.inflight = Math.max(0, this.inflight - n);
    if (this.heldWrite && this.inflight < this.writeWindow) {
      const cb = this.heldWrite;
      this.heldWrite = undefined;
      cb();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.startedEnded) return cb();
    if (this.hostClosed) return cb();
    if (this.mode === 'frozen') {
      this.frozenFinal = cb;
      return;
    }
    this.finalCb = cb;
    this.post({ t: 'end', sid: this.sid });
  }

  /** Host: our end of stream is acknowledged by the peer. */
  onFinalAck(): void {
    const cb = this.finalCb;
    this.finalCb = undefined;
    cb?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // autoDestroy after both directions ended cleanly is a graceful close, not an abort: an
    // abort would make the peer drop bytes it has received but not yet read.
    // Likewise destroy() without an error once the peer's stream ended and every write was
    // already handed to the host (`for await (const c of sock)` ends that way): like closing a TCP
    // socket whose receive queue is empty. If destroy() discards writes still buffered here (as
    // Node does), the peer is told by an abort rather than left with a silently short stream.
    const graceful = !err && this.readableEnded && this.writableLength - this.heldBytes <= 0;
    if (!this.hostClosed) this.post({ t: graceful ? 'close' : 'destroy', sid: this.sid });
    this.hostClosed = true;
    this.settleClose();
    cb(err);
  }

  /** Graceful close: end our direction, wait for the peer to acknowledge it, then CLS. */
  close(): Promise<void> {
    if (this.hostClosed) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      if (!this.writableEnded) this.end();
      this.post({ t: 'close', sid: this.sid });
    });
  }

  private settleClose(): void {
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Host: the connection is closed (with the reason when it was not graceful). */
  onClosed(code: string | undefined, message: string | undefined): void {
    this.hostClosed = true;
    this.settleClose();
    if (this.unaccepted) {
      // Over before agent code took it, gracefully or not: it leaves the listen queue with its
      // bytes (one host log line), so closed connections cannot pile up in a queue no one reads.
      this.reportDropped();
      this.destroy();
      return;
    }
    const finalCb = this.finalCb;
    this.finalCb = undefined;
    if (code) {
      finalCb?.(new FerryError(code as ErrorCode, message));
      this.destroy(new FerryError(code as ErrorCode, message));
      return;
    }
    finalCb?.();
    // Graceful: agent code may still read what is buffered; destroy once it has.
    if (this.readableEnded) this.destroy();
    else this.once('end', () => this.destroy());
  }

  /** Freeze, step 1: hand the host everything agent code has written so far (synchronously). */
  flushForFreeze(): void {
    this.mode = 'flushing';
    while (this.writableCorked > 0) this.uncork();
    const held = this.heldWrite;
    this.heldWrite = undefined;
    held?.();
  }

  /** Freeze, step 2: from now on writes wait (they come after the snapshot). */
  freeze(): void {
    this.mode = 'frozen';
  }

  /** The move failed: the agent runs on here; post what waited. */
  thaw(): void {
    if (this.mode === 'normal') return;
    this.mode = 'normal';
    for (const { bufs, cb } of this.frozenWrites.splice(0)) {
      this.postWrite(bufs);
      cb();
    }
    const f = this.frozenFinal;
    this.frozenFinal = undefined;
    if (f) this._final(f);
    this.sendAck(true);
  }
}

/** The agent's server socket inside its worker. */
export class PortServer extends EventEmitter {
  private readonly queue: PortSocket[] = [];
  private readonly waiters: Waiter<PortSocket>[] = [];
  private closedFlag = false;

  constructor(private readonly post: Post) {
    super();
  }

  /**
   * Host: a connection to this agent was established. With no one waiting it joins the listen
   * queue, where a failure (the peer vanished before agent code took it) drops it from the queue
   * and reaches the host as one log line, never the agent (see {@link PortSocket.emit}).
   */
  deliver(sock: PortSocket): void {
    const w = this.waiters.shift();
    if (w) w.resolve(sock);
    else if (this.listenerCount('connection') > 0) this.emit('connection', sock);
    else {
      sock.unaccepted = true;
      this.queue.push(sock);
      sock.once('close', () => {
        const i = this.queue.indexOf(sock);
        if (i >= 0) this.queue.splice(i, 1);
      });
    }
  }

  /** Sids of the connections agent code has not accepted yet (a move carries them to the destination's listen queue). */
  queuedSids(): number[] {
    return this.queue.map((s) => s.sid);
  }

  /**
   * The next incoming connection. Rejects with FERRY_ERR_CONNECTION_CLOSED once closed, and with
   * FERRY_ERR_ABORTED (an AbortError) when `signal` aborts first or already has; the connection
   * that arrives next then waits for the next accept().
   */
  accept(opts: { signal?: AbortSignal } = {}): Promise<PortSocket> {
    const signal = opts?.signal;
    if (signal?.aborted) return Promise.reject(abortedError('accept', signal));
    const s = this.queue.shift();
    if (s) {
      s.unaccepted = false;
      return Promise.resolve(s);
    }
    if (this.closedFlag) return Promise.reject(new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'server socket closed'));
    return queueWaiter(this.waiters, 'accept', signal);
  }

  /**
   * Connections as they arrive until the server socket closes; when `signal` aborts, the loop
   * throws FERRY_ERR_ABORTED and the server socket stays open.
   */
  async *connections(opts: { signal?: AbortSignal } = {}): AsyncGenerator<PortSocket, void, undefined> {
    for (;;) {
      let s: PortSocket;
      try {
        s = await this.accept(opts);
      } catch (err) {
        if (err instanceof FerryError && err.code === 'FERRY_ERR_CONNECTION_CLOSED') return;
        throw err;
      }
      yield s;
    }
  }

  /** `for await (const sock of server)` until the server closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<PortSocket> {
    for (;;) {
      let s: PortSocket;
      try {
        s = await this.accept();
      } catch {
        return;
      }
      yield s;
    }
  }

  /** Whether the server socket is closed. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Stop accepting connections. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.post({ t: 'unlisten' });
    for (const w of this.waiters.splice(0)) w.reject(new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'server socket closed'));
    this.emit('close');
  }
}
