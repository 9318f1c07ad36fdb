/**
 * Bodies of the connection's control datagrams (carried after the datagram header of
 * datagram.ts). Open is three messages (CONNECT -> CONNECT_ACK, then CONNECT_CONFIRM), as in the
 * NapletSocket paper's CONNECT / ACK + socket id / client id; SUS, RES and CLS are requests
 * answered by their _ACK, all authenticated under the connection's control key and numbered
 * with a per-sender counter that must strictly increase (replay protection).
 * Byte layouts: docs/PROTOCOL.md.
 */
import { MERKLE_HASH_BYTES, chainSizeBytes, decodeChain, encodeChain, type DelegationChain } from '../identity/index.js';
import { FerryError, limit } from '../util/index.js';
import { Reader, Writer } from './bytes.js';
import { DATAGRAM_HEADER_BYTES, MAX_DATAGRAM_BODY } from './datagram.js';
import { CONNECTION_ID_BYTES, FRAME_VERSION, OpenFrameType, NONCE_BYTES, roleFromByte, roleToByte, type Role } from './frames.js';

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
/** Body of SUS/RES/CLS and their replies without a proof or padding. */
export const CONN_CONTROL_BYTES = 77;
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

/** RES / RES_ACK flag (in the `reason` byte, under the MAC): a {@link ResumeProof} follows the MAC. */
export const RESUME_FLAG_PROOF = 0x01;
/** RES flag: the sender asks the RES_ACK to carry a proof; zero padding pays for it (3x rule). */
export const RESUME_FLAG_PROOF_WANTED = 0x02;
/** A proof's batch fields before its path: tree size (u32), leaf index (u32), path length (u8). */
const BATCH_HEAD = 9;
/** Bytes of a proof with `links` chain links and an audit path of `depth` hashes. */
function proofBytes(links: number, depth: number): number {
  return PUB + chainSizeBytes(links) + BATCH_HEAD + depth * MERKLE_HASH_BYTES + SIG;
}
/**
 * Longest audit path a RES with a `links`-link proof can carry within one datagram (a RES that also
 * asks for a proof is only padded up to {@link RESUME_PROOF_WANTED_MIN_DATAGRAM}, never beyond
 * what it already is), at most RESUME_BATCH_MAX_DEPTH: 20 for the 1-link chains hosts send, 0 for 6.
 */
export function resumeProofMaxDepth(links: number): number {
  const room = MAX_DATAGRAM_BODY - CONN_CONTROL_BYTES - proofBytes(links, 0);
  return Math.max(0, Math.min(limit('RESUME_BATCH_MAX_DEPTH'), Math.floor(room / MERKLE_HASH_BYTES)));
}
/**
 * Smallest RES datagram that may ask for a proof: a third of the largest RES_ACK with one (a
 * RES_ACK's proof is always a batch of one: no path).
 */
export const RESUME_PROOF_WANTED_MIN_DATAGRAM = Math.ceil((DATAGRAM_HEADER_BYTES + CONN_CONTROL_BYTES + proofBytes(limit('RESUME_PROOF_MAX_LINKS'), 0)) / limit('AMPLIFICATION_FACTOR'));

/**
 * Proof that the sender's host speaks for the sender's agent (docs/DELEGATION.md): the host key,
 * a delegation chain from the agent key to it, and the message's place in a batch the host signed
 * once: the tree size, the leaf index and the audit path from the leaf ("ferry/1 resume" ||
 * {@link resumeSigned}) to the root (RFC 9162 §2.1), and the host's Ed25519 signature over the
 * root ({@link resumeRootSigned}). Carried by a RES or RES_ACK sent from a new location; a batch
 * of one (size 1, index 0, no path) is the same format.
 */
export interface ResumeProof {
  /** Raw Ed25519 key of the sender's host: must be the chain's last subject. */
  hostKey: Buffer;
  chain: DelegationChain;
  /** Leaves in the signed tree: 1 to 2^RESUME_BATCH_MAX_DEPTH. */
  treeSize: number;
  /** This message's leaf: below `treeSize`. */
  leafIndex: number;
  /** Audit path, nearest sibling first: at most RESUME_BATCH_MAX_DEPTH hashes of 32 bytes. */
  path: Buffer[];
  /** Ed25519 by `hostKey` over "ferry/1 resume batch" || {@link resumeRootSigned}. */
  signature: Buffer;
}

/** SUS/RES/CLS and their replies: authenticated, counter-numbered connection control. */
export interface ConnControl {
  type: (typeof MessageType)[keyof Omit<typeof MessageType, 'CONNECT' | 'CONNECT_ACK' | 'CONNECT_CONFIRM'>];
  connectionId: Buffer;
  senderRole: Role;
  /** Request: the sender's counter. Reply: the counter of the request it answers. */
  counter: number;
  /** SUS: 0 user, 1 move. CLS: 0 graceful, 1 abort. RES / RES_ACK: flags (RESUME_FLAG_*). Others: 0. */
  reason: number;
  /** RES / RES_ACK: the sender's current redirector port. Others: 0. */
  redirectorPort: number;
  /** RES / RES_ACK: a fresh path challenge the dialer must echo in its HELLO. Others: zeros. */
  challenge: Buffer;
  mac: Buffer;
  /** RES / RES_ACK with RESUME_FLAG_PROOF: the sender's location proof. */
  proof?: ResumeProof | undefined;
  /** RES with RESUME_FLAG_PROOF_WANTED: zero bytes after everything else (decoded: their count). */
  padding?: number | undefined;
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

// ------------------------------------------------------------------ in-band open (data-socket frames)

const F = 'FERRY_ERR_MALFORMED_FRAME' as const;
/** Bytes before the CONNECT body in an in-band CONNECT frame: type, version, control port. */
export const CONNECT_FRAME_HEAD_BYTES = 4;
/** Bytes before the CONNECT_ACK body in an in-band CONNECT_ACK frame: type, control port. */
export const CONNECT_ACK_FRAME_HEAD_BYTES = 3;

/** An in-band CONNECT frame: the sender host's UDP control port, then a CONNECT body (§4.1). */
export interface ConnectFrame {
  /** The client host's control port (its IP is the TCP peer address). */
  controlPort: number;
  connect: Connect;
}

/** An in-band CONNECT_ACK frame: the server host's UDP control port, then a CONNECT_ACK body. */
export interface ConnectAckFrame {
  controlPort: number;
  ack: ConnectAck;
}

/** Encode an in-band CONNECT frame body (type 8) around an encoded CONNECT body. */
export function encodeConnectFrame(controlPort: number, connectBody: Buffer): Buffer {
  return Buffer.concat([new Writer().u8(OpenFrameType.CONNECT).u8(FRAME_VERSION).u16(port(controlPort)).finish(), connectBody]);
}

/** Decode an in-band CONNECT frame body, strictly (version first, then the CONNECT rules). */
export function decodeConnectFrame(body: Buffer): ConnectFrame {
  const r = new Reader(body, F);
  const type = r.u8('type');
  if (type !== OpenFrameType.CONNECT) throw new FerryError(F, `frame type ${type} is not CONNECT`);
  const version = r.u8('version');
  if (version !== FRAME_VERSION) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `data-socket version ${version}`);
  const controlPort = r.u16('controlPort');
  if (controlPort === 0) throw new FerryError(F, 'CONNECT control port 0');
  return { controlPort, connect: reframe(() => decodeConnect(r.rest())) };
}

/** The CONNECT_ACK frame's bytes before its body (they enter the transcript hash). */
export function connectAckFramePrefix(controlPort: number): Buffer {
  return new Writer().u8(OpenFrameType.CONNECT_ACK).u16(port(controlPort)).finish();
}

/** Encode an in-band CONNECT_ACK frame body (type 9) around an encoded CONNECT_ACK body. */
export function encodeConnectAckFrame(controlPort: number, ackBody: Buffer): Buffer {
  return Buffer.concat([connectAckFramePrefix(controlPort), ackBody]);
}

/** Decode an in-band CONNECT_ACK frame body, strictly. */
export function decodeConnectAckFrame(body: Buffer): ConnectAckFrame {
  const r = new Reader(body, F);
  const type = r.u8('type');
  if (type !== OpenFrameType.CONNECT_ACK) throw new FerryError(F, `frame type ${type} is not CONNECT_ACK`);
  const controlPort = r.u16('controlPort');
  if (controlPort === 0) throw new FerryError(F, 'CONNECT_ACK control port 0');
  return { controlPort, ack: reframe(() => decodeConnectAck(r.rest())) };
}

/** Encode an in-band CONNECT_CONFIRM frame body (type 10): the client's key confirmation. */
export function encodeConnectConfirmFrame(mac: Buffer): Buffer {
  return Buffer.concat([Buffer.of(OpenFrameType.CONNECT_CONFIRM), fixed(mac, MAC, 'mac')]);
}

/** Decode an in-band CONNECT_CONFIRM frame body, strictly; returns the MAC. */
export function decodeConnectConfirmFrame(body: Buffer): Buffer {
  const r = new Reader(body, F);
  const type = r.u8('type');
  if (type !== OpenFrameType.CONNECT_CONFIRM) throw new FerryError(F, `frame type ${type} is not CONNECT_CONFIRM`);
  const mac = r.bytes(MAC, 'mac');
  r.end('CONNECT_CONFIRM frame');
  return mac;
}

/** A body decoded by the datagram codecs, inside a frame: its malformations are frame errors. */
function reframe<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FerryError && err.code === M) throw new FerryError(F, err.message);
    throw err;
  }
}

function port(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `port ${p}`);
  return p;
}

/** The bytes a connection-control MAC covers: a label, the type, and every field before the MAC. */
export function connControlMacInput(m: ConnControlHead): Buffer {
  return connControlHead(m, new Writer().bytes(CONN_CONTROL_MAC_LABEL));
}

/** The label a connection-control MAC's input starts with. */
const CONN_CONTROL_MAC_LABEL = Buffer.from('ferry/1 ctl');

/** The fields before the MAC (bytes 0..45). */
export type ConnControlHead = Pick<ConnControl, 'type' | 'connectionId' | 'senderRole' | 'counter' | 'reason' | 'redirectorPort' | 'challenge'>;

function connControlHead(m: ConnControlHead, w = new Writer()): Buffer {
  return writeConnControlHead(m, w).finish();
}

/** Write the fields before the MAC into `w`. */
function writeConnControlHead(m: ConnControlHead, w: Writer): Writer {
  return w
    .u8(m.type)
    .fixed(m.connectionId, CONNECTION_ID_BYTES, 'connectionId')
    .u8(roleToByte(m.senderRole))
    .u64(m.counter)
    .u8(m.reason)
    .u16(m.redirectorPort)
    .fixed(m.challenge.length === 0 ? ZERO_NONCE : m.challenge, NONCE_BYTES, 'challenge');
}

/** The RES / RES_ACK flags allowed for `type` (0 for SUS and CLS, whose reason is not a flag set). */
function resumeFlags(type: number): number {
  if (type === MessageType.RES) return RESUME_FLAG_PROOF | RESUME_FLAG_PROOF_WANTED;
  if (type === MessageType.RES_ACK) return RESUME_FLAG_PROOF;
  return 0;
}


/**
 * A resume message's leaf data in its batch (without its label): the body bytes before the batch
 * fields, that is the 45-byte head, the MAC, the host key and the encoded chain.
 */
export function resumeSigned(m: ConnControlHead & { mac: Buffer; proof: Pick<ResumeProof, 'hostKey' | 'chain'> }): Buffer {
  return Buffer.concat([connControlHead(m), fixed(m.mac, MAC, 'mac'), fixed(m.proof.hostKey, PUB, 'hostKey'), encodeChain(m.proof.chain)]);
}

/** What a batch's host signature covers (without its label): the tree size (u32) and the root. */
export function resumeRootSigned(treeSize: number, root: Buffer): Buffer {
  return new Writer().u32(treeSize).fixed(root, MERKLE_HASH_BYTES, 'root').finish();
}

/** A proof's batch fields: tree size, leaf index, path length and path (bounded as the decoder is). */
function encodeBatch(p: ResumeProof): Buffer {
  const depth = limit('RESUME_BATCH_MAX_DEPTH');
  if (!Number.isInteger(p.treeSize) || p.treeSize < 1 || p.treeSize > 2 ** depth) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `batch of ${p.treeSize}`);
  if (!Number.isInteger(p.leafIndex) || p.leafIndex < 0 || p.leafIndex >= p.treeSize) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `leaf ${p.leafIndex} of ${p.treeSize}`);
  if (p.path.length > depth) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `an audit path of ${p.path.length} hashes`);
  const w = new Writer().u32(p.treeSize).u32(p.leafIndex).u8(p.path.length);
  for (const h of p.path) w.fixed(h, MERKLE_HASH_BYTES, 'path hash');
  return w.finish();
}

/** Read a proof's batch fields, each bound checked before anything past it is read. */
function decodeBatch(r: Reader): Pick<ResumeProof, 'treeSize' | 'leafIndex' | 'path'> {
  const depth = limit('RESUME_BATCH_MAX_DEPTH');
  const treeSize = r.u32('tree size');
  if (treeSize < 1 || treeSize > 2 ** depth) throw new FerryError(M, `resume batch of ${treeSize} leaves (1 to 2^${depth})`);
  const leafIndex = r.u32('leaf index');
  if (leafIndex >= treeSize) throw new FerryError(M, `leaf ${leafIndex} of a batch of ${treeSize}`);
  const n = r.u8('path length');
  if (n > depth) throw new FerryError(M, `audit path of ${n} hashes (at most ${depth})`);
  const path: Buffer[] = [];
  for (let i = 0; i < n; i++) path.push(Buffer.from(r.bytes(MERKLE_HASH_BYTES, 'path hash')));
  return { treeSize, leafIndex, path };
}

/** Encode a SUS/RES/CLS(/_ACK) body. The type byte is repeated inside so the MAC binds it. */
export function encodeConnControl(m: ConnControl): Buffer {
  const flags = resumeFlags(m.type);
  const w = writeConnControlHead(m, new Writer()).fixed(m.mac, MAC, 'mac');
  if (flags !== 0) {
    if (m.reason & ~flags) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${m.type === MessageType.RES ? 'RES' : 'RES_ACK'} flags ${m.reason}`);
    if (((m.reason & RESUME_FLAG_PROOF) !== 0) !== (m.proof !== undefined)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'the PROOF flag must match the presence of a proof');
    if (m.proof) {
      if (m.proof.chain.length > limit('RESUME_PROOF_MAX_LINKS')) throw new FerryError('FERRY_ERR_CHAIN_TOO_LONG', `a resume proof carries at most ${limit('RESUME_PROOF_MAX_LINKS')} links, not ${m.proof.chain.length}`);
      w.fixed(m.proof.hostKey, PUB, 'hostKey').bytes(encodeChain(m.proof.chain)).bytes(encodeBatch(m.proof)).fixed(m.proof.signature, SIG, 'signature');
    }
  } else if (m.proof) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'only RES and RES_ACK carry a proof');
  }
  if (m.padding) {
    if (!(m.reason & RESUME_FLAG_PROOF_WANTED) || m.type !== MessageType.RES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'only a RES that asks for a proof is padded');
    w.bytes(Buffer.alloc(m.padding));
  }
  return w.finish();
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
  const flags = resumeFlags(type);
  if (flags !== 0) {
    if (m.reason & ~flags) throw new FerryError(M, `${type === MessageType.RES ? 'RES' : 'RES_ACK'} flags ${m.reason}`);
    if (m.reason & RESUME_FLAG_PROOF) {
      const hostKey = Buffer.from(r.bytes(PUB, 'hostKey'));
      // The chain keeps its own codes (MALFORMED_CERTIFICATE, CHAIN_TOO_LONG, UNSUPPORTED_VERSION),
      // as in REGISTER; its count is bounded before anything is allocated.
      const rest = r.rest();
      const chain = decodeChain(rest, 0, { maxLinks: limit('RESUME_PROOF_MAX_LINKS') });
      const tail = new Reader(rest.subarray(chain.bytes), M);
      const batch = decodeBatch(tail);
      m.proof = { hostKey, chain: chain.value, ...batch, signature: Buffer.from(tail.bytes(SIG, 'proof signature')) };
      paddingOf(tail, m);
    } else {
      paddingOf(r, m);
    }
    return m;
  }
  r.end('connection control');
  return m;
}

/** What is left after a RES / RES_ACK: nothing, or (RES asking for a proof) zero padding. */
function paddingOf(r: Reader, m: ConnControl): void {
  if (!(m.reason & RESUME_FLAG_PROOF_WANTED)) return r.end('connection control');
  const pad = r.rest();
  for (const b of pad) if (b !== 0) throw new FerryError(M, 'nonzero RES padding');
  m.padding = pad.length;
}

function fixed(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${what} must be ${n} bytes`);
  return b;
}
