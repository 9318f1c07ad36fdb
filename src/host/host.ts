/**
 * A Ferry host: one UDP control port (the controller) and one TCP redirector port, shared by
 * every agent and connection on it (paper §3.3: no port table). The controller grants sockets,
 * answers CONNECT / SUS / RES / CLS by connection id, and refuses bad input with typed errors
 * and one log line each; the redirector reads a HELLO and hands the socket to its endpoint.
 * Moves detach an agent's endpoints into a checkpoint here and attach them on another host.
 */
import { createServer, connect as netConnect, type Server } from 'node:net';
import { ControlChannel, parseAddress, type ControlMessage, type DatagramSocketLike } from '../control/index.js';
import { AgentServerSocket, AgentSocket, Endpoint, ReceiveBudget, ResumeSigner, type EndpointCheckpoint, type ReceiveBudgetLimits, type EndpointEnv, type LocationProof, type PeerLocator, type StreamSocket } from '../connection/index.js';
import { Identity, idFromBytes, type AgentId, type HostId } from '../identity/index.js';
import type { HeldEntry, LocationEntry, LocationService } from '../location/index.js';
import { ERRORS, FerryError, KeyedGate, SourceSlots, abortedError, isAbortError, isFerryError, keepFreedMemory, limit, onAbort, silentLogger, systemClock, type Clock, type Logger, type TimerHandle } from '../util/index.js';
import { FrameDecoder, FrameType, MessageType, OpenFrameType, decodeConnControl, decodeConnect, decodeConnectConfirm, decodeConnectFrame, decodeFrameBody, encodeFrame, type Connect, type Hello } from '../wire/index.js';
import { verifyConnect } from '../connection/index.js';
import { createHash } from 'node:crypto';
import { freshBytes, freshChain, parseId, verifyChain, type DelegationChain } from '../identity/index.js';
import {
  MigrationStep,
  decodeAbortStep,
  decodeCheckpointBody,
  decodeCheckpointEndStep,
  decodeCommittedStep,
  decodeConfirmStep,
  decodeConnectionIdsStep,
  decodeDelegateStep,
  decodePeersStep,
  encodeAbortStep,
  encodeCheckpointBody,
  encodeCheckpointEndStep,
  encodeCommittedStep,
  encodeConfirmStep,
  encodeConnectionIdsStep,
  encodeDelegateStep,
  encodePeersStep,
  type AbortStep,
} from '../wire/index.js';
import { MigrationChannel, isMigrationHello } from './migration.js';
import { decodeAgentCheckpoint } from './agent-checkpoint.js';
import { SourceRoutes } from './source-routes.js';
import type { AgentLanding, AgentRuntime, OutgoingAgent } from './runtime.js';

/** Options for {@link Host.start}. */
export interface HostOptions {
  /** Location service shared with the other hosts (the rendezvous). */
  location: LocationService;
  /** IP to bind both ports on (default 127.0.0.1). */
  ip?: string;
  /**
   * The address registered and told to peers, when `ip` is the wildcard (a roaming host, bound to
   * every address); default `ip`. {@link Host.changeAddress} replaces it.
   */
  advertise?: string;
  controlPort?: number;
  redirectorPort?: number;
  /**
   * The redirector port peers are told (registrations, CONNECT_ACK, RES), when it is not the one
   * bound: a host behind a TCP port forward or proxy. Default: the bound port.
   */
  advertiseRedirectorPort?: number;
  /** Signed handshake, MACs and sealed frames (default true). Off only to measure its cost. */
  security?: boolean;
  /** Host key (default: a fresh one). */
  identity?: Identity;
  name?: string;
  logger?: Logger;
  clock?: Clock;
  sendBudget?: number;
  receiveWindow?: number;
  /** Bounds of the host's receive budget (default: RECEIVE_BUDGET_* and RECEIVE_WINDOW_FLOOR_BYTES). */
  receiveBudget?: Partial<ReceiveBudgetLimits>;
  reconnectLimitMs?: number;
  /** Wrap the control socket (tests: in-process loss, duplication, reordering). */
  wrapControlSocket?: (s: DatagramSocketLike) => DatagramSocketLike;
  /** Which source hosts may migrate agents here (default: any host that authenticates). */
  acceptMigrationFrom?: (source: HostId) => boolean;
  /**
   * Over the migration channel, land only agents with code, each admitted by the runtime
   * (credential and policy): an agent without code is refused FERRY_ERR_REFUSED at the DELEGATE
   * step. Any host key can open a channel, and an agent without code is checked by nothing, so a
   * stranger could otherwise plant agents whose checkpointed connections this host resumes
   * towards any address it names, and fill this host with checkpoint parts. `ferry host` sets it
   * (it runs only agents with code); default false (in-process moves, tests).
   */
  landOnlyAgentsWithCode?: boolean;
  /**
   * Fault injection for tests: called at each migration step (before that side sends or awaits it),
   * and on the source once more with `after` set once COMMITTED has arrived. Returning 'cut' cuts
   * the channel there. `ferry host` can also freeze the whole process at two of these points, for
   * tests that kill it there (FERRY_TEST_FAULT, see src/cli/host.ts).
   */
  migrationFault?: (side: 'source' | 'destination', step: number, after?: boolean) => 'cut' | undefined;
  /** Wall clock (Unix ms) for delegation validity; default Date.now. */
  wallClock?: () => number;
  /**
   * How often to look up the agents running here at the location service and fence a copy that
   * another host registered at a newer epoch (default FENCE_CHECK_MS; 0: never).
   */
  fenceCheckMs?: number;
  /**
   * Open connections in-band (default true): CONNECT as the first frame on the TCP socket to the
   * peer's redirector, answered on it. False: the control-channel open (UDP CONNECT, then HELLO).
   * A host answers both kinds whatever this says.
   */
  inbandOpen?: boolean;
  /**
   * How the host reaches the network (default: the kernel's UDP and TCP sockets). The simulator
   * passes in-memory ones (`testing/`), so whole hosts run in one process under a ManualClock.
   */
  network?: HostNetwork;
  /** Uniform [0, 1) source for the control channel's first request id (default `node:crypto`). */
  random?: () => number;
  /**
   * `n` random bytes for connection id halves, the connections' nonces and path challenges, and
   * the migration channel's nonces (default: the CSPRNG, `freshBytes`). The simulator passes a
   * source seeded from its schedule's seed, so that one seed fixes every byte on the wire but the
   * X25519 keys (still the CSPRNG); never anything but the CSPRNG outside tests.
   */
  randomBytes?: (n: number) => Buffer;
  /** Run `fn` after the current turn (default `setImmediate`); the simulator defers on its virtual clock. */
  defer?: (fn: () => void) => void;
}

/** A listening stream endpoint (the redirector). */
export interface HostListener {
  readonly port: number;
  close(): Promise<void>;
}

/** The sockets a host uses: one datagram socket, one stream listener, and stream dials. */
export interface HostNetwork {
  /** A datagram socket bound at `ip:port` (0: any free port), for the control channel. */
  bindControl(ip: string, port: number): Promise<DatagramSocketLike>;
  /** Listen for stream connections at `ip:port` (0: any free port). */
  listen(ip: string, port: number, onConnection: (s: StreamSocket) => void): Promise<HostListener>;
  /** Open a stream connection to `ip:port`. */
  dial(ip: string, port: number): StreamSocket;
}

/** The kernel's TCP listener, as a {@link HostListener}. */
async function kernelListen(ip: string, port: number, onConnection: (s: StreamSocket) => void): Promise<HostListener> {
  const server: Server = createServer({ noDelay: true }, (s) => onConnection(s));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: ip, port, backlog: limit('REDIRECTOR_BACKLOG') }, () => resolve());
    });
  } catch (cause) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `cannot bind redirector on ${ip}:${port}: ${String(cause)}`, { cause });
  }
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Options of {@link Host.migrateAgent}. */
export interface MigrateOptions {
  /**
   * Aborts the move until its checkpoint has been sent: an abort before that rolls it back (the
   * agent runs on here) and rejects with FERRY_ERR_ABORTED; after it, the destination may commit
   * at any moment, so the move completes or fails as without a signal and the abort is ignored.
   */
  signal?: AbortSignal;
  /** The runtime's handle on an agent with code that moves (set by the runtime, not by users). */
  outgoing?: OutgoingAgent;
}

/** Where to migrate an agent: a host's address and redirector port, optionally its proven id. */
export interface MigrationTarget {
  ip: string;
  redirectorPort: number;
  hostId?: HostId;
}

/** How long the two halves of a committed migration took, as the source saw them (ms). */
export interface MigrationReport {
  /** Suspend, drain and checkpoint of every connection of the agent (the source's detach). */
  detachMs: number;
  /** From the detach to the destination's commit: channel, transfer, admission, registration, landing. */
  commitMs: number;
}

/** One agent of a move: its id, and for an agent with code, the runtime's outgoing half. */
export interface GroupMember {
  agentId: AgentId;
  outgoing?: OutgoingAgent;
}

/** How a move ended for one agent: committed at the destination, or rolled back here. */
export type MemberOutcome = { agentId: AgentId; committed: true; report: MigrationReport } | { agentId: AgentId; committed: false; error: FerryError };

/** A group move's result for an operator: the report, or one error naming what rolled back. */
export function groupResult(outcomes: MemberOutcome[]): MigrationReport | undefined {
  const failed = outcomes.filter((o): o is Extract<MemberOutcome, { committed: false }> => !o.committed);
  if (failed.length === 0) return (outcomes[0] as Extract<MemberOutcome, { committed: true }> | undefined)?.report;
  const moved = outcomes.filter((o) => o.committed).map((o) => o.agentId);
  const first = failed[0]!.error;
  // An aborted group move rolled back whole: it rejects with the abort (an AbortError).
  if (moved.length === 0 && failed.every((o) => isAbortError(o.error))) throw first;
  throw new FerryError('FERRY_ERR_MIGRATION_ROLLED_BACK', `${failed.map((o) => o.agentId).join(', ')} rolled back${moved.length > 0 ? `; ${moved.join(', ')} moved` : ''}: ${isFerryError(first.cause) ? first.cause.code : first.code}`, { cause: first.cause ?? first });
}

/** Everything that moves with an agent between hosts (issue 2: without the agent runtime). */
export interface AgentCheckpoint {
  v: 1;
  /** The agent's location epoch when it was detached; the landing registers epoch + 1. */
  epoch?: number;
  /** The agent's key seed (hex). Handle as a secret: it travels over the host-to-host channel. */
  agentSeed: string;
  listening: boolean;
  endpoints: EndpointCheckpoint[];
  /** A runtime-managed agent: its code, credential, state and sealed connections (see runtime.ts). */
  landing?: AgentLanding;
}

/** A bare host id as a migration target (ids print as 32 lowercase hex digits). */
const HOST_ID_RE = /^[0-9a-f]{32}$/;

/** Parse a migration target string: "ip:redirectorPort" or "hostId@ip:redirectorPort". */
export function parseMigrationTarget(target: string): MigrationTarget {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+):(\d{1,5})$/.exec(target);
  const port = m ? Number(m[3]) : 0;
  if (!m || port <= 0 || port > 65535) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `migration target ${JSON.stringify(target)} is not "[hostId@]ip:redirectorPort"`);
  const ip = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  return { ip, redirectorPort: port, ...(m[1] ? { hostId: parseId(m[1]) as unknown as HostId } : {}) };
}

/** The string form of a migration target, for {@link parseMigrationTarget}. */
export function formatMigrationTarget(t: MigrationTarget): string {
  return `${t.hostId ? `${t.hostId}@` : ''}${t.ip.includes(':') ? `[${t.ip}]` : t.ip}:${t.redirectorPort}`;
}

interface AgentRecord {
  identity: Identity;
  server: AgentServerSocket | undefined;
  sockets: Map<Endpoint, AgentSocket>;
  moving: boolean;
  /** Server ends of connections to it whose CONNECT was acknowledged and whose open is not over. */
  opening?: Set<Endpoint>;
  /** Opens it began (connect) that are not over: each settles once its socket is the agent's or the open failed. */
  dialing?: Set<Promise<void>>;
  /** The delegation from the agent key to this host, issued when it was published here. */
  chain?: DelegationChain;
  /** The location epoch it was published at. */
  epoch?: number;
  /** The address it was published at (a roaming host re-registers it when that changes). */
  at?: string;
  /**
   * The chain the location service holds for it (`chain` is re-issued for resume proofs; this one
   * names the registration, which a deregistration must name: registrationDigest).
   */
  registered?: DelegationChain;
  /** Another host registered it at a newer epoch: the entry is not ours to deregister. */
  fenced?: boolean;
  /** Its deregistration was sent (once is enough: a resend is the control channel's job). */
  deregistered?: boolean;
}

const key = (cid: Buffer | string, role: 'client' | 'server'): string => `${typeof cid === 'string' ? cid : cid.toString('hex')}/${role}`;
const other = (r: 'client' | 'server'): 'client' | 'server' => (r === 'client' ? 'server' : 'client');
/** Resolves once every open of agent `a` ended: its half-opens (see {@link settled}) and its own dials. */
const opensSettled = (a: AgentRecord): Promise<unknown> => Promise.all([...[...(a.opening ?? [])].map((ep) => settled(ep)), ...(a.dialing ?? [])]);
/** Resolves once an opening endpoint is established, confirmed (opened, resuming) or closed. */
const settled = (ep: Endpoint): Promise<void> =>
  new Promise((resolve) => {
    const end = (): void => {
      ep.off('established', end);
      ep.off('confirmed', end);
      ep.off('closed', end);
      resolve();
    };
    ep.once('established', end);
    ep.once('confirmed', end);
    ep.once('closed', end);
  });

/** A host: controller, redirector, and the agents and connection endpoints that live on it. */
export class Host {
  readonly id: HostId;
  readonly security: boolean;
  private readonly agents = new Map<AgentId, AgentRecord>();
  private readonly endpoints = new Map<string, Endpoint>();
  /** Client endpoints whose open is under way (indexed only once the peer answers). */
  private readonly clientOpens = new Set<Endpoint>();
  /** Connection endpoints that moved away: answered PEER_MOVING until the hint expires. */
  private readonly moved = new Map<string, number>();
  /**
   * Server ends of opens awaiting the client's confirmation, by the client's address: a flood of
   * valid CONNECTs from fresh keys takes slots from its own address first (HALF_OPEN_PER_SOURCE).
   */
  private readonly halfOpen = new SourceSlots<Endpoint>(limit('MAX_HALF_OPEN'), limit('HALF_OPEN_PER_SOURCE'));
  /** Our opens in flight per peer host (OPENS_IN_FLIGHT_PER_PEER); the rest wait their turn. */
  private readonly opensInFlight = new KeyedGate(limit('OPENS_IN_FLIGHT_PER_PEER'), limit('OPENS_WAITING_PER_PEER'));
  private readonly opts: HostOptions;
  private readonly wallClock: () => number;
  /**
   * Redirector sockets that have not sent their first frame yet, by remote address: idle sockets
   * from one address cannot hold the redirector (PENDING_HANDOFFS_PER_SOURCE).
   */
  private readonly handoffs = new SourceSlots<StreamSocket>(limit('MAX_PENDING_HANDOFFS'), limit('PENDING_HANDOFFS_PER_SOURCE'));
  /**
   * Incoming migration channels by remote address, from their MIG_HELLO until their socket
   * closes: a channel leaves `handoffs` at its first frame, and any host key may open one.
   */
  private readonly migrations = new SourceSlots<StreamSocket>(limit('MAX_INCOMING_MIGRATIONS'), limit('INCOMING_MIGRATIONS_PER_SOURCE'));
  /**
   * The address dials leave from (the one both ports are bound to; none for a wildcard), and
   * which destinations the kernel dials from it by itself (no bind needed).
   */
  private readonly routes: SourceRoutes | undefined;
  private readonly env: EndpointEnv;
  /** Random bytes for connection id halves and migration nonces ({@link HostOptions.randomBytes}). */
  private readonly randomBytes: (n: number) => Buffer;
  private closed = false;
  /** The agent runtime of this host, if any (admits and lands agents with code). */
  private runtime: AgentRuntime | undefined;
  /** Count of refusals by code, for tests and metrics. */
  readonly refusals = new Map<string, number>();
  /** What the connections here hold and let their peers send: per host, agent and source address. */
  readonly receiveBudget: ReceiveBudget;
  /** Signs the location proofs of this host's RES and RES_ACK: one signature per batch (PROTOCOL.md §4.4). */
  readonly resumeSigner: ResumeSigner;

  /** The address registered for this host and its agents (see {@link Host.changeAddress}). */
  private advertised: string;
  /** Whether this host registered itself by id ({@link Host.registerSelf}): re-registered on an address change. */
  private selfRegistered = false;
  /** The epoch of this host's own entry as last registered: what its DEREGISTER names at {@link close}. */
  private selfEpoch: number | undefined;
  /** Counts address changes: a re-registration still retrying for an older one gives up. */
  private addressGeneration = 0;

  private constructor(
    readonly identity: Identity,
    ip: string,
    private readonly control: ControlChannel,
    private readonly redirector: HostListener,
    onConnection: { handle: (s: StreamSocket) => void },
    private readonly location: LocationService,
    private readonly log: Logger,
    private readonly clock: Clock,
    opts: HostOptions,
  ) {
    this.id = identity.id as unknown as HostId;
    this.advertised = opts.advertise ?? ip;
    this.security = opts.security ?? true;
    this.opts = opts;
    this.wallClock = opts.wallClock ?? Date.now;
    this.receiveBudget = new ReceiveBudget({
      host: opts.receiveBudget?.host ?? limit('RECEIVE_BUDGET_BYTES'),
      perAgent: opts.receiveBudget?.perAgent ?? limit('RECEIVE_BUDGET_PER_AGENT_BYTES'),
      perSource: opts.receiveBudget?.perSource ?? limit('RECEIVE_BUDGET_PER_SOURCE_BYTES'),
      floor: opts.receiveBudget?.floor ?? limit('RECEIVE_WINDOW_FLOOR_BYTES'),
    });
    this.routes = ip === '0.0.0.0' || ip === '::' || opts.network ? undefined : new SourceRoutes(ip, clock);
    this.resumeSigner = new ResumeSigner(identity.publicRaw, (m) => identity.sign(m));
    const redirectorPort = opts.advertiseRedirectorPort ?? redirector.port;
    this.randomBytes = opts.randomBytes ?? freshBytes;
    this.env = {
      clock,
      logger: log,
      security: this.security,
      redirectorPort,
      controlPort: Number(control.address.slice(control.address.lastIndexOf(':') + 1)),
      inbandOpen: opts.inbandOpen ?? true,
      sendBudget: opts.sendBudget ?? limit('SEND_BUDGET_BYTES'),
      receiveWindow: opts.receiveWindow ?? limit('RECEIVE_WINDOW_BYTES'),
      ...(opts.randomBytes ? { randomBytes: opts.randomBytes } : {}),
      receiveBudget: this.receiveBudget,
      reconnectLimitMs: opts.reconnectLimitMs ?? limit('RECONNECT_LIMIT_MS'),
      request: (to, type, body, o) => this.control.request(to, type, body, o),
      oneway: (to, type, body) => this.control.send(to, type, body),
      dial: (ip, port) => {
        if (opts.network) {
          const m = opts.network.dial(ip, port);
          m.on('error', () => {});
          return m;
        }
        // From this host's own address, so that a peer that reads our IP off the TCP socket (the
        // in-band open) reaches our control port there too. Bound only when the kernel would not
        // pick that address itself: binding first costs a search for a free port (SourceRoutes).
        const s = netConnect({ host: ip, port, noDelay: true, ...(this.routes?.mustBind(ip) ? { localAddress: this.routes.boundIp } : {}) });
        s.on('error', () => {});
        return s;
      },
      locate: async (agent, newerThan, waitMs) => {
        let e;
        try {
          e = await this.location.watch(agent, newerThan, waitMs);
        } catch (err) {
          // A failed lookup answers no sooner than a watch that found nothing (at least
          // LOOKUP_FAILED_PAUSE_MS): a resume or close looking up through a directory that fails
          // at once would otherwise send a RES or CLS and a lookup every round trip.
          await new Promise<void>((r) => this.clock.setTimer(Math.max(waitMs, limit('LOOKUP_FAILED_PAUSE_MS')), r));
          throw err;
        }
        return e ? { ip: e.ip, controlPort: e.controlPort, redirectorPort: e.redirectorPort, epoch: e.epoch } : undefined;
      },
      indexed: (ep) => this.endpoints.set(key(ep.connectionId, ep.role), ep),
      released: (ep) => {
        if (this.endpoints.get(key(ep.connectionId, ep.role)) === ep) this.endpoints.delete(key(ep.connectionId, ep.role));
      },
      wallClock: this.wallClock,
      ...(opts.defer ? { defer: opts.defer } : {}),
      locationProof: (agent) => this.locationProof(agent),
      refused: (code) => this.countRefusal(code),
    };
    control.onRequest((req) => this.onRequest(req));
    control.onOneway((msg) => this.onOneway(msg));
    onConnection.handle = (s) => this.onRedirect(s);
  }

  /**
   * Bind the control (UDP) and redirector (TCP) ports and start serving. The first host of a
   * process also has glibc's malloc keep up to 32 MiB of freed memory for reuse, so bulk
   * transfers do not fault fresh pages in after every collection (util/malloc.ts).
   */
  static async start(opts: HostOptions): Promise<Host> {
    keepFreedMemory();
    const ip = opts.ip ?? '127.0.0.1';
    const identity = opts.identity ?? Identity.generate();
    const log = (opts.logger ?? silentLogger).child({ host: opts.name ?? identity.id.slice(0, 8) });
    const clock = opts.clock ?? systemClock;
    const chOpts = { clock, logger: log, ...(opts.random ? { random: opts.random } : {}) };
    let control: ControlChannel;
    if (opts.network) {
      const raw = await opts.network.bindControl(ip, opts.controlPort ?? 0);
      control = new ControlChannel(opts.wrapControlSocket ? opts.wrapControlSocket(raw) : raw, chOpts);
    } else {
      control = await ControlChannel.bind({ host: ip, port: opts.controlPort ?? 0, ...chOpts, ...(opts.wrapControlSocket ? { wrap: opts.wrapControlSocket } : {}) });
    }
    // Connections that arrive before the host is built are refused (none can: nobody knows the port yet).
    const onConnection = { handle: (s: StreamSocket): void => void s.destroy() };
    let redirector: HostListener;
    try {
      redirector = await (opts.network ? opts.network.listen(ip, opts.redirectorPort ?? 0, (s) => onConnection.handle(s)) : kernelListen(ip, opts.redirectorPort ?? 0, (s) => onConnection.handle(s)));
    } catch (err) {
      control.close();
      throw err;
    }
    return new Host(identity, ip, control, redirector, onConnection, opts.location, log, clock, opts);
  }

  /** The address this host registers and peers reach it at (the bound one, unless roaming). */
  get ip(): string {
    return this.advertised;
  }

  /** The control address, "ip:port" (as bound: a roaming host's is the wildcard's). */
  get controlAddress(): string {
    return this.control.address;
  }

  /** The redirector port peers are told (registered, and named in CONNECT_ACK and RES). */
  get redirectorPort(): number {
    return this.env.redirectorPort;
  }

  /** The redirector port bound here (differs from {@link Host.redirectorPort} behind a port forward). */
  get listeningRedirectorPort(): number {
    return this.redirector.port;
  }

  private get controlPort(): number {
    return Number(this.control.address.slice(this.control.address.lastIndexOf(':') + 1));
  }

  // ------------------------------------------------------------------ hosts by id

  /**
   * Register this host's own locator under its own id (an empty chain, signed by the host key:
   * the id is the hash of that key, which is the proof; docs/DELEGATION.md "Hosts by id"), so that
   * a migration target can be named by host id alone. The epoch is the wall clock in seconds (a
   * u32 on the wire), or one past the stored one if that is not newer (a restart within the second,
   * a clock that went back). Call it at start and whenever the rendezvous
   * answers again after it did not.
   */
  async registerSelf(): Promise<void> {
    this.location.invalidate?.(this.id as unknown as AgentId);
    const cur = await this.location.lookup(this.id as unknown as AgentId);
    const removed = cur ? 0 : (this.location.removedEpoch?.(this.id as unknown as AgentId) ?? 0);
    const epoch = Math.max(Math.floor(this.wallClock() / 1000), Math.max(cur?.epoch ?? 0, removed) + 1);
    this.selfRegistered = true;
    // From now on the directory check also keeps this entry (registered again if lost or refused).
    this.scheduleFenceCheck();
    await this.location.register(
      { agent: this.id as unknown as AgentId, hostId: this.id, ip: this.ip, controlPort: this.controlPort, redirectorPort: this.redirectorPort, epoch, agentKey: this.identity.publicRaw, chain: [] },
      { signer: this.identity },
    );
    this.selfEpoch = epoch;
  }

  /**
   * The migration target a string names: "[hostId@]ip:redirectorPort", or a bare host id, looked
   * up at the location service (where that host registered itself, {@link Host.registerSelf}).
   * The target keeps the id, so the migration channel still authenticates that host's key: a
   * directory that lies can only send the move to a host that fails the handshake.
   * @throws FerryError `FERRY_ERR_UNKNOWN_HOST` for an id no host registered,
   *   `FERRY_ERR_INVALID_ARGUMENT` for anything else that is not a target.
   */
  async resolveTarget(target: string): Promise<MigrationTarget> {
    if (!HOST_ID_RE.test(target)) return parseMigrationTarget(target);
    const e = await this.location.lookup(target as AgentId);
    // Only a self-registration (keyed by the host's own id) names a host; an agent's entry names
    // the host it runs on, never itself.
    if (!e || e.hostId !== target) throw new FerryError('FERRY_ERR_UNKNOWN_HOST', `no host ${target} is registered at the location service`);
    return { ip: e.ip, redirectorPort: e.redirectorPort, hostId: target as unknown as HostId };
  }

  // ------------------------------------------------------------------ agents

  /**
   * Launch (register) an agent on this host and publish its location. An agent registered on
   * another host is refused with FERRY_ERR_AGENT_ELSEWHERE (an agent never runs on two hosts)
   * unless `replace`: then it is registered here at the next epoch, and the host it was on fences
   * its copy when it sees that (within FENCE_CHECK_MS). If the registration fails, nothing of the
   * agent is left here.
   */
  async addAgent(identity: Identity = Identity.generate(), opts: { replace?: boolean } = {}): Promise<Identity> {
    if (this.agents.has(identity.id)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'agent already on this host');
    const rec: AgentRecord = { identity, server: undefined, sockets: new Map(), moving: false };
    this.agents.set(identity.id, rec);
    try {
      // Asked afresh: a cached answer may name a host that has since stopped and deregistered it.
      this.location.invalidate?.(identity.id);
      const cur = await this.location.lookup(identity.id);
      if (cur && cur.hostId !== this.id && !opts.replace) {
        throw new FerryError('FERRY_ERR_AGENT_ELSEWHERE', `agent ${identity.id} is registered on host ${cur.hostId} (${cur.ip}:${cur.redirectorPort}, epoch ${cur.epoch}); an agent never runs on two hosts: stop it there, or launch with replace to stop that copy`);
      }
      // Above an epoch deregistered last, too: the rendezvous refuses anything at or below it (a
      // REGISTER of the agent's previous life, replayed, must not outbid this one).
      const epoch = Math.max(cur?.epoch ?? 0, cur ? 0 : (this.location.removedEpoch?.(identity.id) ?? 0)) + 1;
      const at = this.advertised;
      rec.chain = await this.publish(identity, epoch, at);
      rec.registered = rec.chain;
      rec.epoch = epoch;
      rec.at = at;
    } catch (err) {
      if (this.agents.get(identity.id) === rec) this.agents.delete(identity.id);
      throw err;
    }
    this.followAddress(rec);
    this.scheduleFenceCheck();
    return identity;
  }

  private fenceTimer: TimerHandle | undefined;

  /** Keep one directory-check timer while agents run here or this host registered itself. */
  private scheduleFenceCheck(): void {
    const ms = this.opts.fenceCheckMs ?? limit('FENCE_CHECK_MS');
    if (this.fenceTimer || this.closed || ms <= 0) return;
    this.fenceTimer = this.clock.setTimer(ms, () => {
      void this.checkFences().finally(() => {
        this.fenceTimer = undefined;
        if (this.agents.size > 0 || this.selfRegistered) this.scheduleFenceCheck();
      });
    });
  }

  /**
   * The directory check, every FENCE_CHECK_MS: look up every agent here (and this host's own id).
   * Fence an agent that another host registered at a newer epoch this host did not commit (an
   * agent moving away is skipped: its own commit raises the epoch). Register again an agent the
   * directory does not know: only its holder (this host) may deregister it, so an unknown answer
   * means the rendezvous lost its directory (restarted without its snapshot, a Redis flushed), and
   * lookups of the agent fail until someone registers it again (docs/PROTOCOL.md §12.9).
   */
  private async checkFences(): Promise<void> {
    if (this.selfRegistered) {
      try {
        if (!(await this.location.lookup(this.id as unknown as AgentId)) && !this.closed) {
          await this.registerSelf();
          this.log.warn('host_restored', { detail: 'the rendezvous did not know this host: registered it again' });
        }
      } catch (err) {
        this.log.debug('host_reregistration_failed', { code: isFerryError(err) ? err.code : String(err) });
      }
    }
    for (const [id, rec] of [...this.agents]) {
      if (this.closed) return;
      if (rec.moving || rec.epoch === undefined) continue;
      let cur: LocationEntry | undefined;
      try {
        cur = await this.location.lookup(id);
      } catch {
        continue; // the rendezvous does not answer: ask again next time
      }
      if (this.agents.get(id) !== rec || rec.moving) continue;
      if (!cur) {
        await this.registerAgain(id, rec);
        continue;
      }
      if (cur.hostId === this.id || cur.epoch <= rec.epoch) continue;
      this.fence(id, cur);
    }
  }

  /**
   * Register again, at the epoch it runs at here, an agent the directory lost: with the chain it
   * was registered with while that has more than half its window left (so that, should the
   * directory still hold the entry after all, the rendezvous acknowledges it unchanged and a later
   * DEREGISTER still names it), else a fresh one. If the agent ended or left while that was in
   * flight, the new entry is deregistered at once, so nothing is left pointing here.
   */
  private async registerAgain(id: AgentId, rec: AgentRecord): Promise<void> {
    const epoch = rec.epoch!;
    const last = rec.registered?.[rec.registered.length - 1];
    const now = this.wallClock();
    const reuse = last && now >= last.notBefore && now < last.notAfter - limit('DELEGATION_VALIDITY_MS') / 2 ? rec.registered : undefined;
    let chain: DelegationChain;
    try {
      chain = await this.publish(rec.identity, epoch, rec.at ?? this.advertised, reuse);
    } catch (err) {
      // STALE_EPOCH: registered by another host meanwhile (the next check fences); else retried.
      this.log.debug('agent_reregistration_failed', { agent: id, epoch, code: isFerryError(err) ? err.code : String(err) });
      return;
    }
    rec.registered = chain;
    this.log.warn('agent_restored', { agent: id, epoch, detail: 'the rendezvous did not know it: registered it again' });
    if (this.agents.get(id) !== rec && !rec.moving) {
      rec.deregistered = false; // what was sent named the registration before this one
      this.deregister(id, rec);
    }
  }

  /** Stop the stale copy of an agent here: one log line, its connections ended with FERRY_ERR_FENCED. */
  private fence(agentId: AgentId, cur: LocationEntry): void {
    const rec = this.agents.get(agentId);
    if (rec) rec.fenced = true;
    const err = new FerryError('FERRY_ERR_FENCED', `agent ${agentId} was registered by host ${cur.hostId} at epoch ${cur.epoch} (here ${rec?.epoch ?? '?'}); this copy is stopped`);
    if (this.runtime?.handleOf(agentId)) {
      this.runtime.fence(agentId, err); // logs agent_fenced, ends its connections, removes it here
      return;
    }
    this.log.warn('agent_fenced', { agent: agentId, code: err.code, detail: err.message });
    this.removeAgent(agentId, err);
  }

  /**
   * Attach the agent runtime of this host: migrations that carry a landing (agents with code) are
   * admitted and landed by it; without one they are refused. Bind the runtime to this host with
   * `channelHost(host)` so its moves use {@link Host.migrateAgent}.
   */
  useRuntime(runtime: AgentRuntime | undefined): void {
    this.runtime = runtime;
  }

  /**
   * Drop an agent that ended here: close its server socket, abort its connections, forget it.
   * A connection whose write side the agent already ended is closing gracefully (`close()`, bounded
   * by its own timeout) and is left to finish, so its last bytes and CLS still reach the peer.
   * Its location entry is deregistered (in the background; {@link close} waits for it), so the
   * agent can be launched on another host at once; not when it was fenced (the entry is another
   * host's now) or when `error` says why it was dropped (then it is that error's business).
   */
  removeAgent(agentId: AgentId, error?: FerryError): void {
    const a = this.agents.get(agentId);
    if (!a) return;
    a.server?.close();
    for (const s of [...a.sockets.values()]) if (error || !s.writableEnded) s.destroy(error);
    this.agents.delete(agentId);
    this.log.info('agent_removed', { agent: agentId });
    if (!error) this.deregister(agentId, a);
  }

  /** Deregistrations in flight (removeAgent, close), awaited by {@link close}. */
  private readonly deregistering = new Set<Promise<void>>();

  /**
   * Remove the entry this host holds for an agent it no longer runs: DEREGISTER, signed by this
   * host, naming the registration it made (a stale one, after the agent moved on or was fenced,
   * is refused by the rendezvous and changes nothing). Never rejects: a rendezvous that does not
   * answer leaves the entry, as a killed host does.
   */
  private deregister(agentId: AgentId, rec: AgentRecord): void {
    if (rec.epoch === undefined || rec.fenced || rec.deregistered) return;
    rec.deregistered = true;
    this.sendDeregister({ agent: agentId, hostId: this.id, epoch: rec.epoch, ...(rec.registered ? { chain: rec.registered } : {}) });
  }

  /**
   * DEREGISTER `entry` in the background ({@link close} waits for what is in flight). Never
   * rejects: the outcome is logged (`agent_deregistered`, or `agent_deregistration_failed` with
   * its code).
   */
  private sendDeregister(entry: HeldEntry): void {
    const location = this.location;
    if (!location.deregister) return;
    const { agent: agentId, epoch } = entry;
    const p = location
      .deregister(entry, { signer: this.identity })
      .then(
        (removed) => this.log.info('agent_deregistered', { agent: agentId, epoch, removed }),
        (err: unknown) => {
          const code = isFerryError(err) ? err.code : 'FERRY_ERR_INTERNAL';
          // NOT_HOLDER: the agent was registered elsewhere meanwhile; that entry stays, rightly.
          const line = code === 'FERRY_ERR_NOT_HOLDER' ? this.log.info : this.log.warn;
          line.call(this.log, 'agent_deregistration_failed', { agent: agentId, epoch, code, detail: (err as Error).message });
        },
      )
      .finally(() => this.deregistering.delete(p));
    this.deregistering.add(p);
  }

  /**
   * Register where an agent is, with proof: the agent key signs a fresh one-link delegation to
   * this host at `epoch` (the agent's key travels with it, so chains never grow: see
   * docs/DELEGATION.md), and the registration itself is signed by this host.
   */
  private async publish(agent: Identity, epoch: number, ip: string, reuse?: DelegationChain): Promise<DelegationChain> {
    const chain = reuse ?? freshChain(agent, this.identity.publicRaw, epoch, this.wallClock());
    await this.location.register(
      { agent: agent.id, hostId: this.id, ip, controlPort: this.controlPort, redirectorPort: this.redirectorPort, epoch, agentKey: agent.publicRaw, chain },
      { signer: this.identity },
    );
    return chain;
  }

  /**
   * What the endpoints of an agent here send to prove that this host speaks for it (a RES after a
   * landing, a RES_ACK that is asked for it): the chain issued at publish and the host's batch
   * signer (the RES of every agent here in one turn share one signature). A chain with less than
   * half its window left (or not yet valid by this clock) is re-issued at the same epoch: the
   * agent key is at hand, and peers accept an epoch equal to the last they saw.
   */
  private locationProof(agentId: AgentId): LocationProof | undefined {
    const a = this.agents.get(agentId);
    if (!a || !a.chain || a.epoch === undefined) return undefined;
    const now = this.wallClock();
    const last = a.chain[a.chain.length - 1]!;
    if (now < last.notBefore || now > last.notAfter - limit('DELEGATION_VALIDITY_MS') / 2) a.chain = freshChain(a.identity, this.identity.publicRaw, a.epoch, now);
    return { chain: a.chain, signer: this.resumeSigner };
  }

  private agent(id: AgentId): AgentRecord {
    const a = this.agents.get(id);
    if (!a || a.moving) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${id} is not on this host`);
    return a;
  }

  /** The agent's server socket (NapletServerSocket(agent-id)). */
  listen(agentId: AgentId): AgentServerSocket {
    const a = this.agent(agentId);
    if (a.server && !a.server.closed) throw new FerryError('FERRY_ERR_ALREADY_LISTENING');
    a.server = new AgentServerSocket(agentId, () => {
      if (a.server?.closed) a.server = undefined;
    });
    return a.server;
  }

  /** Open a connection from a local agent to another agent, by id (NapletSocket(agent-id)). */
  async connect(from: AgentId, to: AgentId, opts: { signal?: AbortSignal } = {}): Promise<AgentSocket> {
    const { signal } = opts;
    const aborted = (): FerryError => abortedError(`connect to ${to}`, signal);
    if (signal?.aborted) throw aborted();
    const a = this.agent(from);
    const loc = await this.location.lookup(to);
    if (signal?.aborted) throw aborted();
    if (!loc) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `no location for agent ${to}`);
    // At most OPENS_IN_FLIGHT_PER_PEER opens towards one peer host at once; the rest wait here
    // (not yet an endpoint, so no handshake time runs while waiting).
    const leave = await this.opensInFlight.enter(`${loc.ip}:${loc.controlPort}`, `connect to ${to}`, signal);
    try {
      return await this.openTo(a, from, to, loc, signal);
    } finally {
      leave();
    }
  }

  /** The open of {@link connect} once it has its place among the opens in flight to `loc`'s host. */
  private async openTo(a: AgentRecord, from: AgentId, to: AgentId, loc: LocationEntry, signal: AbortSignal | undefined): Promise<AgentSocket> {
    const aborted = (): FerryError => abortedError(`connect to ${to}`, signal);
    if (signal?.aborted) throw aborted();
    if (this.endpoints.size >= limit('MAX_CONNECTIONS')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'connection table full');
    if (!this.receiveBudget.canOpen(from, undefined)) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `receive budget of agent ${from} is spent`);
    // A move of the agent began during the lookup: as for one begun before the call (agent()),
    // the open is refused, for it would complete here after the agent left. An open begun
    // before the move is waited for by it (`dialing`) and travels with the agent.
    if (a.moving || this.agents.get(from) !== a) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${from} is not on this host (it is moving)`);
    const peer: PeerLocator = { ip: loc.ip, controlPort: loc.controlPort, redirectorPort: loc.redirectorPort, epoch: loc.epoch };
    const ep = Endpoint.client(this.env, a.identity, to, peer, this.randomBytes(8));
    // Not indexed until the peer answers: an address change must still reach its open.
    this.clientOpens.add(ep);
    let dialed!: () => void;
    const dialing = new Promise<void>((r) => (dialed = r));
    (a.dialing ??= new Set()).add(dialing);
    // The socket object exists only once the open succeeded: a failed open is the rejected
    // promise, never an 'error' event on an object the caller has not seen. An abort destroys the
    // half-open endpoint, which fails the open.
    const stop = onAbort(signal, () => ep.destroy(aborted()));
    try {
      await ep.open();
      const sock = new AgentSocket(ep);
      a.sockets.set(ep, sock);
      ep.once('closed', () => a.sockets.delete(ep));
      return sock;
    } finally {
      stop();
      this.clientOpens.delete(ep);
      a.dialing.delete(dialing);
      dialed();
    }
  }

  /** The agent's live sockets on this host. */
  socketsOf(agentId: AgentId): AgentSocket[] {
    return [...(this.agents.get(agentId)?.sockets.values() ?? [])];
  }

  /** Ids of the agents on this host. */
  agentIds(): AgentId[] {
    return [...this.agents.keys()];
  }

  // ------------------------------------------------------------------ moves

  /**
   * Detach an agent for a move: suspend each of its connections (never waiting on a peer that is
   * itself moving), drain, and checkpoint them. The old socket objects end; the agent is gone from
   * this host, which answers PEER_MOVING for its connections for a while.
   */
  async detachAgent(agentId: AgentId): Promise<AgentCheckpoint> {
    const a = this.agent(agentId);
    // New CONNECTs are answered PEER_MOVING from now on, and the agent begins no open.
    a.moving = true;
    return this.detachMoving(a);
  }

  /**
   * {@link detachAgent} of an agent already marked moving (a group move marks every member before
   * their opens end). Any failure before the checkpoint clears the mark: the agent runs on here.
   */
  private async detachMoving(a: AgentRecord): Promise<AgentCheckpoint> {
    const agentId = a.identity.id;
    const removed = (): FerryError => new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${agentId} was removed from this host during its detach`);
    let epoch: number;
    try {
      // A connection whose CONNECT this host acknowledged is the agent's: let its open finish
      // (at most twice the handshake timeout) so it is delivered and moves with the agent, instead
      // of completing here after the agent left. Likewise an open the agent itself began before
      // the move: it lands among the agent's sockets (or fails) before the checkpoint, so it
      // moves too.
      await opensSettled(a);
      epoch = await this.currentEpoch(a);
      if (this.agents.get(agentId) !== a) throw removed();
    } catch (err) {
      // The location service did not answer (or the agent was removed): nothing was paused, the
      // agent stays.
      this.unmark(a);
      throw err;
    }
    const live = [...a.sockets.entries()].filter(([ep]) => ep.state !== 'CLOSED' && ep.state !== 'CLOSE_SENT' && ep.state !== 'CLOSE_ACKED');
    const prepared = await Promise.allSettled(
      live.map(async ([ep, sock]) => {
        await sock.prepareDetach();
        await ep.prepareMove();
      }),
    );
    // A connection that closed, or began to close, meanwhile has nothing to carry (it stays here
    // to finish its close, which may take up to the reconnect limit: the move does not wait for
    // it); any other failure aborts the detach: the endpoints already suspended resume here and
    // the agent stays reachable.
    const closing = (st: string): boolean => st === 'CLOSED' || st === 'CLOSE_SENT' || st === 'CLOSE_ACKED';
    const failed = prepared.find((r, i) => r.status === 'rejected' && !closing(live[i]![0].state) && !isFerryError(r.reason, 'FERRY_ERR_CONNECTION_CLOSED'));
    // Every live endpoint is SUSPENDED now or closing: one that runs on would be left behind on a
    // host its agent leaves (the endpoint holds resumes during a move, so this is a bug if seen).
    const astray = live.find(([ep]) => ep.state !== 'SUSPENDED' && !closing(ep.state));
    // An agent removed meanwhile (it ended, or was fenced) is not checkpointed: it must not live
    // again at the destination.
    const gone = this.agents.get(agentId) !== a;
    if ((failed && failed.status === 'rejected') || astray || gone) {
      for (const [ep] of live) if (!closing(ep.state)) ep.cancelMove();
      this.unmark(a);
      if (failed && failed.status === 'rejected') throw failed.reason;
      if (gone) throw removed();
      throw new FerryError('FERRY_ERR_INTERNAL', `connection ${astray![0].idText} left SUSPENDED during the detach (${astray![0].state})`);
    }
    const endpoints: EndpointCheckpoint[] = [];
    const now = this.clock.now();
    for (const [k, t] of this.moved) if (t <= now) this.moved.delete(k);
    const until = now + limit('FORWARDING_HINT_TTL_MS');
    for (const [ep, sock] of live) {
      if (closing(ep.state)) continue; // closed while suspending: nothing to carry
      endpoints.push(ep.checkpoint());
      sock.markMoved();
      this.endpoints.delete(key(ep.connectionId, ep.role));
      this.moved.set(key(ep.connectionId, ep.role), until);
    }
    const listening = !!a.server && !a.server.closed;
    a.server?.close();
    this.agents.delete(agentId);
    this.log.info('agent_detached', { agent: agentId, connections: endpoints.length });
    return { v: 1, epoch, agentSeed: a.identity.seed().toString('hex'), listening, endpoints };
  }

  /**
   * A move of `a` ended before anything of it was paused for good: it runs on here and takes opens
   * again. What was skipped while it was marked moving is done now: its registration at the
   * host's new address (the address changed meanwhile), or its deregistration (the host closed).
   */
  private unmark(a: AgentRecord): void {
    a.moving = false;
    const id = a.identity.id;
    if (this.agents.get(id) !== a || a.epoch === undefined) return;
    if (this.closed) this.deregister(id, a);
    else this.followAddress(a);
  }

  /**
   * An agent registered at an address the host has left since (the address changed while its
   * registration was in flight, or while it was moving, when `reregister` skips it): register it
   * again at the new one.
   */
  private followAddress(a: AgentRecord): void {
    if (!this.closed && a.epoch !== undefined && a.at !== undefined && a.at !== this.advertised) void this.reregister(++this.addressGeneration);
  }

  /**
   * Attach a moved agent: check connection ids for collisions, rebuild its endpoints, register
   * the new location (epoch + 1), then resume every connection that was live.
   */
  attachAgent(cp: AgentCheckpoint): Promise<{ agent: Identity; sockets: AgentSocket[]; server: AgentServerSocket | undefined }> {
    // Every field, each connection's field by field, checked before anything commits (it came
    // from another host); a refusal rejects, as the checks inside the attach did.
    let checked: AgentCheckpoint;
    try {
      checked = decodeAgentCheckpoint(cp);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.attachChecked(checked);
  }

  /** {@link attachAgent} of a checkpoint {@link decodeAgentCheckpoint} returned. */
  private async attachChecked(cp: AgentCheckpoint): Promise<{ agent: Identity; sockets: AgentSocket[]; server: AgentServerSocket | undefined }> {
    const checked = cp.endpoints;
    const identity = Identity.fromSeed(Buffer.from(cp.agentSeed, 'hex'));
    if (this.closed) throw new FerryError('FERRY_ERR_ABORTED', 'host closed: it takes no agent');
    if (this.agents.has(identity.id)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'agent already on this host');
    for (const e of checked) {
      if (this.endpoints.has(key(e.connectionId, e.role))) throw new FerryError('FERRY_ERR_CONNECTION_ID_COLLISION', `connection ${e.connectionId} already lives here`);
    }
    // Commit point: registering epoch + 1 is a compare-and-set at the location service. Of the
    // destination (landing) and the source (rolling back), exactly one succeeds; the other gets
    // FERRY_ERR_STALE_EPOCH and builds nothing. Never on both hosts, never on none.
    const epoch = (cp.epoch ?? (await this.location.lookup(identity.id))?.epoch ?? 0) + 1;
    const at = this.advertised;
    const chain = await this.publish(identity, epoch, at);
    // The endpoints rebuilt below prove with this chain that this host now speaks for the agent.
    const rec: AgentRecord = { identity, server: undefined, sockets: new Map(), moving: false, chain, registered: chain, epoch, at };
    this.agents.set(identity.id, rec);
    this.followAddress(rec);
    const eps = checked.map((e) => Endpoint.fromCheckpoint(this.env, e));
    const sockets: AgentSocket[] = [];
    for (const ep of eps) {
      this.moved.delete(key(ep.connectionId, ep.role));
      this.endpoints.set(key(ep.connectionId, ep.role), ep);
      const sock = new AgentSocket(ep);
      rec.sockets.set(ep, sock);
      ep.once('closed', () => rec.sockets.delete(ep));
      sockets.push(sock);
    }
    const server = cp.listening ? this.listen(identity.id) : undefined;
    this.log.info('agent_attached', { agent: identity.id, connections: eps.length, epoch });
    for (const ep of eps) ep.start();
    return { agent: identity, sockets, server };
  }

  /**
   * Migrate an agent to another host over the authenticated migration channel (the HIP paper's
   * five steps). Resolves once the destination committed. The destination admits the agent
   * before anything here is paused: a refusal (policy, credential, collision, a host that is
   * down) rejects with FERRY_ERR_MIGRATION_ROLLED_BACK while the agent never stopped. On a
   * failure after the detach the agent is re-attached here; if the destination did commit but its
   * answer was lost, the rollback's compare-and-set fails and the migration counts as done.
   *
   * Agents with code (run by this host's runtime) move with `outgoing` from the runtime: its
   * landing (code, credential, state) and sealed connections travel inside the streamed
   * checkpoint, the destination's runtime admits and lands them, and a rollback re-attaches the
   * connections and hands them back with `outgoing.reattach`. Called without `outgoing` for an
   * agent the runtime runs, this asks the runtime to move it (which calls back here).
   *
   * `signal` (see {@link MigrateOptions}): already aborted, this rejects at once with
   * FERRY_ERR_ABORTED; aborted before the checkpoint has been sent, the move rolls back (the agent
   * runs on here) and this rejects with FERRY_ERR_ABORTED; aborted after, it is ignored.
   */
  async migrateAgent(agentId: AgentId, target: MigrationTarget, opts: MigrateOptions = {}): Promise<MigrationReport | undefined> {
    const { outgoing, signal } = opts;
    if (signal?.aborted) throw abortedError(`migration of ${agentId}`, signal);
    if (!outgoing && this.runtime?.agentIds().includes(agentId)) {
      try {
        return await this.runtime.migrate(agentId, formatMigrationTarget(target), signal ? { signal } : {});
      } catch (err) {
        // ctx.migrate reports the destination's own code; an operator is told that the agent
        // rolled back and runs on here, with that code as the cause.
        throw this.operatorError(err, [agentId]);
      }
    }
    const [outcome] = await this.migrateMembers([{ agentId, ...(outgoing ? { outgoing } : {}) }], target, signal ? { signal } : {});
    if (!outcome!.committed) throw outcome!.error;
    return outcome!.report;
  }

  /**
   * Move co-located agents as one group (the HIP paper's end-point group): one channel, one
   * admission of them all at the destination, one checkpoint. Before the commit the group is all
   * or nothing: any refusal or failure leaves every member running here. The commit registers each
   * member in turn; should the location service fail between two of them, the members already
   * registered live at the destination and the rest roll back here, each still on exactly one
   * host, and this rejects naming them. Agents run by the runtime move through it.
   * `signal` as for {@link migrateAgent}: an aborted group rolls back whole.
   */
  async migrateGroup(agentIds: AgentId[], target: MigrationTarget, opts: { signal?: AbortSignal } = {}): Promise<MigrationReport | undefined> {
    const ids = [...new Set(agentIds)];
    if (opts.signal?.aborted) throw abortedError(`migration of ${ids.join(', ')}`, opts.signal);
    if (ids.length === 0 || ids.length > limit('MIGRATION_GROUP_AGENTS')) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `a group has 1 to ${limit('MIGRATION_GROUP_AGENTS')} agents, not ${ids.length}`);
    for (const id of ids) this.agent(id);
    const run = this.runtime?.agentIds() ?? [];
    const withCode = ids.filter((id) => run.includes(id));
    if (withCode.length > 0) {
      if (withCode.length !== ids.length) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a group is either all agents with code or all without');
      try {
        return await this.runtime!.migrateGroup(ids, formatMigrationTarget(target), opts);
      } catch (err) {
        throw this.operatorError(err, ids);
      }
    }
    const outcomes = await this.migrateMembers(
      ids.map((agentId) => ({ agentId })),
      target,
      opts,
    );
    return groupResult(outcomes);
  }

  /** An operator is told that a move rolled back (and the agents run on here), with the cause. */
  private operatorError(err: unknown, ids: AgentId[]): unknown {
    if (isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK') || isAbortError(err) || !ids.some((id) => this.agents.has(id))) return err;
    return new FerryError('FERRY_ERR_MIGRATION_ROLLED_BACK', `migration of ${ids.join(', ')} rolled back: ${isFerryError(err) ? err.code : String(err)}`, { cause: err });
  }

  /**
   * The five steps for one agent or a group, over one channel; per member, whether it committed
   * at the destination or rolled back here (the runtime's group move calls this with outgoings).
   * The order keeps the pause short and refusals harmless: the channel opens, the destination
   * checks the delegations, admits the agents and checks their connection ids (steps 1–3), and
   * only then are the members detached here (suspend and drain), confirmed and streamed (4–5).
   */
  async migrateMembers(members: GroupMember[], target: MigrationTarget, opts: { signal?: AbortSignal } = {}): Promise<MemberOutcome[]> {
    if (members.length === 0 || members.length > limit('MIGRATION_GROUP_AGENTS')) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `a group has 1 to ${limit('MIGRATION_GROUP_AGENTS')} agents`);
    const what = `migration of ${members.map((m) => m.agentId).join(', ')}`;
    const { signal } = opts;
    if (signal?.aborted) throw abortedError(what, signal);
    const recs = members.map((m) => this.agent(m.agentId));
    if (new Set(members.map((m) => m.agentId)).size !== members.length) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'an agent is listed twice');
    // The abort is honoured until the checkpoint leaves (`committing`): before, it cuts whatever
    // waits on the destination and the move rolls back at the next step; after, the destination
    // may commit at any moment, so the move completes (or fails) as if there were no signal.
    let committing = false;
    let aborted: FerryError | undefined;
    let dialed: StreamSocket | undefined;
    let ch: MigrationChannel | undefined;
    const stopAbort = onAbort(signal, () => {
      if (committing) return;
      aborted = abortedError(`${what} (before the commit: rolled back, it runs on here)`, signal);
      if (ch) ch.cut();
      else dialed?.destroy();
    });
    const fault = (step: number, after = false): void => {
      if (this.opts.migrationFault?.('source', step, after) === 'cut') throw new FerryError('FERRY_ERR_ABORTED', `fault injection: channel cut at step ${step}`);
      if (aborted && !committing) throw aborted;
    };
    const t0 = performance.now();
    let t1 = t0;
    let cps: AgentCheckpoint[] | undefined;
    let epochs: number[] = [];
    let marked = false;
    /** Members whose re-attach failed after another member could not detach: on no host. */
    const unplaced = new Map<number, FerryError>();
    try {
      dialed = this.env.dial(target.ip, target.redirectorPort);
      ch = await MigrationChannel.open(dialed, this.identity, this.clock, target.hostId, this.randomBytes);
      epochs = await Promise.all(recs.map(async (a) => (await this.currentEpoch(a)) + 1));
      // 1. the delegations: each agent key signs a fresh one-link chain for the destination; and
      //    what the destination's runtime needs to admit an agent with code before anything moves.
      fault(MigrationStep.DELEGATE);
      const peerHostKey = ch.peerHostKey;
      ch.send(
        MigrationStep.DELEGATE,
        encodeDelegateStep({
          agents: recs.map((a, i) => {
            const l = members[i]!.outgoing?.landing;
            return {
              agent: a.identity.id,
              agentKey: a.identity.publicRaw,
              epoch: epochs[i]!,
              chain: freshChain(a.identity, peerHostKey, epochs[i]!, this.wallClock()),
              ...(l ? { admission: { owner: l.owner, codeHash: l.codeHash, credential: l.credential } } : {}),
            };
          }),
        }),
      );
      // 2. the agents' peers (their connections as of now; the checkpoint carries the final set).
      fault(MigrationStep.PEERS);
      ch.send(
        MigrationStep.PEERS,
        encodePeersStep({
          connections: recs.flatMap((a) => [...a.sockets.keys()].filter((ep) => ep.state !== 'CLOSED').map((ep) => ({ agent: a.identity.id, id: ep.connectionId, role: ep.role, peer: ep.peerAgent }))),
        }),
      );
      // 3. the destination's answer: admitted, and no collision with its own connection ids.
      fault(MigrationStep.CONNECTION_IDS);
      const ids = await ch.recv([MigrationStep.CONNECTION_IDS, MigrationStep.ABORT]);
      if (ids.step === MigrationStep.ABORT) throw abortError(decodeAbortStep(ids.payload));
      const free = decodeConnectionIdsStep(ids.payload);
      if (!free.ok) throw new FerryError('FERRY_ERR_CONNECTION_ID_COLLISION', `destination has ${free.collisions.join(', ')}`);
      // Every member's opens end before any member is paused: a member's half-open may wait for
      // the RES of another member's client end, which a paused end never sends, so the open
      // expired after twice the handshake time and the connection was lost (found by the
      // simulator: seed 110025151). Nothing is paused while they end, and every member is marked
      // moving first, so no new open begins meanwhile (one would be that deadlock again). A
      // member that left or began another move since step 1 fails the move here, unmarked.
      const present = members.map((m) => this.agent(m.agentId));
      if (present.some((a, i) => a !== recs[i])) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `an agent of the ${what} left this host meanwhile`);
      for (const a of recs) a.moving = true;
      marked = true;
      await Promise.all(recs.map(opensSettled));
      if (aborted) throw aborted;
      // A member removed during the wait (it ended, or was fenced) fails the move: it must not
      // live again at the destination.
      if (recs.some((a) => this.agents.get(a.identity.id) !== a)) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `an agent of the ${what} was removed from this host meanwhile`);
      // Only now is anything paused: detach every member (suspend, drain, checkpoint). Each
      // detach owns its member's mark from here (it clears it should it fail).
      marked = false;
      const detached = await Promise.allSettled(recs.map((a) => this.detachMoving(a)));
      const failedDetach = detached.find((r) => r.status === 'rejected');
      if (failedDetach) {
        // A member that could not detach runs on (detachMoving undid itself); so do the others,
        // each handed back to its runtime (reattach) like any rollback after a detach, and
        // retried while the directory is down, as there.
        for (const [i, r] of detached.entries()) {
          if (r.status !== 'fulfilled') continue;
          try {
            // Not inside `outgoing?.reattach(…)`: an agent without code has no `outgoing`, and the
            // attach must run all the same (it did not: such a member was left on no host).
            const attached = await this.whileDirectoryDown(members[i]!.agentId, () => this.attachAgent(r.value));
            members[i]!.outgoing?.reattach(attached);
          } catch (err) {
            const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err));
            this.log.error('migration_reattach_failed', { agent: members[i]!.agentId, code: e.code, detail: e.message });
            unplaced.set(i, e);
          }
        }
        throw (failedDetach as PromiseRejectedResult).reason;
      }
      cps = detached.map((r) => (r as PromiseFulfilledResult<AgentCheckpoint>).value);
      t1 = performance.now();
      // 4. confirm.
      fault(MigrationStep.CONFIRM);
      ch.send(MigrationStep.CONFIRM, encodeConfirmStep());
      // 5. the checkpoints, streamed, with their length and digest.
      fault(MigrationStep.CHECKPOINT_PART);
      const agents = cps.map((cp, i) => {
        const o = members[i]!.outgoing;
        return o ? { ...cp, landing: { ...o.landing, connections: o.seal() } } : cp;
      });
      const bytes = encodeCheckpointBody(agents);
      const part = limit('MAX_FRAME_PAYLOAD') - 64;
      for (let at = 0; at < bytes.length; at += part) ch.send(MigrationStep.CHECKPOINT_PART, bytes.subarray(at, at + part));
      committing = true;
      ch.send(MigrationStep.CHECKPOINT_END, encodeCheckpointEndStep({ length: bytes.length, sha256: createHash('sha256').update(bytes).digest() }));
      fault(MigrationStep.COMMITTED);
      const done = await ch.recv([MigrationStep.COMMITTED, MigrationStep.ABORT]);
      if (done.step === MigrationStep.ABORT) throw abortError(decodeAbortStep(done.payload));
      decodeCommittedStep(done.payload);
      fault(MigrationStep.COMMITTED, true);
      const report = { detachMs: round2(t1 - t0), commitMs: round2(performance.now() - t1) };
      for (const [i, m] of members.entries()) this.log.info('agent_migrated', { agent: m.agentId, to: ch.peerHostId, epoch: epochs[i], group: members.length, ...report });
      return members.map((m) => ({ agentId: m.agentId, committed: true, report }));
    } catch (err) {
      ch?.cut();
      // An abort that cut a step shows as that step's failure: the abort is the cause.
      const cause = aborted ?? (isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err)));
      const outcomes: MemberOutcome[] = [];
      for (const [i, m] of members.entries()) {
        const rolledBack = (): MemberOutcome => {
          this.log.warn('migration_rolled_back', { agent: m.agentId, code: cause.code, detail: cause.message, ...(members.length > 1 ? { group: members.length } : {}) });
          // An aborted move reports the abort itself (an AbortError), as Node's APIs do.
          return { agentId: m.agentId, committed: false, error: cause === aborted ? cause : new FerryError('FERRY_ERR_MIGRATION_ROLLED_BACK', `migration of ${m.agentId} rolled back: ${cause.code}`, { cause }) };
        };
        // Nothing detached yet: the agent never stopped. Marked moving for the wait on the opens,
        // it takes connections again (once its detach began, the detach owns the mark: it clears
        // it should it fail, and a member that detached was re-attached above as a new record).
        if (!cps) {
          const a = recs[i]!;
          if (marked && this.agents.get(m.agentId) === a) this.unmark(a);
          const lost = unplaced.get(i);
          if (lost) {
            outcomes.push({ agentId: m.agentId, committed: false, error: lost });
            continue;
          }
          outcomes.push(rolledBack());
          continue;
        }
        if (this.closed) {
          // The host closed during the move (close() leaves moving agents to their move): it
          // takes no agent back. The agent ends with it, as the others here did; its entry is
          // removed (refused as stale, changing nothing, should the destination have committed).
          this.deregister(m.agentId, recs[i]!);
          const e = new FerryError('FERRY_ERR_ABORTED', `migration of ${m.agentId} failed (${cause.code}) after this host closed: the agent ended with it`, { cause });
          this.log.error('migration_reattach_failed', { agent: m.agentId, code: e.code, detail: e.message });
          outcomes.push({ agentId: m.agentId, committed: false, error: e });
          continue;
        }
        try {
          const cp = cps[i]!;
          const attached = await this.whileDirectoryDown(m.agentId, () => this.attachAgent(cp));
          m.outgoing?.reattach(attached);
          outcomes.push(rolledBack());
        } catch (rollbackErr) {
          if (!isFerryError(rollbackErr, 'FERRY_ERR_STALE_EPOCH')) {
            // Neither host holds it now (the location service refused both): say so loudly, and
            // go on re-attaching the other members.
            const e = isFerryError(rollbackErr) ? rollbackErr : new FerryError('FERRY_ERR_INTERNAL', String(rollbackErr));
            this.log.error('migration_reattach_failed', { agent: m.agentId, code: e.code, detail: e.message });
            outcomes.push({ agentId: m.agentId, committed: false, error: e });
            continue;
          }
          // The destination registered first: it committed, only its answer was lost.
          this.log.info('agent_migrated', { agent: m.agentId, epoch: epochs[i], note: 'commit inferred from the location epoch' });
          outcomes.push({ agentId: m.agentId, committed: true, report: { detachMs: round2(t1 - t0), commitMs: round2(performance.now() - t1) } });
        }
      }
      return outcomes;
    } finally {
      stopAbort();
      ch?.close();
    }
  }

  /**
   * The agent's epoch as of now: the one this host published it at, or a newer one the location
   * service knows (another host took it over; the fence check stops this copy). Never only the
   * lookup: a lagging location service can still answer an older epoch, and a move that
   * registered from it would be refused, and its rollback taken for the destination's commit.
   */
  private async currentEpoch(a: AgentRecord): Promise<number> {
    return Math.max(a.epoch ?? 0, (await this.location.lookup(a.identity.id))?.epoch ?? 0);
  }

  /**
   * Run a rollback's re-attach again while the directory is unavailable (a shared directory
   * whose Redis is down, or no rendezvous node answering), for up to DIRECTORY_RETRY_MS: the
   * destination did not commit, so giving up would leave the agent on no host at all. A retry
   * is safe: attachAgent changes nothing before its registration succeeds, and a registration
   * that did commit unanswered is acknowledged when sent again.
   */
  private async whileDirectoryDown<T>(agent: AgentId, f: () => Promise<T>): Promise<T> {
    const end = this.clock.now() + limit('DIRECTORY_RETRY_MS');
    for (let pause = limit('RESUME_RETRY_MS'); ; pause = Math.min(pause * 2, limit('CONTROL_MAX_RTO_MS'))) {
      try {
        return await f();
      } catch (err) {
        const down = isFerryError(err, 'FERRY_ERR_DIRECTORY_UNAVAILABLE') || isFerryError(err, 'FERRY_ERR_CONTROL_TIMEOUT');
        if (!down || this.clock.now() + pause > end) throw err;
        this.log.warn('migration_rollback_waiting', { agent, code: (err as FerryError).code, retryMs: pause });
        await new Promise<void>((resolve) => this.clock.setTimer(pause, resolve));
      }
    }
  }

  /** Destination side of a migration: the redirector read a MIG_HELLO. */
  private async acceptMigration(sock: StreamSocket, hello: Buffer, rest: Buffer): Promise<void> {
    let ch: MigrationChannel | undefined;
    const fault = (step: number): void => {
      if (this.opts.migrationFault?.('destination', step) === 'cut') {
        ch?.cut();
        throw new FerryError('FERRY_ERR_ABORTED', `fault injection: channel cut at step ${step}`);
      }
    };
    try {
      ch = await MigrationChannel.accept(sock, hello, rest, this.identity, this.clock, this.randomBytes);
      if (this.opts.acceptMigrationFrom && !this.opts.acceptMigrationFrom(ch.peerHostId)) throw new FerryError('FERRY_ERR_REFUSED', `migrations from host ${ch.peerHostId} are not accepted`);
      // 1. the delegations, each verified from the agent id to this host at the epoch it names;
      //    agents with code are admitted now, before the source pauses anything.
      const d = decodeDelegateStep((await ch.recv([MigrationStep.DELEGATE])).payload);
      fault(MigrationStep.DELEGATE);
      const group = d.agents.map(({ agent: agentId, agentKey, epoch, chain, admission }) => {
        // Cheap, before the chain: nothing but the runtime's admission vouches for an arriving agent.
        if (admission === undefined && this.opts.landOnlyAgentsWithCode) throw new FerryError('FERRY_ERR_REFUSED', `agent ${agentId} has no code: this host lands only agents with code, admitted by its policy`);
        const rep = verifyChain(agentId, agentKey, chain, this.wallClock());
        if (rep.subjectId !== this.id || rep.epoch !== epoch) throw new FerryError('FERRY_ERR_CHAIN_BROKEN', 'the delegation does not name this host at this epoch');
        if (this.agents.has(agentId)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `agent ${agentId} already lives here`);
        return { agentId, epoch, admission };
      });
      if (new Set(group.map((g) => g.agentId)).size !== group.length) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'an agent is listed twice');
      this.assertRoom(group.filter((g) => g.admission !== undefined).length);
      for (const g of group) {
        if (g.admission === undefined) continue;
        if (!this.runtime) throw new FerryError('FERRY_ERR_REFUSED', 'this host runs no agent runtime');
        this.runtime.admitAhead({ agentId: g.agentId, codeHash: g.admission.codeHash, credential: g.admission.credential });
      }
      // 2–3. their connections, checked against the connection ids that live here.
      const p = decodePeersStep((await ch.recv([MigrationStep.PEERS])).payload);
      fault(MigrationStep.PEERS);
      const members = new Set(group.map((g) => g.agentId));
      const stray = p.connections.find((c) => !members.has(c.agent));
      if (stray) throw new FerryError('FERRY_ERR_MALFORMED_MIGRATION_STEP', `migration PEERS: a connection of agent ${stray.agent}, which is not delegated`);
      const collisions = p.connections.map((c) => key(c.id, c.role)).filter((k) => this.endpoints.has(k));
      ch.send(MigrationStep.CONNECTION_IDS, encodeConnectionIdsStep({ ok: collisions.length === 0, collisions }));
      fault(MigrationStep.CONNECTION_IDS);
      if (collisions.length > 0) return;
      // The source detaches between steps 3 and 4: it may wait for half-open connections to
      // finish opening and for each connection's drain, so allow for those on top of a step.
      decodeConfirmStep((await ch.recv([MigrationStep.CONFIRM], limit('MIGRATION_STEP_TIMEOUT_MS') + 2 * limit('HANDSHAKE_TIMEOUT_MS') + limit('DRAIN_TIMEOUT_MS'))).payload);
      fault(MigrationStep.CONFIRM);
      const parts: Buffer[] = [];
      let size = 0;
      for (;;) {
        const { step, payload } = await ch.recv([MigrationStep.CHECKPOINT_PART, MigrationStep.CHECKPOINT_END]);
        if (step === MigrationStep.CHECKPOINT_END) {
          const end = decodeCheckpointEndStep(payload);
          if (end.length !== size) throw new FerryError('FERRY_ERR_MALFORMED_MIGRATION_STEP', `migration CHECKPOINT_END: length ${end.length}, the parts hold ${size}`);
          const all = Buffer.concat(parts, size);
          if (!createHash('sha256').update(all).digest().equals(end.sha256)) throw new FerryError('FERRY_ERR_MALFORMED_MIGRATION_STEP', 'migration CHECKPOINT_END: the parts do not hash to its digest');
          fault(MigrationStep.CHECKPOINT_END);
          const body = decodeCheckpointBody(all, group.length);
          const arriving = body.agents.map(({ landing, ...entry }, i) => {
            const g = group[i]!;
            if (Identity.fromSeed(Buffer.from(entry.agentSeed, 'hex')).id !== g.agentId) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', 'checkpoint is for another agent');
            if ((landing === undefined) !== (g.admission === undefined)) throw new FerryError('FERRY_ERR_MALFORMED_CHECKPOINT', 'a landing without admission, or an admission without landing');
            // Every member's connections checked field by field now, before any member commits;
            // the runtime checks each landing (admit, below) and returns it typed.
            return { g, cp: decodeAgentCheckpoint(entry), landing };
          });
          // Agents with code: this host's runtime admits each whole landing (credential, code
          // hash, policy) before anything commits; a refusal code goes back in the ABORT.
          const runtime = this.runtime;
          // Room for all of them, checked again now (agents may have arrived since step 1): a
          // landing refused for lack of room after its commit would leave it on no host.
          this.assertRoom(arriving.filter((x) => x.landing !== undefined).length);
          const landings = new Map<AgentId, AgentLanding>();
          for (const { g, landing } of arriving) {
            if (landing === undefined) continue;
            if (landing.agentId !== g.agentId) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', 'landing is for another agent');
            landings.set(g.agentId, runtime!.admit(landing));
          }
          // The commit, member by member: registering epoch + 1 (a compare-and-set) is the point
          // of no return for each. A failure stops here; the members not yet registered roll back
          // at the source, which learns of the others from their epochs.
          const epochs = new Map<AgentId, number>();
          for (const { g, cp } of arriving) {
            // Retried while the directory does not answer, as the source's rollback is: a
            // registration stored but unanswered would otherwise leave the entry naming this
            // host, the agent built nowhere, and the source's rollback refused as stale. A
            // repeated REGISTER is acknowledged; one refused as stale (the rollback won) is not
            // retried.
            const attached = await this.whileDirectoryDown(g.agentId, () => this.attachChecked({ ...cp, epoch: g.epoch - 1 }));
            epochs.set(g.agentId, g.epoch);
            const landing = landings.get(g.agentId);
            if (landing !== undefined && runtime) {
              try {
                await runtime.land(landing, attached);
              } catch (err) {
                // Past the commit point (the location names this host): the agent cannot run.
                this.log.error('agent_land_failed', { agent: g.agentId, code: isFerryError(err) ? err.code : 'FERRY_ERR_INTERNAL', detail: String((err as Error).message) });
                this.removeAgent(g.agentId);
              }
            }
          }
          fault(MigrationStep.COMMITTED);
          ch.send(MigrationStep.COMMITTED, encodeCommittedStep({ epochs }));
          return;
        }
        if (parts.length === 0) fault(MigrationStep.CHECKPOINT_PART);
        size += payload.length;
        if (size > limit('MAX_CHECKPOINT_BYTES')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'checkpoint too large');
        parts.push(payload);
      }
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_MALFORMED_FRAME', String(err));
      this.countRefusal(e.code);
      this.log.refused('migration_refused', { code: e.code, detail: e.message, from: ch?.peerHostId });
      try {
        ch?.send(MigrationStep.ABORT, encodeAbortStep({ code: e.code, detail: e.message }));
      } catch {
        // the channel is gone: the source will find out from the location epoch
      }
    } finally {
      ch?.close();
    }
  }

  /** Refuse `count` more agents with code that the runtime has no room for (AGENT_MAX_PER_HOST). */
  private assertRoom(count: number): void {
    if (count > 0 && this.runtime && this.runtime.agentIds().length + count > limit('AGENT_MAX_PER_HOST')) {
      throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${count} more agents do not fit under AGENT_MAX_PER_HOST (${limit('AGENT_MAX_PER_HOST')})`);
    }
  }

  /**
   * Move an agent to another host in this process: detach here, attach there. `signal`: aborted
   * before the call, nothing happens (FERRY_ERR_ABORTED); aborted during the detach, the agent is
   * re-attached here (new socket objects) and this rejects with FERRY_ERR_ABORTED; once the
   * destination attaches (its registration is the commit), the abort is ignored.
   */
  async moveAgent(agentId: AgentId, to: Host, opts: { signal?: AbortSignal } = {}): Promise<{ sockets: AgentSocket[]; server: AgentServerSocket | undefined }> {
    const { signal } = opts;
    if (signal?.aborted) throw abortedError(`move of ${agentId}`, signal);
    const cp = await this.detachAgent(agentId);
    if (signal?.aborted) {
      // Aborted during the detach, before the destination registered anything: back here.
      await this.attachAgent(cp);
      throw abortedError(`move of ${agentId} (before the commit: rolled back, it runs on here)`, signal);
    }
    // From here the destination's registration is the commit: the abort is ignored.
    // The checkpoint crosses a process boundary in issue 3; prove it is plain data now.
    try {
      const { sockets, server } = await to.attachChecked(decodeAgentCheckpoint(JSON.parse(JSON.stringify(cp))));
      return { sockets, server };
    } catch (err) {
      // The destination refused it (a collision, the agent already there, a closed host, the
      // directory): back here, as a migration rolls back, unless the destination did register it.
      try {
        await this.whileDirectoryDown(agentId, () => this.attachAgent(cp));
      } catch (rollbackErr) {
        // STALE_EPOCH: the destination registered it after all (and failed after its commit).
        if (!isFerryError(rollbackErr, 'FERRY_ERR_STALE_EPOCH')) this.log.error('migration_reattach_failed', { agent: agentId, code: isFerryError(rollbackErr) ? rollbackErr.code : 'FERRY_ERR_INTERNAL', detail: String((rollbackErr as Error).message) });
      }
      throw err;
    }
  }

  // ------------------------------------------------------------------ roaming

  /**
   * This host's address changed to `ip` (a roaming host bound to the wildcard notices it with an
   * AddressWatch). The data sockets left from an address that is gone: they stall without an
   * error, so each is dropped and its connection resumes, its RES going out from the new address
   * with a location proof (there it is only a candidate until the proof verifies and a HELLO over
   * the new path proves it, PROTOCOL.md §8.4). An open still in its handshake fails, and the
   * opener opens again. Every agent here (and the host's own id, if it registered itself) is
   * registered at `ip` at the next epoch, so that new connections and peers that ask the
   * rendezvous find it; what the rendezvous does not answer is retried, backing off, until it
   * answers or the address changes again.
   */
  changeAddress(ip: string): void {
    // A host bound to one address keeps dialing from it (SourceRoutes): it cannot roam.
    if (this.routes) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `host bound to ${this.routes.boundIp} cannot change its address: bind the wildcard (0.0.0.0) with an advertised address`);
    if (this.closed || ip === this.advertised) return;
    const previous = this.advertised;
    this.advertised = ip;
    const generation = ++this.addressGeneration;
    let dropped = 0;
    for (const ep of [...this.endpoints.values(), ...this.clientOpens]) if (ep.addressChanged()) dropped++;
    this.log.info('address_changed', { from: previous, to: ip, sockets: dropped, agents: this.agents.size });
    void this.reregister(generation);
  }

  /** Register every agent here (and the host itself) at the current address; retried until done or superseded. */
  private async reregister(generation: number): Promise<void> {
    let pause = limit('RESUME_RETRY_MS');
    for (;;) {
      if (this.closed || generation !== this.addressGeneration) return;
      const ip = this.advertised;
      let failed: unknown;
      for (const [id, rec] of [...this.agents]) {
        if (rec.moving || rec.epoch === undefined || rec.at === ip || this.agents.get(id) !== rec) continue;
        const epoch = rec.epoch + 1;
        try {
          const chain = await this.publish(rec.identity, epoch, ip);
          if (this.agents.get(id) !== rec) continue;
          rec.chain = chain;
          rec.registered = chain;
          rec.epoch = epoch;
          rec.at = ip;
          this.log.info('agent_reregistered', { agent: id, ip, epoch });
        } catch (err) {
          if (isFerryError(err, 'FERRY_ERR_STALE_EPOCH')) {
            // Another host registered it since: not ours to re-register (the fence check decides).
            rec.at = ip;
            continue;
          }
          failed = err;
        }
      }
      if (failed === undefined && this.selfRegistered) {
        try {
          await this.registerSelf();
        } catch (err) {
          failed = err;
        }
      }
      if (failed === undefined) return;
      this.log.warn('reregister_failed', { code: isFerryError(failed) ? failed.code : 'FERRY_ERR_INTERNAL', detail: String((failed as Error).message), retryMs: pause });
      await new Promise<void>((r) => this.clock.setTimer(pause, r));
      pause = Math.min(pause * 2, limit('CONTROL_MAX_RTO_MS'));
    }
  }

  /** Fault injection: reset the data sockets of an agent's connections (all agents if omitted). */
  breakDataSockets(agentId?: AgentId): number {
    let n = 0;
    for (const [id, a] of this.agents) {
      if (agentId && id !== agentId) continue;
      for (const ep of a.sockets.keys()) if (ep.breakDataSocket()) n++;
    }
    return n;
  }

  // ------------------------------------------------------------------ controller

  private countRefusal(code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  private refuse(err: FerryError, fields: Record<string, unknown>): never {
    this.countRefusal(err.code);
    this.log.refused('refused', { ...fields, code: err.code, detail: err.message });
    throw err;
  }

  private async onRequest(req: ControlMessage): Promise<{ type: number; body: Uint8Array }> {
    try {
      switch (req.type) {
        case MessageType.CONNECT:
          return { type: MessageType.CONNECT_ACK, body: this.onConnect(req) };
        case MessageType.SUS:
        case MessageType.RES:
        case MessageType.CLS:
          return { type: req.type + 1, body: this.onConnControl(req) };
        default:
          throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `control request type ${req.type}`);
      }
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err), { cause: err });
      this.refuse(e, { type: req.type, from: req.from });
    }
  }

  private onConnect(req: ControlMessage): Buffer {
    const body = Buffer.from(req.body);
    const c = decodeConnect(body);
    const source = parseAddress(req.from).ip;
    const a = this.admitConnect(c, source);
    const serverHalf = this.freshServerHalf(c.clientHalf);
    const { endpoint, reply } = Endpoint.server(this.env, a.identity, c, body, req.from, serverHalf);
    this.adoptHalfOpen(a, endpoint, source);
    return reply;
  }

  /**
   * An in-band CONNECT, the first frame of a redirector socket: the same checks in the same order
   * as a UDP CONNECT (nothing costly before the cheap ones), then a half-open endpoint that answers
   * CONNECT_ACK on the socket and waits there for the client's confirmation. Throws to refuse (the
   * redirector sends REJECT and logs it once).
   */
  private onInbandConnect(sock: StreamSocket, body: Buffer, rest: Buffer): void {
    const f = decodeConnectFrame(body);
    const source = sourceOf(sock);
    const a = this.admitConnect(f.connect, source);
    const serverHalf = this.freshServerHalf(f.connect.clientHalf);
    const endpoint = Endpoint.serverInband(this.env, a.identity, f, body, sock, serverHalf);
    this.adoptHalfOpen(a, endpoint, source);
    endpoint.startInband(rest);
  }

  private freshServerHalf(clientHalf: Buffer): Buffer {
    let serverHalf = this.randomBytes(8);
    while (this.endpoints.has(key(Buffer.concat([clientHalf, serverHalf]), 'server'))) serverHalf = this.randomBytes(8);
    return serverHalf;
  }

  /** The checks of a CONNECT (either kind), cheap ones first; returns the target agent. */
  private admitConnect(c: Connect, source: string): AgentRecord {
    const target = idFromBytes(c.toAgent);
    const a = this.agents.get(target);
    if (!a) throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', `agent ${target} is not here`);
    if (a.moving) throw new FerryError('FERRY_ERR_PEER_MOVING', `agent ${target} is moving`);
    if (!a.server || a.server.closed) throw new FerryError('FERRY_ERR_NOT_LISTENING', `agent ${target} has no server socket`);
    // Cheap limits before the signature check, so a CONNECT flood costs little CPU. (A full
    // half-open table is not one of them: only a verified CONNECT may evict, see adoptHalfOpen.)
    if (this.endpoints.size >= limit('MAX_CONNECTIONS')) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'connection table full');
    // What the connections to this agent, or from this address, hold: a new one needs its floor.
    if (!this.receiveBudget.canOpen(target, source)) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `receive budget of agent ${target} or of ${source} is spent`);
    verifyConnect(c, this.security);
    return a;
  }

  /**
   * Index a new half-open server endpoint; its socket goes to the agent once established. It
   * takes a half-open slot of its source address; when that address holds its share, or the
   * table is full, the oldest half-open of the address holding the most is dropped for it.
   */
  private adoptHalfOpen(a: AgentRecord, endpoint: Endpoint, source: string): void {
    const slot = this.halfOpen.admit(source, endpoint);
    if (!slot.admitted) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'no half-open connections allowed');
    this.endpoints.set(key(endpoint.connectionId, 'server'), endpoint);
    if (slot.evicted) {
      this.countRefusal('FERRY_ERR_LIMIT_EXCEEDED');
      this.log.refused('half_open_evicted', { code: 'FERRY_ERR_LIMIT_EXCEEDED', conn: slot.evicted.idText, peer: slot.evicted.peer.ip, from: source });
      slot.evicted.destroy(new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'half-open connection evicted: its source address holds too many'));
    }
    const done = (): void => {
      this.halfOpen.release(source, endpoint);
      a.opening?.delete(endpoint);
    };
    (a.opening ??= new Set()).add(endpoint);
    // Opened when established, or when the client's RES confirmed the key (the connection then
    // resumes in the agent's hands, as any other whose socket died): whichever comes first.
    const opened = (): void => {
      endpoint.off('established', opened);
      endpoint.off('confirmed', opened);
      done();
      const sock = new AgentSocket(endpoint);
      a.sockets.set(endpoint, sock);
      endpoint.once('closed', () => a.sockets.delete(endpoint));
      if (a.server && !a.server.closed) a.server.deliver(sock);
      else {
        // No one will ever hold this socket: a peer's abort must not become an unhandled 'error'.
        sock.on('error', () => {});
        void endpoint.close();
      }
    };
    endpoint.on('established', opened);
    endpoint.on('confirmed', opened);
    endpoint.once('closed', done);
  }

  private onConnControl(req: ControlMessage): Buffer {
    const m = decodeConnControl(Buffer.from(req.body), req.type);
    const k = key(m.connectionId, other(m.senderRole));
    const ep = this.endpoints.get(k);
    if (!ep) {
      const until = this.moved.get(k);
      if (until !== undefined && until > this.clock.now()) throw new FerryError('FERRY_ERR_PEER_MOVING', 'connection endpoint moved away');
      throw new FerryError('FERRY_ERR_UNKNOWN_CONNECTION', `no connection ${m.connectionId.toString('hex')}`);
    }
    return ep.handleControl(m, req.from);
  }

  private onOneway(msg: ControlMessage): void {
    try {
      if (msg.type !== MessageType.CONNECT_CONFIRM) throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `one-way type ${msg.type}`);
      const c = decodeConnectConfirm(Buffer.from(msg.body));
      const ep = this.endpoints.get(key(c.connectionId, 'server'));
      if (!ep) throw new FerryError('FERRY_ERR_UNKNOWN_CONNECTION', 'CONNECT_CONFIRM for no connection');
      ep.handleConfirm(Buffer.from(c.mac));
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err));
      this.countRefusal(e.code);
      this.log.refused('refused', { code: e.code, detail: e.message, from: msg.from });
    }
  }

  // ------------------------------------------------------------------ redirector

  private onRedirect(sock: StreamSocket): void {
    const source = sourceOf(sock);
    const slot = this.handoffs.admit(source, sock);
    if (!slot.admitted) {
      this.countRefusal('FERRY_ERR_LIMIT_EXCEEDED');
      sock.destroy();
      return;
    }
    if (slot.evicted) {
      // The idlest socket of the address holding the most makes room: one address cannot hold
      // the redirector, whatever it opens.
      this.countRefusal('FERRY_ERR_LIMIT_EXCEEDED');
      this.log.refused('redirect_evicted', { code: 'FERRY_ERR_LIMIT_EXCEEDED', remote: sourceOf(slot.evicted), from: source });
      slot.evicted.destroy();
    }
    const settled = (): void => {
      this.handoffs.release(source, sock);
    };
    sock.once('close', settled);
    sock.setNoDelay?.(true);
    const decoder = new FrameDecoder(limit('HANDOFF_FRAME_BYTES'));
    const timer = this.clock.setTimer(limit('HELLO_TIMEOUT_MS'), () => sock.destroy());
    const reject = (err: FerryError): void => {
      this.countRefusal(err.code);
      this.log.refused('redirect_refused', { code: err.code, detail: err.message, from: source });
      // Destroyed once the REJECT is flushed (net.Socket.destroySoon, for any stream).
      sock.end(encodeFrame({ type: FrameType.REJECT, wireCode: err.wire, detail: err.code }), () => sock.destroy());
    };
    const onData = (chunk: Buffer): void => {
      this.handoffs.touch(source, sock);
      decoder.push(chunk);
      let body: Buffer | undefined;
      try {
        body = decoder.next();
        if (!body) return;
        sock.off('data', onData);
        timer.cancel();
        settled();
        if (isMigrationHello(body)) {
          this.admitMigration(sock, source);
          void this.acceptMigration(sock, Buffer.from(body), decoder.takeRest());
          return;
        }
        if (body[0] === OpenFrameType.CONNECT) {
          this.onInbandConnect(sock, Buffer.from(body), decoder.takeRest());
          return;
        }
        const f = decodeFrameBody(body);
        if (f.type !== FrameType.HELLO) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'first frame on a data socket must be HELLO, CONNECT or MIG_HELLO');
        this.handoff(sock, f, decoder.takeRest());
      } catch (err) {
        sock.off('data', onData);
        timer.cancel();
        reject(isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err)));
      }
    };
    sock.on('data', onData);
    sock.on('error', () => sock.destroy());
  }

  /** An incoming migration channel takes a slot of its source address until its socket closes. */
  private admitMigration(sock: StreamSocket, source: string): void {
    const slot = this.migrations.admit(source, sock);
    if (!slot.admitted) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'no incoming migrations allowed');
    sock.once('close', () => this.migrations.release(source, sock));
    if (slot.evicted) {
      // The idlest channel of the address holding the most makes room: one address cannot hold
      // the host's memory, whatever it opens. Its move rolls back at its source.
      this.countRefusal('FERRY_ERR_LIMIT_EXCEEDED');
      this.log.refused('migration_evicted', { code: 'FERRY_ERR_LIMIT_EXCEEDED', remote: sourceOf(slot.evicted), from: source });
      slot.evicted.destroy();
    }
    sock.on('data', () => this.migrations.touch(source, sock));
  }

  private handoff(sock: StreamSocket, hello: Hello, rest: Buffer): void {
    const k = key(hello.connectionId, other(hello.dialerRole));
    const ep = this.endpoints.get(k);
    if (!ep) {
      const until = this.moved.get(k);
      throw new FerryError(until !== undefined && until > this.clock.now() ? 'FERRY_ERR_PEER_MOVING' : 'FERRY_ERR_UNKNOWN_CONNECTION', `HELLO for ${hello.connectionId.toString('hex')}`);
    }
    ep.acceptHello(sock, hello, rest);
  }

  /**
   * Stop the host: deregister the agents it holds and its own entry by id (waiting up to HOST_DEREGISTER_WAIT_MS for the
   * rendezvous, so they can be launched elsewhere at once), then close every connection without
   * ceremony and both ports. Agents in the middle of a move are left to it.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fenceTimer?.cancel();
    for (const [id, a] of this.agents) if (!a.moving) this.deregister(id, a);
    // This host's own entry too: a migration naming it by id is then refused UNKNOWN_HOST at once
    // instead of dialling an address where nothing answers.
    if (this.selfEpoch !== undefined) this.sendDeregister({ agent: this.id as unknown as AgentId, hostId: this.id, epoch: this.selfEpoch, chain: [] });
    if (this.deregistering.size > 0) {
      let timer: TimerHandle | undefined;
      const bound = new Promise<void>((resolve) => (timer = this.clock.setTimer(limit('HOST_DEREGISTER_WAIT_MS'), resolve)));
      await Promise.race([Promise.all(this.deregistering), bound]);
      timer?.cancel();
    }
    for (const a of this.agents.values()) for (const s of a.sockets.values()) s.destroy();
    for (const ep of this.endpoints.values()) ep.destroy(new FerryError('FERRY_ERR_ABORTED', 'host closed'));
    // Let the CLS datagrams queued above leave before the socket closes, so peers learn at once
    // instead of waiting out their reconnect limit.
    await new Promise((r) => setTimeout(r, 20));
    this.control.close();
    // A close that was retrying its CLS (between tries, or waiting on the location service for a
    // peer in transit) ends with the host: nothing of it runs on after close() returns.
    const stopped = new FerryError('FERRY_ERR_ABORTED', 'host closed');
    for (const ep of [...this.endpoints.values()]) ep.stop(stopped);
    await this.redirector.close();
  }
}

/** The remote address of a socket, IPv4-mapped IPv6 in its IPv4 form: what per-source budgets count by. */
function sourceOf(sock: StreamSocket): string {
  const ip = sock.remoteAddress ?? '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** The destination's ABORT as an error here; a code this version does not know becomes REFUSED. */
function abortError(a: AbortStep): FerryError {
  return new FerryError((Object.hasOwn(ERRORS, a.code) ? a.code : 'FERRY_ERR_REFUSED') as keyof typeof ERRORS, `destination aborted: ${a.detail}`);
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}
