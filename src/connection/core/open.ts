/**
 * The open of one connection end, sans I/O: what it sends at each step, what a CONNECT_ACK, a
 * REJECT, a CONNECT_CONFIRM or a lost opening socket leads to, the handshake deadline's rules, and
 * which typed error a failed open ends with. Each input returns the {@link OpenCommand}s, which the core
 * queues for the adapter (`endpoint.ts`) to carry out in order (`ConnectionCore.poll`; the core
 * calls the steps `sendConnect`, `sendConfirm` and `dial` itself when their actions' turn comes);
 * deadlines go into the core's timer table.
 *
 * Two ways to open (docs/PROTOCOL.md §5): in-band (default), CONNECT as the first frame of a TCP
 * socket to the peer's redirector, CONNECT_ACK back on it, CONNECT_CONFIRM as the client's next
 * frame, and that socket becomes the data socket; or by control datagram, a CONNECT request, a
 * one-way CONNECT_CONFIRM and a data socket dialled with an open HELLO. An answer names the
 * request id or the socket slot it answers: one that does not name the outstanding one changes
 * nothing, so no late callback of an earlier attempt can act.
 *
 * The cryptography (signatures, X25519, MACs over the transcript) comes in as {@link OpenCrypto}
 * (handshake.ts): the core owns no key generation and no random source of its own.
 */
import type { AgentId, ConnectionKeys, EphemeralKey, Identity, SessionKeys } from '../../identity/index.js';
import { FerryError, errorFromWire, isFerryError, limit } from '../../util/index.js';
import { formatAddress } from '../../control/index.js';
import {
  CONNECTION_ID_BYTES,
  CONNECT_ACK_FRAME_HEAD_BYTES,
  FrameType,
  MessageType,
  connectAckFramePrefix,
  decodeConnectAck,
  decodeConnectAckFrame,
  decodeConnectConfirmFrame,
  decodeFrameBody,
  encodeConnectConfirm,
  encodeConnectConfirmFrame,
  type Connect,
  type ConnectAck,
} from '../../wire/index.js';
import { rejectionFor, type Event } from '../state-machine.js';
import type { ConnectionCore, CoreInit } from './connection-core.js';
import type { Expiry } from './timers.js';
import type { RequestCommand } from './control-requests.js';
import { ZERO_CHALLENGE, type DialCommand, type SlotCommand } from './slots.js';

/** The client's view of an open in progress (built by handshake.ts `buildConnect`). */
export interface ClientHello {
  /** The bytes that open the transcript: the CONNECT body, or (in-band) the whole CONNECT frame body. */
  readonly body: Buffer;
  readonly message: Connect;
  readonly ephemeral: EphemeralKey | undefined;
}

/** What the server's CONNECT_ACK gives the client once it verified. */
export interface AcceptedAck {
  readonly keys: ConnectionKeys | undefined;
  readonly transcript: Buffer;
  readonly open: SessionKeys | undefined;
}

/**
 * The open's cryptography, injected (handshake.ts). Building a CONNECT or CONNECT_ACK draws an
 * ephemeral key (randomness the core has none of); the rest are pure functions of their inputs.
 */
export interface OpenCrypto {
  /** A CONNECT (signed when secure); in-band (`inbandControlPort`), its body is the CONNECT frame's. */
  buildConnect(a: { secure: boolean; clientHalf: Buffer; client: Identity; toAgent: AgentId; redirectorPort: number; window: number; inbandControlPort?: number | undefined }): ClientHello;
  /** The server's CONNECT_ACK to a verified CONNECT, with the keys and transcript hash it fixes. */
  buildConnectAck(a: { connect: Connect; connectBody: Buffer; serverHalf: Buffer; server: Identity; redirectorPort: number; window: number; ackPrefix?: Buffer | undefined }): AcceptedAck & { readonly body: Buffer };
  /** Verify a CONNECT_ACK against our CONNECT (identity, signature, key confirmation); throws a typed error. */
  acceptConnectAck(a: { hello: ClientHello; ack: ConnectAck; expectedServer: AgentId; ackPrefix?: Buffer | undefined }): AcceptedAck;
  /** The client's key confirmation over the transcript. */
  clientFinished(keys: ConnectionKeys | undefined, transcript: Buffer): Buffer;
  /** Whether `mac` is the client's key confirmation. */
  verifyClientFinished(keys: ConnectionKeys | undefined, transcript: Buffer, mac: Buffer): boolean;
}

/** What the adapter must do for the open, in order. */
export type OpenCommand =
  /**
   * In-band client: dial `ip:port` (a redirector) as slot `slot`, sending `first` on it raw (a dial
   * that throws is input {@link OpenHandshake.dialFailed} on a later turn). Control-channel client:
   * at `open()`, dial the peer's redirector `ahead` (the TCP connect overlaps the handshake's round
   * trip); at `dial`, the open's data socket, on that slot (core/slots.ts `askDial`).
   */
  | DialCommand
  /** Control-channel client: the CONNECT request (cancellable: the open may end first); its answer is {@link OpenHandshake.connectAnswered} or {@link OpenHandshake.connectFailed} naming its id. */
  | RequestCommand
  /** Send a raw open frame on socket slot `slot`. */
  | { readonly kind: 'open_send_raw'; readonly slot: number; readonly bytes: Buffer }
  /** A one-way control datagram. */
  | { readonly kind: 'open_oneway'; readonly to: string; readonly type: number; readonly body: Buffer }
  /** Socket slot `slot` becomes the data socket (offsets 0, sealed with `keys` when secure). */
  | { readonly kind: 'open_attach'; readonly slot: number; readonly keys: { readonly send: Buffer; readonly receive: Buffer } | undefined }
  /** Close socket slot `slot` (no close callback follows): a data socket's `close` (core/slots.ts). */
  | Extract<SlotCommand, { readonly kind: 'close' }>
  /** The connection id is known now (the client's, after CONNECT_ACK): index it. */
  | { readonly kind: 'open_indexed' }
  /** Client: the open failed with `err` (it ends CLOSED with it: `timeout` of CONNECT_SENT). */
  | { readonly kind: 'open_failed'; readonly err: FerryError }
  /** Server: the opening socket was refused with `err` (count it; the half-open closes with it). */
  | { readonly kind: 'open_refused'; readonly err: FerryError }
  /** Hand `event` to the table (`ifAccepted`: only if the state still accepts it, else it is stale). */
  | { readonly kind: 'fire'; readonly event: Event; readonly ifAccepted: boolean }
  /** End the connection at once with `err`. */
  | { readonly kind: 'destroy'; readonly err: FerryError }
  /** Log `event` at info (what the open decided that has no other trace). */
  | { readonly kind: 'log'; readonly event: string; readonly fields: Record<string, unknown> };

/** How the client end opens. */
export interface ClientOpen {
  /** In-band (CONNECT as the first frame of a socket to the peer's redirector), or by control datagram. */
  readonly inband: boolean;
  readonly client: Identity;
  /** Announced in the CONNECT: our redirector port, our control port (in-band), our first window. */
  readonly redirectorPort: number;
  readonly controlPort: number;
  readonly window: number;
  readonly crypto: OpenCrypto;
}

/** The server end of a verified CONNECT. */
export interface ServerOpen {
  readonly connect: Connect;
  /** The bytes the client's transcript starts with (the CONNECT body, or the in-band frame body). */
  readonly connectBody: Buffer;
  readonly server: Identity;
  /** Announced in the CONNECT_ACK: our redirector port and first window. */
  readonly redirectorPort: number;
  readonly window: number;
  /** In-band: our control port (in the CONNECT_ACK frame) and the slot of the socket the CONNECT came on. */
  readonly inband?: { readonly controlPort: number; readonly slot: number } | undefined;
  readonly crypto: OpenCrypto;
}

/**
 * The server end a verified CONNECT makes (LISTEN, until the adapter fires `recv_connect`):
 * `from` is the client's IP and control port (in-band: the TCP peer's IP, the port in the frame).
 */
export function serverEnd(connect: Connect, serverHalf: Buffer, from: { ip: string; controlPort: number }): Pick<CoreInit, 'state' | 'role' | 'peerAgent' | 'connectionId' | 'peer' | 'secure'> {
  return {
    state: 'LISTEN',
    role: 'server',
    peerAgent: connect.fromAgent.toString('hex') as AgentId,
    connectionId: Buffer.concat([connect.clientHalf, serverHalf]),
    peer: { ip: from.ip, controlPort: from.controlPort, redirectorPort: connect.redirectorPort, epoch: 0 },
    secure: connect.secure,
  };
}

/** Each end picks half of the connection id: the client in its CONNECT, the server in its CONNECT_ACK. */
const HALF = CONNECTION_ID_BYTES / 2;

const HANDSHAKE_TIMEOUT = (): number => limit('HANDSHAKE_TIMEOUT_MS');

const typed = (err: unknown): FerryError => (isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err)));

/** The open of one connection end (a moved end has none: it was ESTABLISHED when it left). */
export class OpenHandshake {
  private inbandOpen = false;
  private crypto: OpenCrypto | undefined;
  /** Client: the CONNECT in flight (its ephemeral key is dropped once both sides confirmed). */
  private hello: ClientHello | undefined;
  /** The transcript hash, until the key confirmation is no longer needed. */
  private transcript: Buffer | undefined;
  /** In-band: the AEAD keys of the open's socket, until it is attached. */
  private openKeys: SessionKeys | undefined;
  /** In-band: the slot of the socket the handshake runs on, until attached or lost. */
  private opening: number | undefined;
  /** In-band client: where the opening socket was dialled (for the error that names it). */
  private dialedTo = '';
  /** Control-channel client: the slot of the data socket dialled ahead at `open()`, until the open dials it. */
  private ahead: number | undefined;
  /** Control-channel client: the CONNECT request's id. */
  private request: number | undefined;
  /** The server's handshake deadline was given more time once (its open's socket was still up). */
  private extended = false;
  /** Server: the opening socket died without a refusal while the half-open waited for the confirmation. */
  private socketLost = false;

  constructor(private readonly core: ConnectionCore) {}

  /** This end opens (client) or was opened (server) in-band. */
  get inband(): boolean {
    return this.inbandOpen;
  }

  /** In-band: the slot of the socket the handshake still runs on, if any. */
  get openingSlot(): number | undefined {
    return this.opening;
  }

  /** A client end about to open: its CONNECT (the connection id holds our half so far). */
  startClient(o: ClientOpen): void {
    this.inbandOpen = o.inband;
    this.crypto = o.crypto;
    this.hello = o.crypto.buildConnect({
      secure: this.core.secure,
      clientHalf: Buffer.from(this.core.connectionId.subarray(0, HALF)),
      client: o.client,
      toAgent: this.core.peerAgent,
      redirectorPort: o.redirectorPort,
      window: o.window,
      inbandControlPort: o.inband ? o.controlPort : undefined,
    });
  }

  /**
   * A server end for a verified CONNECT: the connection's keys and the client's window, and the
   * CONNECT_ACK to answer with (the reply datagram's body; in-band, the frame to send on the
   * CONNECT's socket). The client must confirm within HANDSHAKE_TIMEOUT_MS.
   */
  startServer(o: ServerOpen, now: number): Buffer {
    // In-band, the frame's prefix (type and our control port) enters the transcript too.
    const prefix = o.inband && connectAckFramePrefix(o.inband.controlPort);
    const ack = o.crypto.buildConnectAck({ connect: o.connect, connectBody: o.connectBody, serverHalf: Buffer.from(this.core.connectionId.subarray(HALF)), server: o.server, redirectorPort: o.redirectorPort, window: o.window, ackPrefix: prefix || undefined });
    this.inbandOpen = o.inband !== undefined;
    this.crypto = o.crypto;
    this.core.keys = ack.keys;
    this.core.send.peerLimit = o.connect.window;
    this.core.recv.announce(o.window);
    this.transcript = ack.transcript;
    this.openKeys = ack.open;
    this.opening = o.inband?.slot;
    this.core.setDeadline('handshake', now + HANDSHAKE_TIMEOUT());
    return prefix ? Buffer.concat([prefix, ack.body]) : ack.body;
  }

  /**
   * The application's `open()`: a control-channel open dials the data socket ahead, overlapping
   * the TCP connect with the handshake's round trip; then the table's `connect`.
   */
  begin(): OpenCommand[] {
    const out: OpenCommand[] = [];
    if (!this.inbandOpen) {
      this.ahead = this.core.newSlot();
      out.push({ kind: 'dial', slot: this.ahead, ip: this.core.path.peer.ip, port: this.core.path.peer.redirectorPort, ahead: true });
    }
    out.push({ kind: 'fire', event: 'connect', ifAccepted: false });
    return out;
  }

  /**
   * `send_connect`. In-band: dial the peer's redirector with CONNECT as the socket's first frame
   * (Node holds it until the TCP handshake completes); CONNECT_ACK or REJECT comes back on it
   * within HANDSHAKE_TIMEOUT_MS. Otherwise the CONNECT request (retransmitted by the channel).
   * `newSlot`: a fresh socket slot (in-band: the socket's).
   */
  sendConnect(now: number, newSlot: () => number): OpenCommand[] {
    const hello = this.hello!;
    const { ip, redirectorPort, controlPort } = this.core.path.peer;
    if (this.inbandOpen) {
      const slot = newSlot();
      this.opening = slot;
      this.dialedTo = formatAddress(ip, redirectorPort);
      this.core.setDeadline('handshake', now + HANDSHAKE_TIMEOUT());
      return [{ kind: 'dial', slot, ip, port: redirectorPort, first: hello.body }];
    }
    this.request = this.core.newRequestId();
    return [{ kind: 'request', id: this.request, purpose: 'connect', to: formatAddress(ip, controlPort), type: MessageType.CONNECT, body: hello.body, opts: {}, cancellable: true }];
  }

  /** In-band client: the dial of `slot` threw (`err`): the peer is unreachable. */
  dialFailed(slot: number, err: unknown): OpenCommand[] {
    if (slot !== this.opening) return [];
    this.opening = undefined;
    return this.failed(new FerryError('FERRY_ERR_PEER_UNREACHABLE', `cannot dial ${this.dialedTo}: ${String(err)}`));
  }

  /** Control-channel client: CONNECT request `id` was answered. */
  connectAnswered(id: number, reply: { type: number; body: Buffer }): OpenCommand[] {
    if (!this.answers(id)) return [];
    try {
      if (reply.type !== MessageType.CONNECT_ACK) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `reply type ${reply.type} to CONNECT`);
      const ack = decodeConnectAck(reply.body);
      this.acceptAck(ack, this.crypto!.acceptConnectAck({ hello: this.hello!, ack, expectedServer: this.core.peerAgent }), this.core.path.peer.controlPort);
    } catch (err) {
      return this.connectFailed(id, err);
    }
    // Settled: nothing of it is left to cancel.
    this.request = undefined;
    return [{ kind: 'open_indexed' }, { kind: 'fire', event: 'recv_connect_ack', ifAccepted: false }];
  }

  /** Control-channel client: CONNECT request `id` failed (tries exhausted, refused, or what its answer led to threw). */
  connectFailed(id: number, err: unknown): OpenCommand[] {
    if (!this.answers(id)) return [];
    this.request = undefined;
    return [{ kind: 'open_failed', err: typed(err) }];
  }

  /** Whether an answer to request `id` still counts: it is the CONNECT, and the open still waits for it. */
  private answers(id: number): boolean {
    return id === this.request && this.core.state === 'CONNECT_SENT';
  }

  /**
   * A raw frame on the opening socket `slot`: the client's CONNECT_ACK or REJECT, the server's
   * CONNECT_CONFIRM. Throws a typed error to refuse the frame (the socket then closes with it).
   */
  openingFrame(slot: number, body: Buffer): OpenCommand[] {
    return this.core.role === 'client' ? this.connectReply(slot, body) : this.confirmFrame(slot, body);
  }

  private connectReply(slot: number, body: Buffer): OpenCommand[] {
    if (this.core.state !== 'CONNECT_SENT' || slot !== this.opening) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `frame type ${body[0]} after CONNECT_ACK`);
    try {
      if (body[0] === FrameType.REJECT) {
        const f = decodeFrameBody(body);
        if (f.type !== FrameType.REJECT) throw new FerryError('FERRY_ERR_INTERNAL', 'REJECT');
        throw errorFromWire(f.wireCode, f.detail);
      }
      const { controlPort, ack } = decodeConnectAckFrame(body);
      const accepted = this.crypto!.acceptConnectAck({ hello: this.hello!, ack, expectedServer: this.core.peerAgent, ackPrefix: body.subarray(0, CONNECT_ACK_FRAME_HEAD_BYTES) });
      this.openKeys = accepted.open;
      // The server's own word for its control port, under its signature (TH), replaces the location's.
      this.acceptAck(ack, accepted, controlPort);
    } catch (err) {
      this.opening = undefined;
      return [{ kind: 'close', slot }, ...this.failed(typed(err))];
    }
    return [{ kind: 'open_indexed' }, { kind: 'fire', event: 'recv_connect_ack', ifAccepted: false }];
  }

  /** The server's CONNECT_ACK verified: the connection's keys, id, the peer's window and ports. */
  private acceptAck(ack: ConnectAck, accepted: AcceptedAck, controlPort: number): void {
    this.core.keys = accepted.keys;
    this.transcript = accepted.transcript;
    this.core.connectionId = Buffer.concat([this.hello!.message.clientHalf, ack.serverHalf]);
    this.core.send.peerLimit = ack.window;
    this.core.path.opened({ controlPort, redirectorPort: ack.redirectorPort });
  }

  /** In-band server: the client's first frame after our CONNECT_ACK must be its confirmation. */
  private confirmFrame(slot: number, body: Buffer): OpenCommand[] {
    const state = this.core.state;
    if (state !== 'CONNECT_ACKED' || slot !== this.opening) throw new FerryError(rejectionFor(state, 'recv_confirm'), `CONNECT_CONFIRM in state ${state}`);
    const mac = decodeConnectConfirmFrame(body);
    if (!this.crypto!.verifyClientFinished(this.core.keys, this.transcript!, mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'client key confirmation failed');
    this.opening = undefined;
    return [this.attach(slot)];
  }

  /**
   * The opening socket `slot` closed (`err`: why, if it was refused; `dialError`: the error the
   * dial reported, if any). Client: the open fails. Server: see below.
   */
  openingClosed(slot: number, err: FerryError | undefined, dialError?: { code?: string | undefined; message: string }): OpenCommand[] {
    if (slot !== this.opening) return [];
    this.opening = undefined;
    if (this.core.role === 'client') {
      const why = dialError ? `: ${dialError.code ?? dialError.message}` : '';
      return this.failed(err ?? new FerryError('FERRY_ERR_PEER_UNREACHABLE', `the socket to ${this.dialedTo} closed before CONNECT_ACK${why}`));
    }
    if (!err) {
      // The socket died without a refusal. The client may have sent its CONNECT_CONFIRM, and be
      // ESTABLISHED: it then resumes, and its RES, under the connection key, confirms the key
      // (CONNECT_ACKED x recv_res). So the half-open stays until its handshake deadline. Dropped
      // at once, the client's resumes were answered UNKNOWN_CONNECTION until its reconnect limit
      // (found by the simulator, and by the tunnel's open cut: docs/TUNNEL.md). If the deadline
      // then comes before a resume could (the loss came late in the handshake time, e.g. after a
      // pause), it is extended once (handshakeExpired).
      this.socketLost = true;
      return [{ kind: 'log', event: 'open_socket_lost', fields: { state: this.core.state } }];
    }
    return [
      { kind: 'open_refused', err },
      { kind: 'fire', event: 'close', ifAccepted: true },
    ];
  }

  /** `send_confirm`: the client's key confirmation, on the open's socket or as a datagram. */
  sendConfirm(): OpenCommand[] {
    const mac = this.crypto!.clientFinished(this.core.keys, this.transcript!);
    if (this.inbandOpen) return [{ kind: 'open_send_raw', slot: this.opening!, bytes: encodeConnectConfirmFrame(mac) }];
    return [{ kind: 'open_oneway', to: formatAddress(this.core.path.peer.ip, this.core.path.peer.controlPort), type: MessageType.CONNECT_CONFIRM, body: encodeConnectConfirm({ connectionId: this.core.connectionId, mac }) }];
  }

  /** `dial`: in-band, the handshake's socket becomes the data socket; otherwise dial it (the socket dialled ahead, if any), its HELLO echoing no challenge. */
  dial(): OpenCommand[] {
    if (!this.inbandOpen) {
      const slot = this.ahead;
      this.ahead = undefined;
      return [this.core.slots.askDial('open', ZERO_CHALLENGE, undefined, { ip: this.core.path.peer.ip, port: this.core.path.peer.redirectorPort }, slot)];
    }
    const slot = this.opening!;
    this.opening = undefined;
    return [this.attach(slot)];
  }

  /** The open's socket becomes the data socket, sealed with the open's keys (each end sends under its own direction's). */
  private attach(slot: number): OpenCommand {
    const k = this.openKeys;
    this.openKeys = undefined;
    const keys = k && (this.core.role === 'client' ? { send: k.c2s, receive: k.s2c } : { send: k.s2c, receive: k.c2s });
    return { kind: 'open_attach', slot, keys };
  }

  /**
   * Server: the client's CONNECT_CONFIRM datagram (its MAC). Throws the typed error to answer
   * (an in-band open is confirmed on its own socket, never by datagram).
   */
  confirmDatagram(mac: Buffer): OpenCommand[] {
    const state = this.core.state;
    if (this.inbandOpen) throw new FerryError('FERRY_ERR_ILLEGAL_TRANSITION', 'CONNECT_CONFIRM datagram for an in-band open');
    if (!this.transcript) {
      // Already confirmed by the open HELLO, and the transcript was dropped: nothing left to do.
      if (state === 'ESTABLISHED') return [];
      throw new FerryError(rejectionFor(state, 'recv_confirm'));
    }
    if (!this.crypto!.verifyClientFinished(this.core.keys, this.transcript, mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'client key confirmation failed');
    if (state === 'CONNECT_ACKED' || state === 'ESTABLISHED') return [{ kind: 'fire', event: 'recv_confirm', ifAccepted: false }];
    throw new FerryError(rejectionFor(state, 'recv_confirm'));
  }

  /**
   * The `handshake` deadline passed (`socketUp`: the opening socket is still usable).
   * Client (in-band open): no CONNECT_ACK in time. Server: the client never confirmed.
   */
  handshakeExpired(e: Expiry, now: number, socketUp: boolean): OpenCommand[] {
    if (this.core.role === 'client') return this.failed(new FerryError('FERRY_ERR_HANDSHAKE_TIMEOUT', 'no CONNECT_ACK'));
    const waiting = this.core.state === 'CONNECT_ACKED';
    if (!this.extended && waiting && ((socketUp && this.opening !== undefined) || this.socketLost)) {
      // The open's socket is still up but nothing verified on it. If this process did not run
      // for a while (stopped, or its machine slept: the deadline then fires before the input
      // that queued meanwhile is read), the client may be ESTABLISHED with its confirmation on
      // the way (found by the simulator: a clock jump across the deadline). Likewise a socket
      // lost without a refusal: the client, ESTABLISHED, notices the loss and resumes, and its RES
      // confirms the half-open; a pause that used up most of the handshake time left it no time
      // to (simulator seed 50088801: a jump of 4,989 ms, the socket reset 8 ms before the
      // deadline). One more handshake time, once: a silent client then holds its half-open slot
      // at most twice as long.
      this.extended = true;
      this.core.setDeadline('handshake', now + HANDSHAKE_TIMEOUT());
      return [{ kind: 'log', event: 'handshake_deadline_extended', fields: { lateMs: Math.round(now - e.at) } }];
    }
    // Only a half-open still waiting for its confirmation times out: one the client's RES
    // confirmed had this deadline cancelled (confirmedByRes).
    return [{ kind: 'fire', event: 'timeout', ifAccepted: true }];
  }

  /**
   * A data socket was attached and the state is ESTABLISHED: the CONNECT is no longer needed,
   * nor (client) the transcript; the server keeps it for a CONNECT_CONFIRM still on its way.
   */
  socketEstablished(): void {
    this.hello = undefined;
    if (this.core.role === 'client') this.transcript = undefined;
  }

  /**
   * `established`: the open (or a resume) completed; the handshake deadline goes. Once a data
   * socket was had, both sides confirmed: the handshake's secrets and transcript go (memory per
   * idle connection, and the ephemeral private key should not outlive the open).
   */
  established(hadSocket: boolean): void {
    this.core.cancelDeadline('handshake');
    if (!hadSocket) return;
    this.hello = undefined;
    this.transcript = undefined;
  }

  /**
   * `confirmed`: the client's RES, under the connection key, confirmed the key of this half-open
   * (CONNECT_ACKED x recv_res). The open is complete: its handshake deadline goes, and the
   * connection goes to the agent (host.ts) while it resumes, as any other connection whose socket
   * died. Before, the half-open was dropped at its handshake deadline if the resume had not
   * finished, and the client, ESTABLISHED, failed PEER_ABORTED (simulator seed 80062219: a pause
   * of 4,707 ms left 235 ms of the handshake time, too little for a resume under 30 % loss).
   */
  confirmedByRes(): void {
    this.core.cancelDeadline('handshake');
  }

  /** Control-channel client: the CONNECT request's id, until it settles or the open ends (a CONNECT still out is then cancelled). */
  get connectRequest(): number | undefined {
    return this.request;
  }

  /** The connection ended: nothing of the open is left to act on. Returns the slots of its sockets still open (the one dialled ahead and never used, the opening one), to close. */
  ended(): number[] {
    const open = [this.ahead, this.opening].filter((s): s is number => s !== undefined);
    this.opening = undefined;
    this.ahead = undefined;
    this.openKeys = undefined;
    this.request = undefined;
    return open;
  }

  /** The open failed with `err`, if it is still the client's open in progress (once; later failures change nothing). */
  private failed(err: FerryError): OpenCommand[] {
    if (this.core.state !== 'CONNECT_SENT') return [];
    return [{ kind: 'open_failed', err }];
  }
}
