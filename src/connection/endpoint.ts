/**
 * One end of a connection: the adapter of its {@link ConnectionCore}, which decides everything
 * (the state, the table's actions, the data path, the sockets' rules, our requests). This hands
 * the core its inputs, carries out the commands its `poll()` gives out, holds the one clock timer
 * set from its next deadline, and keeps the promise API. Sockets, control requests and location
 * lookups come from the host through {@link EndpointEnv}, so this layer never touches `node:net`
 * or `node:dgram`.
 *
 * Exactly-once rests on three facts kept here: the sender keeps every byte until the peer's
 * cumulative ack covers it; every new data socket starts with both sides stating how far they
 * have received (HELLO / HELLO_ACK) and the sender rewinds to there; the receiver drops bytes
 * below its received offset. Suspend, resume, moves and socket kills only change *when* bytes
 * flow, never which.
 */
import { EventEmitter } from 'node:events';
import type { AgentId, ConnectionKeys, Identity } from '../identity/index.js';
import { FerryError, type Clock, type Logger, type TimerHandle } from '../util/index.js';
import { parseAddress } from '../control/index.js';
import type { ConnControl, Connect, ConnectFrame, Hello, Role } from '../wire/index.js';
import type { SendBuffer, ReceiveBuffer } from './data-path.js';
import type { EndpointCheckpoint, PeerLocator } from './checkpoint.js';
import type { StreamSocket } from './data-socket.js';
import { SocketSlots } from './adapters/socket-slots.js';
import { ControlIO } from './adapters/control-io.js';
import { waitUntil } from './adapters/waits.js';
import { coreEnv, firstWindow, newCore, OPEN_CRYPTO, type EndpointEnv } from './adapters/endpoint-env.js';
import type { Event, State } from './state-machine.js';
import { serverEnd, ConnectionCore, dueAt, SuspendWatch, unmappedIp, type CoreCommand, type Deferred, type ServerOpen } from './core/index.js';
import type { ConnectionStats, DialCommand } from './core/index.js';

export type { EndpointEnv } from './adapters/endpoint-env.js';

/**
 * Events emitted: 'state' (to, from), 'readable', 'room', 'established', 'confirmed' (a half-open
 * whose key the client's RES confirmed: opened, but resuming), 'closed' (err?).
 */
export class Endpoint extends EventEmitter {
  /**
   * The state, the events waiting to be applied, the deadlines, and what a move carries: ids,
   * keys, buffers, control counters, the peer's addresses, recovery (core/connection-core.ts).
   */
  private readonly core: ConnectionCore;
  readonly send: SendBuffer;
  readonly recv: ReceiveBuffer;
  readonly role: Role;
  readonly localAgent: AgentId;
  readonly peerAgent: AgentId;
  readonly secure: boolean;
  /** The sockets behind the core's socket slots, and the write pump (adapters/socket-slots.ts). */
  private readonly sockets: SocketSlots;
  /** Our control requests, lookups and RES signatures in flight (adapters/control-io.ts). */
  private readonly requests: ControlIO;
  /**
   * The one clock timer, set from the core's next deadline (every deadline of the connection is
   * in the core's timer table; an expiry names the socket slot it belongs to).
   */
  private clockTimer: TimerHandle | undefined;
  /** When {@link clockTimer} fires (it may fire before the next deadline: it then re-arms). */
  private clockAt: number | undefined;
  /** The core's {@link ConnectionCore.deadlinesVersion} the clock was last set from (-1: to set again). */
  private armedVersion = -1;
  /** Carrying out a row's command (an event fired meanwhile waits in the core for its turn; core/connection-core.ts `inRow`). */
  private firing = false;
  private readonly log: Logger;

  private constructor(
    private readonly env: EndpointEnv,
    core: ConnectionCore,
  ) {
    super();
    // Each pending suspend(), resume() or close() of the application waits on a few events:
    // more than Node's default 10 listeners is concurrency, not a leak (every wait removes its own).
    this.setMaxListeners(64);
    this.core = core;
    this.send = core.send;
    this.recv = core.recv;
    this.role = core.role;
    this.localAgent = core.localAgent;
    this.peerAgent = core.peerAgent;
    this.secure = core.secure;
    this.log = env.logger.child({ conn: this.idText, role: core.role });
    // Every frame and close of a socket comes back as the core's input naming its slot.
    this.sockets = new SocketSlots({ log: this.log, flow: core.flow, carrier: () => core.slots.data, state: () => core.state, defer: (fn) => this.deferred(fn), drive: () => this.drive(), data: (slot, offset, payload) => this.data(slot, offset, payload) }, core);
    core.bindSockets(this.sockets);
    this.requests = new ControlIO(env, core, () => env.clock.now(), () => this.drive());
    // Connections opened to us count against their source address too (a stranger's fresh keys
    // cost nothing; its address does); those our agents open, against the host and agent only.
    core.flow.useBudget(env.receiveBudget?.open(core.localAgent, core.role === 'server' ? core.path.peer.ip : undefined));
  }

  /** What this end counted, for metrics: sockets, reuses, bytes replayed, suspends and resumes with their times (the core's). */
  get stats(): ConnectionStats {
    return this.core.stats;
  }

  /** The connection's state (one of the 12 of the transition table). */
  get state(): State {
    return this.core.state;
  }

  /** The connection id (the client's half and zeros until the server's half is known). */
  get connectionId(): Buffer {
    return this.core.connectionId;
  }

  /** The connection's keys (security on), once the handshake derived them. */
  get keys(): ConnectionKeys | undefined {
    return this.core.keys;
  }

  /** The peer's address: where control requests go and (without a proven candidate) where we dial. */
  get peer(): PeerLocator {
    return this.core.path.peer;
  }

  /** The connection id in hex. */
  get idText(): string {
    return this.connectionId.toString('hex');
  }

  /** Whether this end opens data sockets after a resume (core/slots.ts: the lower AgentId, the client on a tie). */
  get isDialer(): boolean {
    return this.core.slots.isDialer;
  }

  /** The error the connection ended with, if any. */
  get error(): FerryError | undefined {
    return this.core.intent.closedError;
  }

  // ------------------------------------------------------------------ construction

  /** A client endpoint about to open a connection to `peerAgent` at `peer`. */
  static client(env: EndpointEnv, local: Identity, peerAgent: AgentId, peer: PeerLocator, clientHalf: Buffer): Endpoint {
    const ep = new Endpoint(env, newCore(env, local.id, { state: 'CLOSED', role: 'client', peerAgent, connectionId: Buffer.concat([clientHalf, Buffer.alloc(8)]), peer, secure: env.security }));
    const window = ep.recv.announce(firstWindow(env));
    ep.core.open.startClient({ inband: env.inbandOpen !== false, client: local, redirectorPort: env.redirectorPort, controlPort: env.controlPort, window, crypto: OPEN_CRYPTO });
    return ep;
  }

  /**
   * A server endpoint for a verified CONNECT: returns the endpoint (in CONNECT_ACKED) and the
   * CONNECT_ACK body to reply with.
   */
  static server(env: EndpointEnv, local: Identity, connect: Connect, connectBody: Buffer, from: string, serverHalf: Buffer): { endpoint: Endpoint; reply: Buffer } {
    const { ip, port } = parseAddress(from);
    const ep = new Endpoint(env, newCore(env, local.id, serverEnd(connect, serverHalf, { ip, controlPort: port })));
    const reply = ep.startServer({ connect, connectBody, server: local });
    return { endpoint: ep, reply };
  }

  /**
   * A server endpoint for a verified in-band CONNECT that arrived as the first frame of `sock`
   * (the redirector read it): the endpoint (in CONNECT_ACKED) has written its CONNECT_ACK on the
   * socket and waits there for the client's CONNECT_CONFIRM. The host indexes it, then calls
   * {@link startInband} with the bytes read past the CONNECT.
   */
  static serverInband(env: EndpointEnv, local: Identity, c: ConnectFrame, frameBody: Buffer, sock: StreamSocket, serverHalf: Buffer): Endpoint {
    // The client's IP is the TCP peer's (the handshake proved it); its control port is in the
    // frame, under the transcript hash (so under both signatures' and MACs' cover).
    const from = { ip: unmappedIp(sock.remoteAddress ?? ''), controlPort: c.controlPort };
    const ep = new Endpoint(env, newCore(env, local.id, serverEnd(c.connect, serverHalf, from)));
    const slot = ep.core.newSlot();
    const reply = ep.startServer({ connect: c.connect, connectBody: frameBody, server: local, inband: { controlPort: env.controlPort, slot } });
    // Until the CONNECT_CONFIRM verifies, the socket has proved nothing: frames keep the
    // redirector's first-frame bound.
    ep.sockets.opening(slot, sock).sendRaw(reply);
    return ep;
  }

  /** Server: the core's open answers the CONNECT; CONNECT_ACKED, the handshake deadline armed. Returns the CONNECT_ACK. */
  private startServer(o: Pick<ServerOpen, 'connect' | 'connectBody' | 'server' | 'inband'>): Buffer {
    const reply = this.core.startServer({ connect: o.connect, connectBody: o.connectBody, server: o.server, inband: o.inband, redirectorPort: this.env.redirectorPort, window: firstWindow(this.env), crypto: OPEN_CRYPTO }, this.env.clock.now());
    this.core.flow.settleBudget();
    this.drive();
    return reply;
  }

  /** Rebuild a moved endpoint from its checkpoint (state SUSPENDED); call {@link start} after indexing. */
  static fromCheckpoint(env: EndpointEnv, input: EndpointCheckpoint): Endpoint {
    const ep = new Endpoint(env, ConnectionCore.fromCheckpoint(input, coreEnv(env)));
    // What it carries is charged here whatever the budget says: the move was admitted.
    ep.core.flow.settleBudget();
    return ep;
  }

  /** After a checkpoint is attached and indexed: resume at once if the endpoint was live. */
  start(): void {
    if (this.core.intent.start(this.env.clock.now())) this.fire('resume');
  }

  // ------------------------------------------------------------------ the table

  /** Hand `event` to the core and carry out what it decides, unless already doing so (then it waits its turn). */
  private fire(event: Event): void {
    this.core.handle(event);
    this.drive();
  }

  /**
   * Carry out the core's commands until it has none, unless a row's command is being carried out
   * (then what was queued comes out after it, in the same run). An input's command runs outside
   * any row: an event it fires is applied at once, before it goes on (core/connection-core.ts
   * `inRow`).
   */
  private drive(): void {
    if (this.firing) return;
    try {
      // One reading of the clock for the whole run: carrying out a command takes no time that counts.
      const now = this.env.clock.now();
      for (let c = this.core.poll(now); c; c = this.core.poll(now)) {
        this.firing = this.core.inRow;
        this.carryOut(c);
      }
    } finally {
      this.firing = false;
      this.rearm();
    }
  }

  /**
   * Carry out one command of the core: the one dispatch, for the table's rows and every input alike.
   * The cases go in the order of how often a suspend, resume or exchange of data gives them out
   * (a switch on strings tries its cases in turn until the JIT has compiled it).
   */
  private carryOut(c: CoreCommand): void {
    switch (c.kind) {
      case 'clear':
        if (this.core.cancelDeadline(c.name, c.slot)) this.rearm();
        return;
      case 'transition':
        // What the new state no longer keeps of the data sockets went first (core/slots.ts).
        this.emit('state', c.to, c.from);
        return;
      case 'deadline':
        this.core.setDeadline(c.name, this.env.clock.now() + c.ms, c.slot);
        return this.rearm();
      case 'pump':
        return this.sockets.pump();
      case 'send':
        this.sockets.send(c.slot, c.frame);
        return;
      case 'notify':
        this.emit(c.event);
        return;
      case 'keep':
        return this.sockets.keep(c.slot);
      case 'reuse':
        return this.sockets.reuse(c.slot);
      case 'send_ack':
        if (this.sockets.sendAck(c.slot)) this.rearm();
        return;
      case 'established':
        // The clock follows the deadlines (the handshake's went) before listeners hear.
        this.rearm();
        this.emit('established');
        this.sockets.schedulePump();
        return;
      case 'send_suspend':
        // What came of the send goes back at once: its commands come next.
        return this.core.suspendFrameSent(c.slot, this.sockets.send(c.slot, c.frame));
      case 'act':
        // The replies (send_connect_ack, ack_sus, ack_res, ack_cls) are built by the message
        // handlers; every other action is decided by the core and comes out as its commands.
        return;
      case 'drained':
        this.emit('drained');
        return;
      // Held for a later turn (the peer's SUSPEND inside a row, an event, the turn's ACK): handed back when due.
      case 'peer_suspends':
      case 'fire_later':
      case 'ack_at_turn_end':
        return this.later(c);
      case 'stale':
        // Queued events can go stale behind an earlier one in the same batch.
        this.log.debug('stale_event', { event: c.event, state: c.state });
        return;
      case 'confirmed':
        // The host hands the connection to its agent (host.ts adoptHalfOpen), resuming.
        this.emit('confirmed');
        return;
      case 'dial':
        return this.dial(c);
      case 'accept':
        return this.sockets.accept(c.slot, c.frame);
      case 'attach':
        if (c.keys) this.sockets.socket(c.slot)?.setKeys(c.keys.send, c.keys.receive);
        this.core.attach(c.slot, c.received, c.limit, true);
        this.drive();
        // A socket handed over after its HELLO reads what came after it.
        return this.sockets.feedRest(c.slot);
      case 'open_send_raw':
        this.sockets.socket(c.slot)?.sendRaw(c.bytes);
        return;
      case 'open_oneway':
        this.env.oneway(c.to, c.type, c.body);
        return;
      case 'open_attach': {
        const ds = this.sockets.socket(c.slot);
        if (!ds) return;
        if (c.keys) ds.setKeys(c.keys.send, c.keys.receive);
        ds.endRaw();
        // Both ends start at offset 0 and know each other's window from CONNECT / CONNECT_ACK
        // (the window stands as announced: no ACK restates it).
        this.core.attach(c.slot, 0, this.send.peerLimit, false);
        return this.drive();
      }
      case 'open_indexed':
        this.env.indexed(this);
        return;
      case 'destroy':
        this.destroy(c.err);
        return;
      case 'log':
        this.log[c.level](c.event, c.fields);
        return;
      case 'request':
      case 'lookup':
      case 'cancel':
      case 'sign_res':
        return this.requests.carryOut(c);
      case 'count_refusal':
        this.env.refused?.(c.err.code);
        return;
      case 'ended':
        return this.teardown(c.err);
      case 'close':
        return this.sockets.destroy(c.slot);
      case 'carry':
        return this.sockets.carry(c.slot);
    }
  }

  /**
   * A DATA piece on the carrying `slot`. With the core quiet (a bulk transfer's every read), its
   * fast path (core/connection-core.ts `data`): the reader told, then the piece's ACK as the core
   * decides it once the reader took what it wanted, without a round of the drive loop. Else, or
   * if something is left queued after it, the drive carries it out.
   */
  private data(slot: number, offset: number, payload: Buffer): void {
    const n = this.core.data(slot, offset, payload);
    if (n === undefined) return this.drive();
    if (n > 0) this.emit('readable');
    const c = this.core.pieceTold();
    if (c) this.carryOut(c);
    if (!this.core.quiet) this.drive();
  }

  /** Hand `c` back to the core when it is due (core/connection-core.ts `dueAt`): the adapter's one way of deferring. */
  private later(c: Deferred): void {
    const back = (): void => {
      this.core.deferredDue(c, this.env.clock.now());
      this.drive();
    };
    if (dueAt(c) === 'turn') this.deferred(back);
    else queueMicrotask(back);
  }

  // ------------------------------------------------------------------ the one timer

  /**
   * Keep the one clock timer at the next deadline. A timer already due earlier is left alone: it
   * fires, finds nothing due, and re-arms (fewer timer churns than re-setting on every change).
   */
  private rearm(): void {
    // Nothing changed in the deadlines since the last re-arm: it would come to the same.
    const version = this.core.deadlinesVersion;
    if (version === this.armedVersion) return;
    this.armedVersion = version;
    const next = this.core.nextDeadline();
    if (next === this.clockAt) return;
    if (next !== undefined && this.clockAt !== undefined && next > this.clockAt) return;
    this.clockTimer?.cancel();
    this.clockTimer = undefined;
    this.clockAt = next;
    if (next === undefined) return;
    this.clockTimer = this.env.clock.setTimer(Math.max(0, next - this.env.clock.now()), () => this.onClock());
  }

  /** The clock timer fired: handle one due deadline (the next, if also due, on a fresh turn). */
  private onClock(): void {
    this.clockTimer = undefined;
    this.clockAt = undefined;
    this.armedVersion = -1;
    // The core acts on it itself (nothing, if none is due); the drive re-arms the clock.
    this.core.handleTimeout(this.env.clock.now());
    this.drive();
  }

  // ------------------------------------------------------------------ open

  /** Open the connection; resolves when ESTABLISHED, rejects with a typed error. */
  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      // Both listeners go once the open settles: a listener left on 'closed' would build an
      // error (and its stack) at every later close.
      const established = (): void => {
        this.off('closed', closed);
        resolve();
      };
      const closed = (err: FerryError | undefined): void => {
        this.off('established', established);
        reject(err ?? new FerryError('FERRY_ERR_CONNECTION_CLOSED'));
      };
      this.once('established', established);
      this.once('closed', closed);
      this.core.beginOpen();
      this.drive();
    });
  }

  /** In-band server: read what followed the CONNECT (the host has indexed the endpoint). */
  startInband(rest: Buffer): void {
    this.sockets.socket(this.core.open.openingSlot)?.feed(rest);
  }

  /** Server: the client's CONNECT_CONFIRM datagram arrived. Throws the typed error to answer. */
  handleConfirm(mac: Buffer): void {
    this.core.confirmDatagram(mac);
    this.drive();
  }

  // ------------------------------------------------------------------ data sockets

  /**
   * `dial`: socket slot `c.slot` to `c.ip:c.port` (the one dialled ahead for it, if any). What
   * came of it goes back to the core at once (`dialStarted`), a throw on a later turn
   * (`dialThrew`); the socket's frames and close are inputs naming the slot.
   */
  private dial(c: DialCommand): void {
    const slot = c.slot;
    let sock: StreamSocket;
    // The deadlines the core set are armed before anything the dial starts.
    this.rearm();
    try {
      sock = this.sockets.takePredial(slot) ?? this.env.dial(c.ip, c.port);
    } catch (err) {
      return queueMicrotask(() => {
        this.core.dialThrew(slot, err);
        this.drive();
      });
    }
    if (c.ahead) return this.sockets.predialed(slot, sock);
    // The in-band open's socket, its first frame the CONNECT; or a data socket, its HELLO to come.
    if (c.first) this.sockets.opening(slot, sock, true).sendRaw(c.first);
    else this.sockets.dialed(slot, sock);
    this.core.dialStarted(slot);
  }

  /**
   * The redirector handed us a socket whose first frame is `hello` (already decoded), `rest` read
   * past it. Throws a FerryError when the HELLO is refused; the redirector then sends REJECT.
   * Otherwise the socket is the slot the core names, held unread until the core answers it.
   */
  acceptHello(sock: StreamSocket, hello: Hello, rest: Buffer): void {
    const slot = this.core.helloArrived(hello, sock.remoteAddress);
    this.sockets.handed(slot, sock, rest);
    this.drive();
  }

  // ------------------------------------------------------------------ receive budget

  /** Give this connection's charge back: its bytes left this host (moved, or dropped unread). */
  releaseBudget(): void {
    this.core.flow.releaseBudget();
  }

  /**
   * The reader still holds `bytes` of what it read (its stream buffer): they stay charged until
   * it lets go of them. Room that frees reopens the peer's window.
   */
  holding(bytes: number): void {
    // Its ACK, if the peer's window reopens, goes at once (the reader may call during a row).
    const ack = this.core.holding(bytes);
    if (ack) this.carryOut(ack);
  }

  private deferred(fn: () => void): void {
    if (this.env.defer) this.env.defer(fn);
    else setImmediate(fn);
  }

  /** The endpoint's clock (the host's). */
  get clock(): Clock {
    return this.env.clock;
  }

  // ------------------------------------------------------------------ application side

  /** Accept application bytes; returns false when the send budget is full (backpressure). */
  write(buf: Buffer): boolean {
    if (this.detached) throw movedError();
    if (this.state === 'CLOSED' || this.state === 'CLOSE_SENT' || this.state === 'CLOSE_ACKED') throw new FerryError('FERRY_ERR_CONNECTION_CLOSED');
    this.send.append(buf);
    this.sockets.schedulePump();
    return this.send.hasRoom;
  }

  /** End our direction of the stream (FIN at the current offset). */
  end(): void {
    if (this.detached) throw movedError();
    this.send.end();
    this.sockets.schedulePump();
  }

  /** Take up to `max` received bytes for the application. */
  read(max: number): Buffer | undefined {
    // The reader holds what it took until it says otherwise (holding()); the ACK that reopens the
    // peer's window, if due, goes at once.
    const r = this.core.read(max);
    if (r.ack) this.carryOut(r.ack);
    return r.bytes;
  }

  /** Suspend: resolves once SUSPENDED and the data socket is drained. */
  async suspend(reason: 'user' | 'move' = 'user'): Promise<void> {
    if (this.detached) throw movedError();
    const step = this.core.intent.suspend(reason, this.env.clock.now());
    // The later call wins: a resume() still pending here settles with FERRY_ERR_SUPERSEDED.
    if (reason === 'user') this.emit('superseded');
    // The intent stopped the resume retry.
    this.rearm();
    if (step.kind === 'suspend') this.fire('suspend');
    else if (step.kind === 'refuse') throw step.error;
    // Judged between transitions only (core/intent.ts `SuspendWatch`): SUS_SENT -> SUSPENDED
    // announces SUSPENDED before its drain has started, and a resume right after would find no
    // socket kept to offer.
    const watch = new SuspendWatch();
    const observe = (): void => watch.observe(this.state);
    observe();
    this.on('state', observe);
    try {
      await this.until(() => watch.done(this.state, this.core.slots.draining.size), true);
    } finally {
      this.off('state', observe);
    }
  }

  /**
   * Resume: resolves once ESTABLISHED again; retries until the reconnect limit. While the host
   * prepares a move of this endpoint the resume is not started here (that would leave the
   * connection live on a host its agent is leaving): the wish travels in the checkpoint, the
   * connection resumes at the destination, and this promise rejects with FERRY_ERR_SOCKET_MOVED
   * once this object is detached (or goes on here if the move is cancelled).
   */
  async resume(): Promise<void> {
    const call = this.core.intent.resumeCalled();
    try {
      await this.resumeLoop(call);
    } finally {
      this.core.intent.resumeSettled();
    }
  }

  /** Resume() `call` turn by turn as the intent decides (core/intent.ts `ResumeStep`), waiting between turns. */
  private async resumeLoop(call: number): Promise<void> {
    for (;;) {
      if (this.detached) throw movedError();
      const step = this.core.intent.resumeStep(call, this.env.clock.now());
      if (step.kind === 'done') return;
      if (step.kind === 'refuse') throw step.error;
      if (step.kind === 'resume') this.fire('resume');
      const wait = step.kind === 'resume' ? 'wait_resume' : step.kind;
      await this.until(() => this.core.intent.resumeWaitOver(wait, call));
    }
  }

  /** Close: CLS to the peer; resolves when CLOSED. */
  async close(): Promise<void> {
    // The connection lives at the destination now: closing this object must not send a CLS.
    if (this.detached) throw movedError();
    const step = this.core.intent.close();
    if (step === 'done') return;
    if (step === 'close') this.fire('close');
    await this.until(() => this.state === 'CLOSED', false, true).catch(() => {});
  }

  /** Abortive close with an error for the local application. */
  destroy(err?: FerryError): void {
    if (!this.detached && this.core.intent.destroy(err)) this.fire('close');
  }
  /**
   * The host is stopping (its control channel is closed): a close still retrying its CLS ends
   * now, CLOSED with `err`, instead of waiting out its backoff or a lookup, which outlived the
   * host by up to PEER_MOVE_WAIT_MS and then failed on the closed channel. Any other state is
   * ended by {@link destroy} and the control requests the closed channel aborted.
   */
  stop(err: FerryError): void {
    if (!this.detached && this.core.stop(err)) this.drive();
  }

  /**
   * Resolve once `pred` holds (checked on every state change, finished drain and close); reject
   * if the endpoint closes first. `settled`: judge only between transitions, never halfway through
   * a row (its 'state' event comes before its actions, e.g. before a drain starts). A close that
   * has begun (CLOSE_SENT, CLOSE_ACKED) rejects at once unless `toClosed` (close() waits for
   * CLOSED): a close may take up to the reconnect limit to reach its peer, and nothing else
   * (a suspend, a resume, a move's preparation) waits for it.
   */
  private until(pred: () => boolean, settled = false, toClosed = false): Promise<void> {
    return waitUntil(this, pred, { busy: () => settled && this.firing, fails: () => (this.detached ? movedError() : this.core.intent.waitFails(toClosed)) });
  }

  // ------------------------------------------------------------------ the peer's requests

  /**
   * A SUS, RES or CLS from the peer (already decoded). Returns the reply body, or throws the
   * typed error to send back (core/control-incoming.ts decides which, in the order that makes
   * forgeries and replays change nothing).
   */
  handleControl(m: ConnControl, from: string): Buffer {
    const d = this.core.peerRequest(m, from, this.env.clock.now());
    // The decision may have stopped our resume retry or close retry.
    this.rearm();
    this.drive();
    if (d.kind === 'refuse') throw d.error;
    return d.reply;
  }

  // ------------------------------------------------------------------ moves

  /** Bring the endpoint to SUSPENDED for a move; incoming RES are answered PEER_MOVING meanwhile. */
  async prepareMove(): Promise<void> {
    const resumeWanted = this.core.intent.prepareMove();
    this.emit('moving');
    // The intent stopped the resume retry.
    this.rearm();
    if (this.core.intent.moveWaitsForOpen) await this.until(() => this.state === 'ESTABLISHED');
    if (this.core.intent.moveSuspends(this.core.slots.draining.size)) await this.suspend('move');
    this.core.intent.movePrepared(resumeWanted);
  }

  /** Abandon a prepared move (rollback): the endpoint resumes where it is. */
  cancelMove(): void {
    if (this.core.intent.cancelMove()) this.fire('resume');
    this.emit('moving');
  }

  /** Whether the endpoint is being prepared for a move (suspended, answering PEER_MOVING). */
  get isMoving(): boolean {
    return this.core.intent.moving;
  }

  /** Take the checkpoint of a SUSPENDED endpoint; this object is dead afterwards. */
  checkpoint(): EndpointCheckpoint {
    this.fire('detach');
    const cp = this.core.checkpoint();
    // Its bytes travel in the checkpoint: charged at the destination now.
    this.releaseBudget();
    this.detached = true;
    this.emit('detached');
    return cp;
  }
  /** True once checkpointed: the live endpoint is elsewhere now. */
  detached = false;

  /**
   * Our host's address changed (a roaming host). The data socket, and a kept one, left from an
   * address that is gone and would stall without an error: they are cut (a lost socket, so the
   * connection resumes), and an in-band open still in its handshake fails (the opener opens
   * again); which, and our next RES's proof, are the core's (`addressChanged`). Returns whether a
   * socket was dropped.
   */
  addressChanged(): boolean {
    if (this.detached) return false;
    let dropped = false;
    for (const c of this.core.addressChanged()) if (this.sockets.cut(c.slot, c.reset)) dropped = true;
    return dropped;
  }

  /** Fault injection (tests, demo): reset the current data socket (and a kept one) as a network cut would. */
  breakDataSocket(): boolean {
    let n = 0;
    for (const slot of this.core.slots.live()) if (this.sockets.cut(slot, true)) n++;
    return n > 0;
  }

  /** `ended`: the core did its part (core/connection-core.ts `end`: our requests stopped, every socket closed, no deadline left); the host forgets us, the application hears `err`. */
  private teardown(err: FerryError | undefined): void {
    this.rearm();
    this.env.released(this);
    this.core.flow.settleBudget();
    this.emit('closed', err);
  }
}

/** The typed error of a call on an endpoint whose connection moved on with its agent. */
function movedError(): FerryError {
  return new FerryError('FERRY_ERR_SOCKET_MOVED', 'the connection moved with its agent; use its socket on the destination host');
}
