/**
 * The deciding part of one connection end, sans I/O: its state, the events waiting to be applied,
 * and its deadlines. In the manner of quinn-proto's `Connection`: inputs go in through typed
 * methods, one per kind of input, each naming the socket slot or request id it answers (`frame`,
 * `replied`, `socketClosed`, `incoming`, ...), with `now` where the input's effect depends on the
 * time; a state-machine event is queued by {@link ConnectionCore.handle} and applied at the `now`
 * of the next {@link ConnectionCore.poll}; expiries come in through
 * {@link ConnectionCore.handleTimeout}. What to do comes out of `poll(now)` as commands, in order,
 * for the adapter (`endpoint.ts`) to carry out. It owns no socket, timer or promise; the adapter
 * holds one clock timer set from {@link ConnectionCore.nextDeadline}.
 *
 * Events are applied to completion, one at a time: the commands of one event (its transition,
 * then its actions, in the table's order) all come out of `poll()` before the next queued event is
 * applied. An event handed in while the adapter carries out a command (an action that fires
 * another event) waits its turn, so an action never sees the state change under it. An event the
 * state no longer accepts when its turn comes (it went stale behind an earlier one) comes out as a
 * `stale` command and changes nothing.
 *
 * The transition table (`state-machine.ts`) stays the one source of the 12 states; this file
 * adds the rules that hang on a transition alone, such as the resume deadline.
 *
 * It also owns what the connection is, the state a move carries: its id, role, agents and keys,
 * the send and receive buffers, the control counters ({@link ControlAuth}), the peer's addresses
 * and proofs ({@link PathValidation}), the recovery bookkeeping ({@link Recovery}), the data
 * path's offsets and credit ({@link DataFlow}) and the open ({@link OpenHandshake}, which a move
 * never carries: a move waits for the open to end), so that
 * {@link ConnectionCore.checkpoint} and {@link ConnectionCore.fromCheckpoint} are the whole of
 * what a move writes and reads.
 */
import { connectionKeysFromMaster, type AgentId, type ConnectionKeys } from '../../identity/index.js';
import { FerryError, isFerryError, limit } from '../../util/index.js';
import { FrameType, type ConnControl, type Frame, type Hello, type ResumeProof, type Role } from '../../wire/index.js';
import { decodeEndpointCheckpoint, type EndpointCheckpoint, type PeerLocator, type ProvenLocation } from '../checkpoint.js';
import { ReceiveBuffer, SendBuffer } from '../data-path.js';
import { TRANSITIONS, type Action, type Event, type State } from '../state-machine.js';
import { ControlAuth } from './control-auth.js';
import { ControlRequests, type ControlCommand, type ControlOutcome, type LogLine, type RequestCommand, type ResPlan } from './control-requests.js';
import { OpenHandshake, type OpenCommand, type ServerOpen } from './open.js';
import { PathValidation } from './path.js';
import { DataFlow } from './data.js';
import { DataInputs, type ConnectionStats, type DataAckCommand, type SendAck } from './data-inputs.js';
import { ResumeIntent, type AcceptedIncoming } from './intent.js';
import { decideIncoming, type IncomingDecision, type IncomingProofs } from './control-incoming.js';
import { Recovery } from './recovery.js';
import { DataSlots, type DialCommand, type HelloCrypto, type SlotCommand } from './slots.js';
import { TimerTable, type Expiry, type TimerName } from './timers.js';

/** What a connection end starts from (a new open, or a checkpoint). */
export interface CoreInit {
  readonly state: State;
  readonly role: Role;
  readonly localAgent: AgentId;
  readonly peerAgent: AgentId;
  readonly connectionId: Buffer;
  readonly secure: boolean;
  readonly peer: PeerLocator;
  readonly proven?: ProvenLocation | undefined;
  readonly peerEpoch?: number | undefined;
  readonly send: SendBuffer;
  readonly recv: ReceiveBuffer;
  readonly keys?: ConnectionKeys | undefined;
  /** Control counters carried by a move (a new connection starts at 0). */
  readonly counters?: { readonly sent: number; readonly received: number } | undefined;
  /** Give up resuming after this long broken. */
  readonly reconnectLimitMs: number;
  /** `n` random bytes (path challenges): injected, the core has no source of its own. */
  readonly random: (n: number) => Buffer;
  /** Our redirector port, announced in our RES (0 when unknown: a test's core). */
  readonly redirectorPort?: number | undefined;
  /**
   * Verify the location proof `m` carries for `peerAgent`, against the highest epoch accepted;
   * returns its epoch, throws the refusal. Injected (signatures, the wall clock); without it every
   * proof is refused.
   */
  readonly verifyProof?: ((m: ConnControl, peerAgent: AgentId, peerEpoch: number) => number) | undefined;
  /**
   * This host's location proof for `agent` (its delegation chain; undefined: it has none), which
   * a RES from a new location carries. Injected: the chain is the host's, and so is the batch
   * signer that signs it (the core asks for that through `sign_res`); without it no RES is proved.
   */
  readonly ownProof?: ((agent: AgentId) => OwnProof | undefined) | undefined;
  /**
   * Sign our RES_ACK `ack` (flagged as proved) with this host's proof for `agent`, at once: a
   * batch of one, as the reply goes back in the same call. Injected: the host's key signs. Asked
   * only when {@link ownProof} gave a proof that fits a RES_ACK.
   */
  readonly signAck?: ((agent: AgentId, ack: ConnControl) => ResumeProof) | undefined;
  /** The HELLO's MACs (handshake.ts), injected; without them every HELLO we build or check fails. */
  readonly helloCrypto?: HelloCrypto | undefined;
}

/** What the core sees of this host's location proof for our agent: its chain, to check that it fits a RES. */
export interface OwnProof {
  readonly chain: readonly unknown[];
}

/** A command that may not be, as a list. */
const optional = (c: CoreCommand | undefined): CoreCommand[] => (c ? [c] : []);

/** A core given no proof verifier refuses every proof. */
const NO_VERIFIER = (): number => {
  throw new FerryError('FERRY_ERR_RESUME_UNPROVEN', 'no proof verifier');
};

/** A core given no proof of its own host has none to offer. */
const NO_OWN_PROOF = (): OwnProof | undefined => undefined;

/** A core given no HELLO cryptography can neither build nor check a HELLO. */
const NO_HELLO_CRYPTO: HelloCrypto = {
  helloMac: () => {
    throw new FerryError('FERRY_ERR_INTERNAL', 'no HELLO cryptography');
  },
  helloAckMac: () => {
    throw new FerryError('FERRY_ERR_INTERNAL', 'no HELLO cryptography');
  },
};

/** What the core may ask of the adapter's data sockets. */
export interface SocketView {
  /** Whether the socket of `slot` is still usable (not closed, reset or spent). */
  isOpen(slot: number | undefined): boolean;
  /** Where the socket of `slot` comes from (its peer's address), if it says. */
  remoteAddress(slot: number): string | undefined;
}

/** Before the adapter binds its sockets: none is usable. */
const NO_SOCKETS: SocketView = { isOpen: () => false, remoteAddress: () => undefined };

/** What the open asks of the adapter (its `fire` is the core's own: the event is queued here; its `log` is a {@link CoreCommand} `log`). */
export type OpenEffect = Exclude<OpenCommand, { readonly kind: 'fire' | 'log' | 'open_failed' | 'open_refused' }>;

/** What the adapter must do, from {@link ConnectionCore.poll}. */
export type CoreCommand =
  /** The state changed (`from` ≠ `to`): tell listeners, drop what the new state does not keep. */
  | { readonly kind: 'transition'; readonly event: Event; readonly from: State; readonly to: State }
  /** Carry out one action of the row just applied. */
  | { readonly kind: 'act'; readonly action: Action }
  /** A queued event the state no longer accepted: nothing changed (for the debug log). */
  | { readonly kind: 'stale'; readonly event: Event; readonly state: State }
  /** What the open decided (core/open.ts): dial, send, attach or destroy a socket slot, fail. */
  | OpenEffect
  /** Our control requests (core/control-requests.ts): send request N, cancel it, look the peer up. */
  | ControlCommand
  /**
   * What the data sockets' rules decided (core/slots.ts `SlotCommand`): send frame F on slot S,
   * close or keep slot S, a slot's deadline… Their `fire` is the core's own: it never comes out.
   */
  | Exclude<SlotCommand, { readonly kind: 'fire' | 'log' | InTurn['kind'] }>
  /** Log a line the core decided is worth saying. */
  | ({ readonly kind: 'log' } & LogLine)
  /** Count a refusal decided here (the host's counters): a RES_ACK whose proof did not verify. */
  | { readonly kind: 'count_refusal'; readonly err: FerryError }
  /**
   * The connection ended (`fail` or `closed`), with `err` (undefined: a clean close): nothing of
   * ours is outstanding any more (a RES still out was cancelled just before); the adapter closes
   * every socket, forgets the connection and tells the application. Once.
   */
  | { readonly kind: 'ended'; readonly err: FerryError | undefined }
  /**
   * Our RES `id` carries this host's location proof: hand it to the host's batch signer, which
   * builds it at its flush ({@link ConnectionCore.resToSign}) and signs it with every RES this
   * host sends in this turn; the signature comes back as {@link ConnectionCore.resSigned}, a
   * failure as {@link ConnectionCore.resUnsigned}.
   */
  | { readonly kind: 'sign_res'; readonly id: number }
  /**
   * Our in-band SUSPEND `frame` goes on slot `slot` (which no longer carries the connection): what
   * came of the send goes back at once as {@link ConnectionCore.suspendFrameSent}.
   */
  | { readonly kind: 'send_suspend'; readonly slot: number; readonly frame: Frame }
  /** Tell the application's listeners: bytes are readable, or the send buffer has room. */
  | { readonly kind: 'notify'; readonly event: 'readable' | 'room' }
  /** Our ACK (the data path's, built as it goes) on `slot`, if that socket still takes frames from us. */
  | { readonly kind: 'send_ack'; readonly slot: number }
  /** At the end of this turn, once the I/O it started is queued: hand {@link ConnectionCore.turnEnded} `slot` back. */
  | { readonly kind: 'ack_at_turn_end'; readonly slot: number }
  /** Write DATA (and the FIN once due) on the socket carrying the connection, until TCP asks us to wait. */
  | { readonly kind: 'pump' }
  /** `slot` carries the connection from now on: its frames are {@link ConnectionCore.frame}, its close {@link ConnectionCore.socketClosed}. */
  | { readonly kind: 'carry'; readonly slot: number }
  /**
   * The table's `established`, the core's part done (our RES cancelled; recovery, path and the
   * open told; the resume timed): the clock follows the deadlines (the handshake's went), then
   * listeners hear 'established', and the pump runs at the end of the turn.
   */
  | { readonly kind: 'established' }
  /** The table's `confirmed` (a half-open the client's RES confirmed, its handshake deadline gone): listeners hear it (the host hands the connection to its agent, resuming). */
  | { readonly kind: 'confirmed' };

/**
 * A command the adapter hands back to the core on a later turn ({@link ConnectionCore.deferredDue}),
 * when {@link dueAt} says: an event whose turn comes later (`fire_later`), the peer's in-band
 * SUSPEND held while a row was carried out (`peer_suspends`), the end of the turn an ACK waits for
 * (`ack_at_turn_end`).
 */
export type Deferred = Extract<CoreCommand, { readonly kind: 'fire_later' | 'peer_suspends' | 'ack_at_turn_end' }>;

/**
 * When a {@link Deferred} command is due: `microtask`, as soon as the call that gave it out is over
 * (the row that held it has ended; an event goes after everything queued with it), or `turn`, once
 * the I/O this turn started is queued (the ACK then covers every read of the turn).
 */
export function dueAt(c: Deferred): 'microtask' | 'turn' {
  return c.kind === 'ack_at_turn_end' ? 'turn' : 'microtask';
}

/**
 * A decision taken when its turn comes in the queue, since it must see what the commands before it
 * did (a listener told of readable bytes may have read them; an event applied): what it comes to
 * goes out in its place.
 */
export interface DecideStep {
  readonly kind: 'decide';
  then(now: number): readonly QueuedStep[];
}

/** What waits in the core's queue: a command, an event for the table, the resume's dial or a decision for its turn. */
export type QueuedStep = CoreCommand | Extract<SlotCommand, { readonly kind: 'fire' }> | InTurn | DecideStep;

/**
 * What is decided only when its turn comes, then goes out as the commands it came to: our resume's
 * dial (core/slots.ts `mayDialResume`), the resume HELLO held for the peer's proof, dropped (the
 * proof was refused) or taken (it verified: answered if the state still resumes, else closed), and
 * the core's own part of what the data sockets' rules decided (our SUS forgotten, our suspend
 * counted, the peer resuming on the kept socket, the resume wanted after a lost socket, our SUS or
 * RES datagram built).
 */
type InTurn =
  | Extract<SlotCommand, { readonly kind: 'dial_resume' | 'forget_sus' | 'suspend_counted' | 'peer_resumes' | 'auto_resume' | 'resume_by_datagram' | 'suspend_by_datagram' }>
  | { readonly kind: 'drop_parked_hello' }
  | { readonly kind: 'take_parked_hello' }
  /** The client's open failed (core/open.ts): it ends CLOSED with `err` (logged), through `timeout` of CONNECT_SENT. */
  | Extract<OpenCommand, { readonly kind: 'open_failed' }>
  /** The server's opening socket was refused with `err`: counted, kept as the error the half-open closes with. */
  | Extract<OpenCommand, { readonly kind: 'open_refused' }>;

/**
 * Whether `c` is an {@link InTurn} (never given out as such). A switch, not a Set: it is asked of
 * every command, and the Set's lookup was a tenth of `poll`'s time.
 */
function isInTurn(c: QueuedStep): c is InTurn {
  const kind = c.kind;
  switch (kind) {
    case 'dial_resume':
    case 'drop_parked_hello':
    case 'take_parked_hello':
    case 'open_failed':
    case 'open_refused':
    case 'forget_sus':
    case 'suspend_counted':
    case 'peer_resumes':
    case 'auto_resume':
    case 'resume_by_datagram':
    case 'suspend_by_datagram':
      return true;
    default: {
      // A kind of InTurn missing from the cases above would reach here, and this would not compile.
      const other: Exclude<QueuedStep['kind'], InTurn['kind']> = kind;
      void other;
      return false;
    }
  }
}

/** A command waiting in the queue, and whether it belongs to a row of the table (else to an input). */
interface Queued {
  /** A command; or an event a data socket's input or a row hands to the table, the resume's dial, a decision (each in its turn, never given out as such). */
  readonly c: QueuedStep;
  readonly row: boolean;
  /** An action the core already decided its part of (it goes out as it is). */
  readonly decided?: boolean;
}

/** The `act` command of each action, made once: commands are read-only, so one serves every row. */
const ACTS = new Map<Action, CoreCommand>();
const act = (action: Action): CoreCommand => {
  let c = ACTS.get(action);
  if (!c) ACTS.set(action, (c = { kind: 'act', action }));
  return c;
};

/** A row of the table as the core applies it: the state it leads to and its actions as `act` commands. */
interface Row {
  readonly to: State;
  readonly acts: readonly CoreCommand[];
}

/**
 * The transition table (state-machine.ts, the one source of the rows) by state, then by event,
 * each row's `act` commands made when the module loads: applying an event costs two lookups,
 * not two and one per action.
 */
const ROWS = new Map<State, Map<Event, Row>>();
for (const t of TRANSITIONS) {
  let byEvent = ROWS.get(t.from);
  if (!byEvent) ROWS.set(t.from, (byEvent = new Map()));
  byEvent.set(t.event, { to: t.to, acts: t.actions.map(act) });
}
const rowOf = (state: State, event: Event): Row | undefined => ROWS.get(state)?.get(event);

/** Whether a state is part of a resume (the new data socket is being set up). */
const resuming = (s: State): boolean => s === 'RES_SENT' || s === 'RES_ACKED';

/** The state, event queue and deadlines of one connection end, and what a move carries of it. */
export class ConnectionCore {
  private current: State;
  private readonly timers = new TimerTable();
  private readonly events: Event[] = [];
  private out: Queued[] = [];
  /** Commands that wait until everything queued before them, and all it led to, is out. */
  private readonly afterAll: Queued[] = [];
  /**
   * Commands of an input set aside while an event one of them fired is applied, with everything
   * it leads to (the innermost last): an input's event is applied at once, before it goes on.
   */
  private readonly setAside: Queued[][] = [];
  /** Whether the command {@link poll} gave out last belongs to a row (see {@link inRow}). */
  private polledRow = true;
  /** Whether {@link poll} ran dry last: nothing it gave out is being carried out any more. */
  private idle = true;
  private lastSlot = 0;
  /** The last id given to one of our requests or lookups (core/control-requests.ts, the open's CONNECT). */
  private lastRequest = 0;
  readonly role: Role;
  readonly localAgent: AgentId;
  readonly peerAgent: AgentId;
  readonly secure: boolean;
  /** Client: the client half and zeros until the CONNECT_ACK names the server half. */
  connectionId: Buffer;
  /** The connection's keys (security on), once the handshake derived them. */
  keys: ConnectionKeys | undefined;
  readonly send: SendBuffer;
  readonly recv: ReceiveBuffer;
  /** Our control counters, the peer's replay window and the cached reply. */
  readonly auth: ControlAuth;
  /** The peer's address and candidate, path challenges, location proofs. */
  readonly path: PathValidation;
  /** Resume backoff, lookups and the reconnect limit. */
  readonly recovery: Recovery;
  /** Offsets, acknowledgements (the delayed ACK) and credit of the data path. */
  readonly flow: DataFlow;
  /** The open: its steps, its socket or request, the handshake deadline's rules. */
  readonly open: OpenHandshake;
  /** What the application and the host want of the connection (resume by itself, a move's wish), and how our SUS/RES go out. */
  readonly intent: ResumeIntent;
  /** Our outstanding SUS, RES, CLS and lookups, and the retries of our close. */
  readonly control: ControlRequests;
  /** Our redirector port, announced in our RES and RES_ACK. */
  private readonly redirectorPort: number;
  /** How the peer's RES has its proof checked and our RES_ACK gets ours (core/control-incoming.ts). */
  private readonly proofs: IncomingProofs;
  /** This host's location proof for an agent (injected). */
  private readonly ownProof: (agent: AgentId) => OwnProof | undefined;
  /**
   * Our proved RES handed to the batch signer and not yet sent or failed, by request id: one per
   * resume attempt, each gone at the flush (built and sent, failed, or over before it was built).
   */
  private readonly signing = new Map<number, ResPlan>();
  /** The connection ended (`fail` or `closed` carried out). */
  private over = false;
  /** The data sockets' rules by slot number: carrying, draining, kept, dialled, the HELLOs. */
  readonly slots: DataSlots;
  /** The adapter's sockets, asked whether one is still usable ({@link bindSockets}). */
  private sockets: SocketView = NO_SOCKETS;
  /** What frames, the attach, the reuse, the reader and the ACK's turn come to (core/data-inputs.ts). */
  private readonly dataIn: DataInputs;

  constructor(init: CoreInit) {
    this.current = init.state;
    this.role = init.role;
    this.localAgent = init.localAgent;
    this.peerAgent = init.peerAgent;
    this.secure = init.secure;
    this.connectionId = init.connectionId;
    this.keys = init.keys;
    this.send = init.send;
    this.recv = init.recv;
    this.auth = new ControlAuth(init.counters ?? {});
    this.path = new PathValidation({ peer: init.peer, proven: init.proven, peerEpoch: init.peerEpoch, random: init.random });
    this.recovery = new Recovery({ reconnectLimitMs: init.reconnectLimitMs });
    this.flow = new DataFlow(init.send, init.recv, this.timers);
    this.open = new OpenHandshake(this);
    this.intent = new ResumeIntent(this);
    const verify = init.verifyProof ?? NO_VERIFIER;
    const verifyPeer = (m: ConnControl, epoch: number): number => verify(m, this.peerAgent, epoch);
    this.control = new ControlRequests(this, { redirectorPort: init.redirectorPort ?? 0, reconnectLimitMs: init.reconnectLimitMs, verifyProof: verifyPeer });
    this.ownProof = init.ownProof ?? NO_OWN_PROOF;
    const signAck = init.signAck;
    this.proofs = { verify: verifyPeer, prover: () => this.ackProver(signAck) };
    this.redirectorPort = init.redirectorPort ?? 0;
    this.slots = new DataSlots(this, init.helloCrypto ?? NO_HELLO_CRYPTO, init.random);
    this.dataIn = new DataInputs(this);
  }

  /** What this end counted (sockets, reuses, bytes replayed, suspends and resumes with their times). */
  get stats(): ConnectionStats {
    return this.dataIn.stats;
  }

  /** Whether the adapter's socket of `slot` is still usable (asked when a decision needs it). */
  socketUsable(slot: number | undefined): boolean {
    return this.sockets.isOpen(slot);
  }

  /**
   * A moved connection end, rebuilt from its checkpoint, SUSPENDED. The checkpoint came from
   * another host: it is checked field by field (FERRY_ERR_MALFORMED_CHECKPOINT,
   * FERRY_ERR_UNSUPPORTED_VERSION), never trusted through its type. Whether the end was live when
   * it left lands as its intent's `autoResume` (the adapter resumes it once indexed).
   */
  static fromCheckpoint(input: EndpointCheckpoint, o: Pick<CoreInit, 'reconnectLimitMs' | 'random' | 'redirectorPort' | 'verifyProof' | 'ownProof' | 'signAck' | 'helloCrypto'>): ConnectionCore {
    const cp = decodeEndpointCheckpoint(input);
    const send = new SendBuffer(cp.sendBudget, cp.send.acked, Buffer.from(cp.send.data, 'base64'));
    send.restoreFin(cp.send.fin ?? undefined);
    const recv = new ReceiveBuffer(cp.receiveWindow, cp.receive.delivered, Buffer.from(cp.receive.data, 'base64'));
    if (cp.receive.fin !== null) recv.fin = cp.receive.fin;
    const core = new ConnectionCore({
      state: 'SUSPENDED',
      role: cp.role,
      localAgent: cp.localAgent as AgentId,
      peerAgent: cp.peerAgent as AgentId,
      connectionId: Buffer.from(cp.connectionId, 'hex'),
      secure: cp.secure,
      peer: { ...cp.peer },
      proven: cp.proven ?? undefined,
      peerEpoch: cp.peerEpoch ?? 0,
      send,
      recv,
      keys: cp.master ? connectionKeysFromMaster(Buffer.from(cp.master, 'hex')) : undefined,
      counters: { sent: cp.controlCounter, received: cp.peerCounter },
      reconnectLimitMs: o.reconnectLimitMs,
      random: o.random,
      redirectorPort: o.redirectorPort,
      verifyProof: o.verifyProof,
      ownProof: o.ownProof,
      signAck: o.signAck,
      helloCrypto: o.helloCrypto,
    });
    // Landed (possibly on another host): the next RES proves that this host speaks for the agent.
    if (core.keys) core.path.proveOurLocation();
    core.intent.autoResume = cp.resume;
    // A socket carried the connection at its source: an open HELLO is no longer taken.
    core.slots.hadSocket = true;
    return core;
  }

  /**
   * What a move carries of this end (taken SUSPENDED, after `detach`); its `resume` is the
   * intent's `autoResume`: whether it lands live. Only a proven peer address travels: an unproven
   * candidate is learned again from the peer's RES or the location service after the move.
   */
  checkpoint(): EndpointCheckpoint {
    const s = this.send.snapshot();
    const r = this.recv.snapshot();
    return {
      v: 1,
      connectionId: this.connectionId.toString('hex'),
      role: this.role,
      localAgent: this.localAgent,
      peerAgent: this.peerAgent,
      secure: this.secure,
      master: this.keys ? this.keys.master.toString('hex') : '',
      controlCounter: this.auth.sent,
      peerCounter: this.auth.received,
      send: { acked: s.acked, data: s.data.toString('base64'), fin: s.fin ?? null },
      receive: { delivered: r.delivered, data: r.data.toString('base64'), fin: r.fin ?? null },
      peer: { ...this.path.peer },
      sendBudget: this.send.budget,
      receiveWindow: this.recv.window,
      resume: this.intent.autoResume,
      proven: { ...this.path.proven },
      peerEpoch: this.path.peerEpoch,
    };
  }

  /**
   * Our resume's dial, decided when its turn comes: none while a dial of an earlier exchange is
   * still out (it dials again if that one fails) or a socket carries the connection already; else
   * to the peer's dial target, its HELLO echoing the peer's challenge.
   */
  resumeDial(): DialCommand | undefined {
    if (!this.slots.mayDialResume()) return undefined;
    const target = this.path.dialTarget();
    return this.slots.askDial('resume', this.path.peerChallenge, target, { ip: target.ip, port: target.redirectorPort });
  }

  /** What `c` comes to, decided at `now` that its turn came. */
  private inTurn(c: InTurn, now: number): Queued['c'][] {
    switch (c.kind) {
      case 'dial_resume':
        return optional(this.resumeDial());
      case 'drop_parked_hello':
        return this.slots.dropParked();
      case 'take_parked_hello':
        return this.slots.unpark((slot) => this.sockets.remoteAddress(slot));
      case 'open_failed':
        // The `timeout` is applied once what is queued before it is out, as any event handed in (stale if the open ended meanwhile).
        this.intent.closedError = c.err;
        this.handle('timeout');
        return [{ kind: 'log', level: 'warn', event: 'open_failed', fields: { code: c.err.code, detail: c.err.message } }];
      case 'open_refused':
        this.intent.closedError ??= c.err;
        return [{ kind: 'count_refusal', err: c.err }];
      case 'forget_sus':
        this.control.forgetSus();
        return [];
      case 'suspend_counted':
        this.dataIn.suspendCounted(now);
        return [];
      case 'peer_resumes':
        // Our resume retry stops (its deadline cleared as a command: the adapter's clock follows
        // it at once, as the timer would otherwise fire early for nothing); the resume is timed.
        this.control.forgetLookup();
        this.intent.peerResumes(now);
        return [{ kind: 'clear', name: 'resume_retry', slot: 0 }];
      case 'auto_resume':
        this.intent.socketLost();
        return [];
      case 'resume_by_datagram':
        return this.resumeByDatagram(now);
      case 'suspend_by_datagram':
        return [this.suspendByDatagram()];
    }
  }

  /**
   * An event a command deferred to a later turn (`fire_later`) is handed in now: applied if the
   * state still takes it, else it comes out as `stale`.
   */
  later(event: Event): void {
    this.queueSlots([{ kind: 'fire', event, ifAccepted: true }]);
  }

  /**
   * Our host's address changed (a roaming host): the sockets to cut, as a network cut would (so
   * that their closes come back as inputs): the carrying and kept ones reset, the in-band open's
   * raw socket closed (the open fails). Our next RES from the new address carries a location proof
   * (the peer has not seen us prove ourselves there, PROTOCOL.md §8.4). Nothing once CLOSED.
   */
  addressChanged(): { slot: number; reset: boolean }[] {
    if (this.current === 'CLOSED') return [];
    if (this.keys) this.path.proveOurLocation();
    const cuts = this.slots.live().map((slot) => ({ slot, reset: true }));
    const opening = this.open.openingSlot;
    if (opening !== undefined) cuts.push({ slot: opening, reset: false });
    return cuts;
  }

  /** The adapter's sockets: the core asks them whether a slot's socket is still usable when it decides. */
  bindSockets(view: SocketView): void {
    this.sockets = view;
  }

  /** The state (as of the last event applied). */
  get state(): State {
    return this.current;
  }

  /** Whether the state accepts `event` now (an event that would not is stale if handed in). */
  accepts(event: Event): boolean {
    return rowOf(this.current, event) !== undefined;
  }

  /** Queue `event`; it is applied when {@link poll} has given out every earlier command. */
  handle(event: Event): void {
    this.events.push(event);
  }

  /**
   * The next command, or undefined when there is nothing left to do. When the commands of the
   * last event are all out, the next queued event is applied at `now`: its row's transition, then
   * its actions. An action the core decides itself (the open's steps `send_connect`,
   * `send_confirm` and `dial`; `cancel_res`) is decided when its turn comes, after the row's
   * earlier commands were carried out, and what it comes to goes out in its place. Commands that
   * wait for everything before them (the parked HELLO an answer frees) come out last.
   */
  poll(now: number): CoreCommand | undefined {
    for (;;) {
      while (this.out.length === 0) {
        const event = this.events.shift();
        if (event !== undefined) this.apply(event, now);
        else if (this.afterAll.length > 0) this.out.push(this.afterAll.shift()!);
        else if (this.setAside.length > 0) this.out.push(...this.setAside.pop()!);
        else {
          // Nothing is being carried out any more: an input now is nobody's row.
          this.idle = true;
          return undefined;
        }
      }
      const q = this.out.shift()!;
      this.idle = false;
      if (q.c.kind === 'fire') {
        const { event, ifAccepted } = q.c;
        if (ifAccepted && !this.accepts(event)) {
          // An event that went stale before its turn (its state passed): nothing changes.
          this.polledRow = q.row;
          return { kind: 'stale', event, state: this.current };
        }
        // An input's event is applied at once, with all it leads to, before the input goes on;
        // a row's waits for the row's end.
        if (!q.row) this.setAside.push(this.out.splice(0));
        this.handle(event);
        continue;
      }
      if (q.c.kind === 'decide') {
        const steps = q.c.then(now);
        this.ahead(steps, q.row);
        continue;
      }
      if (q.c.kind === 'peer_suspends' && !q.row) {
        // Outside a row the peer's SUSPEND is taken now; inside one it waits for a later
        // microtask (the adapter hands it back as peerSuspends), once the row is over.
        this.ahead(this.dataIn.peerSuspends(q.c.slot, now), false);
        continue;
      }
      if (isInTurn(q.c)) {
        const row = q.row;
        this.ahead(this.inTurn(q.c, now), row);
        continue;
      }
      if (q.c.kind === 'act' && !q.decided) {
        const own = this.decide(q.c.action, now);
        if (own) {
          this.ahead(own, true, true);
          continue;
        }
      }
      this.polledRow = q.row;
      return q.c;
    }
  }

  /** Put `steps` at the front of the queue, in their order (`decided`: actions whose part the core already decided). */
  private ahead(steps: readonly QueuedStep[], row: boolean, decided = false): void {
    const n = steps.length;
    if (n === 0) return;
    const out = this.out;
    if (out.length === 0) {
      // Nothing queued behind them: they go in as they are, into the queue's own array.
      for (let i = 0; i < n; i++) out.push({ c: steps[i]!, row, decided });
      return;
    }
    // A new array, not unshift (a call into the runtime, slow while the code is not yet compiled):
    // the queue holds a few commands.
    const front: Queued[] = [];
    for (let i = 0; i < n; i++) front.push({ c: steps[i]!, row, decided });
    for (let i = 0; i < out.length; i++) front.push(out[i]!);
    this.out = front;
  }

  /**
   * Whether the command {@link poll} gave out last belongs to a row of the table (its transition,
   * its actions, what the core's own actions came to), or else to an input (an answer, a frame,
   * an expiry). An event that an input's command hands in is applied at once, before that
   * command goes on; one handed in during a row's command waits for the row's end.
   */
  get inRow(): boolean {
    return this.polledRow;
  }

  /** A new socket slot: a command and the input that answers it name the same socket by it. */
  newSlot(): number {
    return ++this.lastSlot;
  }

  /** A new request id (a request or lookup of ours, the open's CONNECT): its answer names it. */
  newRequestId(): number {
    return ++this.lastRequest;
  }

  /**
   * What an action of the table the core decides (wholly or its part) comes to, in the action's
   * place: the open's steps; `cancel_res` and `send_cls` (our requests); `established` and
   * `checkpoint`, whose part in our requests, recovery and path comes first, the action itself
   * (the adapter's part) after. Undefined: the adapter's action. The cases most frequent on a
   * suspend and resume come first (a switch on strings tries its cases in turn).
   */
  private decide(action: Action, now: number): QueuedStep[] | undefined {
    switch (action) {
      case 'drain':
        // The data sockets' part (core/slots.ts). Without a live socket the drain is over at
        // once, on a later turn.
        return this.slots.drain(this.sockets.isOpen(this.slots.data)) ?? [{ kind: 'fire_later', event: 'drained' }];
      case 'reuse_socket': {
        const r = this.slots.takeReuse();
        return r ? [...r.replaced, ...this.dataIn.reuse(r.slot, r.answer)] : [];
      }
      case 'established': {
        // Resumed (perhaps through the peer's crossing RES): our own RES, if still retransmitting,
        // must stop. Its fresh counter would otherwise reach the peer later and tear the new data
        // socket down again (found by the simulator: a RES that arrived 0.9 s after the resume).
        const cancel = this.control.cancelRes();
        this.recovery.established();
        // Resumed: the peer accepted our location (or did not need a proof of it), and we its.
        this.path.resumed();
        // The open's part, the resume timed; the adapter then re-arms its clock and tells listeners.
        this.dataIn.established(now);
        return [...optional(cancel), { kind: 'established' }];
      }
      case 'send_sus':
        return this.sendSus();
      case 'send_res':
        return this.sendRes(now);
      case 'send_connect':
        return this.fromOpen(this.open.sendConnect(now, () => this.newSlot()));
      case 'send_confirm':
        return this.fromOpen(this.open.sendConfirm());
      case 'dial':
        return this.fromOpen(this.open.dial());
      case 'cancel_res':
        // Our RES, if one is out, is over.
        return optional(this.control.cancelRes());
      case 'send_cls':
        // Whatever else is out is over; the CLS, retried until acknowledged.
        return this.control.close();
      case 'checkpoint': {
        // Our requests stop; the kept socket closes (a move carries no socket); this end is dead
        // once checkpointed: none of its deadlines (a delayed ACK, a socket's drain or HELLO) may
        // fire on it.
        const cancel = this.stopRequests();
        const kept = this.slots.dropKept('moved');
        this.timers.clear();
        return [...optional(cancel), ...kept, { kind: 'act', action }];
      }
      case 'confirmed':
        // A half-open that took the client's RES (the key confirmation): the open is complete,
        // its handshake deadline goes; the resume's own deadline and recovery apply from now.
        this.open.confirmedByRes();
        return [{ kind: 'confirmed' }];
      case 'schedule_resume':
        return this.scheduleResume(now);
      case 'fail':
        // An open that fails ends with its typed error, or as aborted.
        return this.end(this.intent.closedError ?? new FerryError('FERRY_ERR_ABORTED', 'open aborted'));
      case 'closed':
        return this.end(this.intent.closedError);
      case 'drop_socket':
        return this.slots.dropSocket();
      case 'dial_if_dialer':
        // Decided in its turn (core/slots.ts `mayDialResume`).
        return this.slots.isDialer ? [{ kind: 'dial_resume' }] : [];
      default:
        return undefined;
    }
  }

  /**
   * `send_sus`. A user suspend on a live data socket goes in-band (the intent decides): a SUSPEND
   * frame on it (sealed when secure: the AEAD sequence is its replay protection, no control counter
   * or MAC) that is also our DRAIN; the peer's DRAIN answers it. A move's suspend, or one without a
   * live socket, sends the SUS datagram.
   */
  private sendSus(): CoreCommand[] {
    const ds = this.slots.data;
    if (ds !== undefined && this.intent.suspendInBand(this.sockets.isOpen(ds))) {
      this.control.forgetSus();
      this.slots.suspendInband();
      return [{ kind: 'send_suspend', slot: ds, frame: this.flow.suspend() }];
    }
    return [this.suspendByDatagram()];
  }

  /** Our SUS datagram, with the intent's reason. */
  suspendByDatagram(): RequestCommand {
    return this.control.suspend(this.intent.susReason);
  }

  /**
   * Our in-band SUSPEND on `slot` was handed to the socket (`sent`: it took it). Sent, or the
   * socket still up: the peer's DRAIN is awaited (the slot's `drain` deadline). Else the socket is
   * dead: it closes, and the SUS datagram goes instead. Queued ahead of anything: carried out now.
   */
  suspendFrameSent(slot: number, sent: boolean): void {
    const cs: Queued['c'][] = sent || this.sockets.isOpen(slot) ? this.slots.suspendSent(slot) : [{ kind: 'close', slot }, this.suspendByDatagram()];
    const row = this.polledRow;
    this.ahead(cs, row);
  }

  /**
   * `send_res`. With a kept socket and no move on either side (no proof either way: the intent
   * decides), resume on it in-band: a RESUME frame (sealed when secure, the AEAD counter its replay
   * protection; no control counter, MAC or path challenge: the socket is already proven). The peer
   * answers RESUME_ACK and goes on on it, or closes it; a close, or no answer in DRAIN_TIMEOUT_MS,
   * falls back to a RES datagram and a new data socket. Otherwise the kept socket, if any, goes and
   * the RES datagram at once.
   */
  private sendRes(now: number): Queued['c'][] {
    const offer = this.slots.kept;
    if (offer !== undefined && this.intent.resumeInBand(this.sockets.isOpen(offer))) {
      return [...optional(this.intent.resumeOffered(offer, now)), ...this.slots.offerResume()];
    }
    const out: Queued['c'][] = [];
    if (offer !== undefined) out.push(...this.slots.dropKept('not offered'));
    out.push(...this.resumeByDatagram(now));
    return out;
  }

  /**
   * `fail` or `closed`: the connection ends with `err` (the intent keeps the first error). Its
   * data path takes nothing more, our requests stop (the RES still out is cancelled first), every
   * socket closes (the data sockets' slots, the dials still waiting for their HELLO_ACK, then the
   * open's socket dialled ahead and its opening one, if any), no deadline is left (no timer
   * outlives the connection); then `ended` for the adapter's part. Once: a second end comes to
   * nothing.
   */
  private end(err: FerryError | undefined): Queued['c'][] {
    if (this.over) return [];
    this.over = true;
    this.flow.close();
    const out: Queued['c'][] = [];
    const cancel = this.stopRequests();
    if (cancel) out.push(cancel);
    // The control-channel open's CONNECT, if still out, stops too (after the sockets close).
    const connect = this.open.connectRequest;
    const slots = this.slots.ended();
    for (let i = 0; i < slots.length; i++) out.push(slots[i]!);
    const opening = this.open.ended();
    for (let i = 0; i < opening.length; i++) out.push({ kind: 'close', slot: opening[i]! });
    this.timers.clear();
    this.intent.closedError ??= err;
    if (connect !== undefined) out.push({ kind: 'cancel', id: connect });
    out.push({ kind: 'ended', err: this.intent.closedError });
    return out;
  }

  /**
   * `schedule_resume`: the next automatic resume attempt (its `resume_retry` deadline set, which
   * {@link handleTimeout} acts on), nothing (no automatic resume wanted, or moving), or give up:
   * the line to log, and `close` queued (the connection closes with the intent's error).
   */
  private scheduleResume(now: number): CoreCommand[] {
    const d = this.intent.scheduleResume(now);
    if (d.kind !== 'give_up') return [];
    this.handle('close');
    return [{ kind: 'log', level: 'warn', event: 'peer_unreachable', fields: { ms: Math.round(d.brokenMs), code: d.error.code } }];
  }

  /**
   * Nothing of ours is outstanding any more (the end is checkpointed or closed): no resume retry,
   * resume or handshake deadline, SUS or RES. Returns the RES's cancel, if one was out.
   */
  stopRequests(): ControlCommand | undefined {
    this.control.stopResumeRetry();
    this.timers.cancel('resume_deadline');
    this.timers.cancel('handshake');
    const cancel = this.control.cancelRes();
    this.control.forgetSus();
    return cancel;
  }

  /** The open's commands as the core's: its `fire` is queued here (stale if not accepted when applied), its `log` is a log line. */
  private fromOpen(commands: readonly OpenCommand[], into: Queued['c'][] = []): Queued['c'][] {
    for (let i = 0; i < commands.length; i++) {
      const c = commands[i]!;
      if (c.kind === 'fire') this.handle(c.event);
      else if (c.kind === 'log') into.push({ kind: 'log', level: 'info', event: c.event, fields: c.fields });
      else into.push(c);
    }
    return into;
  }

  /** Queue what the open decided on an input: its commands behind the queue, its event for the table. */
  private queueOpen(commands: readonly OpenCommand[]): void {
    const cs = this.fromOpen(commands);
    for (let i = 0; i < cs.length; i++) this.out.push({ c: cs[i]!, row: false });
  }

  // ---------------------------------------------------------------- the data sockets' inputs

  /**
   * Queue what a data socket's input comes to (core/slots.ts), ahead of anything queued: the
   * adapter carries it out at once. An event among them is applied when its turn comes, with
   * all it leads to, before the commands after it; unless the input came while a row's command
   * was being carried out (a socket that reported synchronously): then its commands are that
   * row's, and the event waits for the row's end like any other.
   */
  private queueSlots(commands: readonly (SlotCommand | QueuedStep)[]): void {
    const row = !this.idle && this.polledRow;
    this.ahead(commands, row);
  }

  /**
   * Deadline `e` of a data socket passed (`kept_socket`, `resume_offer`, `drain` or `hello`);
   * `open`: whether its socket is still usable. One of a slot that left that role does nothing.
   */
  slotDeadlinePassed(e: Expiry, open: boolean): void {
    const s = this.slots;
    switch (e.name) {
      case 'kept_socket':
        return this.queueSlots(s.keptExpired(e.slot));
      case 'resume_offer':
        return this.queueSlots(s.offerExpired(e.slot));
      case 'drain':
        return this.queueSlots(s.drainExpired(e.slot, open, this.intent.moving));
      case 'hello':
        if (s.isDialing(e.slot)) this.queueSlots(s.dialFailed(e.slot, new FerryError('FERRY_ERR_HANDSHAKE_TIMEOUT', 'no HELLO_ACK')));
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- the data path's inputs (core/data-inputs.ts)

  /**
   * Frame `f` on `slot`, the socket carrying the connection: what it delivers, acknowledges or ends
   * is taken now (a frame that has no place here throws the typed error that ends the socket), and
   * what it comes to is queued ahead of anything, as a data socket's input (core/data-inputs.ts
   * `frame`).
   */
  frame(slot: number, f: Frame): void {
    this.queueSlots(this.dataIn.frame(slot, f));
  }

  /**
   * A DATA piece on `slot`, the carrying socket, at `offset`: the fast path of a bulk transfer's
   * every read. With nothing queued or being carried out, what {@link frame} would queue (the
   * reader told, then the piece's ACK decided in its turn) needs no round of the queue: the bytes
   * are delivered, the ACK's decision alone is queued, and this returns the bytes delivered (0: a
   * duplicate); the adapter tells the reader if there are any, as a `notify` of an input, then
   * takes the decision ({@link pieceTold}). Otherwise the piece is queued as any frame, and this
   * returns undefined: the adapter drives.
   */
  data(slot: number, offset: number, payload: Buffer): number | undefined {
    if (!this.quiet) {
      this.frame(slot, { type: FrameType.DATA, offset, payload });
      return undefined;
    }
    const n = this.dataIn.piece(slot, offset, payload);
    this.out.push(this.pieceAck);
    // As poll() giving out an input's `notify`: something is carried out, in no row.
    this.idle = false;
    this.polledRow = false;
    return n;
  }

  /**
   * The reader was told of the piece {@link data} took (or it brought nothing new): the command of
   * its ACK, if any (the delayed ACK's deadline, or at the end of the turn), to carry out now.
   * Undefined also when a drive the reader caused took the decision in its turn meanwhile.
   */
  pieceTold(): DataAckCommand | undefined {
    if (this.out[0] !== this.pieceAck) return undefined;
    this.out.shift();
    const c = this.dataIn.pieceAck()[0];
    // As poll() running dry (neither command hands an input in).
    if (this.drained) this.idle = true;
    return c;
  }

  /**
   * Whether nothing is queued or being carried out: an input now goes out alone (the fast path of
   * {@link data}); after it, false until the adapter drove what is left.
   */
  get quiet(): boolean {
    return this.idle && this.drained;
  }

  /** Nothing queued: no command out, no event, nothing waiting for everything before it. */
  private get drained(): boolean {
    return this.out.length === 0 && this.events.length === 0 && this.afterAll.length === 0 && this.setAside.length === 0;
  }

  /** The one step the fast path of {@link data} queues: the piece's ACK, decided in its turn. */
  private readonly pieceAck: Queued = { c: { kind: 'decide', then: () => this.dataIn.pieceAck() }, row: false };

  /**
   * Slot `slot` carries the connection from now on (our dial's HELLO_ACK, the peer's HELLO, or the
   * in-band open's socket, `initialAck` false: its window stands as the open announced it), the
   * peer's stated offsets `peerReceived` and `peerLimit`: the rewind, the slot carried,
   * `socket_ready`, then our offsets restated and the pump (core/data-inputs.ts `attach`).
   */
  attach(slot: number, peerReceived: number, peerLimit: number, initialAck: boolean): void {
    this.queueSlots(this.dataIn.attach(slot, peerReceived, peerLimit, initialAck));
  }

  /** The turn in which an ACK on `slot` was arranged (`ack_at_turn_end`) ended. */
  turnEnded(slot: number): void {
    this.queueSlots(this.dataIn.turnEnded(slot));
  }

  /** The peer's in-band SUSPEND on `slot`, held while a row was carried out (`peer_suspends`), now at `now`. */
  peerSuspends(slot: number, now: number): void {
    this.queueSlots(this.dataIn.peerSuspends(slot, now));
  }

  /** Deferred command `c` is due at `now` ({@link dueAt}): handed in as the input it stands for. */
  deferredDue(c: Deferred, now: number): void {
    switch (c.kind) {
      case 'fire_later':
        return this.later(c.event);
      case 'peer_suspends':
        return this.peerSuspends(c.slot, now);
      case 'ack_at_turn_end':
        return this.turnEnded(c.slot);
    }
  }

  /**
   * The reader takes up to `max` bytes; `ack`, if the peer's window reopens, is to be carried out
   * at once (a reader may call while a row is carried out, and its ACK does not wait for the row).
   */
  read(max: number): { readonly bytes: Buffer | undefined; readonly ack: SendAck | undefined } {
    return this.dataIn.read(max);
  }

  /** The reader holds `bytes` of what it read: the ACK that reopens the peer's window, if room freed, to carry out at once. */
  holding(bytes: number): SendAck | undefined {
    return this.dataIn.holding(bytes);
  }

  /** Our suspend was acknowledged (its SUS answered or failed, or the peer's DRAIN): counted at `now`. */
  suspendCounted(now: number): void {
    this.dataIn.suspendCounted(now);
  }

    /** A frame of type `type` on the socket kept after a suspend, `slot` (core/kept-socket.ts `KeptSocket.frame`). */
  keptFrame(slot: number, type: number): void {
    this.queueSlots(this.slots.keptFrame(slot, type, this.intent.moving));
  }

  /** The data socket of `slot` closed under us (`err`: why; `open`: whether the adapter still finds it usable). */
  socketClosed(slot: number, err: FerryError | undefined, open: boolean): void {
    this.queueSlots(this.slots.closed(slot, err, open, this.intent.moving));
  }

  /** Our dial on `slot` failed (`err`: why, the socket's close or the acceptor's refusal). */
  dialFailed(slot: number, err: FerryError | undefined): void {
    this.queueSlots(this.slots.dialFailed(slot, err));
  }

  /**
   * The peer's HELLO `h` (decoded) on a socket the redirector handed us from `remote`: throws the
   * typed refusal (the redirector answers REJECT); else returns the slot the socket is from now on,
   * and queues what it comes to (core/slots.ts `handed`: answered and attached, or held unread
   * for the peer's proof).
   */
  helloArrived(h: Hello, remote: string | undefined): number {
    const slot = this.newSlot();
    this.queueSlots(this.slots.handed(h, slot, remote));
    return slot;
  }

  /** A frame on our dial `slot`, the acceptor's answer to its HELLO (core/slots.ts `dialFrame`). */
  dialFrame(slot: number, f: Frame): void {
    this.queueSlots(this.slots.dialFrame(slot, f));
  }

  /**
   * The adapter carried out `dial` of `slot`: the socket exists. What that comes to (a data
   * socket's HELLO and its deadline) goes out next, ahead of anything queued: carried out now.
   */
  dialStarted(slot: number): void {
    const row = this.polledRow;
    this.ahead(this.slots.dialStarted(slot), row);
  }

  /**
   * The adapter's `dial` of `slot` threw `err` (reported on a later turn): the in-band open's
   * fails the open (core/open.ts `dialFailed`); a data socket's is lost (core/slots.ts `dialThrew`).
   */
  dialThrew(slot: number, err: unknown): void {
    if (slot === this.open.openingSlot) return this.queueOpen(this.open.dialFailed(slot, err));
    this.queueSlots(this.slots.dialThrew(slot, err));
  }

  // ---------------------------------------------------------------- our control requests' inputs

  /**
   * Queue what an answer to one of our requests comes to (core/control-requests.ts
   * `ControlOutcome`), in its order: the refusal to count, the line to log, the held HELLO to drop,
   * the commands, then the event (stale if the state no longer accepts it); the held HELLO a
   * verified proof frees goes on once that event and all it led to are applied.
   */
  private queueOutcome(o: ControlOutcome): void {
    const push = (c: Queued['c']): void => void this.out.push({ c, row: false });
    if (o.refused) push({ kind: 'count_refusal', err: o.refused });
    if (o.log) push({ kind: 'log', ...o.log });
    if (o.refused) push({ kind: 'drop_parked_hello' });
    for (const c of o.commands ?? []) push(c);
    if (!o.event) return;
    this.handle(o.event);
    if (o.resAcked) this.afterAll.push({ c: { kind: 'take_parked_hello' }, row: false });
  }

  /** The reply to our request `id` (the open's CONNECT, or a SUS, RES or CLS) arrived at `now`. */
  replied(id: number, reply: { type: number; body: Buffer }, now: number): void {
    if (id === this.open.connectRequest) return this.connectAnswered(id, reply);
    this.queueOutcome(this.control.replied(id, reply, now));
    this.susSettled(id);
  }

  /** Our request `id` failed with `err` (no answer, a refusal, aborted) at `now`. */
  requestFailed(id: number, err: unknown, now: number): void {
    if (id === this.open.connectRequest) return this.connectFailed(id, err);
    this.queueOutcome(this.control.failed(id, err, now));
    this.susSettled(id);
  }

  /**
   * Request `id` settled: if it was one of our SUS (outstanding or forgotten), the suspend is
   * counted once all its answer led to is applied (SUSPENDED by then, if it is acknowledged).
   */
  private susSettled(id: number): void {
    if (!this.control.susSettled(id)) return;
    const count: DecideStep = { kind: 'decide', then: (now) => (this.dataIn.suspendCounted(now), []) };
    this.afterAll.push({ c: count, row: false });
  }

  /** Lookup `id` answered `loc` (undefined: nothing newer). */
  located(id: number, loc: PeerLocator | undefined): void {
    this.queueOutcome(this.control.located(id, loc));
  }

  /**
   * Lookup `id` failed: the location service did not answer (`err`: why, logged). A lookup without
   * an answer: a resume tries where the peer was last known, a close sends its CLS again.
   */
  lookupFailed(id: number, err?: unknown): void {
    if (err !== undefined) this.out.push({ c: { kind: 'log', level: 'info', event: 'lookup_failed', fields: { code: isFerryError(err) ? err.code : 'FERRY_ERR_INTERNAL', detail: err instanceof Error ? err.message : String(err) } }, row: false });
    this.queueOutcome(this.control.lookupFailed(id));
  }

  /**
   * The host is stopping (its control channel closed): a close still retrying its CLS ends now,
   * CLOSED with `err` (the intent's), without further tries or lookups. Returns whether it did.
   */
  stop(err: FerryError): boolean {
    if (!this.intent.stop(err)) return false;
    this.control.stopClose();
    this.handle('timeout');
    return true;
  }

  // ---------------------------------------------------------------- our RES datagram

  /**
   * Our RES datagram (`send_res` without a kept socket to offer it on, or that offer's fallback):
   * the commands to carry out now, in order. One from a new location (security on, the peer has
   * not seen us prove where we are) carries this host's proof for our agent if it has one that
   * fits (else the line saying why, and the RES goes unproved). A proved RES is signed with every
   * RES this host sends in this turn (PROTOCOL.md §4.4): `sign_res` hands it to the batch signer,
   * which builds it at its flush ({@link resToSign}), with its counter, and sends it in the same
   * run ({@link resSigned}), so nothing else of ours can take a counter in between.
   */
  resumeByDatagram(now: number): CoreCommand[] {
    const out: CoreCommand[] = [];
    let proved = false;
    if (this.path.mustProve && this.keys) {
      const fit = this.intent.fittingProof(this.ownProof(this.localAgent));
      if (fit.log) out.push({ kind: 'log', ...fit.log });
      proved = fit.proof !== undefined;
    }
    const res = this.control.resume(proved);
    if (!proved) {
      res.build();
      out.push(res.request(undefined, now));
      return out;
    }
    this.signing.set(res.id, res);
    out.push({ kind: 'sign_res', id: res.id });
    return out;
  }

  /** The batch signer's flush: RES `id`, built now with its counter, to sign; undefined when its resume is over (nothing is signed or sent). */
  resToSign(id: number): ConnControl | undefined {
    const m = this.signing.get(id)?.build();
    if (!m) this.signing.delete(id);
    return m;
  }

  /** RES `id` was signed (`proof`) at `now`: it goes out, queued for {@link poll}. */
  resSigned(id: number, proof: ResumeProof, now: number): void {
    const plan = this.signing.get(id);
    if (!plan) return;
    this.signing.delete(id);
    this.out.push({ c: plan.request(proof, now), row: false });
  }

  /** RES `id` could not be built, signed or sent (`err`): logged; if it is still our RES, the attempt ends as unanswered (`timeout`). */
  resUnsigned(id: number, err: unknown): void {
    this.signing.delete(id);
    const log: LogLine = { level: 'warn', event: 'resume_unsent', fields: { code: isFerryError(err) ? err.code : 'FERRY_ERR_INTERNAL', detail: String(err) } };
    this.out.push({ c: { kind: 'log', ...log }, row: false });
    if (this.control.resCurrent(id)) this.handle('timeout');
  }

  /** The `resume_deadline` passed: the resume's data socket was not proven in time. */
  resumeDeadlinePassed(): void {
    this.queueOutcome(this.control.resumeDeadline());
  }

  /**
   * The peer's SUS, RES or CLS `m` (decoded) from `from` at `now`: the decision (core/control-incoming.ts
   * `decideIncoming`: the reply, a retransmission's reply, or the refusal with the CLS it may
   * send), a RES's proof checked with the injected verifier and our RES_ACK's signed with the
   * injected `signAck` when it is asked for and this host has one that fits. An accepted request tells the intent
   * (metrics, the peer's abort) and ends our automatic resume if the peer overtook it; the adapter
   * then drops the kept socket if `dropKept`, applies `event`, and calls {@link incomingApplied}.
   */
  incoming(m: ConnControl, from: string, now: number): IncomingDecision {
    const d = decideIncoming(this, this.control, m, from, this.intent.incomingContext(), { redirectorPort: this.redirectorPort, proofs: this.proofs });
    if (d.kind !== 'accept') return d;
    this.intent.incomingAccepted(d, now);
    if (d.stopAutoResume) this.control.stopResumeRetry();
    // The kept socket goes first (a SUS datagram: the peer resumes on a new socket), ahead of the event.
    if (d.dropKept) this.queueSlots(this.slots.dropKept('SUS datagram'));
    return d;
  }

  /**
   * A RES that asks for our proof: how our RES_ACK is signed, if this host has a proof for our
   * agent that fits (security on); else undefined (the RES_ACK goes unproved) and the line saying
   * why, queued for {@link poll}.
   */
  private ackProver(signAck: CoreInit['signAck']): ((ack: ConnControl) => ResumeProof) | undefined {
    if (!this.keys) return undefined;
    const fit = this.intent.fittingProof(this.ownProof(this.localAgent));
    if (fit.log) this.out.push({ c: { kind: 'log', ...fit.log }, row: false });
    if (!fit.proof || !signAck) return undefined;
    return (ack) => signAck(this.localAgent, ack);
  }

  /**
   * The peer's accepted request (`d`) had its event applied: if a SUS left us SUSPENDED across an
   * application resume(), our resume goes on (`schedule_resume`, as an input: a give-up's `close`
   * is applied at once).
   */
  incomingApplied(d: AcceptedIncoming, now: number): void {
    if (!this.intent.resumeAfterIncoming(d)) return;
    for (const c of this.scheduleResume(now)) this.out.push({ c, row: false });
  }

  /**
   * The peer's SUS, RES or CLS `m` as an input: decided ({@link incoming}), and what it comes to
   * queued for {@link poll}. Refused: the commands the refusal sends (a CLS towards a resuming
   * peer). Accepted: its event; once that and all it led to are applied, {@link incomingApplied};
   * once that is out too, a connection the peer's CLS left CLOSE_ACKED has its drain over on a
   * later turn (`fire_later` drained: applied if the state still takes it, else stale). Returns
   * the decision: the reply to send back, or the refusal to throw.
   */
  peerRequest(m: ConnControl, from: string, now: number): IncomingDecision {
    const d = this.incoming(m, from, now);
    if (d.kind === 'refuse') for (const c of d.commands) this.out.push({ c, row: false });
    if (d.kind !== 'accept') return d;
    this.handle(d.event);
    const closeAcked: DecideStep = { kind: 'decide', then: () => (this.current === 'CLOSE_ACKED' ? [{ kind: 'fire_later', event: 'drained' }] : []) };
    const applied: DecideStep = {
      kind: 'decide',
      then: (t) => {
        this.incomingApplied(d, t);
        this.afterAll.push({ c: closeAcked, row: false });
        return [];
      },
    };
    this.afterAll.push({ c: applied, row: false });
    return d;
  }

  // ---------------------------------------------------------------- the open's inputs

  /** Server: a verified CONNECT (core/open.ts `startServer`): returns the CONNECT_ACK; `recv_connect` takes the end to CONNECT_ACKED. */
  startServer(o: ServerOpen, now: number): Buffer {
    const reply = this.open.startServer(o, now);
    this.handle('recv_connect');
    return reply;
  }

  /** The application's `open()` (core/open.ts `begin`). */
  beginOpen(): void {
    this.queueOpen(this.open.begin());
  }

  /** Control-channel client: CONNECT request `id` was answered. */
  connectAnswered(id: number, reply: { type: number; body: Buffer }): void {
    this.queueOpen(this.open.connectAnswered(id, reply));
  }

  /** Control-channel client: CONNECT request `id` failed. */
  connectFailed(id: number, err: unknown): void {
    this.queueOpen(this.open.connectFailed(id, err));
  }

  /** A raw frame on the opening socket `slot`; throws the typed error that refuses it. */
  openingFrame(slot: number, body: Buffer): void {
    this.queueOpen(this.open.openingFrame(slot, body));
  }

  /** The opening socket `slot` closed (`err`: refused with it; `dialError`: what the dial reported). */
  openingClosed(slot: number, err: FerryError | undefined, dialError?: { code?: string | undefined; message: string }): void {
    this.queueOpen(this.open.openingClosed(slot, err, dialError));
  }

  /** Server: the client's CONNECT_CONFIRM datagram; throws the typed error to answer. */
  confirmDatagram(mac: Buffer): void {
    this.queueOpen(this.open.confirmDatagram(mac));
  }

  /** The `handshake` deadline passed (`socketUp`: the opening socket is still usable). */
  handshakeExpired(e: Expiry, now: number, socketUp: boolean): void {
    this.queueOpen(this.open.handshakeExpired(e, now, socketUp));
  }

  private apply(event: Event, now: number): void {
    const row = rowOf(this.current, event);
    if (!row) {
      this.out.push({ c: { kind: 'stale', event, state: this.current }, row: true });
      return;
    }
    const from = this.current;
    const to = row.to;
    this.current = to;
    if (from !== to) {
      // A resume that is over no longer waits for the proof its parked HELLO needed; a kept
      // socket the new state does not keep is dropped (core/slots.ts), before listeners hear of it.
      const dropped = this.slots.transition(from, to);
      for (let i = 0; i < dropped.length; i++) this.out.push({ c: dropped[i]!, row: true });
      // A resume must finish (its data socket proven) within HANDSHAKE_TIMEOUT_MS of leaving
      // SUSPENDED; otherwise the adapter's `timeout` returns to SUSPENDED and the resumer retries.
      // Without this, an end waiting for the peer's dial would wait forever if that dial failed.
      if (!resuming(to)) this.timers.cancel('resume_deadline');
      else if (!resuming(from)) this.timers.set('resume_deadline', now + limit('HANDSHAKE_TIMEOUT_MS'));
      this.out.push({ c: { kind: 'transition', event, from, to }, row: true });
    }
    const acts = row.acts;
    for (let i = 0; i < acts.length; i++) this.out.push({ c: acts[i]!, row: true });
  }

  /**
   * The clock reached `now`: the earliest deadline due, removed (one at a time: acting on it may
   * set or cancel others). The core acts on every deadline itself: what it comes to is queued for
   * {@link poll}; a data socket's and the open's ask the bound sockets ({@link bindSockets})
   * whether their socket is still up.
   */
  handleTimeout(now: number): void {
    const e = this.timers.nextExpired(now);
    if (!e) return;
    switch (e.name) {
      case 'resume_deadline':
        this.resumeDeadlinePassed();
        return;
      case 'resume_retry': {
        // Look the peer up first if the last answer said so, then resume (nothing: no longer SUSPENDED, or moving).
        const due = this.intent.resumeDue(now);
        if (due === 'resume') this.handle('resume');
        else if (due) this.out.push({ c: due, row: false });
        return;
      }
      case 'close_retry': {
        // Look the peer up first if the last answer said so, else send the CLS again (nothing: the close ended).
        const c = this.control.closeRetryDue();
        if (c) this.out.push({ c, row: false });
        return;
      }
      case 'handshake':
        // The open's (core/open.ts): whether its socket is still up is the adapter's to say.
        this.handshakeExpired(e, now, this.sockets.isOpen(this.open.openingSlot));
        return;
      case 'kept_socket':
      case 'resume_offer':
      case 'drain':
      case 'hello':
        this.slotDeadlinePassed(e, this.sockets.isOpen(e.slot));
        return;
      case 'ack':
        // The delayed ACK: on the carrying socket, else on the one its DATA came on.
        for (const c of this.dataIn.ackExpired()) this.out.push({ c, row: false });
        return;
    }
  }

  /** When the adapter's one clock timer should next fire, if any deadline is set. */
  nextDeadline(): number | undefined {
    return this.timers.nextDeadline();
  }

  /** Counts the changes of the deadlines: while it stays the same, so does {@link nextDeadline}. */
  get deadlinesVersion(): number {
    return this.timers.version;
  }

  /** Set (or move) deadline `name` of socket slot `slot` to `at`. */
  setDeadline(name: TimerName, at: number, slot = 0): void {
    this.timers.set(name, at, slot);
  }

  /** Cancel deadline `name` of `slot`; returns whether it was set. */
  cancelDeadline(name: TimerName, slot = 0): boolean {
    return this.timers.cancel(name, slot);
  }

  /** Whether deadline `name` of `slot` is set. */
  hasDeadline(name: TimerName, slot = 0): boolean {
    return this.timers.has(name, slot);
  }

  /** Cancel every deadline (the connection closed, or was checkpointed for a move). */
  clearDeadlines(): void {
    this.timers.clear();
  }
}
