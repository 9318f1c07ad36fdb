/**
 * Bodies of the connection's control datagrams (carried after the datagram header of
 * datagram.ts). Open is three messages (CONNECT -> CONNECT_ACK, then CONNECT_CONFIRM), as in the
 * NapletSocket paper's CONNECT / ACK + socket id / client id; SUS, RES and CLS are requests
 * answered by their _ACK, all authenticated under the connection's control key and numbered
 * with a per-sender counter that must strictly increase (replay protection).
 * Byte layouts: docs/PROTOCOL.md.
 */
import { FerryError } from '../util/index.js';
import { Reader, Writer } from './bytes.js';
import { CONNECTION_ID_BYTES, NONCE_BYTES, roleFromByte, roleToByte, type Role } from './frames.js';

/** Control message types (the datagram header's `type`). */
export const MessageType = {
  CONNECT: 1,
  CONNECT_ACK: 2,
  CONNECT_CONFIRM: 3,
  SUS: 4,
  SUS_ACK: 5,
  RES: 6,
  RES_ACK: 7,
  CLS: 8,
  CLS_ACK: 9,
} as const;

const ID = 16;
const HALF = 8;
const PUB = 32;
const SIG = 64;
const MAC = 32;
const FLAG_SECURE = 0x01;
const M = 'FERRY_ERR_MALFORMED_DATAGRAM' as const;

/** CONNECT: client host -> server host. Signed by the client agent when secure. */
export interface Connect {
  secure: boolean;
  clientHalf: Buffer;
  fromAgent: Buffer;
  toAgent: Buffer;
  clientAgentKey: Buffer;
  redirectorPort: number;
  /** Bytes the client will accept beyond what its application has read (its buffer budget). */
  window: number;
  /** X25519 ephemeral (secure only, else empty). */
  ephemeral: Buffer;
  /** Ed25519 signature by the client agent over {@link connectSigned} (secure only). */
  signature: Buffer;
}

/** CONNECT_ACK: server host -> client host, reply to CONNECT. */
export interface ConnectAck {
  secure: boolean;
  serverHalf: Buffer;
  serverAgentKey: Buffer;
  redirectorPort: number;
  window: number;
  ephemeral: Buffer;
  /** Ed25519 signature by the server agent over the transcript hash (secure only). */
  signature: Buffer;
  /** Key confirmation: HMAC(confirmServer, "ferry/1 server finished" || TH) (secure only). */
  mac: Buffer;
}

/** CONNECT_CONFIRM: client host -> server host, one way: the client's key confirmation. */
export interface ConnectConfirm {
  connectionId: Buffer;
  mac: Buffer;
}

/** SUS/RES/CLS and their replies: authenticated, counter-numbered connection control. */
export interface ConnControl {
  type: (typeof MessageType)[keyof Omit<typeof MessageType, 'CONNECT' | 'CONNECT_ACK' | 'CONNECT_CONFIRM'>];
  connectionId: Buffer;
  senderRole: Role;
  /** Request: the sender's counter. Reply: the counter of the request it answers. */
  counter: number;
  /** SUS: 0 user, 1 move. CLS: 0 graceful, 1 abort. Others: 0. */
  reason: number;
  /** RES / RES_ACK: the sender's current redirector port. Others: 0. */
  redirectorPort: number;
  /** RES / RES_ACK: a fresh path challenge the dialer must echo in its HELLO. Others: zeros. */
  challenge: Buffer;
  mac: Buffer;
}

const ZERO_NONCE = Buffer.alloc(NONCE_BYTES);

/** The CONNECT fields covered by the client's signature (everything but the signature). */
export function connectSigned(c: Omit<Connect, 'signature'>): Buffer {
  const w = new Writer()
    .u8(c.secure ? FLAG_SECURE : 0)
    .fixed(c.clientHalf, HALF, 'clientHalf')
    .fixed(c.fromAgent, ID, 'fromAgent')
    .fixed(c.toAgent, ID, 'toAgent')
    .fixed(c.clientAgentKey, PUB, 'clientAgentKey')
    .u16(c.redirectorPort)
    .u64(c.window);
  if (c.secure) w.fixed(c.ephemeral, PUB, 'ephemeral');
  return w.finish();
}

/** Encode a CONNECT body. */
export function encodeConnect(c: Connect): Buffer {
  const head = connectSigned(c);
  return c.secure ? Buffer.concat([head, fixed(c.signature, SIG, 'signature')]) : head;
}

/** Decode a CONNECT body, strictly. */
export function decodeConnect(body: Buffer): Connect {
  const r = new Reader(body, M);
  const flags = r.u8('flags');
  if (flags & ~FLAG_SECURE) throw new FerryError(M, `CONNECT flags ${flags}`);
  const secure = (flags & FLAG_SECURE) !== 0;
  const c: Connect = {
    secure,
    clientHalf: r.bytes(HALF, 'clientHalf'),
    fromAgent: r.bytes(ID, 'fromAgent'),
    toAgent: r.bytes(ID, 'toAgent'),
    clientAgentKey: r.bytes(PUB, 'clientAgentKey'),
    redirectorPort: r.u16('redirectorPort'),
    window: r.u64('window'),
    ephemeral: secure ? r.bytes(PUB, 'ephemeral') : Buffer.alloc(0),
    signature: secure ? r.bytes(SIG, 'signature') : Buffer.alloc(0),
  };
  r.end('CONNECT');
  return c;
}

/** The CONNECT_ACK fields that enter the transcript hash (before signature and MAC). */
export function connectAckHead(a: Omit<ConnectAck, 'signature' | 'mac'>): Buffer {
  const w = new Writer()
    .u8(a.secure ? FLAG_SECURE : 0)
    .fixed(a.serverHalf, HALF, 'serverHalf')
    .fixed(a.serverAgentKey, PUB, 'serverAgentKey')
    .u16(a.redirectorPort)
    .u64(a.window);
  if (a.secure) w.fixed(a.ephemeral, PUB, 'ephemeral');
  return w.finish();
}

/** Encode a CONNECT_ACK body. */
export function encodeConnectAck(a: ConnectAck): Buffer {
  const head = connectAckHead(a);
  return a.secure ? Buffer.concat([head, fixed(a.signature, SIG, 'signature'), fixed(a.mac, MAC, 'mac')]) : head;
}

/** Decode a CONNECT_ACK body, strictly. */
export function decodeConnectAck(body: Buffer): ConnectAck {
  const r = new Reader(body, M);
  const flags = r.u8('flags');
  if (flags & ~FLAG_SECURE) throw new FerryError(M, `CONNECT_ACK flags ${flags}`);
  const secure = (flags & FLAG_SECURE) !== 0;
  const a: ConnectAck = {
    secure,
    serverHalf: r.bytes(HALF, 'serverHalf'),
    serverAgentKey: r.bytes(PUB, 'serverAgentKey'),
    redirectorPort: r.u16('redirectorPort'),
    window: r.u64('window'),
    ephemeral: secure ? r.bytes(PUB, 'ephemeral') : Buffer.alloc(0),
    signature: secure ? r.bytes(SIG, 'signature') : Buffer.alloc(0),
    mac: secure ? r.bytes(MAC, 'mac') : Buffer.alloc(0),
  };
  r.end('CONNECT_ACK');
  return a;
}

/** Encode a CONNECT_CONFIRM body. */
export function encodeConnectConfirm(c: ConnectConfirm): Buffer {
  return new Writer().fixed(c.connectionId, CONNECTION_ID_BYTES, 'connectionId').fixed(c.mac, MAC, 'mac').finish();
}

/** Decode a CONNECT_CONFIRM body, strictly. */
export function decodeConnectConfirm(body: Buffer): ConnectConfirm {
  const r = new Reader(body, M);
  const c = { connectionId: r.bytes(CONNECTION_ID_BYTES, 'connectionId'), mac: r.bytes(MAC, 'mac') };
  r.end('CONNECT_CONFIRM');
  return c;
}

/** The bytes a connection-control MAC covers: a label, the type, and every field before the MAC. */
export function connControlMacInput(m: Omit<ConnControl, 'mac'>): Buffer {
  return Buffer.concat([Buffer.from('ferry/1 ctl'), connControlHead(m)]);
}

function connControlHead(m: Omit<ConnControl, 'mac'>): Buffer {
  return new Writer()
    .u8(m.type)
    .fixed(m.connectionId, CONNECTION_ID_BYTES, 'connectionId')
    .u8(roleToByte(m.senderRole))
    .u64(m.counter)
    .u8(m.reason)
    .u16(m.redirectorPort)
    .fixed(m.challenge.length === 0 ? ZERO_NONCE : m.challenge, NONCE_BYTES, 'challenge')
    .finish();
}

/** Encode a SUS/RES/CLS(/_ACK) body. The type byte is repeated inside so the MAC binds it. */
export function encodeConnControl(m: ConnControl): Buffer {
  return Buffer.concat([connControlHead(m), fixed(m.mac, MAC, 'mac')]);
}

const CONN_CONTROL_TYPES = new Set<number>([MessageType.SUS, MessageType.SUS_ACK, MessageType.RES, MessageType.RES_ACK, MessageType.CLS, MessageType.CLS_ACK]);

/** Decode a SUS/RES/CLS(/_ACK) body; `datagramType` must match the inner type byte. */
export function decodeConnControl(body: Buffer, datagramType: number): ConnControl {
  const r = new Reader(body, M);
  const type = r.u8('type');
  if (!CONN_CONTROL_TYPES.has(type) || type !== datagramType) throw new FerryError(M, `control body type ${type} in datagram type ${datagramType}`);
  const m: ConnControl = {
    type: type as ConnControl['type'],
    connectionId: r.bytes(CONNECTION_ID_BYTES, 'connectionId'),
    senderRole: roleFromByte(r.u8('role'), M),
    counter: r.u64('counter'),
    reason: r.u8('reason'),
    redirectorPort: r.u16('redirectorPort'),
    challenge: r.bytes(NONCE_BYTES, 'challenge'),
    mac: r.bytes(MAC, 'mac'),
  };
  r.end('connection control');
  return m;
}

function fixed(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${what} must be ${n} bytes`);
  return b;
}
