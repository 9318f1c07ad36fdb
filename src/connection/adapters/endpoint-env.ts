/**
 * What a connection end is given by its host ({@link EndpointEnv}), and what its core is built
 * with from that: the limits, randomness, the location proofs' checks and signatures, the HELLO's
 * and the open's cryptography. The core has none of these of its own (core/ is sans-I/O and
 * imports no cryptography): they are injected here, once per core.
 */
import type { AgentId } from '../../identity/index.js';
import { FerryError, type Clock, type ErrorCode, type Logger } from '../../util/index.js';
import type { PeerLocator } from '../checkpoint.js';
import { ReceiveBuffer, SendBuffer } from '../data-path.js';
import type { StreamSocket } from '../data-socket.js';
import type { Endpoint } from '../endpoint.js';
import { acceptConnectAck, buildConnect, buildConnectAck, clientFinished, fresh, helloAckMac, helloMac, verifyClientFinished } from '../handshake.js';
import type { ReceiveBudget } from '../receive-budget.js';
import { signResume, verifyResumeProof, type LocationProof } from '../resume-proof.js';
import { ConnectionCore, type CoreInit, type HelloCrypto, type OpenCrypto } from '../core/index.js';

/** What an endpoint needs from its host. */
export interface EndpointEnv {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Security on: signed handshake, MACs, sealed frames. */
  readonly security: boolean;
  /** This host's redirector port, announced in CONNECT and RES. */
  readonly redirectorPort: number;
  /** This host's control (UDP) port, announced in the in-band CONNECT and CONNECT_ACK. */
  readonly controlPort: number;
  /**
   * Open in-band (default): CONNECT as the first frame of the TCP socket to the peer's redirector,
   * CONNECT_ACK back on it, CONNECT_CONFIRM as the client's next frame, and that socket is the
   * data socket. False: the control-channel open (UDP CONNECT, then a HELLO on the data socket).
   */
  readonly inbandOpen?: boolean;
  readonly sendBudget: number;
  readonly receiveWindow: number;
  /** `n` random bytes for the cores (nonces, path challenges); default the CSPRNG (`fresh`). */
  readonly randomBytes?: (n: number) => Buffer;
  /**
   * The host's receive budget: what every connection here holds and lets its peer send, per host,
   * agent and source address (receive-budget.ts). Absent: each window is simply `receiveWindow`.
   */
  readonly receiveBudget?: ReceiveBudget;
  readonly reconnectLimitMs: number;
  /** A control request to `to` ("ip:port"); rejects with a FerryError. */
  request(to: string, type: number, body: Buffer, opts?: { maxTries?: number; signal?: AbortSignal; timeoutMs?: number }): Promise<{ type: number; body: Buffer; from: string }>;
  /** A one-way control datagram. */
  oneway(to: string, type: number, body: Buffer): void;
  /** Open a TCP socket to a redirector. */
  dial(ip: string, port: number): StreamSocket;
  /** The agent's location, waiting up to `waitMs` for an epoch newer than `newerThan`. */
  locate(agent: AgentId, newerThan: number, waitMs: number): Promise<PeerLocator | undefined>;
  /** The connection id became known (client, after CONNECT_ACK): index it. */
  indexed(ep: Endpoint): void;
  /** The endpoint closed: forget it. */
  released(ep: Endpoint): void;
  /** Wall clock (Unix ms) for delegation validity (default Date.now); never the monotonic clock. */
  readonly wallClock?: () => number;
  /**
   * Run `fn` after the current turn, once the I/O it started has been queued (default
   * `setImmediate`): write coalescing and delayed ACKs. The simulator defers on its virtual clock.
   */
  readonly defer?: (fn: () => void) => void;
  /**
   * The proof that this host speaks for `agent` (its delegation chain, and the host's batch signer
   * with its key), sent in a RES from a new location and in a RES_ACK that is asked for one.
   * Undefined: cannot prove.
   */
  locationProof?(agent: AgentId): LocationProof | undefined;
  /** A refusal decided inside the endpoint (a RES_ACK's proof), for the host's counters. */
  refused?(code: ErrorCode): void;
}

/** The HELLO's MACs (handshake.ts), injected into the core's slots. */
const HELLO_CRYPTO: HelloCrypto = { helloMac, helloAckMac };

/** The open's cryptography (handshake.ts), injected into the core's open. */
export const OPEN_CRYPTO: OpenCrypto = { buildConnect, buildConnectAck, acceptConnectAck, clientFinished, verifyClientFinished };

/** What {@link coreEnv} gives every core of a host. */
type CoreEnv = Pick<CoreInit, 'reconnectLimitMs' | 'random' | 'redirectorPort' | 'verifyProof' | 'ownProof' | 'signAck' | 'helloCrypto'>;

/** Each host's {@link CoreEnv}, made at its first core: the same for all its cores. */
const CORE_ENVS = new WeakMap<EndpointEnv, CoreEnv>();

/** What every core of this host is given: limits, randomness, our redirector port, how proofs are checked and signed, the HELLO's MACs. */
export function coreEnv(env: EndpointEnv): CoreEnv {
  let e = CORE_ENVS.get(env);
  if (!e) CORE_ENVS.set(env, (e = makeCoreEnv(env)));
  return e;
}

function makeCoreEnv(env: EndpointEnv): CoreEnv {
  return {
    reconnectLimitMs: env.reconnectLimitMs,
    random: env.randomBytes ?? fresh,
    redirectorPort: env.redirectorPort,
    // Delegation validity is wall-clock time.
    verifyProof: (m, peerAgent, peerEpoch) => verifyResumeProof(m, peerAgent, peerEpoch, (env.wallClock ?? Date.now)()).epoch,
    ownProof: (agent) => env.locationProof?.(agent),
    helloCrypto: HELLO_CRYPTO,
    signAck: (agent, ack) => {
      const p = env.locationProof?.(agent);
      if (!p) throw new FerryError('FERRY_ERR_RESUME_UNPROVEN', 'no location proof');
      return signResume(ack, p);
    },
  };
}

/** A new connection end's core for our agent `localAgent` (no checkpoint: counters at 0). */
export function newCore(env: EndpointEnv, localAgent: AgentId, init: NewCore): ConnectionCore {
  const h = coreEnv(env);
  // Spelled out rather than spread: an open builds one per end, before its code is warm.
  return new ConnectionCore({
    state: init.state,
    role: init.role,
    localAgent,
    peerAgent: init.peerAgent,
    connectionId: init.connectionId,
    secure: init.secure,
    peer: init.peer,
    send: new SendBuffer(env.sendBudget),
    recv: new ReceiveBuffer(env.receiveWindow),
    reconnectLimitMs: h.reconnectLimitMs,
    random: h.random,
    redirectorPort: h.redirectorPort,
    verifyProof: h.verifyProof,
    ownProof: h.ownProof,
    signAck: h.signAck,
    helloCrypto: h.helloCrypto,
  });
}

/** What a new connection end is, besides what its host gives every core ({@link coreEnv}). */
export type NewCore = Pick<CoreInit, 'state' | 'role' | 'peerAgent' | 'connectionId' | 'secure' | 'peer'>;

/** The window a new connection announces in its CONNECT or CONNECT_ACK: the floor of the budget. */
export function firstWindow(env: EndpointEnv): number {
  return Math.min(env.receiveWindow, env.receiveBudget?.limits.floor ?? env.receiveWindow);
}
