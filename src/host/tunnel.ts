/**
 * `ferry tunnel`: plain TCP programs over Ferry connections (docs/TUNNEL.md). A tunnel end is an
 * agent with its own key that lives on a host in the same process and holds real TCP sockets
 * (it is not a confined worker agent). Each tunnelled TCP connection is one Ferry connection, so
 * it inherits what Ferry connections do: a data path that is cut resumes, exactly once, and the
 * TCP programs at both ends never see it.
 *
 * - Forward (`ssh -L`): {@link TunnelEnd.forward} listens on a local TCP address and opens one
 *   Ferry connection (STREAM preamble) per accepted client to the serving end, which dials its
 *   target (`to`) and splices the two.
 * - Reverse (`ssh -R`): {@link TunnelEnd.reverse} asks the peer (LISTEN preamble) to listen on
 *   its side; the peer opens a STREAM back per client it accepts, and this end dials its target.
 *
 * Half-close travels both ways (TCP FIN -> Ferry FIN -> TCP FIN). Backpressure is end to end: a
 * TCP reader that stops reading stops its Ferry connection's window, which stops the writer's
 * Ferry send budget, which stops reading from the writer's TCP socket. A reset or a refused
 * target at one end aborts the Ferry connection, and the other end resets its TCP socket.
 */
import { BlockList, createServer, isIP, connect as netConnect, type Server, type Socket } from 'node:net';
import type { AgentId, Identity } from '../identity/index.js';
import type { AgentServerSocket, AgentSocket } from '../connection/index.js';
import { decodeTunnelPreamble, encodeTunnelPreamble, TunnelKind, TunnelRefusal, TUNNEL_PREAMBLE_MAX, type TunnelPreamble } from '../wire/index.js';
import { FerryError, limit, type ErrorCode, type Logger } from '../util/index.js';
import type { Host } from './host.js';
import { SendBudget, type SendBudgetLimits } from './tunnel-budget.js';

/** Open failures a cut path or a moving peer causes: worth another try. */
const RETRY_OPEN = new Set<string>(['FERRY_ERR_PEER_UNREACHABLE', 'FERRY_ERR_HANDSHAKE_TIMEOUT', 'FERRY_ERR_CONTROL_TIMEOUT', 'FERRY_ERR_PEER_MOVING', 'FERRY_ERR_UNKNOWN_CONNECTION']);

/** A TCP address: host name or IP, and port. */
export interface TcpAddress {
  host: string;
  port: number;
}

/** Parse "HOST:PORT" or "[V6]:PORT" (port 0..65535); throws FERRY_ERR_INVALID_ARGUMENT. */
export function parseTcpAddress(text: string): TcpAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `expected HOST:PORT, got '${text}'`);
  return { host: m[1]!, port };
}

/** Options of {@link TunnelEnd.start}. */
export interface TunnelEndOptions {
  host: Host;
  /** The tunnel agent's key; it is added to `host` and listens there. */
  agent: Identity;
  /** Where each STREAM from an allowed peer is dialled (the serving end's `--to`). */
  to?: TcpAddress;
  /** Which peer agents may open STREAMs (to `to`) or send LISTEN here. */
  allow: (peer: AgentId) => boolean;
  /** Whether allowed peers may ask this end to listen (reverse tunnels); default false. */
  allowRemoteListen?: boolean;
  /**
   * Whether a peer's reverse listener may bind any address of this host (ssh's GatewayPorts
   * yes); default false: loopback addresses only.
   */
  gatewayPorts?: boolean;
  /**
   * What all streams of this end together may hold for their peers, sent and not yet
   * acknowledged (host/tunnel-budget.ts); default TUNNEL_SEND_BUDGET_BYTES, a peer's share
   * TUNNEL_SEND_BUDGET_PER_SOURCE_BYTES (the streams with one peer address), a stream's floor TUNNEL_STREAM_SEND_FLOOR_BYTES.
   */
  sendBudget?: Partial<SendBudgetLimits>;
  logger: Logger;
}

/** The send budget of `ferry tunnel --send-budget SIZE`: the pool SIZE, a source's share a quarter of it. */
export function sendBudgetOf(max: number): SendBudgetLimits {
  return { max, perSource: Math.floor(max / 4), floor: limit('TUNNEL_STREAM_SEND_FLOOR_BYTES') };
}

/** Counters of one tunnel end. */
export interface TunnelStats {
  /** Streams carried now. */
  active: number;
  /** Streams opened since start. */
  opened: number;
  /** Streams that ended with a reset or a refused target. */
  reset: number;
  /** Ferry connections refused (agent not allowed, malformed preamble, limit). */
  denied: number;
  /** Bytes the streams hold for their peers now (sent, not yet acknowledged). */
  held: number;
  /** Streams whose TCP side waits for room in the send budget now. */
  starved: number;
}

/** One tunnel end: the agent, its listeners, and the streams it splices. */
export class TunnelEnd {
  private readonly counts = { active: 0, opened: 0, reset: 0, denied: 0 };
  private readonly servers = new Set<Server>();
  /** Peers this end asked to listen (reverse): their STREAMs are dialled to this target. */
  private readonly reverseTargets = new Map<AgentId, TcpAddress>();
  /** Reverse listeners opened (or being opened) here for a peer, per peer with any. */
  private readonly listensOf = new Map<AgentId, number>();
  /** Streams each peer has this end carry (accepted STREAMs whose connection is open), per peer with any. */
  private readonly streamsOf = new Map<AgentId, number>();
  /** The same, per source address (the peer host's): agent ids are free to make, addresses are not. */
  private readonly streamsFrom = new Map<string, number>();
  /** Reverse listeners opened (or being opened) here for all peers together. */
  private listens = 0;
  private readonly streams = new Set<{ tcp: Socket; fs: AgentSocket }>();
  private closed = false;
  /** What the streams hold for their peers, against one pool (host/tunnel-budget.ts). */
  private readonly budget: SendBudget;
  /** Streams whose TCP side is paused for want of room in the pool, oldest first, each with its retry. */
  private readonly starved = new Map<object, () => boolean>();

  private constructor(
    private readonly opts: TunnelEndOptions,
    private readonly server: AgentServerSocket,
  ) {
    this.budget = new SendBudget({
      max: opts.sendBudget?.max ?? limit('TUNNEL_SEND_BUDGET_BYTES'),
      perSource: opts.sendBudget?.perSource ?? limit('TUNNEL_SEND_BUDGET_PER_SOURCE_BYTES'),
      floor: opts.sendBudget?.floor ?? limit('TUNNEL_STREAM_SEND_FLOOR_BYTES'),
    });
    server.on('connection', (fs: AgentSocket) => this.onFerry(fs));
  }

  /** Counters of this end, and what its streams hold now. */
  get stats(): TunnelStats {
    return { ...this.counts, held: this.budget.held, starved: this.starved.size };
  }

  /**
   * Add the tunnel agent to its host and accept Ferry connections to it. The host is new at each
   * start (a fresh host key), so a tunnel end restarted with its key file replaces the copy that
   * the rendezvous still names (which stops when it sees it is fenced off): the key file is the
   * operator's, and the last process started with it is the tunnel end.
   */
  static async start(opts: TunnelEndOptions): Promise<TunnelEnd> {
    await opts.host.addAgent(opts.agent, { replace: true });
    return new TunnelEnd(opts, opts.host.listen(opts.agent.id));
  }

  /**
   * A warning a peer, a client or a target can cause once per connection, so a flood of them
   * could flood the log: written through the logger's refusal limit, per (code, peer agent),
   * the rest counted in one `log.suppressed` line per window (util/log-limit.ts).
   */
  private warn(event: string, fields: Record<string, unknown> & { code: string }): void {
    this.opts.logger.refused(event, typeof fields.peer === 'string' ? { ...fields, from: fields.peer } : fields);
  }

  /** The tunnel agent's id (what the other end names). */
  get agentId(): AgentId {
    return this.opts.agent.id;
  }

  /** Forward (`ssh -L`): listen on `listen`; each client becomes a STREAM to `peer`. Resolves with the bound port. */
  async forward(listen: TcpAddress, peer: AgentId): Promise<number> {
    return boundPort(await this.listenTcp(listen, (tcp) => this.openStream(tcp, peer)));
  }

  /**
   * Reverse (`ssh -R`): ask `peer` to listen on `remote` (on its side) and tunnel each client it
   * accepts back here, where it is dialled to `to`. Resolves with the port the peer bound; the
   * listener lives as long as the Ferry connection that asked for it.
   */
  async reverse(remote: TcpAddress, peer: AgentId, to: TcpAddress): Promise<number> {
    const fs = await this.openWithRetry(peer);
    fs.on('error', () => {});
    this.reverseTargets.set(peer, to);
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.LISTEN, host: remote.host, port: remote.port }));
    let reply: { preamble: TunnelPreamble; rest: Buffer };
    try {
      reply = await readPreamble(fs);
    } catch (err) {
      fs.destroy();
      this.reverseTargets.delete(peer);
      throw err;
    }
    if (reply.preamble.kind !== TunnelKind.LISTENING) {
      fs.destroy();
      this.reverseTargets.delete(peer);
      const why = reply.preamble.kind === TunnelKind.REFUSED && reply.preamble.reason === TunnelRefusal.CANNOT_BIND ? 'it cannot bind' : 'not allowed there';
      throw new FerryError('FERRY_ERR_TUNNEL_REFUSED', `peer ${peer} refused to listen on ${remote.host}:${remote.port}: ${why}`);
    }
    fs.once('close', () => {
      if (this.reverseTargets.get(peer) === to) this.reverseTargets.delete(peer);
      if (!this.closed) this.warn('tunnel_reverse_ended', { peer, code: fs.errored ? ((fs.errored as FerryError).code ?? 'FERRY_ERR_CONNECTION_CLOSED') : 'FERRY_ERR_CONNECTION_CLOSED' });
    });
    fs.resume();
    return reply.preamble.port;
  }

  /** Stop listening and reset every stream. */
  async close(): Promise<void> {
    this.closed = true;
    this.server.close();
    for (const s of this.servers) s.close();
    for (const { tcp, fs } of this.streams) {
      tcp.resetAndDestroy();
      fs.destroy();
    }
    this.opts.host.removeAgent(this.agentId);
  }

  private listenTcp(at: TcpAddress, onClient: (tcp: Socket) => void): Promise<Server> {
    const srv = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, onClient);
    this.servers.add(srv);
    srv.once('close', () => this.servers.delete(srv));
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => {
        this.servers.delete(srv);
        reject(listenError(at, err));
      };
      srv.once('error', failed);
      srv.listen({ host: at.host, port: at.port, backlog: limit('TUNNEL_MAX_STREAMS') }, () => {
        srv.off('error', failed);
        srv.on('error', (err) => this.warn('tunnel_listen_error', { code: 'FERRY_ERR_TUNNEL_LISTEN', errno: (err as NodeJS.ErrnoException).code }));
        resolve(srv);
      });
    });
  }

  /** A local client arrived: open its Ferry connection to `peer`, send STREAM, splice. */
  private openStream(tcp: Socket, peer: AgentId): void {
    // A client that resets before its open is done is gone: its open is dropped, also while it
    // waits among the host's opens towards the peer (OPENS_IN_FLIGHT_PER_PEER at a time), so that
    // clients that connect and reset at once cost the serving end no open and no target
    // connection, and the clients after them do not wait behind their opens.
    const gone = new AbortController();
    const onEarly = (): void => gone.abort();
    tcp.on('error', onEarly);
    tcp.once('close', onEarly);
    // A paused socket reads nothing, so its reset would go unseen until the splice. Reading into
    // the socket's own buffer (at most its highWaterMark, 16 KiB, then the kernel's; the bytes
    // wait there for the splice, none is sent before ACCEPTED) lets the reset be seen at once.
    tcp.read(0);
    if (this.counts.active >= limit('TUNNEL_MAX_STREAMS')) {
      this.counts.denied++;
      this.warn('tunnel_stream_refused', { code: 'FERRY_ERR_LIMIT_EXCEEDED', limit: 'TUNNEL_MAX_STREAMS' });
      tcp.resetAndDestroy();
      return;
    }
    this.counts.active++;
    this.openStreamWithRetry(peer, gone.signal).then(
      ({ fs, rest }) => {
        tcp.off('error', onEarly);
        tcp.off('close', onEarly);
        this.counts.active--;
        if (gone.signal.aborted || this.closed) {
          fs.destroy();
          tcp.destroy();
          return;
        }
        this.splice(tcp, fs, rest);
      },
      (err: unknown) => {
        this.counts.active--;
        if (gone.signal.aborted) return void tcp.destroy();
        this.counts.reset++;
        this.warn('tunnel_open_failed', { peer, code: (err as FerryError).code ?? 'FERRY_ERR_INTERNAL', detail: (err as Error).message });
        tcp.resetAndDestroy();
      },
    );
  }

  /**
   * Open a Ferry connection to `peer` and have it ACCEPT a STREAM. An open is not resumable (no
   * connection exists until it completes), and an open cut right after our CONNECT_CONFIRM can
   * leave a connection the peer never got; so until the peer's ACCEPTED arrives (within
   * TUNNEL_ACCEPT_TIMEOUT_MS) nothing of the client is sent, and a failed try is dropped and made
   * again, backing off from RESUME_RETRY_MS to CONTROL_MAX_RTO_MS, for up to RECONNECT_LIMIT_MS:
   * what an established connection's resume would also wait. A refusal is not retried.
   */
  private openStreamWithRetry(peer: AgentId, signal: AbortSignal): Promise<{ fs: AgentSocket; rest: Buffer }> {
    return this.retryOpen(
      async () => {
        let fs: AgentSocket | undefined;
        try {
          fs = await this.opts.host.connect(this.agentId, peer, { signal });
          fs.on('error', () => {});
          fs.write(encodeTunnelPreamble({ kind: TunnelKind.STREAM }));
          const { preamble, rest } = await readPreamble(fs, limit('TUNNEL_ACCEPT_TIMEOUT_MS'));
          if (preamble.kind !== TunnelKind.ACCEPTED) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `tunnel peer answered STREAM with kind ${preamble.kind}`);
          return { fs, rest };
        } catch (err) {
          fs?.destroy();
          throw err;
        }
      },
      (code) => this.opts.logger.info('tunnel_open_retry', { peer, code }),
      signal,
    );
  }

  /** Open a Ferry connection to `peer`, trying again as {@link openStreamWithRetry} does. */
  private openWithRetry(peer: AgentId): Promise<AgentSocket> {
    return this.retryOpen(() => this.opts.host.connect(this.agentId, peer));
  }

  /**
   * Run `attempt` until it succeeds, fails with a code not in RETRY_OPEN, the tunnel closes, or the
   * next pause would pass RECONNECT_LIMIT_MS; pauses back off from RESUME_RETRY_MS to
   * CONTROL_MAX_RTO_MS. `onRetry` hears each retried failure's code; `signal` ends the tries.
   */
  private async retryOpen<T>(attempt: () => Promise<T>, onRetry?: (code: ErrorCode | undefined) => void, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + limit('RECONNECT_LIMIT_MS');
    let pause = limit('RESUME_RETRY_MS');
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        const code = (err as FerryError).code;
        if (this.closed || signal?.aborted || !RETRY_OPEN.has(code) || Date.now() + pause > deadline) throw err;
        onRetry?.(code);
      }
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, limit('CONTROL_MAX_RTO_MS'));
    }
  }

  /** A Ferry connection to the tunnel agent: check the peer, read its preamble, act on it. */
  private onFerry(fs: AgentSocket): void {
    fs.on('error', () => {});
    const peer = fs.remoteAgent;
    const reverseTo = this.reverseTargets.get(peer);
    if (!reverseTo && !this.opts.allow(peer)) return this.deny(fs, 'FERRY_ERR_TUNNEL_DENIED', { peer });
    // Bounded like the opener's wait for ACCEPTED: a connection that never says what it is for is not held.
    readPreamble(fs, limit('TUNNEL_ACCEPT_TIMEOUT_MS')).then(
      ({ preamble, rest }) => {
        if (preamble.kind === TunnelKind.STREAM) {
          const to = reverseTo ?? (this.opts.allow(peer) ? this.opts.to : undefined);
          if (!to) return this.deny(fs, 'FERRY_ERR_TUNNEL_DENIED', { peer, why: 'no target for this peer' });
          if (this.counts.active >= limit('TUNNEL_MAX_STREAMS')) return this.deny(fs, 'FERRY_ERR_LIMIT_EXCEEDED', { peer, limit: 'TUNNEL_MAX_STREAMS' });
          const refused = this.holdStream(peer, fs);
          if (refused) return this.deny(fs, 'FERRY_ERR_LIMIT_EXCEEDED', { peer, source: fs.endpoint.peer.ip, limit: refused });
          fs.write(encodeTunnelPreamble({ kind: TunnelKind.ACCEPTED }));
          return this.dialTarget(fs, to, rest, peer);
        }
        if (preamble.kind === TunnelKind.LISTEN && this.opts.allow(peer)) return void this.onListen(fs, peer, preamble);
        return this.deny(fs, 'FERRY_ERR_TUNNEL_DENIED', { peer, kind: preamble.kind });
      },
      (err: unknown) => this.deny(fs, (err as FerryError).code ?? 'FERRY_ERR_MALFORMED_FRAME', { peer, detail: (err as Error).message }),
    );
  }

  /**
   * Take one of `peer`'s TUNNEL_STREAMS_PER_PEER places and one of its source address's
   * TUNNEL_STREAMS_PER_SOURCE places for the stream on `fs`, until `fs` closes, so that neither
   * one allowed peer nor one machine (with --allow-any, keys are free) can take every place of
   * TUNNEL_MAX_STREAMS from the others. Returns the limit that refused it, if one did.
   */
  private holdStream(peer: AgentId, fs: AgentSocket): 'TUNNEL_STREAMS_PER_PEER' | 'TUNNEL_STREAMS_PER_SOURCE' | undefined {
    const ofPeer = takePlace(this.streamsOf, peer, limit('TUNNEL_STREAMS_PER_PEER'));
    if (!ofPeer) return 'TUNNEL_STREAMS_PER_PEER';
    const fromSource = takePlace(this.streamsFrom, fs.endpoint.peer.ip, limit('TUNNEL_STREAMS_PER_SOURCE'));
    if (!fromSource) {
      ofPeer();
      return 'TUNNEL_STREAMS_PER_SOURCE';
    }
    const release = (): void => {
      ofPeer();
      fromSource();
    };
    fs.once('close', release);
    // Its 'close' may be past already (a STREAM and an abort in one read).
    if (fs.destroyed) release();
    return undefined;
  }

  private deny(fs: AgentSocket, code: ErrorCode, fields: Record<string, unknown>): void {
    this.counts.denied++;
    this.warn('tunnel_denied', { code, ...fields });
    fs.destroy(new FerryError(code));
  }

  /** A STREAM arrived: dial the target; once connected, splice; if it fails, abort. */
  private dialTarget(fs: AgentSocket, to: TcpAddress, rest: Buffer, peer: AgentId): void {
    // Its 'close' may have passed already: the STREAM and the peer's abort came in one read.
    if (fs.destroyed) return;
    this.counts.active++;
    const tcp = netConnect({ host: to.host, port: to.port, allowHalfOpen: true, noDelay: true });
    let dialling = true;
    const settle = (): boolean => {
      if (!dialling) return false;
      dialling = false;
      this.counts.active--;
      fs.off('close', abandon);
      return true;
    };
    // A peer that aborts while the target is dialled (a STREAM then an abort, in a loop) gets
    // the dial stopped: before, the target connection was spliced to a connection already
    // closed, stayed open for good and held a place of TUNNEL_MAX_STREAMS.
    const abandon = (): void => {
      // A reset, not a FIN: the kernel may have connected already, and a FIN would leave a
      // half-open target waiting for more (resetAndDestroy waits for the connect if need be).
      if (settle()) tcp.resetAndDestroy();
    };
    fs.once('close', abandon);
    tcp.once('error', (err: NodeJS.ErrnoException) => {
      if (!settle()) return;
      this.counts.reset++;
      this.warn('tunnel_target_failed', { code: 'FERRY_ERR_TUNNEL_TARGET', errno: err.code, target: `${to.host}:${to.port}`, peer });
      fs.destroy(new FerryError('FERRY_ERR_TUNNEL_TARGET', `${to.host}:${to.port}: ${err.code ?? err.message}`));
    });
    tcp.once('connect', () => {
      if (settle()) this.splice(tcp, fs, rest);
    });
  }

  /** A LISTEN from an allowed peer: bind, answer, and tunnel each client back as a STREAM. */
  private async onListen(fs: AgentSocket, peer: AgentId, p: { host: string; port: number }): Promise<void> {
    const n = this.listensOf.get(peer) ?? 0;
    const why = !this.opts.allowRemoteListen
      ? 'remote listen not allowed'
      : (listenRefusal(p, Boolean(this.opts.gatewayPorts)) ?? (n >= limit('TUNNEL_LISTENS_PER_PEER') ? 'TUNNEL_LISTENS_PER_PEER' : this.listens >= limit('TUNNEL_LISTENS_MAX') ? 'TUNNEL_LISTENS_MAX' : undefined));
    if (why) {
      this.counts.denied++;
      this.warn('tunnel_denied', { code: 'FERRY_ERR_TUNNEL_DENIED', peer, listen: `${p.host}:${p.port}`, why });
      fs.end(encodeTunnelPreamble({ kind: TunnelKind.REFUSED, reason: TunnelRefusal.NOT_ALLOWED }));
      return;
    }
    // Below TUNNEL_LISTENS_PER_PEER: checked above.
    const releasePlace = takePlace(this.listensOf, peer, limit('TUNNEL_LISTENS_PER_PEER'))!;
    this.listens++;
    let held = true;
    let srv: Server | undefined;
    const release = (): void => {
      if (!held) return;
      held = false;
      this.listens--;
      releasePlace();
      srv?.close();
    };
    // The listener lives as long as the connection that asked for it. Listening before the bind
    // is done: a connection aborted while the bind is under way would otherwise leave a listener,
    // and its place, for good (a peer aborting LISTENs in a loop filled the host with them).
    fs.once('close', release);
    const at = { host: p.host === 'localhost' ? '127.0.0.1' : p.host, port: p.port };
    try {
      srv = await this.listenTcp(at, (tcp) => this.openStream(tcp, peer));
    } catch (err) {
      release();
      this.warn('tunnel_listen_failed', { code: 'FERRY_ERR_TUNNEL_REFUSED', peer, listen: `${p.host}:${p.port}`, errno: ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code });
      fs.end(encodeTunnelPreamble({ kind: TunnelKind.REFUSED, reason: TunnelRefusal.CANNOT_BIND }));
      return;
    }
    if (!held) return void srv.close();
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.LISTENING, port: boundPort(srv) }));
    fs.resume();
  }

  /**
   * Join a TCP socket and a Ferry connection: bytes both ways with backpressure (pipe), FIN
   * both ways (allowHalfOpen on both), a reset or abort on either side resets the other.
   */
  private splice(tcp: Socket, fs: AgentSocket, head: Buffer): void {
    // A Ferry connection aborted before the splice (its 'close' may be past, and no handler below
    // would ever fire): the TCP side is reset at once, not left open for good.
    if (fs.destroyed) {
      this.counts.reset++;
      tcp.resetAndDestroy();
      return;
    }
    const entry = { tcp, fs };
    this.streams.add(entry);
    this.counts.opened++;
    this.counts.active++;
    let aborted = false;
    const done = (): void => {
      if (!this.streams.delete(entry)) return;
      this.counts.active--;
    };
    tcp.on('error', (err: NodeJS.ErrnoException) => {
      if (aborted) return;
      aborted = true;
      this.counts.reset++;
      this.warn('tunnel_tcp_reset', { code: 'FERRY_ERR_TUNNEL_RESET', errno: err.code, peer: fs.remoteAgent });
      fs.destroy(new FerryError('FERRY_ERR_TUNNEL_RESET', `TCP socket: ${err.code ?? err.message}`));
    });
    fs.on('error', (err: FerryError) => {
      if (aborted) return;
      aborted = true;
      this.counts.reset++;
      this.warn('tunnel_stream_reset', { code: err.code ?? 'FERRY_ERR_TUNNEL_RESET', peer: fs.remoteAgent, connection: fs.connectionId });
      tcp.resetAndDestroy();
    });
    // A TCP socket that closes without an error after its FIN exchange is done; one that closes
    // while the Ferry side still has bytes to deliver was closed under us: abort the Ferry side.
    tcp.once('close', () => {
      done();
      if (!fs.destroyed && !(tcp.readableEnded && fs.writableEnded && fs.readableEnded)) fs.destroy();
    });
    fs.once('close', () => {
      done();
      if (!tcp.destroyed && fs.errored) tcp.resetAndDestroy();
    });
    if (head.length > 0) tcp.write(head);
    this.feed(entry, tcp, fs);
    deliver(fs, tcp);
    tcp.resume();
  }

  /**
   * Read `tcp` into `fs` (as `tcp.pipe(fs)`, FIN included), within the send budget: its TCP side
   * pauses when `fs` has no room (until 'drain') or when what it holds for the peer, sent and not
   * acknowledged, is beyond its floor and the pool or its source's share is used up (until the
   * peer's acknowledgements, or another stream, give room back). The other direction needs no
   * budget: what arrives is bounded by the host's receive budget (RECEIVE_BUDGET_BYTES).
   */
  private feed(entry: object, tcp: Socket, fs: AgentSocket): void {
    const ep = fs.endpoint;
    // The share is the peer host's address's: with --allow-any, agent ids are free to make.
    const source = ep.peer.ip;
    /** `fs.write` said no: waiting for 'drain'. */
    let full = false;
    const account = (): boolean => {
      const r = this.budget.update(entry, source, fs.writableLength + ep.send.unacked);
      if (r.freed) this.retryStarved(entry);
      return r.mayRead;
    };
    /** Resume the TCP side if it may read now; returns whether it did. */
    const retry = (): boolean => {
      if (full || tcp.destroyed || fs.destroyed || !this.budget.mayReadNow(entry)) return false;
      this.starved.delete(entry);
      tcp.resume();
      return true;
    };
    const starve = (): void => {
      this.starved.set(entry, retry);
      tcp.pause();
    };
    tcp.on('data', (chunk: Buffer) => {
      if (fs.destroyed || fs.writableEnded) return;
      if (!fs.write(chunk)) {
        full = true;
        tcp.pause();
      }
      if (!account() && !full) starve();
    });
    fs.on('drain', () => {
      full = false;
      if (account()) retry();
      else starve();
    });
    // An acknowledgement freed bytes of this stream: the pool's room may let it, or another, read.
    const onRoom = (): void => {
      if (account() && this.starved.has(entry)) retry();
    };
    ep.on('room', onRoom);
    tcp.on('end', () => {
      if (!fs.destroyed) fs.end();
    });
    fs.once('close', () => {
      ep.off('room', onRoom);
      this.starved.delete(entry);
      if (this.budget.release(entry)) this.retryStarved(entry);
    });
  }

  /**
   * The pool got room back: resume starved streams, oldest first, about one read (64 KiB) per
   * stream while the pool has room, so that a burst of resumes overshoots it by little.
   */
  private retryStarved(except: object): void {
    let room = this.budget.limits.max - this.budget.pooled;
    for (const [entry, retry] of this.starved) {
      if (room <= 0) return;
      if (entry !== except && retry()) room -= 64 * 1024;
    }
  }
}

/**
 * Write what `fs` delivers to `tcp` (as `fs.pipe(tcp)`, FIN included, waiting for 'drain' when
 * `tcp` asks), but in one write per 'readable': `read()` hands over everything buffered, joined.
 * The connection buffers a DATA frame's payload in the pieces its socket reads cut it into (a
 * 256 KiB frame in about five), and `pipe()` wrote each piece on its own: 28 writes to the target
 * per MiB at the serving end of a sealed tunnel (strace, 64 KiB messages), each a system call and
 * a wake-up of the target. Errors are the splice's: it watches both sides.
 */
function deliver(fs: AgentSocket, tcp: Socket): void {
  let waiting = false;
  const write = (): void => {
    if (waiting) return;
    for (let c = fs.read() as Buffer | null; c !== null; c = fs.read() as Buffer | null) {
      if (tcp.destroyed || tcp.writableEnded) return;
      if (!tcp.write(c)) {
        waiting = true;
        tcp.once('drain', () => {
          waiting = false;
          write();
        });
        return;
      }
    }
  };
  fs.on('readable', write);
  fs.once('end', () => {
    if (!tcp.destroyed && !tcp.writableEnded) tcp.end();
  });
  write();
}

/**
 * Read a tunnel preamble off the start of `fs` (at most TUNNEL_PREAMBLE_MAX bytes); resolves with
 * it and the stream bytes that came after it, with `fs` paused. Rejects with the connection's
 * error if it fails first, and with FERRY_ERR_HANDSHAKE_TIMEOUT after `timeoutMs` (if given).
 */
export function readPreamble(fs: AgentSocket, timeoutMs?: number): Promise<{ preamble: TunnelPreamble; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => fail(new FerryError('FERRY_ERR_HANDSHAKE_TIMEOUT', `no tunnel preamble within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      fs.pause();
      fs.off('data', onData);
      fs.off('end', onEnd);
      fs.off('close', onEnd);
    };
    const fail = (err: unknown): void => {
      cleanup();
      reject(err);
    };
    const onEnd = (): void => fail(fs.errored ?? new FerryError('FERRY_ERR_MALFORMED_FRAME', 'the connection ended before its tunnel preamble'));
    const onData = (c: Buffer): void => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      let d: ReturnType<typeof decodeTunnelPreamble>;
      try {
        d = decodeTunnelPreamble(buf.subarray(0, TUNNEL_PREAMBLE_MAX));
      } catch (err) {
        return fail(err);
      }
      if (d) {
        cleanup();
        return resolve({ preamble: d.preamble, rest: buf.subarray(d.consumed) });
      }
      if (buf.length >= TUNNEL_PREAMBLE_MAX) fail(new FerryError('FERRY_ERR_MALFORMED_FRAME', 'tunnel preamble too long'));
    };
    fs.on('data', onData);
    fs.once('end', onEnd);
    fs.once('close', onEnd);
  });
}

/**
 * Take one of `key`'s places in `counts` unless it holds `max`: returns the release (which acts
 * once), or undefined when `key` holds them all. A peer's streams and reverse listeners.
 */
function takePlace<K>(counts: Map<K, number>, key: K, max: number): (() => void) | undefined {
  const n = counts.get(key) ?? 0;
  if (n >= max) return undefined;
  counts.set(key, n + 1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    const left = (counts.get(key) ?? 1) - 1;
    if (left > 0) counts.set(key, left);
    else counts.delete(key);
  };
}

/** Loopback addresses: where a peer's reverse listener may bind without gateway ports. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Why a peer's LISTEN for `p` is refused before anything is bound, or undefined. As sshd does
 * for a remote forward: no privileged port (TUNNEL_LISTEN_MIN_PORT; a tunnel end run as root
 * would otherwise take ssh's or a web server's port for a peer), and loopback only unless the
 * operator said `gatewayPorts`. Only IP addresses and "localhost" are taken: a name would make
 * this end run a DNS lookup for a peer's string.
 */
function listenRefusal(p: { host: string; port: number }, gatewayPorts: boolean): string | undefined {
  if (p.port !== 0 && p.port < limit('TUNNEL_LISTEN_MIN_PORT')) return `privileged port (below TUNNEL_LISTEN_MIN_PORT ${limit('TUNNEL_LISTEN_MIN_PORT')})`;
  if (p.host === 'localhost') return undefined;
  const family = isIP(p.host);
  if (family === 0) return 'not an IP address';
  if (!gatewayPorts && !LOOPBACK.check(p.host, family === 4 ? 'ipv4' : 'ipv6')) return 'not a loopback address (gateway ports not allowed)';
  return undefined;
}

/** The port a listening server bound. */
function boundPort(srv: Server): number {
  return (srv.address() as { port: number }).port;
}

/** Why a listen failed, as an operator reads it, by errno. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: 'the port is in use',
  EADDRNOTAVAIL: 'not an address of this host',
  ENOTFOUND: 'the name does not resolve',
  EAI_AGAIN: 'the name does not resolve (yet)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
};

/** A failed listen on `at` as a FerryError (FERRY_ERR_TUNNEL_LISTEN); the errno stays in its cause. */
function listenError(at: TcpAddress, err: Error): FerryError {
  const errno = (err as NodeJS.ErrnoException).code;
  const why = (errno && LISTEN_FAILURES[errno]) ?? err.message;
  return new FerryError('FERRY_ERR_TUNNEL_LISTEN', `cannot listen on ${at.host}:${at.port}: ${why}${errno ? ` (${errno})` : ''}`, { cause: err });
}
