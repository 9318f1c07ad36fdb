/**
 * The agent-facing sockets: {@link AgentSocket}, a `node:stream` Duplex over one connection
 * endpoint (the paper's NapletSocket), and {@link AgentServerSocket}, an agent's listening
 * socket (NapletServerSocket). Agents never choose ports: they name agent ids.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { FerryError, abortedError, isFerryError, onAbort, queueWaiter, type ErrorCode, type Waiter } from '../util/index.js';
import type { AgentId } from '../identity/index.js';
import type { Endpoint } from './endpoint.js';
import type { State } from './state-machine.js';

/** Largest chunk handed to the application per push. */
const READ_CHUNK = 64 * 1024;

/**
 * A connection to another agent, addressed by identity. Reads and writes go on across
 * suspends, resumes, moves of either end and data-socket failures, exactly once.
 *
 * Events beyond Duplex: 'state' (to, from), 'suspended', 'resumed', 'moved' (this object was
 * detached for a move: its readable side ends after the bytes it already delivered).
 */
export class AgentSocket extends Duplex {
  private wantRead = false;
  private pendingWrite: ((err?: Error | null) => void) | undefined;
  private pendingFinal: ((err?: Error | null) => void) | undefined;
  private ended = false;
  private moved = false;
  private flushing = false;

  constructor(readonly endpoint: Endpoint) {
    super({ allowHalfOpen: true, writableHighWaterMark: 64 * 1024, readableHighWaterMark: 64 * 1024 });
    endpoint.on('readable', () => this.flush());
    endpoint.on('room', () => this.onRoom());
    endpoint.on('state', (to: State, from: State) => {
      this.emit('state', to, from);
      if (to === 'SUSPENDED') this.emit('suspended');
      if (to === 'ESTABLISHED' && from !== 'CONNECT_SENT' && from !== 'CONNECT_ACKED') this.emit('resumed');
    });
    endpoint.on('closed', (err: FerryError | undefined) => this.onClosed(err));
  }

  /** The connection state (one of the 12 of Table 1). */
  get state(): State {
    return this.endpoint.state;
  }

  /** The peer agent's id. */
  get remoteAgent(): AgentId {
    return this.endpoint.peerAgent;
  }

  /** This agent's id. */
  get localAgent(): AgentId {
    return this.endpoint.localAgent;
  }

  /** The connection id (hex). */
  get connectionId(): string {
    return this.endpoint.idText;
  }

  /**
   * Suspend the connection (SUS -> ACK -> drain). Resolves once SUSPENDED.
   *
   * `signal`: already aborted, this rejects at once with FERRY_ERR_ABORTED (name "AbortError",
   * cause the signal's reason) and the connection is left as it was. Aborted while pending, this
   * rejects at once, but the suspend is not undone: its SUS has already gone to the peer, so the
   * connection goes on to SUSPENDED by itself (only the wait for the peer's answer and the drain
   * is cut short). A later `resumeConnection()` works as after any suspend.
   */
  suspend(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(abortedError('suspend', signal));
    const suspending = this.endpoint.suspend('user');
    if (!signal) return suspending;
    return new Promise<void>((resolve, reject) => {
      const stop = onAbort(signal, () => {
        // The suspend goes on; its outcome is the connection's state (and 'error' if it fails).
        suspending.catch(() => undefined);
        reject(abortedError('suspend', signal));
      });
      suspending.then(
        () => (stop(), resolve()),
        (err: unknown) => (stop(), reject(err)),
      );
    });
  }

  /**
   * Resume the connection from either end. Resolves once ESTABLISHED. (Named so because
   * `Readable.resume()` is stream flow control, which `on('data')` calls internally.)
   *
   * `signal`: already aborted, this rejects at once with FERRY_ERR_ABORTED and nothing is sent.
   * Aborted while pending, the resume is called off as a `suspend()` would (the later call wins):
   * a RES in flight is cancelled, and this rejects with FERRY_ERR_ABORTED once the connection is
   * SUSPENDED again (it waits at most a control timeout for a peer that does not answer; if the
   * resume had just reached ESTABLISHED, the connection is suspended again, so the state after an
   * abort is always SUSPENDED, or CLOSED if the connection closed meanwhile). A later
   * `resumeConnection()` works. If a move takes the agent meanwhile, the connection lands
   * SUSPENDED at the destination.
   */
  resumeConnection(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(abortedError('resume', signal));
    const resuming = this.endpoint.resume();
    if (!signal) return resuming;
    return new Promise<void>((resolve, reject) => {
      let aborted = false;
      const stop = onAbort(signal, () => {
        aborted = true;
        const err = abortedError('resume', signal);
        // The suspend supersedes the pending resume (which then rejects FERRY_ERR_SUPERSEDED):
        // whatever it settles with, the abort is what this call reports.
        resuming.catch(() => undefined);
        this.endpoint.suspend('user').then(
          () => reject(err),
          () => reject(err),
        );
      });
      resuming.then(
        () => {
          if (aborted) return;
          stop();
          resolve();
        },
        (err: unknown) => {
          if (aborted) return;
          stop();
          reject(err);
        },
      );
    });
  }

  /**
   * Graceful close: end our direction, wait until the peer acknowledged every byte (bounded by
   * `timeoutMs`, default 10 s), then CLS. Resolves when CLOSED. A number is taken as `timeoutMs`.
   *
   * `signal`: already aborted, this rejects at once with FERRY_ERR_ABORTED and the connection
   * stays open. Aborted while pending, the graceful close becomes `destroy()`: bytes the peer has
   * not acknowledged are dropped, the peer's socket ends with FERRY_ERR_PEER_ABORTED (unless our
   * graceful CLS already went, which then completes), this socket is destroyed and the promise
   * rejects at once with FERRY_ERR_ABORTED; the connection reaches CLOSED by itself.
   */
  async close(opts: number | { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const { timeoutMs = 10_000, signal } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
    if (signal?.aborted) throw abortedError('close', signal);
    if (!signal) return this.closeGracefully(timeoutMs);
    const closing = this.closeGracefully(timeoutMs);
    await new Promise<void>((resolve, reject) => {
      const stop = onAbort(signal, () => {
        closing.catch(() => undefined);
        reject(abortedError('close', signal));
        this.destroy();
      });
      closing.then(
        () => (stop(), resolve()),
        (err: unknown) => (stop(), reject(err)),
      );
    });
  }

  private async closeGracefully(timeoutMs: number): Promise<void> {
    if (!this.writableEnded) this.end();
    const ep = this.endpoint;
    if (!ep.send.finAcked && ep.state !== 'CLOSED') {
      // Wait for the ack of our last byte (an ACK frame emits 'room'), bounded by `timeoutMs`.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          if (!ep.send.finAcked && ep.state !== 'CLOSED') return;
          timer.cancel();
          ep.off('room', done);
          ep.off('state', done);
          resolve();
        };
        const timer = ep.clock.setTimer(timeoutMs, () => {
          ep.off('room', done);
          ep.off('state', done);
          resolve();
        });
        ep.on('room', done);
        ep.on('state', done);
      });
    }
    await ep.close();
    this.destroy();
  }

  override _read(): void {
    this.wantRead = true;
    this.flush();
  }

  private flush(): void {
    if (this.moved) return;
    // Only while bytes are queued: a read that finds none costs a call through the core for nothing.
    while (this.wantRead && this.endpoint.recv.queued > 0) {
      const chunk = this.endpoint.read(READ_CHUNK);
      if (!chunk) break;
      if (!this.push(chunk)) this.wantRead = false;
    }
    // The readable side ends after the last byte was handed over: at the peer's FIN, or after a
    // close once nothing is left queued (never with unread bytes still held).
    if (!this.ended && (this.endpoint.recv.ended || this.peerClosed) && this.endpoint.recv.queued === 0) {
      this.ended = true;
      this.push(null);
    }
    // What this stream buffers stays charged to the host's receive budget until it is read
    // (Node calls _read, so flush, whenever the buffer drops below the high-water mark).
    this.endpoint.holding(this.readableLength + this.outside);
  }

  /**
   * The reader of this stream still holds `bytes` of what it read, elsewhere in the host (the
   * runtime's read-ahead to an agent worker): they stay charged to the host's receive budget.
   */
  holdOutside(bytes: number): void {
    this.outside = bytes;
    if (!this.moved) this.endpoint.holding(this.readableLength + bytes);
  }
  private outside = 0;
  /** The connection closed: the readable side ends once the queued bytes are read. */
  private peerClosed = false;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.moved) return cb(new FerryError('FERRY_ERR_SOCKET_MOVED'));
    let room: boolean;
    try {
      room = this.endpoint.write(chunk);
    } catch (err) {
      return cb(err as Error);
    }
    if (room || this.flushing) cb();
    else this.pendingWrite = cb;
  }

  private onRoom(): void {
    if (this.pendingWrite && this.endpoint.send.hasRoom) {
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      cb();
    }
    if (this.pendingFinal && this.endpoint.send.finAcked) {
      const cb = this.pendingFinal;
      this.pendingFinal = undefined;
      cb();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.moved) return cb();
    try {
      this.endpoint.end();
    } catch (err) {
      return cb(err as Error);
    }
    if (this.endpoint.send.finAcked) cb();
    else this.pendingFinal = cb;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Whatever this stream and the connection still buffer is dropped with it.
    this.endpoint.releaseBudget();
    if (!this.moved && this.endpoint.state !== 'CLOSED') {
      // Both directions finished cleanly (Node's autoDestroy after 'end' and 'finish'): a
      // graceful CLS. Anything else is an abort the peer must hear about.
      if (!err && this.readableEnded && this.writableFinished) void this.endpoint.close();
      else this.endpoint.destroy(err instanceof FerryError ? err : undefined);
    }
    cb(err);
  }

  private onClosed(err: FerryError | undefined): void {
    if (this.moved) return;
    // Deliver what arrived before the close, then end; an error ends the stream with it.
    this.wantRead = true;
    this.flush();
    const graceful = !err || err.code === ('FERRY_ERR_CONNECTION_CLOSED' as ErrorCode);
    if (this.pendingWrite) {
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      const fail = (): void => cb(err ?? new FerryError('FERRY_ERR_CONNECTION_CLOSED'));
      // A write waiting for room fails: the peer reads no more. Failing it destroys this stream,
      // so after a graceful close it fails only once the reader has read to the end: the bytes
      // the peer sent before its close, received but not yet read, are not lost with it.
      if (graceful && !this.readableEnded) {
        this.peerClosed = true;
        this.once('end', fail);
      } else fail();
    }
    if (this.pendingFinal) {
      const cb = this.pendingFinal;
      this.pendingFinal = undefined;
      cb(this.endpoint.send.finAcked ? null : err ?? null);
    }
    // A peer's graceful close ends the stream; an abort, unreachability or a refusal is an error.
    if (err && err.code !== ('FERRY_ERR_CONNECTION_CLOSED' as ErrorCode)) {
      this.destroy(err);
      return;
    }
    this.peerClosed = true;
    this.flush();
  }

  /**
   * Before a move: accept everything the application already handed to `write()` into the send
   * buffer (so the checkpoint carries it), then stop this object. Bytes already pushed to the
   * application stay readable here; the readable side then ends.
   */
  async prepareDetach(): Promise<void> {
    this.flushing = true;
    if (this.pendingWrite) {
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      cb();
    }
    for (let i = 0; i < 1000 && this.writableLength > 0; i++) await new Promise((r) => setImmediate(r));
  }

  /** After the checkpoint: this object no longer carries the connection. */
  markMoved(): void {
    this.moved = true;
    this.pendingFinal?.();
    this.pendingFinal = undefined;
    if (!this.ended) {
      this.ended = true;
      this.push(null);
    }
    this.emit('moved');
  }
}

/**
 * An agent's server socket: CONNECTs to the agent become {@link AgentSocket}s, delivered as
 * 'connection' events, through `accept()`, or by `for await (const sock of server)` (which ends
 * when the server socket closes), as on the agent side.
 */
export class AgentServerSocket extends EventEmitter implements AsyncIterable<AgentSocket> {
  private readonly queue: AgentSocket[] = [];
  private readonly waiters: Waiter<AgentSocket>[] = [];
  private closedFlag = false;

  constructor(
    readonly agent: AgentId,
    private readonly onClose: () => void,
  ) {
    super();
  }

  /** Called by the host when a connection to this agent is established. */
  deliver(sock: AgentSocket): void {
    const w = this.waiters.shift();
    if (w) w.resolve(sock);
    else if (this.listenerCount('connection') > 0) this.emit('connection', sock);
    else this.enqueue(sock);
  }

  /**
   * Hold a connection until it is accepted. One that fails meanwhile (the peer aborted or never
   * came back) is dropped from the queue with what it buffered: its error has no reader, and a
   * stranger's dead connections must not pile up here.
   */
  private enqueue(sock: AgentSocket): void {
    const failed = (): void => {
      const i = this.queue.indexOf(sock);
      if (i >= 0) this.queue.splice(i, 1);
      this.queued.delete(sock);
    };
    sock.on('error', failed);
    this.queued.set(sock, failed);
    this.queue.push(sock);
  }
  private readonly queued = new Map<AgentSocket, () => void>();

  /**
   * The next incoming connection. Rejects with FERRY_ERR_CONNECTION_CLOSED once the server socket
   * closes (also while waiting), and with FERRY_ERR_ABORTED when `signal` aborts first.
   */
  accept(opts: { signal?: AbortSignal } = {}): Promise<AgentSocket> {
    const { signal } = opts;
    // Already aborted: rejects even with a connection queued, which stays for the next accept().
    if (signal?.aborted) return Promise.reject(abortedError('accept', signal));
    const s = this.queue.shift();
    if (s) {
      s.off('error', this.queued.get(s)!);
      this.queued.delete(s);
      return Promise.resolve(s);
    }
    if (this.closedFlag) return Promise.reject(new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'server socket closed'));
    return queueWaiter(this.waiters, 'accept', signal);
  }

  /** Connections as they arrive, until the server socket closes. */
  [Symbol.asyncIterator](): AsyncIterator<AgentSocket> {
    return this.connections()[Symbol.asyncIterator]();
  }

  /**
   * Connections as they arrive, until the server socket closes (the loop then ends), as
   * `for await (const sock of server.connections({ signal }))`. When `signal` aborts, the
   * `accept()` it waits in rejects and the loop throws FERRY_ERR_ABORTED (as `events.on` does);
   * the server socket stays open, and a connection arriving later waits for the next `accept()`.
   */
  async *connections(opts: { signal?: AbortSignal } = {}): AsyncGenerator<AgentSocket, void, undefined> {
    for (;;) {
      try {
        yield await this.accept(opts);
      } catch (err) {
        if (isFerryError(err, 'FERRY_ERR_CONNECTION_CLOSED')) return;
        throw err;
      }
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
    for (const w of this.waiters.splice(0)) w.reject(new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'server socket closed'));
    this.onClose();
    this.emit('close');
  }
}
