/**
 * Messages between the host runtime and an agent worker, over the worker's MessagePort.
 *
 * The worker runs untrusted code in the same realm as its bootstrap, so everything it sends is
 * input from an adversary: {@link parseWorkerMessage} checks every field, and a malformed message
 * stops the agent (FERRY_ERR_AGENT_PROTOCOL). Policy is decided on the host side only; nothing the
 * worker says about itself is believed except the byte counts it acknowledges, and those are
 * checked against what the host actually sent.
 *
 * Byte accounting per socket (`sid`): the host numbers the bytes it hands the worker from 0
 * (`data`); the worker acknowledges how many the agent code has actually read (`ack`). The host
 * keeps every byte it sent until acknowledged, so when a worker is torn down for a move the host
 * knows exactly which bytes agent code never saw and carries them to the destination.
 */
import { FerryError, limit, type ErrorCode, ERRORS } from '../util/index.js';

/** What the worker learns at start (`workerData`). Plain structured-clone data. */
export interface WorkerInit {
  readonly agentId: string;
  readonly hostId: string;
  readonly owner: string;
  /** The module source and its SHA-256; the loader serves it under `ferry-agent:<hash>`. */
  readonly code: string;
  readonly codeHash: string;
  /** File URL of the worker-side SDK (`ferry/agent`): the only module agent code may import. */
  readonly sdkUrl: string;
  readonly state: unknown;
  /** Connections that came with the agent (empty on a first launch). */
  readonly connections: readonly SocketInfo[];
  /** True when the agent was listening before its move: the server socket came with it. */
  readonly listening: boolean;
  /** Bytes of unacknowledged writes a socket proxy keeps in flight before write() waits. */
  readonly writeWindow: number;
  /** Per-connection cap on unsent bytes at a move (the grant's maxBufferedBytes). */
  readonly maxBufferedBytes: number;
}

/** A socket as the worker sees it. */
export interface SocketInfo {
  readonly sid: number;
  readonly remoteAgent: string;
  readonly connectionId: string;
  /** This agent opened the connection (ctx.connect); false when it accepted it. */
  readonly initiator: boolean;
  /** The agent already called end() on it (before a move): the proxy starts with its writable side finished. */
  readonly writeEnded: boolean;
}

/** Host -> worker. */
export type HostMessage =
  | { t: 'ping'; seq: number }
  | { t: 'res'; id: number; ok: true; socket?: SocketInfo }
  | { t: 'res'; id: number; ok: false; code: string; message: string }
  | { t: 'data'; sid: number; chunk: Uint8Array }
  | { t: 'rend'; sid: number }
  | { t: 'wack'; sid: number; n: number }
  | { t: 'fack'; sid: number }
  | { t: 'closed'; sid: number; code?: string; message?: string }
  | { t: 'accept'; socket: SocketInfo }
  | { t: 'freeze'; id: number }
  | { t: 'thaw' };

/** Where every socket's consumption stood when the agent's state was snapshotted. */
export type Consumed = [sid: number, offset: number][];

/** Worker -> host. */
export type WorkerMessage =
  | { t: 'pong'; seq: number; external: number }
  | { t: 'boot' }
  | { t: 'ready' }
  | { t: 'req'; id: number; op: 'connect'; to: string }
  | { t: 'req'; id: number; op: 'listen' }
  /** Agent code aborted its pending `ctx.connect` request `id` (its AbortSignal). */
  | { t: 'cancel'; id: number }
  | { t: 'req'; id: number; op: 'migrate'; target: string; state: unknown; consumed: Consumed; queued: number[] }
  | { t: 'frozen'; id: number; ok: true; state: unknown; consumed: Consumed; queued: number[] }
  | { t: 'frozen'; id: number; ok: false; code: string; message: string }
  | { t: 'ack'; sid: number; offset: number }
  | { t: 'write'; sid: number; chunks: Uint8Array[] }
  | { t: 'end'; sid: number }
  | { t: 'close'; sid: number }
  | { t: 'destroy'; sid: number }
  /** The worker let go of a failed socket no agent code listened to: still in the listen queue, or held without an 'error' listener. */
  | { t: 'dropped'; sid: number; why: 'unaccepted' | 'unhandled' }
  | { t: 'unlisten' }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; text: string }
  | { t: 'done'; ok: true; result: unknown }
  | { t: 'done'; ok: false; code: string; message: string };

const violation = (why: string): FerryError => new FerryError('FERRY_ERR_AGENT_PROTOCOL', `worker message: ${why}`);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const uint = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw violation(`${what} must be a non-negative safe integer`);
  return v;
};
const str = (v: unknown, what: string, max: number): string => {
  if (typeof v !== 'string' || v.length > max) throw violation(`${what} must be a string of at most ${max} characters`);
  return v;
};

function consumed(v: unknown): Consumed {
  if (!Array.isArray(v) || v.length > limit('AGENT_MAX_CONNECTIONS') * 2) throw violation('consumed must be a bounded list');
  return v.map((e) => {
    if (!Array.isArray(e) || e.length !== 2) throw violation('consumed entries are [sid, offset]');
    return [uint(e[0], 'sid'), uint(e[1], 'offset')] as [number, number];
  });
}

function sids(v: unknown): number[] {
  if (!Array.isArray(v) || v.length > limit('AGENT_MAX_CONNECTIONS') * 2) throw violation('queued must be a bounded list of sids');
  return v.map((x) => uint(x, 'queued sid'));
}

/** An error code the worker may name: a known Ferry code, else FERRY_ERR_INTERNAL. */
export function knownCode(code: unknown): ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code) ? (code as ErrorCode) : 'FERRY_ERR_INTERNAL';
}

/**
 * Validate one message from a worker. Throws FERRY_ERR_AGENT_PROTOCOL on anything unexpected,
 * including extra structure where bytes are expected (a worker cannot make the host walk an
 * arbitrary object graph beyond these fields; `state` and `result` are opaque and size-checked
 * by the runtime after serialisation).
 */
export function parseWorkerMessage(m: unknown): WorkerMessage {
  if (!isObj(m)) throw violation('not an object');
  switch (m.t) {
    case 'pong':
      return { t: 'pong', seq: uint(m.seq, 'seq'), external: uint(m.external, 'external') };
    case 'boot':
      return { t: 'boot' };
    case 'ready':
      return { t: 'ready' };
    case 'req': {
      const id = uint(m.id, 'id');
      if (m.op === 'connect') return { t: 'req', id, op: 'connect', to: str(m.to, 'to', 64) };
      if (m.op === 'listen') return { t: 'req', id, op: 'listen' };
      if (m.op === 'migrate') return { t: 'req', id, op: 'migrate', target: str(m.target, 'target', 256), state: m.state, consumed: consumed(m.consumed), queued: sids(m.queued) };
      throw violation(`unknown request ${JSON.stringify(String(m.op)).slice(0, 40)}`);
    }
    case 'cancel':
      return { t: 'cancel', id: uint(m.id, 'id') };
    case 'frozen': {
      const id = uint(m.id, 'id');
      if (m.ok === true) return { t: 'frozen', id, ok: true, state: m.state, consumed: consumed(m.consumed), queued: sids(m.queued) };
      return { t: 'frozen', id, ok: false, code: knownCode(m.code), message: str(m.message, 'message', 1024) };
    }
    case 'ack':
      return { t: 'ack', sid: uint(m.sid, 'sid'), offset: uint(m.offset, 'offset') };
    case 'write': {
      const sid = uint(m.sid, 'sid');
      if (!Array.isArray(m.chunks) || m.chunks.length === 0 || m.chunks.length > 1024) throw violation('write.chunks must be a non-empty bounded list');
      let total = 0;
      for (const c of m.chunks) {
        if (!(c instanceof Uint8Array)) throw violation('write chunks must be bytes');
        total += c.byteLength;
      }
      if (total > limit('AGENT_MESSAGE_BYTES')) throw violation(`write of ${total} bytes exceeds AGENT_MESSAGE_BYTES`);
      return { t: 'write', sid, chunks: m.chunks as Uint8Array[] };
    }
    case 'end':
    case 'close':
    case 'destroy':
      return { t: m.t, sid: uint(m.sid, 'sid') };
    case 'dropped':
      if (m.why !== 'unaccepted' && m.why !== 'unhandled') throw violation('dropped.why must be unaccepted or unhandled');
      return { t: 'dropped', sid: uint(m.sid, 'sid'), why: m.why };
    case 'unlisten':
      return { t: 'unlisten' };
    case 'log': {
      const level = m.level === 'warn' || m.level === 'error' ? m.level : 'info';
      return { t: 'log', level, text: str(m.text, 'text', limit('AGENT_LOG_LINE_BYTES') * 4) };
    }
    case 'done':
      if (m.ok === true) return { t: 'done', ok: true, result: m.result };
      return { t: 'done', ok: false, code: knownCode(m.code), message: str(m.message, 'message', 4096) };
    default:
      throw violation(`unknown type ${JSON.stringify(String(m.t)).slice(0, 40)}`);
  }
}
