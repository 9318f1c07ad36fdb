/**
 * The endpoint checkpoint's codec: what a migration carries of one connection, checked field by
 * field on the way in. A checkpoint crosses between hosts (over the authenticated migration
 * channel, as JSON), so the destination never trusts it through a cast: a wrong type, a value out
 * of range, a secret of the wrong length, a non-canonical base64 buffer, or bytes beyond what the
 * budgets allow are refused with FERRY_ERR_MALFORMED_CHECKPOINT before anything is built, and
 * an unknown version with FERRY_ERR_UNSUPPORTED_VERSION. The JSON shape (version 1) is unchanged.
 */
import { FerryError, limit } from '../util/index.js';
import type { Role } from '../wire/index.js';

/** Where a peer endpoint lives: its host's address, ports, and the location epoch it was seen at. */
export interface PeerLocator {
  ip: string;
  controlPort: number;
  redirectorPort: number;
  /** Location epoch this locator came from (0 when learned from the peer itself). */
  epoch: number;
}

/** Where a peer last proved itself: at open, or by a verified location proof (docs/DELEGATION.md). */
export interface ProvenLocation {
  ip: string;
  controlPort: number;
  redirectorPort: number;
}

/** A serialisable snapshot of a suspended endpoint: everything a move carries. */
export interface EndpointCheckpoint {
  v: 1;
  connectionId: string;
  role: Role;
  localAgent: string;
  peerAgent: string;
  secure: boolean;
  /** Connection master secret (hex), or '' without security. Handle as a secret. */
  master: string;
  controlCounter: number;
  peerCounter: number;
  send: { acked: number; data: string; fin: number | null };
  receive: { delivered: number; data: string; fin: number | null };
  peer: PeerLocator;
  sendBudget: number;
  receiveWindow: number;
  /** Whether the endpoint should resume on arrival (it was not suspended by the agent). */
  resume: boolean;
  /** Where the peer last proved itself (absent in older checkpoints: `peer`). */
  proven?: ProvenLocation;
  /** Highest delegation epoch accepted from the peer (absent: 0). */
  peerEpoch?: number;
}

/** Connection ids are 16 bytes, agent ids 16 bytes, the master secret 32 bytes (all hex). */
const CONNECTION_ID_HEX = 32;
const AGENT_ID_HEX = 32;
const MASTER_HEX = 64;
/** Longest address text accepted (an IPv6 literal with a zone is well under this). */
const MAX_IP_CHARS = 64;
/** The largest budget or window a checkpoint may name: what travels is bounded by the checkpoint limit anyway. */
const MAX_BUFFER_BYTES = limit('MAX_CHECKPOINT_BYTES');

function bad(field: string, why: string): never {
  throw new FerryError('FERRY_ERR_MALFORMED_CHECKPOINT', `checkpoint ${field}: ${why}`);
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'not an object');
  return v as Record<string, unknown>;
}

function int(v: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) bad(field, `not an integer in [0, ${max}]`);
  // -0 (JSON.parse('-0')) passes the checks; it is 0, and a checkpoint decoded twice must be equal.
  return v + 0;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') bad(field, 'not a boolean');
  return v;
}

function hex(v: unknown, field: string, chars: number): string {
  if (typeof v !== 'string' || v.length !== chars || !/^[0-9a-f]*$/.test(v)) bad(field, `not ${chars} lower-case hex digits`);
  return v;
}

function port(v: unknown, field: string): number {
  const p = int(v, field, 65535);
  if (p === 0) bad(field, 'port 0');
  return p;
}

function ip(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_IP_CHARS || !/^[0-9A-Za-z.:%]+$/.test(v)) bad(field, 'not an IP address');
  return v;
}

/** Canonical base64 of at most `max` bytes: the length is checked before anything is decoded. */
function base64(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') bad(field, 'not a string');
  if (v.length > Math.ceil(max / 3) * 4) bad(field, `more than ${max} bytes`);
  if (v.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) bad(field, 'not canonical base64');
  if (Buffer.from(v, 'base64').toString('base64') !== v) bad(field, 'not canonical base64');
  return v;
}

function fin(v: unknown, field: string, from: number, to: number): number | null {
  if (v === null) return null;
  const f = int(v, field);
  if (f < from || f > to) bad(field, `FIN at ${f} outside [${from}, ${to}]`);
  return f;
}

function location(v: unknown, field: string): ProvenLocation {
  const o = obj(v, field);
  return { ip: ip(o.ip, `${field}.ip`), controlPort: port(o.controlPort, `${field}.controlPort`), redirectorPort: port(o.redirectorPort, `${field}.redirectorPort`) };
}

/**
 * Check an endpoint checkpoint from another host (parsed JSON) field by field and return it
 * typed. Never trusts the input: every field is checked for type and range, and the buffers'
 * sizes against the budgets the checkpoint names (a sender may exceed its budget by at most one
 * chunk and the Writable's queue, so the send data may be up to `MAX_CHECKPOINT_BYTES`).
 *
 * @throws FerryError `FERRY_ERR_UNSUPPORTED_VERSION` for a version other than 1,
 *   `FERRY_ERR_MALFORMED_CHECKPOINT` for any bad field.
 */
export function decodeEndpointCheckpoint(input: unknown): EndpointCheckpoint {
  const o = obj(input, '(root)');
  // The version is named only when it is a number: String() of an object can throw (toString: 0).
  if (o.v !== 1) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `checkpoint version ${typeof o.v === 'number' ? o.v : typeof o.v}`);
  const role = o.role;
  if (role !== 'client' && role !== 'server') bad('role', 'neither client nor server');
  const secure = bool(o.secure, 'secure');
  const master = secure ? hex(o.master, 'master', MASTER_HEX) : o.master === '' ? '' : bad('master', 'must be empty without security');
  const sendBudget = int(o.sendBudget, 'sendBudget', MAX_BUFFER_BYTES);
  const receiveWindow = int(o.receiveWindow, 'receiveWindow', MAX_BUFFER_BYTES);
  if (sendBudget === 0 || receiveWindow === 0) bad('sendBudget/receiveWindow', 'zero');
  const s = obj(o.send, 'send');
  const sendData = base64(s.data, 'send.data', MAX_BUFFER_BYTES);
  const sendBytes = Buffer.byteLength(sendData, 'base64');
  const acked = int(s.acked, 'send.acked', Number.MAX_SAFE_INTEGER - sendBytes);
  const r = obj(o.receive, 'receive');
  // Unread received bytes never exceed the window the receiver granted.
  const receiveData = base64(r.data, 'receive.data', receiveWindow);
  const receiveBytes = Buffer.byteLength(receiveData, 'base64');
  const delivered = int(r.delivered, 'receive.delivered', Number.MAX_SAFE_INTEGER - receiveBytes);
  const peer = obj(o.peer, 'peer');
  const cp: EndpointCheckpoint = {
    v: 1,
    connectionId: hex(o.connectionId, 'connectionId', CONNECTION_ID_HEX),
    role,
    localAgent: hex(o.localAgent, 'localAgent', AGENT_ID_HEX),
    peerAgent: hex(o.peerAgent, 'peerAgent', AGENT_ID_HEX),
    secure,
    master,
    controlCounter: int(o.controlCounter, 'controlCounter'),
    peerCounter: int(o.peerCounter, 'peerCounter'),
    // A FIN, once written, is at the end of what was written; one received, at or past what is held.
    send: { acked, data: sendData, fin: fin(s.fin, 'send.fin', acked + sendBytes, acked + sendBytes) },
    receive: { delivered, data: receiveData, fin: fin(r.fin, 'receive.fin', delivered + receiveBytes, Number.MAX_SAFE_INTEGER) },
    peer: { ...location(peer, 'peer'), epoch: int(peer.epoch, 'peer.epoch') },
    sendBudget,
    receiveWindow,
    resume: bool(o.resume, 'resume'),
  };
  if (o.proven !== undefined) cp.proven = location(o.proven, 'proven');
  if (o.peerEpoch !== undefined) cp.peerEpoch = int(o.peerEpoch, 'peerEpoch');
  return cp;
}
