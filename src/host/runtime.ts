/**
 * The agent runtime: runs each admitted agent confined in its own worker thread, gives it a
 * `ctx` through which every action is checked against its credential and the host policy, and
 * stops it when it crashes, outgrows its memory or stops answering heartbeats — without harm to
 * the host or its other agents.
 *
 * The runtime does not bind ports or speak the network protocol. It takes a small
 * {@link RuntimeHost} (the lead's `Host` adapter): register an agent, listen, connect, and
 * migrate. Each agent connection is a real `AgentSocket` on the host, pumped to the worker by a
 * {@link Pump} that keeps every byte until agent code has read it; see `agent-port.ts` for the
 * worker side and docs/AGENTS.md for the whole model.
 *
 * Weak mobility: `ctx.migrate(target)` (or {@link AgentRuntime.migrate} for an operator move)
 * freezes the worker's sockets, snapshots `ctx.state` and how far agent code read each socket, and
 * hands the host an {@link OutgoingAgent}. The host detaches the connections, calls `seal()` to
 * collect the bytes agent code never saw, and lands the agent at the destination runtime
 * ({@link AgentRuntime.admit}, then {@link AgentRuntime.land}), where `run(ctx)` starts again
 * with the same state and `ctx.connections`. A failure before the host detached anything thaws
 * the worker: the agent runs on where it was.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { AgentServerSocket, AgentSocket } from '../connection/index.js';
import { parseId, type AgentId, type Identity } from '../identity/index.js';
import { ERRORS, FerryError, isFerryError, limit, setBounded, silentLogger, systemClock, type Clock, type ErrorCode, type Logger, type TimerHandle } from '../util/index.js';
import { parseWorkerMessage, type Consumed, type HostMessage, type SocketInfo, type WorkerInit, type WorkerMessage } from './agent-protocol.js';
import { groupResult, type GroupMember, type Host, type MemberOutcome, type MigrationReport, type MigrationTarget } from './host.js';
import { decodeAgentLanding } from './agent-checkpoint.js';
import {
  checkConnect,
  checkListen,
  codeHashOf,
  credentialFromText,
  credentialToText,
  grantFor,
  toCredential,
  verifyCredential,
  type AgentCredential,
  type AgentGrant,
  type CredentialInput,
  type HostPolicy,
  type OwnerId,
} from './policy.js';

const WORKER_URL = new URL('./agent-worker.js', import.meta.url);
/**
 * The worker-side SDK agent modules import as `ferry/agent`. It lives in the agent layer (it is the
 * agent API) and has no imports; the host refers to its file, never imports it.
 */
const SDK_URL = new URL('../agent/define.js', import.meta.url).href;

// ------------------------------------------------------------------ what the runtime needs from a host

/**
 * What the runtime needs from its host. `Host` provides the first four directly; see
 * {@link inProcessHost} for an adapter and docs/AGENTS.md ("Integrating with Host").
 */
export interface RuntimeHost {
  /** The host's id (agents see it as `ctx.hostId`). */
  readonly id: string;
  /** Register a launched agent and publish its location (`Host.addAgent`). */
  addAgent(identity: Identity, opts?: { replace?: boolean }): Promise<unknown>;
  /** Drop an agent that ended here (finished, failed, stopped); not called after a migration. */
  removeAgent?(agentId: AgentId): void | Promise<void>;
  /** The agent's server socket (`Host.listen`). */
  listen(agentId: AgentId): AgentServerSocket;
  /** Open a connection from a local agent (`Host.connect`). */
  connect(from: AgentId, to: AgentId, opts?: { signal?: AbortSignal }): Promise<AgentSocket>;
  /**
   * Move an agent to `target` (a host id or address). The host must: have the destination admit
   * `outgoing.landing` (its runtime's {@link AgentRuntime.admit}) before anything commits — before
   * detaching anything where it can ({@link inProcessHost}); {@link channelHost} admits at the
   * checkpoint, after the detach, and rolls back with `reattach` on a refusal; detach the agent's connections; then call `outgoing.seal()` exactly once and send the landing
   * with `connections` filled in; the destination attaches the connections and calls
   * {@link AgentRuntime.land}. Resolve once the destination committed; reject to roll back — and
   * if the connections were detached already, re-attach them here and call `outgoing.reattach`
   * first. The worker then thaws and the agent runs on here. `signal` aborts the move as
   * {@link Host.migrateAgent}'s does (rolled back until the checkpoint has left).
   */
  migrate(agentId: AgentId, target: string, outgoing: OutgoingAgent, opts?: { signal?: AbortSignal }): Promise<MigrationReport | undefined | void>;
  /**
   * Move several agents as one group (optional; {@link channelHost} has it): the same contract
   * as `migrate` for each member, over one channel, resolving with each member's outcome. A
   * member that rolled back has been re-attached (and `reattach` called) when this resolves.
   */
  migrateGroup?(members: GroupMember[], target: string, opts?: { signal?: AbortSignal }): Promise<MemberOutcome[]>;
  /** The owner of another agent, when the host knows it (for policy rules by owner). */
  ownerOf?(agentId: AgentId): OwnerId | undefined | Promise<OwnerId | undefined>;
}

/** Everything the destination needs to admit and restart an agent. Plain JSON data. */
export interface AgentLanding {
  v: 1;
  agentId: AgentId;
  owner: OwnerId;
  /** The module source; the destination hashes it again. */
  code: string;
  codeHash: string;
  /** The owner-signed credential, text form. */
  credential: string;
  /** `ctx.state` at the snapshot, `v8.serialize`d, base64. */
  state: string;
  /** Filled by {@link OutgoingAgent.seal}; empty in the copy used for admission. */
  connections: CarriedConnection[];
}

/** One connection's runtime-level carry: what agent code had not read yet, and its half-close flags. */
export interface CarriedConnection {
  /** `${connectionId}/${role}`: matches the attached `AgentSocket` at the destination. */
  key: string;
  remoteAgent: string;
  connectionId: string;
  /** Bytes delivered by the connection but never read by agent code, base64. Delivered first. */
  undelivered: string;
  /** The agent had called `end()`. */
  writeEnded: boolean;
  /** The connection had closed already (no socket will be attached); with its error if not graceful. */
  closed: boolean;
  error?: { code: string; message: string };
  /**
   * Agent code had not accepted it (it sat in the listen queue, or arrived after the snapshot):
   * the destination puts it in the agent's listen queue, never in `ctx.connections`.
   */
  queued?: boolean;
}

/** Handed to {@link RuntimeHost.migrate}. */
export interface OutgoingAgent {
  readonly landing: AgentLanding;
  /** Call once, after the connections are detached: the per-connection bytes agent code never read. */
  seal(): CarriedConnection[];
  /**
   * Rollback after detaching: the host re-attached the agent here (`Host.attachAgent` of its own
   * checkpoint); call this with the result before rejecting, and the agent runs on with the
   * connections on their new socket objects, exactly where it was.
   */
  reattach(attached: { sockets: AgentSocket[]; server?: AgentServerSocket | undefined }): void;
}

/** Why an agent ended on this runtime. */
export type ExitReason = 'finished' | 'failed' | 'stopped' | 'migrated';

/** How an agent ended. */
export interface AgentExit {
  readonly agentId: AgentId;
  readonly reason: ExitReason;
  /** Set for 'failed' (AGENT_CRASHED, AGENT_MEMORY, AGENT_UNRESPONSIVE, AGENT_PROTOCOL, CONFINEMENT) and 'stopped'. */
  readonly error?: FerryError;
  /** What `run()` resolved to ('finished'), when it is structured-clone data within AGENT_STATE_BYTES. */
  readonly result?: unknown;
  /** Where it went ('migrated'). */
  readonly target?: string;
}

/** A running agent, as its launcher sees it. */
export interface AgentHandle {
  readonly id: AgentId;
  readonly owner: OwnerId;
  readonly codeHash: string;
  /** Settles once the agent ended here (never rejects). */
  readonly exited: Promise<AgentExit>;
  /**
   * Resolves once the agent's module loaded and `run(ctx)` began; rejects with the agent's error
   * if it ended before that (a syntax error, no default export, a denied static import…).
   */
  readonly started: Promise<void>;
}

/** Options for {@link AgentRuntime}. */
export interface RuntimeOptions {
  host: RuntimeHost;
  policy: HostPolicy;
  logger?: Logger;
  /** Monotonic clock for heartbeats and log rate limits. */
  clock?: Clock;
  /** Wall clock (Unix ms) for credential validity. */
  now?: () => number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** External (ArrayBuffer) memory per agent before it is stopped, MiB. */
  externalMb?: number;
  /** Bytes per connection handed to a worker ahead of agent reads. */
  readWindow?: number;
  /** Where code is kept by hash (default: in memory). */
  codeStore?: CodeStore;
}

// ------------------------------------------------------------------ code store

/**
 * Content-addressed agent code: SHA-256 of the source -> source. In memory, bounded by
 * AGENT_CODE_MODULES (oldest dropped first); with `dir`, also written to `<dir>/<hash>.mjs` and
 * read back (and re-hashed) when not in memory.
 */
export class CodeStore {
  private readonly mem = new Map<string, string>();
  constructor(private readonly dir?: string) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  /** Store a module; returns its hash. */
  put(source: string): string {
    const hash = codeHashOf(source);
    if (this.mem.has(hash)) return hash;
    setBounded(this.mem, hash, source, limit('AGENT_CODE_MODULES'));
    if (this.dir) {
      const file = join(this.dir, `${hash}.mjs`);
      writeFileSync(`${file}.tmp`, source, 'utf8');
      renameSync(`${file}.tmp`, file);
    }
    return hash;
  }

  /** The source for a hash, if known (checked against the hash when read from disk). */
  get(hash: string): string | undefined {
    const m = this.mem.get(hash);
    if (m !== undefined || !this.dir || !/^[0-9a-f]{64}$/.test(hash)) return m;
    try {
      const s = readFileSync(join(this.dir, `${hash}.mjs`), 'utf8');
      return codeHashOf(s) === hash ? s : undefined;
    } catch {
      return undefined;
    }
  }
}

// ------------------------------------------------------------------ host-side socket pump

const keyOf = (s: AgentSocket): string => `${s.connectionId}/${s.endpoint.role}`;

/**
 * Abort a socket no one else listens to. destroy(err) emits 'error', and an 'error' without a
 * listener would throw in the host: the refusal is already logged, the peer learns by CLS abort.
 */
function abortSocket(sock: AgentSocket, err: FerryError): void {
  sock.on('error', () => {});
  sock.destroy(err);
}
const toFerry = (err: unknown): FerryError => (isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err), { cause: err }));

/**
 * One agent connection on the host side: reads the real `AgentSocket` only as far as the worker
 * has room (credit = readWindow), keeps what it sent until the worker acknowledges agent code
 * read it, and writes what the worker writes, bounded by maxBufferedBytes.
 */
class Pump {
  private readonly queue: Buffer[] = [];
  private readonly unacked: Buffer[] = [];
  sent = 0;
  acked = 0;
  frozen = false;
  moved = false;
  announced = false;
  /** The worker closed or destroyed its proxy: agent code had this connection and let it go. */
  released = false;
  private readEnded = false;
  private rendPosted = false;
  private closedPosted = false;
  closed = false;
  private closeError: FerryError | undefined;
  /** Why the connection ended, when it did not end gracefully. */
  get error(): FerryError | undefined {
    return this.closeError;
  }
  writeEnded: boolean;
  private pendingWrite = 0;

  sock: AgentSocket | undefined;

  constructor(
    private readonly a: RunningAgent,
    readonly sid: number,
    sock: AgentSocket | undefined,
    readonly key: string,
    readonly remoteAgent: string,
    readonly connectionId: string,
    carry: { undelivered: Buffer; writeEnded: boolean; closed: boolean; error?: FerryError },
  ) {
    if (carry.undelivered.length > 0) this.queue.push(carry.undelivered);
    this.writeEnded = carry.writeEnded;
    this.closeError = carry.error;
    this.bind(sock);
  }

  /** Carry the connection on this socket object (a new one after a move or a rollback). */
  private bind(sock: AgentSocket | undefined): void {
    this.sock = sock;
    this.moved = false;
    if (!sock) {
      // A connection that closed before or during a move: only its unread bytes came along.
      this.readEnded = true;
      this.closed = true;
      return;
    }
    this.closed = false;
    // Events of a socket object this pump no longer carries are ignored.
    const mine = (): boolean => this.sock === sock && !this.moved;
    sock.on('readable', () => {
      if (mine()) this.pump();
    });
    // Both directions done: close gracefully *before* Duplex autoDestroy runs (it follows the
    // 'end'/'finish' listeners). AgentSocket._destroy calls endpoint.destroy(), whose CLS says
    // "abort", and an aborted peer drops bytes it received but had not yet handed to its reader.
    const closeIfDone = (): void => {
      if (mine() && sock.readableEnded && sock.writableFinished) void sock.endpoint.close().catch(() => {});
    };
    sock.on('finish', closeIfDone);
    sock.on('end', () => {
      if (!mine()) return;
      this.readEnded = true;
      closeIfDone();
      this.pump();
    });
    sock.on('moved', () => {
      if (this.sock === sock) this.moved = true;
    });
    sock.on('error', (err: Error) => {
      if (mine()) this.closeError = toFerry(err);
    });
    sock.on('close', () => {
      if (!mine()) return;
      this.closed = true;
      this.pump();
      this.forgetIfDone();
    });
    // A peer's graceful close leaves the socket object open while our side has not ended (Node
    // semantics: 'close' waits for both directions), but the connection is over: say so, so the
    // worker hears 'closed' after the last byte and a connection in the listen queue leaves it.
    sock.endpoint.once('closed', (err: FerryError | undefined) => {
      if (!mine() || err || this.closed) return;
      this.closed = true;
      this.pump();
      this.forgetIfDone();
    });
  }

  /**
   * Take into `queue` what the socket object still buffers. After a move its readable side ends,
   * but bytes pushed into it before are still there; they were never sent to the worker and come
   * after everything already queued.
   */
  private drainSocket(): void {
    const sock = this.sock;
    // Drain only what no longer changes: a detached socket, or a connection that is over (a peer's
    // graceful close leaves the socket object undestroyed, its last bytes still buffered).
    if (!sock || sock.destroyed || !(this.moved || this.closed || sock.endpoint.state === 'CLOSED')) return;
    for (let c = sock.read() as Buffer | null; c; c = sock.read() as Buffer | null) this.queue.push(c);
  }

  /**
   * A failed move re-attached the connection here on a new socket object (`undefined`: it closed
   * meanwhile). Offsets stay as they are: the worker thaws and goes on from where it was.
   */
  rebind(sock: AgentSocket | undefined): void {
    this.drainSocket();
    this.bind(sock);
  }

  get info(): SocketInfo {
    return { sid: this.sid, remoteAgent: this.remoteAgent, connectionId: this.connectionId, initiator: this.key.endsWith('/client'), writeEnded: this.writeEnded };
  }

  /** Counts against maxConnections. */
  get live(): boolean {
    return !this.closed;
  }

  /** Agent code let go of it and the connection is over: nothing is left to deliver or carry. */
  forgetIfDone(): void {
    if (this.released && this.closed && this.a.phase === 'running') this.a.pumps.delete(this.sid);
  }

  /** Move bytes to the worker while it has credit; then end-of-stream and close, in order. */
  pump(): void {
    if (this.frozen || !this.announced || this.a.phase !== 'running') return;
    const window = this.a.rt.readWindow;
    while (this.sent - this.acked < window) {
      let chunk = this.queue.shift();
      if (!chunk && this.sock && !this.sock.destroyed) {
        const n = Math.min(window - (this.sent - this.acked), this.sock.readableLength);
        if (n > 0) chunk = this.sock.read(n) as Buffer | null ?? undefined;
        else this.sock.read(0);
      }
      if (!chunk) break;
      const copy = new Uint8Array(chunk.length);
      copy.set(chunk);
      this.a.post({ t: 'data', sid: this.sid, chunk: copy }, [copy.buffer]);
      this.unacked.push(chunk);
      this.sent += chunk.length;
    }
    const drained = this.queue.length === 0 && (!this.sock || this.sock.readableLength === 0);
    if (this.readEnded && drained && !this.rendPosted) {
      this.rendPosted = true;
      this.a.post({ t: 'rend', sid: this.sid });
    }
    // A graceful close is reported after the last byte and the end of stream; an abort at once
    // (the connection's undelivered bytes are gone with it, as for any aborted connection).
    if (this.closed && !this.closedPosted && (this.closeError || this.rendPosted)) {
      this.closedPosted = true;
      this.a.post(this.closeError ? { t: 'closed', sid: this.sid, code: this.closeError.code, message: this.closeError.message } : { t: 'closed', sid: this.sid });
    }
    if (this.closedPosted && this.acked === this.sent && this.queue.length === 0) this.a.pumps.delete(this.sid);
    // What was read ahead for the worker stays charged to the host's receive budget until agent
    // code reads it: twice, since the worker holds a copy of what this pump keeps until then.
    if (this.sock && !this.sock.destroyed) this.sock.holdOutside(2 * (this.sent - this.acked) + this.queue.reduce((n, b) => n + b.length, 0));
  }

  /** Agent code has read `offset` bytes of this stream. */
  onAck(offset: number): void {
    if (offset < this.acked || offset > this.sent) throw new FerryError('FERRY_ERR_AGENT_PROTOCOL', `ack ${offset} outside [${this.acked}, ${this.sent}]`);
    let drop = offset - this.acked;
    while (drop > 0) {
      const head = this.unacked[0]!;
      if (head.length <= drop) {
        this.unacked.shift();
        drop -= head.length;
      } else {
        this.unacked[0] = head.subarray(drop);
        drop = 0;
      }
    }
    this.acked = offset;
    this.pump();
  }

  onWrite(chunks: Uint8Array[]): void {
    if (!this.sock || this.closed || this.writeEnded || this.sock.destroyed) return; // the worker hears 'closed'
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    const cap = this.a.grant.maxBufferedBytes + this.a.rt.writeWindow;
    if (this.pendingWrite + total > cap) {
      const err = new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `agent wrote ${this.pendingWrite + total} bytes the connection has not taken, above maxBufferedBytes ${this.a.grant.maxBufferedBytes}`);
      this.a.rt.refused('write', err, { agent: this.a.id, conn: this.connectionId });
      this.sock.destroy(err);
      return;
    }
    for (const c of chunks) {
      const n = c.byteLength;
      this.pendingWrite += n;
      this.sock.write(Buffer.from(c.buffer, c.byteOffset, n), (err) => {
        this.pendingWrite -= n;
        if (!err) this.a.post({ t: 'wack', sid: this.sid, n });
      });
    }
  }

  onEnd(): void {
    if (!this.sock || this.closed || this.writeEnded) return;
    this.writeEnded = true;
    this.sock.end(() => {
      if (!this.moved) this.a.post({ t: 'fack', sid: this.sid });
    });
  }

  onClose(): void {
    if (!this.sock || this.closed) return;
    this.writeEnded = true;
    this.sock.close().catch(() => {});
  }

  onDestroy(): void {
    if (!this.sock || this.sock.destroyed) return;
    this.sock.destroy();
  }

  /** Is `offset` a consumption point the worker could truthfully report? */
  validConsumed(offset: number): boolean {
    return offset >= this.acked && offset <= this.sent;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    if (!this.announced) this.announce();
    else this.pump();
  }

  /** Tell the worker about this socket (an accepted connection), then start pumping. */
  announce(): void {
    this.announced = true;
    this.a.post({ t: 'accept', socket: this.info });
    this.pump();
  }

  /**
   * The runtime-level carry of this connection, after the host detached it: bytes from the
   * worker's consumption point on (those it was sent but agent code never read), then what was
   * never sent, then whatever the detached socket object still buffers (its readable side ends
   * after a move, but bytes pushed into it before are still there).
   */
  carry(consumed: number, queued: boolean): CarriedConnection {
    this.drainSocket();
    const parts: Buffer[] = [];
    let skip = consumed - this.acked;
    for (const b of this.unacked) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      parts.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    parts.push(...this.queue);
    return {
      key: this.key,
      remoteAgent: this.remoteAgent,
      connectionId: this.connectionId,
      undelivered: Buffer.concat(parts).toString('base64'),
      writeEnded: this.writeEnded,
      closed: !this.moved,
      ...(this.closeError ? { error: { code: this.closeError.code, message: this.closeError.message } } : {}),
      ...(queued ? { queued: true } : {}),
    };
  }

  /** The agent ended here: close gracefully (finished) or abort. */
  end(err: FerryError | undefined): void {
    if (!this.sock || this.sock.destroyed || this.moved) return;
    if (err) this.sock.destroy(err);
    else {
      if (!this.writeEnded) this.sock.end();
      this.sock.close().catch(() => {});
    }
  }
}

// ------------------------------------------------------------------ one running agent

type Phase = 'running' | 'moving' | 'stopping' | 'gone';

class RunningAgent {
  phase: Phase = 'running';
  worker: Worker | undefined;
  workerDead = false;
  readonly pumps = new Map<number, Pump>();
  nextSid = 1;
  server: AgentServerSocket | undefined;
  pingSeq = 0;
  outstanding: { seq: number; at: number } | undefined;
  /** The bootstrap is up (agent code may now run): heartbeats count at the normal timeout. */
  booted = false;
  timer: TimerHandle | undefined;
  logWindow = 0;
  logCount = 0;
  logDropped = 0;
  freezeSeq = 0;
  /** Stopped by the operator after a freeze: its connections end gracefully. */
  gracefulStop = false;
  /**
   * The move in progress (phase 'moving'): `abort` calls off a move of this agent alone (a stop
   * during it; a group move is not called off for one member), `settled` resolves once the move
   * committed or rolled back.
   */
  move: { readonly abort: AbortController; readonly settled: Promise<void> } | undefined;
  /** ctx.connect requests in progress, by request id: agent code may call them off ('cancel'). */
  readonly connecting = new Map<number, AbortController>();
  /** The worker died after the snapshot of a move; reported if the move fails. */
  pendingFailure: FerryError | undefined;
  /**
   * run() returned after the snapshot of a move: past the state the agent restarts from, so it
   * counts only if the move rolls back (the destination runs on from the snapshot otherwise).
   */
  pendingFinish: AgentExit | undefined;
  readonly freezeWaiters = new Map<number, { resolve: (m: Extract<WorkerMessage, { t: 'frozen' }>) => void; reject: (e: FerryError) => void }>();
  readonly exited: Promise<AgentExit>;
  resolveExit!: (e: AgentExit) => void;
  /** Module loaded and run() began (the worker's 'ready'). */
  readonly started: Promise<void>;
  isStarted = false;
  settleStarted!: (err?: FerryError) => void;
  readonly log: Logger;

  constructor(
    readonly rt: AgentRuntime,
    readonly id: AgentId,
    readonly code: string,
    readonly codeHash: string,
    readonly credential: AgentCredential,
    readonly grant: AgentGrant,
  ) {
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.started = new Promise<void>((resolve, reject) => {
      this.settleStarted = (err) => {
        if (this.isStarted) return;
        this.isStarted = true;
        if (err) reject(err);
        else resolve();
      };
    });
    // Who does not wait for the start learns of a failure from `exited` instead.
    this.started.catch(() => {});
    this.log = rt.log.child({ agent: id });
  }

  get owner(): OwnerId {
    return this.grant.owner;
  }

  post(msg: HostMessage, transfer?: ArrayBuffer[]): void {
    if (!this.worker || this.workerDead || this.phase === 'gone' || this.phase === 'stopping') return;
    try {
      this.worker.postMessage(msg, transfer);
    } catch {
      // A terminated worker: nothing to tell.
    }
  }

  liveConnections(): number {
    let n = 0;
    for (const p of this.pumps.values()) if (p.live) n++;
    return n;
  }

  addPump(sock: AgentSocket | undefined, key: string, remoteAgent: string, connectionId: string, carry: ConstructorParameters<typeof Pump>[6]): Pump {
    const p = new Pump(this, this.nextSid++, sock, key, remoteAgent, connectionId, carry);
    this.pumps.set(p.sid, p);
    return p;
  }
}

// ------------------------------------------------------------------ the runtime

/**
 * Runs agents confined in workers on one host. Events: `'exit'` ({@link AgentExit}) once per
 * agent that ends here.
 */
export class AgentRuntime extends EventEmitter {
  readonly log: Logger;
  readonly readWindow: number;
  readonly writeWindow: number;
  private readonly host: RuntimeHost;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly store: CodeStore;
  private readonly agents = new Map<AgentId, RunningAgent>();
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly externalBytes: number;
  private closed = false;
  /** Count of refusals by code, for tests and metrics. */
  readonly refusals = new Map<string, number>();

  constructor(private readonly opts: RuntimeOptions) {
    super();
    this.host = opts.host;
    this.log = (opts.logger ?? silentLogger).child({ runtime: opts.host.id.slice(0, 8) });
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? (() => Date.now());
    this.store = opts.codeStore ?? new CodeStore();
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? limit('AGENT_HEARTBEAT_INTERVAL_MS');
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? limit('AGENT_HEARTBEAT_TIMEOUT_MS');
    this.externalBytes = (opts.externalMb ?? limit('AGENT_EXTERNAL_MB')) * 1024 * 1024;
    this.readWindow = opts.readWindow ?? limit('AGENT_READ_WINDOW_BYTES');
    this.writeWindow = 64 * 1024;
  }

  /** The policy in force. */
  get policy(): HostPolicy {
    return this.opts.policy;
  }

  /** Log one refusal and count it; returns the error for the caller to throw or send. */
  refused(op: string, err: FerryError, fields: Record<string, unknown> = {}): FerryError {
    this.refusals.set(err.code, (this.refusals.get(err.code) ?? 0) + 1);
    // Rate-limited per (code, source): the peer agent for an accept, else the agent itself.
    this.log.refused('agent_refused', { op, ...fields, code: err.code, detail: err.message, from: String(fields['from'] ?? fields['agent'] ?? '') });
    return err;
  }

  /** Ids of the agents running here. */
  agentIds(): AgentId[] {
    return [...this.agents.keys()];
  }

  /** The owner of an agent running here. */
  ownerOf(agentId: AgentId): OwnerId | undefined {
    return this.agents.get(agentId)?.owner;
  }

  /** The handle of an agent running here (also for agents that landed). */
  handleOf(agentId: AgentId): AgentHandle | undefined {
    const a = this.agents.get(agentId);
    return a && { id: a.id, owner: a.owner, codeHash: a.codeHash, exited: a.exited, started: a.started };
  }

  /** The code source stored for a hash. */
  code(hash: string): string | undefined {
    return this.store.get(hash);
  }

  /**
   * Admission checks shared by launch and landing: code size, credential (present, well-formed,
   * signed by its owner, for this agent key, valid now, for this code) and policy (`land`).
   */
  private check(code: unknown, credential: CredentialInput, agentKey: Uint8Array | undefined): { cred: AgentCredential; grant: AgentGrant; codeHash: string } {
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'runtime closed');
    if (typeof code !== 'string' || code.length === 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'agent code must be a non-empty module source');
    if (Buffer.byteLength(code, 'utf8') > limit('AGENT_CODE_BYTES')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `agent code larger than AGENT_CODE_BYTES (${limit('AGENT_CODE_BYTES')})`);
    if (this.agents.size >= limit('AGENT_MAX_PER_HOST')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${limit('AGENT_MAX_PER_HOST')} agents already run here`);
    let cred: AgentCredential;
    try {
      cred = toCredential(credential);
    } catch (err) {
      throw isFerryError(err) && (err.code === 'FERRY_ERR_NO_CREDENTIAL' || err.code === 'FERRY_ERR_BAD_CREDENTIAL') ? err : new FerryError('FERRY_ERR_BAD_CREDENTIAL', `credential: ${String((err as Error).message)}`);
    }
    const codeHash = codeHashOf(code);
    return { cred, grant: this.grantOf(cred, codeHash, agentKey), codeHash };
  }

  /** The credential's part of admission: valid now, for this code and key; policy grants `land`. */
  private grantOf(cred: AgentCredential, codeHash: string, agentKey: Uint8Array | undefined): AgentGrant {
    verifyCredential(cred, { agentKey: agentKey ?? cred.agentKey, codeHash, now: this.now() });
    const grant = grantFor(this.opts.policy, cred);
    if (this.agents.has(cred.agentId)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `agent ${cred.agentId} already runs here`);
    return grant;
  }

  /**
   * Admission before a move pauses anything: the credential (signed by its owner, for this agent,
   * valid now, for the code hash the source announces), the policy's `land` for that owner, and
   * room for one more agent. The code itself arrives with the checkpoint, where {@link admit}
   * checks that it hashes to that hash. A refusal is a typed error and one `agent_refused` line.
   */
  admitAhead(a: { agentId: AgentId; codeHash: string; credential: string }): void {
    try {
      if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'runtime closed');
      if (this.agents.size >= limit('AGENT_MAX_PER_HOST')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${limit('AGENT_MAX_PER_HOST')} agents already run here`);
      let cred: AgentCredential;
      try {
        cred = toCredential(a.credential);
      } catch (err) {
        throw isFerryError(err) && (err.code === 'FERRY_ERR_NO_CREDENTIAL' || err.code === 'FERRY_ERR_BAD_CREDENTIAL') ? err : new FerryError('FERRY_ERR_BAD_CREDENTIAL', `credential: ${String((err as Error).message)}`);
      }
      if (cred.agentId !== a.agentId) throw new FerryError('FERRY_ERR_BAD_CREDENTIAL', `credential is for agent ${cred.agentId}, the move is agent ${a.agentId}`);
      this.grantOf(cred, a.codeHash, undefined);
    } catch (err) {
      throw this.refused('land', toFerry(err), { agent: a.agentId });
    }
  }

  /**
   * Launch an agent: admit it (valid credential for this code and agent key, policy grants the
   * owner `land`), register it with the host, and start `run(ctx)` in a new worker. Every refusal
   * is a typed error (NO_CREDENTIAL, BAD_CREDENTIAL, CREDENTIAL_EXPIRED, CODE_HASH_MISMATCH,
   * POLICY_DENIED, LIMIT_EXCEEDED…) and one `agent_refused` log line.
   */
  async launch(code: string, credential: CredentialInput, identity: Identity, opts: { state?: unknown; replace?: boolean } = {}): Promise<AgentHandle> {
    let checked: ReturnType<AgentRuntime['check']>;
    let state: unknown;
    try {
      checked = this.check(code, credential, identity.publicRaw);
      state = decodeState(encodeState(opts.state ?? {}));
    } catch (err) {
      throw this.refused('launch', toFerry(err), { agent: identity.id });
    }
    const { cred, grant, codeHash } = checked;
    this.store.put(code);
    const a = new RunningAgent(this, identity.id, code, codeHash, cred, grant);
    this.agents.set(a.id, a);
    try {
      await this.host.addAgent(identity, opts.replace ? { replace: true } : {});
    } catch (err) {
      this.agents.delete(a.id);
      throw this.refused('launch', toFerry(err), { agent: identity.id });
    }
    this.spawn(a, state);
    a.log.info('agent_launched', { owner: a.owner, code: codeHash.slice(0, 16) });
    return { id: a.id, owner: a.owner, codeHash, exited: a.exited, started: a.started };
  }

  /**
   * Step one of a landing, before the source detaches anything: would this runtime admit the
   * agent? Throws the same typed errors as {@link launch}, with one log line.
   */
  admit(input: unknown): AgentLanding {
    try {
      // Every field's type first (decodeAgentLanding), then what the fields mean.
      const landing = decodeAgentLanding(input);
      this.checkLanding(landing);
      return landing;
    } catch (err) {
      throw this.refused('land', toFerry(err), { agent: (input as { agentId?: unknown })?.agentId });
    }
  }

  private checkLanding(landing: AgentLanding): { cred: AgentCredential; grant: AgentGrant; codeHash: string } {
    if (typeof landing !== 'object' || landing === null || landing.v !== 1) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', 'agent landing version');
    if (typeof landing.credential !== 'string') throw new FerryError('FERRY_ERR_NO_CREDENTIAL', 'landing without a credential');
    const c = this.check(landing.code, landing.credential, undefined);
    if (c.cred.agentId !== landing.agentId) throw new FerryError('FERRY_ERR_BAD_CREDENTIAL', `credential is for agent ${c.cred.agentId}, the landing is agent ${String(landing.agentId)}`);
    if (c.codeHash !== landing.codeHash) throw new FerryError('FERRY_ERR_CODE_HASH_MISMATCH', 'landing code does not hash to its code hash');
    return c;
  }

  /**
   * Restart a moved agent here, after the host attached its connections: `run(ctx)` starts again
   * with the carried state, and `ctx.connections` are the carried connections, each delivering
   * first the bytes agent code had not read at the source.
   */
  async land(landing: AgentLanding, attached: { sockets: AgentSocket[]; server?: AgentServerSocket | undefined }): Promise<AgentHandle> {
    let checked: ReturnType<AgentRuntime['checkLanding']>;
    let state: unknown;
    try {
      checked = this.checkLanding(landing);
      state = decodeState(Buffer.from(landing.state, 'base64'));
      if (!Array.isArray(landing.connections)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'landing.connections must be a list');
      for (const c of landing.connections) if (c.queued !== undefined && typeof c.queued !== 'boolean') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'landing connection: queued must be a boolean');
      for (const s of attached.sockets) if (s.localAgent !== landing.agentId) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'an attached socket belongs to another agent');
    } catch (err) {
      throw this.refused('land', toFerry(err), { agent: landing?.agentId });
    }
    const { cred, grant, codeHash } = checked;
    this.store.put(landing.code);
    const a = new RunningAgent(this, cred.agentId, landing.code, codeHash, cred, grant);
    this.agents.set(a.id, a);
    const byKey = new Map(attached.sockets.map((s) => [keyOf(s), s] as const));
    const queued: { sock: AgentSocket; c: CarriedConnection }[] = [];
    for (const c of landing.connections) {
      const sock = byKey.get(c.key);
      byKey.delete(c.key);
      if (c.queued) {
        // Never accepted: back into the listen queue (announced once the worker runs), if it is still open.
        if (sock) queued.push({ sock, c });
        continue;
      }
      const undelivered = Buffer.from(c.undelivered, 'base64');
      // No socket: the connection closed before or while it was detached. Only its unread bytes
      // came along; agent code still gets them (then the end of stream, or the error).
      if (!sock && undelivered.length === 0) continue;
      const error = c.error ? new FerryError(Object.prototype.hasOwnProperty.call(ERRORS, c.error.code) ? (c.error.code as ErrorCode) : 'FERRY_ERR_INTERNAL', c.error.message) : undefined;
      a.addPump(sock, c.key, c.remoteAgent, c.connectionId, { undelivered, writeEnded: c.writeEnded, closed: !sock, ...(error ? { error } : {}) });
    }
    // Sockets the host moved that the runtime did not know (opened while the move began).
    for (const [key, s] of byKey) a.addPump(s, key, s.remoteAgent, s.connectionId, { undelivered: Buffer.alloc(0), writeEnded: false, closed: false });
    if (attached.server) this.serve(a, attached.server);
    this.spawn(a, state);
    for (const { sock, c } of queued) {
      const p = a.addPump(sock, c.key, c.remoteAgent, c.connectionId, { undelivered: Buffer.from(c.undelivered, 'base64'), writeEnded: false, closed: false });
      if (a.phase === 'running' && a.worker) p.announce();
    }
    a.log.info('agent_landed', { owner: a.owner, connections: a.pumps.size - queued.length, queued: queued.length });
    return { id: a.id, owner: a.owner, codeHash, exited: a.exited, started: a.started };
  }

  /** An operator move (transparent to the agent, weak mobility): freeze, snapshot, migrate. */
  async migrate(agentId: AgentId, target: string, opts: { signal?: AbortSignal } = {}): Promise<MigrationReport | undefined> {
    const a = this.agents.get(agentId);
    if (!a) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${agentId} does not run here`);
    if (a.phase !== 'running') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `agent ${agentId} is ${a.phase}`);
    const reply = await this.freeze(a);
    return await this.move(a, target, reply.state, reply.consumed, reply.queued, { hostFroze: true, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  /** Ask the worker to freeze for a move; resolves with its state and read offsets. */
  private async freeze(a: RunningAgent): Promise<Extract<WorkerMessage, { t: 'frozen'; ok: true }>> {
    const id = ++a.freezeSeq;
    const reply = await new Promise<Extract<WorkerMessage, { t: 'frozen' }>>((resolve, reject) => {
      a.freezeWaiters.set(id, { resolve, reject });
      a.post({ t: 'freeze', id });
    });
    if (!reply.ok) throw new FerryError(reply.code as ErrorCode, reply.message);
    return reply;
  }

  /**
   * An operator moves co-located agents as one group (the HIP paper's end-point group): every
   * member freezes, then all go over one channel (`RuntimeHost.migrateGroup`). Before the commit
   * it is all or nothing: if one member cannot freeze or seal, or the destination refuses one,
   * every member thaws and runs on here.
   */
  async migrateGroup(agentIds: AgentId[], target: string, opts: { signal?: AbortSignal } = {}): Promise<MigrationReport | undefined> {
    const host = this.host;
    if (!host.migrateGroup) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'this host binding cannot move agents as a group');
    const ids = [...new Set(agentIds)];
    const agents = ids.map((id) => {
      const a = this.agents.get(id);
      if (!a) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${id} does not run here`);
      if (a.phase !== 'running') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `agent ${id} is ${a.phase}`);
      return a;
    });
    const frozen = await Promise.allSettled(agents.map((a) => this.freeze(a)));
    const refused = frozen.find((r) => r.status === 'rejected');
    if (refused) {
      for (const [i, r] of frozen.entries()) if (r.status === 'fulfilled' && agents[i]!.phase === 'running') agents[i]!.post({ t: 'thaw' });
      throw (refused as PromiseRejectedResult).reason;
    }
    const batch = new GroupBatch(agents.length, (members) => host.migrateGroup!(members, target, opts));
    const settled = await Promise.allSettled(
      agents.map(async (a, i) => {
        const reply = (frozen[i] as PromiseFulfilledResult<Extract<WorkerMessage, { t: 'frozen'; ok: true }>>).value;
        return await this.move(a, target, reply.state, reply.consumed, reply.queued, { group: batch, hostFroze: true });
      }),
    );
    return groupResult(
      settled.map((r, i): MemberOutcome =>
        r.status === 'fulfilled' ? { agentId: ids[i]!, committed: true, report: r.value ?? { detachMs: 0, commitMs: 0 } } : { agentId: ids[i]!, committed: false, error: toFerry(r.reason) },
      ),
    );
  }

  /**
   * Stop an agent (operator). By default its worker is terminated and its connections aborted
   * (peers see FERRY_ERR_PEER_ABORTED); `graceful` first freezes it, so every write agent code
   * made is delivered and its connections end as after a finished run.
   */
  async stop(agentId: AgentId, opts: { graceful?: boolean } = {}): Promise<AgentExit> {
    const a = this.agents.get(agentId);
    if (!a) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${agentId} does not run here`);
    if (a.move) {
      // During a move the stop calls the move off (rolled back until its checkpoint has left) and
      // waits for its outcome: ending the source copy now would let a move that then commits run
      // the agent on at the destination, while the stop said it ended.
      a.move.abort.abort(new FerryError('FERRY_ERR_ABORTED', 'stopped by the operator during the move'));
      await a.move.settled;
      if (this.agents.get(agentId) !== a) {
        const exit = await a.exited;
        if (exit.reason === 'migrated') throw new FerryError('FERRY_ERR_AGENT_ELSEWHERE', `agent ${agentId} moved to ${exit.target ?? 'another host'} before the stop took effect: stop it there`);
        return exit;
      }
    }
    if (opts.graceful && a.phase === 'running' && a.isStarted) {
      // Freezing hands the host every write agent code made; its connections then end as after
      // a finished run (the peers read them, then the end of stream) instead of aborting.
      try {
        await this.freeze(a);
      } catch {
        // The worker could not freeze (it is ending anyway): stop it outright below.
      }
      if (a.phase === 'running') a.gracefulStop = true;
    }
    this.end(a, { agentId, reason: 'stopped', error: new FerryError('FERRY_ERR_ABORTED', opts.graceful ? 'stopped by the operator' : 'stopped by the host') });
    return a.exited;
  }

  /**
   * End the stale copy of an agent that another host registered at a newer epoch (the host
   * decides: {@link Host}'s fence check). Its connections end with `error` (FERRY_ERR_FENCED).
   */
  fence(agentId: AgentId, error: FerryError): void {
    const a = this.agents.get(agentId);
    if (a) this.end(a, { agentId, reason: 'stopped', error });
  }

  /** Stop every agent and refuse new ones. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.agents.values()];
    for (const a of all) this.end(a, { agentId: a.id, reason: 'stopped', error: new FerryError('FERRY_ERR_ABORTED', 'runtime closed') });
    await Promise.all(all.map((a) => a.exited));
  }

  // ---------------------------------------------------------------- worker lifecycle

  private spawn(a: RunningAgent, state: unknown): void {
    const announced = [...a.pumps.values()];
    const init: WorkerInit = {
      agentId: a.id,
      hostId: this.host.id,
      owner: a.owner,
      code: a.code,
      codeHash: a.codeHash,
      sdkUrl: SDK_URL,
      state,
      connections: announced.map((p) => p.info),
      listening: !!a.server,
      writeWindow: this.writeWindow,
      maxBufferedBytes: a.grant.maxBufferedBytes,
    };
    const heap = a.grant.maxHeapMb;
    let worker: Worker;
    try {
      worker = this.newWorker(init, heap, a);
    } catch (err) {
      this.end(a, { agentId: a.id, reason: 'failed', error: new FerryError('FERRY_ERR_AGENT_CRASHED', `worker did not start: ${(err as Error).message}`) });
      return;
    }
    this.watch(a, worker, heap);
  }

  private newWorker(init: WorkerInit, heap: number, a: RunningAgent): Worker {
    return new Worker(WORKER_URL, {
      workerData: init,
      resourceLimits: { maxOldGenerationSizeMb: heap, maxYoungGenerationSizeMb: Math.max(1, Math.min(16, Math.floor(heap / 4))), stackSizeMb: 4 },
      env: {},
      argv: [],
      execArgv: [],
      stdout: true,
      stderr: true,
      name: `ferry-agent-${a.id.slice(0, 8)}`,
    });
  }

  private watch(a: RunningAgent, worker: Worker, heap: number): void {
    const announced = [...a.pumps.values()];
    a.worker = worker;
    // Nothing reaches the host's stdout from an agent; Node's own warnings go to the log.
    worker.stdout.resume();
    worker.stderr.setEncoding('utf8');
    let errText = '';
    worker.stderr.on('data', (s: string) => {
      if (errText.length < 4096) errText += s;
    });
    worker.stderr.on('end', () => {
      if (errText.trim()) a.log.debug('agent_stderr', { text: errText.trim().slice(0, 4096) });
    });
    worker.on('message', (m: unknown) => this.onMessage(a, m));
    worker.on('messageerror', () => this.fail(a, 'FERRY_ERR_AGENT_PROTOCOL', 'undeserialisable message'));
    worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') this.fail(a, 'FERRY_ERR_AGENT_MEMORY', `heap limit ${heap} MiB reached: ${err.message}`);
      else this.fail(a, 'FERRY_ERR_AGENT_CRASHED', `uncaught ${err.name}: ${err.message}`);
    });
    worker.on('exit', (code) => {
      a.workerDead = true;
      if (a.phase === 'running') this.fail(a, 'FERRY_ERR_AGENT_CRASHED', `worker exited with code ${code}`);
    });
    worker.once('online', () => this.tick(a));
    for (const p of announced) {
      p.announced = true;
      p.pump();
    }
  }

  /** Heartbeat: ping every interval; a ping unanswered for the timeout stops the agent. */
  private tick(a: RunningAgent): void {
    if (a.phase === 'stopping' || a.phase === 'gone' || a.workerDead) return;
    const now = this.clock.now();
    const timeout = this.heartbeatTimeoutMs + (a.booted ? 0 : limit('AGENT_START_GRACE_MS'));
    if (a.outstanding && now - a.outstanding.at >= timeout) {
      this.fail(a, 'FERRY_ERR_AGENT_UNRESPONSIVE', `no heartbeat answer for ${Math.round(now - a.outstanding.at)} ms (limit ${timeout} ms${a.booted ? '' : ', before boot'})`);
      return;
    }
    if (!a.outstanding) {
      a.outstanding = { seq: ++a.pingSeq, at: now };
      a.post({ t: 'ping', seq: a.pingSeq });
    }
    a.timer = this.clock.setTimer(Math.min(this.heartbeatIntervalMs, this.heartbeatTimeoutMs), () => this.tick(a));
  }

  private fail(a: RunningAgent, code: ErrorCode, detail: string): void {
    const error = new FerryError(code, detail);
    if (a.phase === 'moving') {
      // The snapshot is taken: the move no longer needs the worker. Let it finish or roll back.
      a.workerDead = true;
      void a.worker?.terminate();
      a.log.warn('agent_worker_lost_while_moving', { code, detail });
      a.pendingFailure = error;
      return;
    }
    this.end(a, { agentId: a.id, reason: 'failed', error });
  }

  /** The one way an agent ends here: stop the worker, settle its connections, log once, report. */
  private end(a: RunningAgent, exit: AgentExit): void {
    if (a.phase === 'stopping' || a.phase === 'gone') return;
    a.phase = 'stopping';
    a.timer?.cancel();
    for (const w of a.freezeWaiters.values()) w.reject(exit.error ?? new FerryError('FERRY_ERR_ABORTED', 'agent ended'));
    a.freezeWaiters.clear();
    void a.worker?.terminate();
    if (exit.reason !== 'migrated') {
      const abort = exit.reason === 'finished' || a.gracefulStop ? undefined : exit.error?.code === 'FERRY_ERR_FENCED' ? exit.error : new FerryError('FERRY_ERR_ABORTED', `agent ${exit.reason}: ${exit.error?.code ?? ''}`);
      for (const p of a.pumps.values()) p.end(abort);
      a.server?.close();
      void Promise.resolve()
        .then(() => this.host.removeAgent?.(a.id))
        .catch(() => {});
    }
    this.agents.delete(a.id);
    a.phase = 'gone';
    if (exit.error?.code === 'FERRY_ERR_FENCED') a.log.warn('agent_fenced', { code: exit.error.code, detail: exit.error.message });
    else if (exit.reason === 'failed') a.log.warn('agent_stopped', { code: exit.error?.code, detail: exit.error?.message });
    else if (exit.reason === 'stopped') a.log.info('agent_stopped', { code: exit.error?.code, detail: exit.error?.message });
    else if (exit.reason === 'migrated') a.log.info('agent_migrated', { target: exit.target });
    else a.log.info('agent_finished', exit.result === undefined ? {} : { result: preview(exit.result) });
    if (a.logDropped > 0) a.log.warn('agent_log_dropped', { lines: a.logDropped });
    a.settleStarted(exit.error ?? new FerryError('FERRY_ERR_ABORTED', `agent ${exit.reason} before run() began`));
    a.resolveExit(exit);
    this.emit('exit', exit);
  }

  // ---------------------------------------------------------------- messages from the worker

  private onMessage(a: RunningAgent, raw: unknown): void {
    if (a.phase === 'stopping' || a.phase === 'gone') return;
    let m: WorkerMessage;
    try {
      m = parseWorkerMessage(raw);
    } catch (err) {
      this.fail(a, 'FERRY_ERR_AGENT_PROTOCOL', (err as Error).message);
      return;
    }
    try {
      this.handle(a, m);
    } catch (err) {
      const e = toFerry(err);
      this.fail(a, e.code === 'FERRY_ERR_AGENT_PROTOCOL' ? e.code : 'FERRY_ERR_AGENT_PROTOCOL', e.message);
    }
  }

  private handle(a: RunningAgent, m: WorkerMessage): void {
    // After the snapshot (moving), the worker's socket traffic is past the point the agent will
    // restart from; the proxies hold it back, and anything that arrives anyway is dropped.
    const moving = a.phase === 'moving';
    switch (m.t) {
      case 'pong':
        if (a.outstanding && m.seq === a.outstanding.seq) a.outstanding = undefined;
        if (m.external > this.externalBytes) this.fail(a, 'FERRY_ERR_AGENT_MEMORY', `external memory ${Math.round(m.external / 1048576)} MiB above ${Math.round(this.externalBytes / 1048576)} MiB`);
        return;
      case 'boot':
        a.booted = true;
        // The ping in flight may date from before boot: give agent code a fresh timeout.
        if (a.outstanding) a.outstanding.at = this.clock.now();
        return;
      case 'ready':
        a.settleStarted();
        a.log.info('agent_started', {});
        return;
      case 'req':
        if (m.op === 'migrate') {
          if (a.phase !== 'running') return this.reply(a, m.id, new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a migration is already in progress'));
          this.move(a, m.target, m.state, m.consumed, m.queued).catch((err: unknown) => {
            if (a.phase === 'running') this.reply(a, m.id, toFerry(err));
          });
          return;
        }
        if (a.phase !== 'running') return this.reply(a, m.id, new FerryError('FERRY_ERR_ABORTED', 'the agent is migrating'));
        if (m.op === 'connect') void this.doConnect(a, m.id, m.to);
        else this.doListen(a, m.id);
        return;
      case 'cancel':
        // Agent code aborted its ctx.connect; the worker has rejected it already. Unknown ids
        // (the connect settled meanwhile) are fine: the worker destroys a socket it gets late.
        a.connecting.get(m.id)?.abort(new FerryError('FERRY_ERR_ABORTED', 'ctx.connect aborted by the agent'));
        return;
      case 'frozen': {
        const w = a.freezeWaiters.get(m.id);
        a.freezeWaiters.delete(m.id);
        w?.resolve(m);
        return;
      }
      case 'ack': {
        const p = a.pumps.get(m.sid);
        if (p && !moving) p.onAck(m.offset);
        return;
      }
      case 'write':
        if (!moving) a.pumps.get(m.sid)?.onWrite(m.chunks);
        return;
      case 'end':
        if (!moving) a.pumps.get(m.sid)?.onEnd();
        return;
      case 'close':
      case 'destroy': {
        const p = a.pumps.get(m.sid);
        if (p) p.released = true;
        if (!moving && m.t === 'close') p?.onClose();
        if (!moving && m.t === 'destroy') p?.onDestroy();
        p?.forgetIfDone();
        return;
      }
      case 'dropped':
        this.dropped(a, m.sid, m.why, moving);
        return;
      case 'unlisten':
        if (!moving) {
          a.server?.close();
          a.server = undefined;
        }
        return;
      case 'log':
        this.agentLog(a, m.level, m.text);
        return;
      case 'done':
        if (m.ok) {
          let result: unknown = m.result;
          try {
            if (serialize(result).length > limit('AGENT_STATE_BYTES')) result = undefined;
          } catch {
            result = undefined;
          }
          const exit: AgentExit = { agentId: a.id, reason: 'finished', result };
          // Ending it here now would report it finished on this host while the destination
          // commits and runs it from the snapshot: one agent, two hosts. The move decides.
          if (moving) {
            a.pendingFinish = exit;
            a.log.info('agent_finished_while_moving', {});
          } else this.end(a, exit);
        } else {
          const code: ErrorCode = m.code === 'FERRY_ERR_CONFINEMENT' ? 'FERRY_ERR_CONFINEMENT' : 'FERRY_ERR_AGENT_CRASHED';
          this.fail(a, code, m.message);
        }
        return;
    }
  }

  /**
   * The worker let go of a failed socket agent code never took or never listened to for errors:
   * one log line, and the pump goes (agent code will not read it). During a move the pump stays:
   * the seal decides, from the snapshot, what travels.
   */
  private dropped(a: RunningAgent, sid: number, why: 'unaccepted' | 'unhandled', moving: boolean): void {
    const p = a.pumps.get(sid);
    if (!p) return;
    this.logDropped(a, p, why);
    if (!moving && p.closed) a.pumps.delete(sid);
  }

  /**
   * Strangers decide how many connections fail at an agent, so the line is rate-limited like every
   * refusal, per (code, peer agent): a flood of fresh keys ends in `log.suppressed` counts.
   */
  private logDropped(a: RunningAgent, p: Pump, why: 'unaccepted' | 'unhandled'): void {
    a.log.refused('agent_connection_dropped', { code: p.error?.code ?? 'FERRY_ERR_CONNECTION_CLOSED', from: p.remoteAgent, why, conn: p.connectionId });
  }

  private reply(a: RunningAgent, id: number, result: FerryError | SocketInfo | undefined): void {
    if (result instanceof FerryError) a.post({ t: 'res', id, ok: false, code: result.code, message: result.message });
    else a.post(result ? { t: 'res', id, ok: true, socket: result } : { t: 'res', id, ok: true });
  }

  private agentLog(a: RunningAgent, level: 'info' | 'warn' | 'error', text: string): void {
    const now = this.clock.now();
    if (now - a.logWindow >= 1000) {
      a.logWindow = now;
      a.logCount = 0;
    }
    if (++a.logCount > limit('AGENT_LOG_LINES_PER_S')) {
      a.logDropped++;
      return;
    }
    const max = limit('AGENT_LOG_LINE_BYTES');
    const fields = { text: text.length > max ? `${text.slice(0, max)}…` : text };
    if (level === 'error') a.log.error('agent_log', fields);
    else if (level === 'warn') a.log.warn('agent_log', fields);
    else a.log.info('agent_log', fields);
  }

  private async doConnect(a: RunningAgent, reqId: number, toText: string): Promise<void> {
    let sock: AgentSocket;
    // Bounded by the worker's pending requests (PENDING): one controller per request in progress.
    const ac = new AbortController();
    a.connecting.set(reqId, ac);
    try {
      let to: AgentId;
      try {
        to = parseId(toText);
      } catch (err) {
        throw toFerry(err);
      }
      try {
        const owner = (await this.host.ownerOf?.(to)) ?? this.ownerOf(to);
        checkConnect(a.grant, to, owner);
        if (a.liveConnections() >= a.grant.maxConnections) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `agent holds ${a.grant.maxConnections} connections (maxConnections)`);
      } catch (err) {
        throw this.refused('connect', toFerry(err), { agent: a.id, to });
      }
      if (ac.signal.aborted) throw new FerryError('FERRY_ERR_ABORTED', 'ctx.connect aborted by the agent');
      sock = await this.host.connect(a.id, to, { signal: ac.signal });
    } catch (err) {
      this.reply(a, reqId, toFerry(err));
      return;
    } finally {
      a.connecting.delete(reqId);
    }
    if (a.phase !== 'running') {
      abortSocket(sock, new FerryError('FERRY_ERR_ABORTED', 'agent left while connecting'));
      this.reply(a, reqId, new FerryError('FERRY_ERR_ABORTED', 'the agent is migrating'));
      return;
    }
    const p = a.addPump(sock, keyOf(sock), sock.remoteAgent, sock.connectionId, { undelivered: Buffer.alloc(0), writeEnded: false, closed: false });
    this.reply(a, reqId, p.info);
    p.announced = true;
    p.pump();
  }

  private doListen(a: RunningAgent, reqId: number): void {
    try {
      try {
        checkListen(a.grant);
      } catch (err) {
        throw this.refused('listen', toFerry(err), { agent: a.id });
      }
      if (!a.server || a.server.closed) this.serve(a, this.host.listen(a.id));
      this.reply(a, reqId, undefined);
    } catch (err) {
      this.reply(a, reqId, toFerry(err));
    }
  }

  /** Accept loop of an agent's server socket; each connection becomes a pump announced to the worker. */
  private serve(a: RunningAgent, server: AgentServerSocket): void {
    a.server = server;
    const loop = async (): Promise<void> => {
      for (;;) {
        let sock: AgentSocket;
        try {
          sock = await server.accept();
        } catch {
          return;
        }
        if (a.phase === 'stopping' || a.phase === 'gone' || a.server !== server) {
          abortSocket(sock, new FerryError('FERRY_ERR_ABORTED', 'agent no longer listening'));
          return;
        }
        if (a.liveConnections() >= a.grant.maxConnections) {
          const err = this.refused('accept', new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `agent holds ${a.grant.maxConnections} connections (maxConnections)`), { agent: a.id, from: sock.remoteAgent });
          abortSocket(sock, err);
          continue;
        }
        const p = a.addPump(sock, keyOf(sock), sock.remoteAgent, sock.connectionId, { undelivered: Buffer.alloc(0), writeEnded: false, closed: false });
        if (a.phase === 'running' && a.worker) p.announce();
        else p.freeze(); // announced on thaw, or carried by the move
      }
    };
    void loop();
  }

  // ---------------------------------------------------------------- moves

  /**
   * Move `a` (frozen at `rawState`). `hostFroze`: an operator move, whose freeze the host asked
   * for, so the host thaws the worker if the move rolls back (a move agent code asked for is
   * answered instead).
   */
  private async move(a: RunningAgent, target: string, rawState: unknown, consumed: Consumed, queuedSids: number[], how: { group?: GroupBatch; signal?: AbortSignal; hostFroze?: boolean } = {}): Promise<MigrationReport | undefined> {
    const { group, signal } = how;
    const abort = new AbortController();
    let settle!: () => void;
    a.move = { abort, settled: new Promise<void>((r) => (settle = r)) };
    try {
      return await this.moveOnce(a, target, rawState, consumed, queuedSids, group, signal ? AbortSignal.any([signal, abort.signal]) : abort.signal);
    } catch (err) {
      // Rolled back: the worker runs on (before a stop waiting on the move goes on).
      if (how.hostFroze && a.phase === 'running') a.post({ t: 'thaw' });
      throw err;
    } finally {
      a.move = undefined;
      settle();
    }
  }

  /** {@link move}, with the signal that calls it off. */
  private async moveOnce(a: RunningAgent, target: string, rawState: unknown, consumed: Consumed, queuedSids: number[], group: GroupBatch | undefined, signal: AbortSignal): Promise<MigrationReport | undefined> {
    a.phase = 'moving';
    for (const p of a.pumps.values()) p.freeze();
    const at = new Map(consumed);
    const inQueue = new Set(queuedSids);
    // Not accepted by agent code at the snapshot: in the worker's listen queue then, or an accepted
    // connection the worker had not seen yet (announced after the snapshot, or never). The state
    // the agent restarts from knows nothing of it, so it must not appear in ctx.connections.
    const unaccepted = (p: Pump): boolean => inQueue.has(p.sid) || (!at.has(p.sid) && p.key.endsWith('/server') && !p.released);
    let sealed = false;
    let report: MigrationReport | undefined;
    let reattached = false;
    try {
      for (const [sid, off] of at) {
        const p = a.pumps.get(sid);
        if (p && !p.validConsumed(off)) throw new FerryError('FERRY_ERR_AGENT_PROTOCOL', `consumed ${off} outside what was sent on socket ${sid}`);
      }
      const landing: AgentLanding = {
        v: 1,
        agentId: a.id,
        owner: a.owner,
        code: a.code,
        codeHash: a.codeHash,
        credential: credentialToText(a.credential),
        state: encodeState(rawState).toString('base64'),
        connections: [],
      };
      const outgoing: OutgoingAgent = {
        landing,
        reattach: (attached) => {
          if (reattached) throw new FerryError('FERRY_ERR_INTERNAL', 'reattach() called twice');
          reattached = true;
          const byKey = new Map(attached.sockets.map((x) => [keyOf(x), x] as const));
          for (const p of a.pumps.values()) {
            p.rebind(byKey.get(p.key));
            byKey.delete(p.key);
          }
          for (const [key, x] of byKey) a.addPump(x, key, x.remoteAgent, x.connectionId, { undelivered: Buffer.alloc(0), writeEnded: false, closed: false }).freeze();
          if (attached.server) this.serve(a, attached.server);
          a.log.info('agent_reattached', { target, connections: attached.sockets.length });
        },
        seal: () => {
          if (sealed) throw new FerryError('FERRY_ERR_INTERNAL', 'seal() called twice');
          sealed = true;
          const carried: CarriedConnection[] = [];
          for (const p of a.pumps.values()) {
            // Agent code closed or destroyed it before the snapshot: the state it restarts from
            // holds no such connection, so it must not come back in ctx.connections (unread bytes
            // and all) on the destination.
            if (p.released && !at.has(p.sid)) continue;
            const c = p.carry(at.get(p.sid) ?? p.acked, unaccepted(p));
            // An unaccepted connection that is over has nothing to give the agent: gone with one line.
            if (c.queued && c.closed) this.logDropped(a, p, 'unaccepted');
            else carried.push(c);
          }
          const undelivered = carried.reduce((n, c) => n + Buffer.byteLength(c.undelivered, 'base64'), 0);
          a.log.info('agent_sealed', { target, connections: carried.length, undeliveredBytes: undelivered, stateBytes: Buffer.byteLength(landing.state, 'base64') });
          return carried;
        },
      };
      report = (await (group ? group.submit(a.id, outgoing) : this.host.migrate(a.id, target, outgoing, { signal }))) ?? undefined;
    } catch (err) {
      const e = toFerry(err);
      group?.withdraw(e);
      if (this.agents.get(a.id) !== a) {
        // Ended during the move (stopped by the operator, fenced): it ended once, with its own
        // exit. What the host's rollback re-attached for it goes too.
        void Promise.resolve().then(() => this.host.removeAgent?.(a.id));
        throw e;
      }
      if (e.code === 'FERRY_ERR_AGENT_PROTOCOL') {
        a.phase = 'running';
        this.fail(a, e.code, e.message);
        throw e;
      }
      const detached = !reattached && (sealed || [...a.pumps.values()].some((p) => p.moved));
      if (!detached && !a.pendingFailure && !a.workerDead) {
        a.phase = 'running';
        for (const p of a.pumps.values()) p.thaw();
        a.log.warn('agent_migration_failed', { target, code: e.code, detail: e.message });
        // Rolled back: run() here did return, and that finish stands now.
        if (a.pendingFinish) this.end(a, a.pendingFinish);
        throw e;
      }
      // Past the point of no return here: the agent cannot run on at this host.
      a.phase = 'running';
      this.end(a, { agentId: a.id, reason: 'failed', error: a.pendingFailure ?? e });
      throw e;
    }
    this.end(a, { agentId: a.id, reason: 'migrated', target });
    return report;
  }
}

/**
 * The members of a runtime group move meet here: each member's `move` submits its outgoing half,
 * and when all have, the group goes to the host at once. A member that fails before submitting
 * (its state too large, say) withdraws the group: nothing was detached, and every member thaws.
 */
class GroupBatch {
  private readonly members: GroupMember[] = [];
  private readonly waiters = new Map<AgentId, { resolve: (r: MigrationReport) => void; reject: (e: FerryError) => void }>();
  private phase: 'collecting' | 'running' | 'withdrawn' = 'collecting';
  private failure: FerryError | undefined;

  constructor(
    private readonly size: number,
    private readonly run: (members: GroupMember[]) => Promise<MemberOutcome[]>,
  ) {}

  submit(agentId: AgentId, outgoing: OutgoingAgent): Promise<MigrationReport> {
    if (this.phase === 'withdrawn') return Promise.reject(this.failure!);
    return new Promise((resolve, reject) => {
      this.members.push({ agentId, outgoing });
      this.waiters.set(agentId, { resolve, reject });
      if (this.members.length === this.size) this.start();
    });
  }

  withdraw(cause: FerryError): void {
    if (this.phase !== 'collecting') return;
    this.phase = 'withdrawn';
    this.failure = new FerryError('FERRY_ERR_ABORTED', `a member of the group cannot move: ${cause.code}`, { cause });
    for (const w of this.waiters.values()) w.reject(this.failure);
    this.waiters.clear();
  }

  private start(): void {
    this.phase = 'running';
    // Through a promise, so a synchronous throw in run() rejects every member, not just the last.
    Promise.resolve()
      .then(() => this.run(this.members))
      .then(
      (outcomes) => {
        for (const o of outcomes) {
          const w = this.waiters.get(o.agentId);
          if (o.committed) w?.resolve(o.report);
          else w?.reject(o.error);
        }
      },
      (err: unknown) => {
        for (const w of this.waiters.values()) w.reject(toFerry(err));
      },
    );
  }
}

/** `ctx.state` as bytes, bounded by AGENT_STATE_BYTES. */
function encodeState(state: unknown): Buffer {
  let b: Buffer;
  try {
    b = serialize(state);
  } catch (cause) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `ctx.state must be structured-clone data: ${(cause as Error).message}`, { cause });
  }
  if (b.length > limit('AGENT_STATE_BYTES')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `ctx.state is ${b.length} bytes serialized, above AGENT_STATE_BYTES (${limit('AGENT_STATE_BYTES')})`);
  return b;
}

function decodeState(b: Buffer): unknown {
  if (b.length > limit('AGENT_STATE_BYTES')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'carried state above AGENT_STATE_BYTES');
  try {
    return deserialize(b);
  } catch (cause) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'carried state does not deserialize', { cause });
  }
}

// ------------------------------------------------------------------ in-process binding

/** Finds a migration target (host id, or control address) among in-process hosts. */
export type InProcessDirectory = (target: string) => { host: Host; runtime: AgentRuntime } | undefined;

/**
 * A {@link RuntimeHost} over an in-process `Host`, for tests and the single-process demo: moves
 * use `Host.moveAgent` (detach here, attach there) between hosts of this process. The
 * destination admits the landing first, so a refusal rolls back before anything moved.
 * `ownerOf` may resolve owners across runtimes (policy rules by owner).
 */
export function inProcessHost(host: Host, directory: InProcessDirectory, ownerOf?: (agentId: AgentId) => OwnerId | undefined): RuntimeHost {
  return {
    id: host.id,
    addAgent: (identity, opts) => host.addAgent(identity, opts),
    listen: (agentId) => host.listen(agentId),
    connect: (from, to, opts) => host.connect(from, to, opts),
    ...(ownerOf ? { ownerOf } : {}),
    migrate: async (agentId, target, outgoing, opts) => {
      const dest = directory(target);
      if (!dest) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `no host ${JSON.stringify(target)} is known here`);
      if (dest.host === host) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'the agent is already on that host');
      dest.runtime.admit(outgoing.landing);
      const { sockets, server } = await host.moveAgent(agentId, dest.host, opts);
      // The landing crosses a process boundary in the real protocol: prove it is plain data.
      const landing = decodeAgentLanding(JSON.parse(JSON.stringify({ ...outgoing.landing, connections: outgoing.seal() })));
      await dest.runtime.land(landing, { sockets, server });
    },
  };
}

/**
 * A {@link RuntimeHost} over a real `Host`: moves go over the authenticated migration channel
 * (`Host.migrateAgent`) to a target "[hostId@]ip:redirectorPort" or a bare host id looked up at
 * the location service (`Host.resolveTarget`), or what `resolve` makes of the target string. Call `host.useRuntime(runtime)` too, so the host admits and lands agents that
 * migrate to it. A destination's refusal rejects with its own code (POLICY_DENIED…); the agent
 * runs on here.
 */
export function channelHost(
  host: Host,
  o: { resolve?: (target: string) => MigrationTarget | undefined; ownerOf?: (agentId: AgentId) => OwnerId | undefined } = {},
): RuntimeHost {
  return {
    id: host.id,
    addAgent: (identity, opts) => host.addAgent(identity, opts),
    removeAgent: (agentId) => host.removeAgent(agentId),
    listen: (agentId) => host.listen(agentId),
    connect: (from, to, opts) => host.connect(from, to, opts),
    ...(o.ownerOf ? { ownerOf: o.ownerOf } : {}),
    migrate: async (agentId, target, outgoing, opts) => {
      const t = o.resolve?.(target) ?? (await host.resolveTarget(target));
      try {
        return await host.migrateAgent(agentId, t, { outgoing, ...opts });
      } catch (err) {
        if (isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError(err.cause)) throw err.cause;
        throw err;
      }
    },
    migrateGroup: async (members, target, opts) => host.migrateMembers(members, o.resolve?.(target) ?? (await host.resolveTarget(target)), opts),
  };
}

/** The credential of a landing, decoded (for hosts that log or index by owner). */
export function landingCredential(landing: AgentLanding): AgentCredential {
  return credentialFromText(landing.credential);
}

/** A short JSON text of an agent's result for one log line (the full value is in AgentExit). */
function preview(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  const max = limit('AGENT_LOG_LINE_BYTES');
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
