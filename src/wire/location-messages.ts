/**
 * Bodies of the location service's control datagrams (the rendezvous of the HIP paper and
 * RFC 8004): a host registers where an agent now runs (REGISTER, proven by a delegation chain
 * and signed by the registering host), anyone looks an agent up (LOOKUP -> LOCATION), and a peer
 * waiting for an agent in transit asks to be told when it lands (WATCH -> WATCH_ACK, then
 * one-way LANDED notifications; UNWATCH ends it early), and the host holding an agent's entry
 * removes it when the agent ends there (DEREGISTER -> DEREGISTER_ACK, signed by that host). A REGISTER too big for one datagram
 * (a delegation chain of 7 or 8 links) travels as REGISTER_PART fragments, reassembled by the
 * server within fixed bounds. A first CONNECT may also go through the rendezvous (RELAY ->
 * RELAYED to the agent's current host, RFC 8004's idea), answered in one round trip. Before the
 * rendezvous relays to a registered address it proves the address receives (PATH_CHALLENGE ->
 * PATH_RESPONSE, RFC 9000 §8.2's path validation), so a registration naming someone else's
 * address cannot make it a reflector.
 *
 * They share the control datagram header (datagram.ts) and the control channel's reliability.
 * Every decoder is strict: exact lengths, no trailing bytes, unknown flag bits refused, and no
 * allocation on a peer's say-so. Byte layouts: docs/PROTOCOL.md §12.
 */
import { FerryError, limit } from '../util/index.js';
import {
  ED25519_PUBLIC_BYTES,
  ED25519_SIGNATURE_BYTES,
  ID_BYTES,
  chainSizeBytes,
  decodeChain,
  encodeChain,
  idFromBytes,
  idToBytes,
  type AgentId,
  type DelegationChain,
} from '../identity/index.js';
import { Reader, Writer } from './bytes.js';
import { DATAGRAM_HEADER_BYTES, MAX_DATAGRAM_BODY } from './datagram.js';

/**
 * Location message types (the datagram header's `type`). 20..38, clear of the connection's
 * 1..9, so a datagram sent to the wrong kind of port is refused as an unknown type.
 */
export const LocationMessageType = {
  REGISTER: 20,
  REGISTER_ACK: 21,
  REGISTER_PART: 22,
  REGISTER_PART_ACK: 23,
  LOOKUP: 24,
  LOCATION: 25,
  WATCH: 26,
  WATCH_ACK: 27,
  LANDED: 28,
  UNWATCH: 29,
  UNWATCH_ACK: 30,
  RELAY: 31,
  RELAY_ACK: 32,
  RELAYED: 33,
  RELAYED_ACK: 34,
  PATH_CHALLENGE: 35,
  PATH_RESPONSE: 36,
  DEREGISTER: 37,
  DEREGISTER_ACK: 38,
} as const;

const M = 'FERRY_ERR_MALFORMED_DATAGRAM' as const;
const PUB = ED25519_PUBLIC_BYTES;
const SIG = ED25519_SIGNATURE_BYTES;

/** REGISTER flag: the agent's public key follows the fixed fields. */
export const REGISTER_FLAG_KEY = 0x01;
/** REGISTER flag: a delegation chain and the registering host's signature follow the key. */
export const REGISTER_FLAG_CHAIN = 0x02;

/**
 * Label of the registering host's signature over a REGISTER. Distinct from every other Ferry
 * signature label ("ferry/1 delegation", "ferry/1 client sig", "ferry/1 server sig") before
 * their common length, so no signature made for one purpose verifies as another.
 */
const REGISTER_LABEL = Buffer.from('ferry/1 register');

/** Length of a WATCH token: 64 random bits an off-path sender of forged LANDED cannot guess. */
export const WATCH_TOKEN_BYTES = 8;
/** Length of a REGISTER_PART upload id. */
export const UPLOAD_ID_BYTES = 8;
/** Fixed REGISTER_PART header before the fragment: uploadId, index, count, totalLength. */
export const REGISTER_PART_HEADER_BYTES = UPLOAD_ID_BYTES + 1 + 1 + 2;
/** Most fragment bytes one REGISTER_PART carries: whatever the datagram leaves. */
export const MAX_REGISTER_FRAGMENT = MAX_DATAGRAM_BODY - REGISTER_PART_HEADER_BYTES;
/** Fixed WATCH fields before the padding. */
export const WATCH_FIXED_BYTES = ID_BYTES + 4 + 4 + WATCH_TOKEN_BYTES;

// ---------------------------------------------------------------------------------------------
// IP addresses: 4 or 16 raw bytes, length-prefixed. Parsed here because wire/ may not import
// node:net (only adapters touch the network); the text form is canonical (RFC 5952) so a decoded
// address compares equal to the one a socket reports.

function badIp(ip: string): FerryError {
  return new FerryError('FERRY_ERR_INVALID_ARGUMENT', `not an IPv4 or IPv6 literal without zone: ${JSON.stringify(ip)}`);
}

function ipv4Bytes(s: string): Buffer | undefined {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
  if (!m) return undefined;
  const b = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return undefined;
    b[i] = v;
  }
  return b;
}

function ipv6Bytes(s: string): Buffer | undefined {
  if (s.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = ipv4Bytes(g);
        if (!v4) return undefined;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

/**
 * The raw bytes of an IP literal: 4 for IPv4, 16 for IPv6.
 *
 * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for anything else, including an IPv6 zone
 *   (`%eth0`: meaningful only on the host that wrote it, so never sent to another).
 */
export function ipToBytes(ip: string): Buffer {
  const b = ip.includes(':') ? ipv6Bytes(ip) : ipv4Bytes(ip);
  if (!b) throw badIp(ip);
  return b;
}

/** The canonical text of 4 or 16 raw bytes: dotted quad, or RFC 5952 IPv6 (`::ffff:a.b.c.d` when mapped). */
export function ipFromBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `an IP address is 4 or 16 bytes, got ${b.length}`);
  const buf = Buffer.from(b);
  // RFC 5952 §5: an IPv4-mapped address keeps its dotted quad (as Node's sockets print it).
  if (buf.subarray(0, 10).every((x) => x === 0) && buf[10] === 0xff && buf[11] === 0xff) {
    return `::ffff:${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(i * 2));
  // The longest run of two or more zero groups is written "::" (the first, on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** The canonical text of an IP literal (so two spellings of one address compare equal). */
export function canonicalIp(ip: string): string {
  return ipFromBytes(ipToBytes(ip));
}

// ---------------------------------------------------------------------------------------------
// The location record shared by REGISTER, LOCATION, WATCH_ACK and LANDED.

/** Where an agent is, as carried on the wire. */
export interface LocationRecord {
  readonly agent: AgentId;
  /** Id of the host that runs the agent (hash of its key), 32 hex chars. */
  readonly hostId: string;
  /** IPv4 or IPv6 literal of that host. */
  readonly ip: string;
  /** Its control (UDP) port, 1..65535. */
  readonly controlPort: number;
  /** Its redirector (TCP) port, 1..65535. */
  readonly redirectorPort: number;
  /** u32; grows by one per move. */
  readonly epoch: number;
}

/** Encoded length of a record: 41 bytes plus the IP (4 or 16). */
export function locationRecordLength(rec: Pick<LocationRecord, 'ip'>): number {
  return ID_BYTES * 2 + 1 + ipToBytes(rec.ip).length + 2 + 2 + 4;
}

function writeRecord(w: Writer, rec: LocationRecord): void {
  const ip = ipToBytes(rec.ip);
  for (const [name, port] of [['controlPort', rec.controlPort], ['redirectorPort', rec.redirectorPort]] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${name} ${port} outside 1..65535`);
  }
  w.fixed(idToBytes(rec.agent), ID_BYTES, 'agent')
    .fixed(idToBytes(rec.hostId), ID_BYTES, 'hostId')
    .u8(ip.length)
    .bytes(ip)
    .u16(rec.controlPort)
    .u16(rec.redirectorPort)
    .u32(rec.epoch);
}

function readRecord(r: Reader): LocationRecord {
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  const hostId = idFromBytes(r.bytes(ID_BYTES, 'hostId')) as string;
  const ipLen = r.u8('ipLength');
  if (ipLen !== 4 && ipLen !== 16) throw new FerryError(M, `IP length ${ipLen}, expected 4 or 16`);
  const ip = ipFromBytes(r.bytes(ipLen, 'ip'));
  const controlPort = r.u16('controlPort');
  const redirectorPort = r.u16('redirectorPort');
  if (controlPort === 0 || redirectorPort === 0) throw new FerryError(M, 'port 0 in a location');
  const epoch = r.u32('epoch');
  return { agent, hostId, ip, controlPort, redirectorPort, epoch };
}

// ---------------------------------------------------------------------------------------------
// REGISTER (request) -> REGISTER_ACK (reply)

/**
 * REGISTER: "agent A now runs at this host and locator, at this epoch". With a chain it is
 * proven (the chain links A to the host key) and signed by that host key, which binds the
 * locator and epoch to it; without (development mode only) it is a bare claim.
 */
export interface Register extends LocationRecord {
  /** Raw Ed25519 key of the agent (hashes to `agent`). Required with a chain. */
  readonly agentKey?: Buffer;
  /** Delegation chain from the agent key to the registering host, at `epoch`. */
  readonly chain?: DelegationChain;
  /**
   * Ed25519 by the chain's last subject (the registering host) over {@link registerSigned}.
   * Present exactly when `chain` is.
   */
  readonly signature?: Buffer;
}

function registerFlags(reg: Omit<Register, 'signature'>): number {
  if (reg.chain && !reg.agentKey) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a REGISTER with a chain needs the agent key');
  return (reg.agentKey ? REGISTER_FLAG_KEY : 0) | (reg.chain ? REGISTER_FLAG_CHAIN : 0);
}

function registerHead(reg: Omit<Register, 'signature'>): Buffer {
  const w = new Writer().u8(registerFlags(reg));
  writeRecord(w, reg);
  if (reg.agentKey) w.fixed(reg.agentKey, PUB, 'agentKey');
  if (reg.chain) w.bytes(encodeChain(reg.chain));
  return w.finish();
}

/**
 * The bytes the registering host signs: `"ferry/1 register"` followed by every REGISTER field
 * before the signature (flags, record, agent key, chain).
 */
export function registerSigned(reg: Omit<Register, 'signature'>): Buffer {
  return Buffer.concat([REGISTER_LABEL, registerHead(reg)]);
}

/** Encoded length of a REGISTER body (it may exceed one datagram: see {@link splitRegister}). */
export function registerLength(reg: Omit<Register, 'signature'>): number {
  return 1 + locationRecordLength(reg) + (reg.agentKey ? PUB : 0) + (reg.chain ? chainSizeBytes(reg.chain) + SIG : 0);
}

/**
 * Encode a REGISTER body. It is not limited to one datagram here: {@link splitRegister} cuts a
 * long one into REGISTER_PART fragments.
 *
 * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` for a bad field, a chain without agent key or
 *   signature, a signature without a chain, or a body over REGISTER_MAX_BYTES.
 */
export function encodeRegister(reg: Register): Buffer {
  if (reg.chain && (!reg.signature || reg.signature.length !== SIG)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a REGISTER with a chain needs the 64-byte host signature');
  if (!reg.chain && reg.signature) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a REGISTER signature needs a chain');
  const head = registerHead(reg);
  const body = reg.signature ? Buffer.concat([head, reg.signature]) : head;
  if (body.length > limit('REGISTER_MAX_BYTES')) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `REGISTER of ${body.length} bytes exceeds REGISTER_MAX_BYTES`);
  return body;
}

/**
 * Decode a REGISTER body, strictly. Chain errors keep the chain's own codes
 * (`FERRY_ERR_MALFORMED_CERTIFICATE`, `FERRY_ERR_CHAIN_TOO_LONG`, `FERRY_ERR_UNSUPPORTED_VERSION`);
 * everything else is `FERRY_ERR_MALFORMED_DATAGRAM`. Nothing is verified here (the server does).
 */
export function decodeRegister(body: Buffer): Register {
  if (body.length > limit('REGISTER_MAX_BYTES')) throw new FerryError(M, `REGISTER of ${body.length} bytes exceeds REGISTER_MAX_BYTES`);
  const r = new Reader(body, M);
  const flags = r.u8('flags');
  if (flags & ~(REGISTER_FLAG_KEY | REGISTER_FLAG_CHAIN)) throw new FerryError(M, `REGISTER flags ${flags}`);
  if (flags & REGISTER_FLAG_CHAIN && !(flags & REGISTER_FLAG_KEY)) throw new FerryError(M, 'REGISTER with a chain but no agent key');
  const rec = readRecord(r);
  const agentKey = flags & REGISTER_FLAG_KEY ? Buffer.from(r.bytes(PUB, 'agentKey')) : undefined;
  if (!(flags & REGISTER_FLAG_CHAIN)) {
    r.end('REGISTER');
    return agentKey ? { ...rec, agentKey } : rec;
  }
  const rest = r.rest();
  const { value: chain, bytes } = decodeChain(rest, 0);
  if (rest.length - bytes !== SIG) throw new FerryError(M, `REGISTER: ${rest.length - bytes} bytes after the chain, expected a ${SIG}-byte signature`);
  return { ...rec, agentKey: agentKey!, chain, signature: Buffer.from(rest.subarray(bytes)) };
}

/** REGISTER_ACK body: the epoch now registered (u32). */
export function encodeRegisterAck(epoch: number): Buffer {
  return new Writer().u32(epoch).finish();
}

/** Decode a REGISTER_ACK body. */
export function decodeRegisterAck(body: Buffer): number {
  const r = new Reader(body, M);
  const epoch = r.u32('epoch');
  r.end('REGISTER_ACK');
  return epoch;
}

// ---------------------------------------------------------------------------------------------
// REGISTER_PART (request) -> REGISTER_PART_ACK (reply), or the REGISTER's reply for the last part

/** One fragment of a REGISTER body too long for a datagram. */
export interface RegisterPart {
  /** Random id naming the upload (with the sender's address). */
  readonly uploadId: Buffer;
  /** 0-based; fragments are sent, and must arrive, in order. */
  readonly index: number;
  /** Number of fragments, 2..REGISTER_MAX_PARTS. */
  readonly count: number;
  /** Length of the whole REGISTER body, 1..REGISTER_MAX_BYTES; the same in every fragment. */
  readonly totalLength: number;
  /** 1..MAX_REGISTER_FRAGMENT bytes. */
  readonly fragment: Buffer;
}

function partProblem(p: Omit<RegisterPart, 'uploadId' | 'fragment'> & { fragmentLength: number }): string | undefined {
  if (p.count < 2 || p.count > limit('REGISTER_MAX_PARTS')) return `count ${p.count} outside 2..${limit('REGISTER_MAX_PARTS')}`;
  if (p.index >= p.count) return `index ${p.index} not below count ${p.count}`;
  if (p.totalLength < 1 || p.totalLength > limit('REGISTER_MAX_BYTES')) return `total length ${p.totalLength} outside 1..${limit('REGISTER_MAX_BYTES')}`;
  if (p.fragmentLength < 1 || p.fragmentLength > MAX_REGISTER_FRAGMENT) return `fragment of ${p.fragmentLength} bytes outside 1..${MAX_REGISTER_FRAGMENT}`;
  if (p.fragmentLength > p.totalLength) return 'fragment longer than the whole';
  return undefined;
}

/** Encode a REGISTER_PART body. */
export function encodeRegisterPart(p: RegisterPart): Buffer {
  const problem = partProblem({ ...p, fragmentLength: p.fragment.length });
  if (problem) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `REGISTER_PART: ${problem}`);
  return new Writer().fixed(p.uploadId, UPLOAD_ID_BYTES, 'uploadId').u8(p.index).u8(p.count).u16(p.totalLength).bytes(p.fragment).finish();
}

/** Decode a REGISTER_PART body, strictly (the fragment is a view: copy it to keep it). */
export function decodeRegisterPart(body: Buffer): RegisterPart {
  const r = new Reader(body, M);
  const uploadId = r.bytes(UPLOAD_ID_BYTES, 'uploadId');
  const index = r.u8('index');
  const count = r.u8('count');
  const totalLength = r.u16('totalLength');
  const fragment = r.rest();
  const problem = partProblem({ index, count, totalLength, fragmentLength: fragment.length });
  if (problem) throw new FerryError(M, `REGISTER_PART: ${problem}`);
  return { uploadId, index, count, totalLength, fragment };
}

/**
 * Cut a REGISTER body into the fewest REGISTER_PART fragments (all but the last full), or return
 * `undefined` when it fits one datagram and is sent as a plain REGISTER.
 */
export function splitRegister(body: Buffer, uploadId: Buffer): RegisterPart[] | undefined {
  if (body.length <= MAX_DATAGRAM_BODY) return undefined;
  const count = Math.ceil(body.length / MAX_REGISTER_FRAGMENT);
  const parts: RegisterPart[] = [];
  for (let i = 0; i < count; i++) {
    parts.push({ uploadId, index: i, count, totalLength: body.length, fragment: body.subarray(i * MAX_REGISTER_FRAGMENT, (i + 1) * MAX_REGISTER_FRAGMENT) });
  }
  for (const p of parts) encodeRegisterPart(p); // validate: bounds are the receiver's too
  return parts;
}

/** REGISTER_PART_ACK body: the index received (u8). */
export function encodeRegisterPartAck(index: number): Buffer {
  return new Writer().u8(index).finish();
}

/** Decode a REGISTER_PART_ACK body. */
export function decodeRegisterPartAck(body: Buffer): number {
  const r = new Reader(body, M);
  const index = r.u8('index');
  r.end('REGISTER_PART_ACK');
  return index;
}

// ---------------------------------------------------------------------------------------------
// DEREGISTER (request) -> DEREGISTER_ACK (reply)

/**
 * Label of the holding host's signature over a DEREGISTER: distinct from every other Ferry
 * signature label before their common length ("ferry/1 de" then 'r', where "ferry/1 delegation"
 * has 'l'; "ferry/1 register" differs at its 9th byte), so no signature made for one purpose
 * verifies as another.
 */
const DEREGISTER_LABEL = Buffer.from('ferry/1 deregister');
/** Bytes of a registration digest (see the location layer's `registrationDigest`). */
export const REGISTRATION_DIGEST_BYTES = 16;
/** Length of a DEREGISTER body: agent, hostId, epoch, digest, host key, signature. */
export const DEREGISTER_BYTES = ID_BYTES * 2 + 4 + REGISTRATION_DIGEST_BYTES + PUB + SIG;

/**
 * DEREGISTER: "host H, holding agent A's entry at `epoch` (the registration whose digest is
 * `registration`), removes it". Signed by H's key, which must hash to `hostId`: only the holder
 * of the current entry may remove it, and the digest names one registration, so a DEREGISTER
 * copied off the wire removes nothing registered later (docs/PROTOCOL.md §12.2.1).
 */
export interface Deregister {
  readonly agent: AgentId;
  /** The host that holds the entry (hash of `hostKey`). */
  readonly hostId: string;
  /** The epoch of the entry removed (u32). */
  readonly epoch: number;
  /** Digest of the registration removed: 16 bytes (the stored chain's, see `registrationDigest`). */
  readonly registration: Buffer;
  /** Raw Ed25519 key of the host. */
  readonly hostKey: Buffer;
  /** Ed25519 by `hostKey` over {@link deregisterSigned}. */
  readonly signature: Buffer;
}

function deregisterHead(d: Omit<Deregister, 'signature'>): Buffer {
  return new Writer()
    .fixed(idToBytes(d.agent), ID_BYTES, 'agent')
    .fixed(idToBytes(d.hostId), ID_BYTES, 'hostId')
    .u32(d.epoch)
    .fixed(d.registration, REGISTRATION_DIGEST_BYTES, 'registration')
    .fixed(d.hostKey, PUB, 'hostKey')
    .finish();
}

/** The bytes the holding host signs: `"ferry/1 deregister"` followed by every field before the signature. */
export function deregisterSigned(d: Omit<Deregister, 'signature'>): Buffer {
  return Buffer.concat([DEREGISTER_LABEL, deregisterHead(d)]);
}

/** Encode a DEREGISTER body (always {@link DEREGISTER_BYTES}). */
export function encodeDeregister(d: Deregister): Buffer {
  return Buffer.concat([deregisterHead(d), new Writer().fixed(d.signature, SIG, 'signature').finish()]);
}

/** Decode a DEREGISTER body, strictly (exact length). Nothing is verified here (the server does). */
export function decodeDeregister(body: Buffer): Deregister {
  const r = new Reader(body, M);
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  const hostId = idFromBytes(r.bytes(ID_BYTES, 'hostId')) as string;
  const epoch = r.u32('epoch');
  const registration = Buffer.from(r.bytes(REGISTRATION_DIGEST_BYTES, 'registration'));
  const hostKey = Buffer.from(r.bytes(PUB, 'hostKey'));
  const signature = Buffer.from(r.bytes(SIG, 'signature'));
  r.end('DEREGISTER');
  return { agent, hostId, epoch, registration, hostKey, signature };
}

/** DEREGISTER_ACK body: u8 1 when the entry was removed, 0 when there was none (already gone). */
export function encodeDeregisterAck(removed: boolean): Buffer {
  return Buffer.of(removed ? 1 : 0);
}

/** Decode a DEREGISTER_ACK body. */
export function decodeDeregisterAck(body: Buffer): boolean {
  const r = new Reader(body, M);
  const v = r.u8('removed');
  if (v > 1) throw new FerryError(M, `DEREGISTER_ACK byte ${v}`);
  r.end('DEREGISTER_ACK');
  return v === 1;
}

// ---------------------------------------------------------------------------------------------
// LOOKUP (request) -> LOCATION (reply)

/** Encode a LOOKUP body: the agent id. */
export function encodeLookup(agent: AgentId): Buffer {
  return idToBytes(agent);
}

/** Decode a LOOKUP body. */
export function decodeLookup(body: Buffer): AgentId {
  const r = new Reader(body, M);
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  r.end('LOOKUP');
  return agent;
}

/** `found` of a LOCATION body: no entry, an entry, or no entry since a deregistration at an epoch. */
const FOUND_NONE = 0;
const FOUND_RECORD = 1;
const FOUND_REMOVED = 2;

/**
 * Encode a LOCATION body: `u8 found`, then the record when found (1); with no record, `removed`
 * (the epoch of the agent's last deregistered entry, while the rendezvous keeps it) as found 2
 * and a u32. At most 58 bytes (66 with the header), under 3x a 24-byte LOOKUP datagram: the
 * anti-amplification rule holds without padding.
 */
export function encodeLocation(rec: LocationRecord | undefined, removed?: number): Buffer {
  if (rec) {
    const w = new Writer().u8(FOUND_RECORD);
    writeRecord(w, rec);
    return w.finish();
  }
  return removed === undefined ? new Writer().u8(FOUND_NONE).finish() : new Writer().u8(FOUND_REMOVED).u32(removed).finish();
}

/** A decoded LOCATION body: the record, or none and maybe the epoch deregistered last. */
export interface LocationAnswer {
  readonly record: LocationRecord | undefined;
  readonly removed: number | undefined;
}

function readLocation(r: Reader): LocationAnswer {
  const found = r.u8('found');
  if (found === FOUND_RECORD) return { record: readRecord(r), removed: undefined };
  if (found === FOUND_REMOVED) return { record: undefined, removed: r.u32('removed') };
  if (found !== FOUND_NONE) throw new FerryError(M, `LOCATION found byte ${found}`);
  return { record: undefined, removed: undefined };
}

/** Decode a LOCATION body: the record, if any. */
export function decodeLocation(body: Buffer): LocationRecord | undefined {
  return decodeLocationAnswer(body).record;
}

/** Decode a LOCATION body with the deregistered epoch it may carry instead of a record. */
export function decodeLocationAnswer(body: Buffer): LocationAnswer {
  const r = new Reader(body, M);
  const a = readLocation(r);
  r.end('LOCATION');
  return a;
}

// ---------------------------------------------------------------------------------------------
// WATCH (request) -> WATCH_ACK (reply), LANDED (one-way), UNWATCH -> UNWATCH_ACK

/** WATCH: "tell me when `agent` lands at an epoch above `newerThan`". */
export interface Watch {
  readonly agent: AgentId;
  /** u32: only registrations above this epoch are notified. */
  readonly newerThan: number;
  /** Requested lifetime, ms (u32); the server grants at most WATCH_MAX_TTL_MS. */
  readonly ttlMs: number;
  /** Echoed in every LANDED, so a forged notification needs 64 guessed bits. */
  readonly token: Buffer;
  /**
   * Zero bytes after the fields. They buy notification budget: the server sends a watcher no
   * more than AMPLIFICATION_FACTOR times the WATCH datagram's bytes in all (RFC 9000 §8), since
   * the watcher's address is unproven. See {@link watchPaddingFor}.
   */
  readonly padding: number;
}

/** Encode a WATCH body. */
export function encodeWatch(w: Watch): Buffer {
  if (!Number.isInteger(w.padding) || w.padding < 0 || WATCH_FIXED_BYTES + w.padding > MAX_DATAGRAM_BODY) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `WATCH padding ${w.padding} outside 0..${MAX_DATAGRAM_BODY - WATCH_FIXED_BYTES}`);
  }
  return new Writer()
    .fixed(idToBytes(w.agent), ID_BYTES, 'agent')
    .u32(w.newerThan)
    .u32(w.ttlMs)
    .fixed(w.token, WATCH_TOKEN_BYTES, 'token')
    .bytes(Buffer.alloc(w.padding))
    .finish();
}

/** Decode a WATCH body; padding must be zeros (a nonzero byte is reserved for later use). */
export function decodeWatch(body: Buffer): Watch {
  const r = new Reader(body, M);
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  const newerThan = r.u32('newerThan');
  const ttlMs = r.u32('ttlMs');
  const token = Buffer.from(r.bytes(WATCH_TOKEN_BYTES, 'token'));
  const pad = r.rest();
  if (pad.some((b) => b !== 0)) throw new FerryError(M, 'WATCH padding is not zero');
  return { agent, newerThan, ttlMs, token, padding: pad.length };
}

/** WATCH_ACK: what the server granted, and the agent's location now. */
export interface WatchAck {
  /** Lifetime granted, ms; 0 when no watch was kept (already newer, or no budget). */
  readonly ttlMs: number;
  /** LANDED notifications the watch may still send (u8). */
  readonly notifications: number;
  /** The location now (which answers the watch at once if its epoch is above `newerThan`). */
  readonly current: LocationRecord | undefined;
}

/** Encode a WATCH_ACK body: u32 ttlMs, u8 notifications, then a LOCATION body. */
export function encodeWatchAck(a: WatchAck): Buffer {
  return Buffer.concat([new Writer().u32(a.ttlMs).u8(a.notifications).finish(), encodeLocation(a.current)]);
}

/** Decode a WATCH_ACK body. */
export function decodeWatchAck(body: Buffer): WatchAck {
  const r = new Reader(body, M);
  const ttlMs = r.u32('ttlMs');
  const notifications = r.u8('notifications');
  const current = readLocation(r).record;
  r.end('WATCH_ACK');
  return { ttlMs, notifications, current };
}

/** LANDED: one-way from the server to a watcher: the agent landed here. */
export interface Landed {
  readonly token: Buffer;
  readonly location: LocationRecord;
}

/** Encode a LANDED body: the watch token, then the record. */
export function encodeLanded(l: Landed): Buffer {
  const w = new Writer().fixed(l.token, WATCH_TOKEN_BYTES, 'token');
  writeRecord(w, l.location);
  return w.finish();
}

/** Decode a LANDED body. */
export function decodeLanded(body: Buffer): Landed {
  const r = new Reader(body, M);
  const token = Buffer.from(r.bytes(WATCH_TOKEN_BYTES, 'token'));
  const location = readRecord(r);
  r.end('LANDED');
  return { token, location };
}

/** Largest LANDED datagram (IPv6 record): what one notification costs from the watch budget. */
export const MAX_LANDED_DATAGRAM = DATAGRAM_HEADER_BYTES + WATCH_TOKEN_BYTES + ID_BYTES * 2 + 1 + 16 + 2 + 2 + 4;
/** Largest WATCH_ACK datagram (IPv6 record). */
export const MAX_WATCH_ACK_DATAGRAM = DATAGRAM_HEADER_BYTES + 4 + 1 + 1 + ID_BYTES * 2 + 1 + 16 + 2 + 2 + 4;

/**
 * How many LANDED notifications a WATCH datagram of `watchDatagramBytes` pays for: the server
 * sends at most AMPLIFICATION_FACTOR times what it received from the unproven address, the
 * WATCH_ACK included, counting every datagram at its largest size.
 */
export function notificationsPaidBy(watchDatagramBytes: number): number {
  const budget = limit('AMPLIFICATION_FACTOR') * watchDatagramBytes - MAX_WATCH_ACK_DATAGRAM;
  return Math.max(0, Math.floor(budget / MAX_LANDED_DATAGRAM));
}

/** The WATCH padding that pays for `notifications` LANDED messages (see {@link notificationsPaidBy}). */
export function watchPaddingFor(notifications: number): number {
  const need = Math.ceil((MAX_WATCH_ACK_DATAGRAM + notifications * MAX_LANDED_DATAGRAM) / limit('AMPLIFICATION_FACTOR'));
  return Math.max(0, need - DATAGRAM_HEADER_BYTES - WATCH_FIXED_BYTES);
}

/** UNWATCH: end the watch named by `token` for `agent`. */
export interface Unwatch {
  readonly agent: AgentId;
  readonly token: Buffer;
}

/** Encode an UNWATCH body. */
export function encodeUnwatch(u: Unwatch): Buffer {
  return new Writer().fixed(idToBytes(u.agent), ID_BYTES, 'agent').fixed(u.token, WATCH_TOKEN_BYTES, 'token').finish();
}

/** Decode an UNWATCH body. */
export function decodeUnwatch(body: Buffer): Unwatch {
  const r = new Reader(body, M);
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  const token = Buffer.from(r.bytes(WATCH_TOKEN_BYTES, 'token'));
  r.end('UNWATCH');
  return { agent, token };
}

/** UNWATCH_ACK body: u8 1 when a watch was removed, 0 when none matched. */
export function encodeUnwatchAck(removed: boolean): Buffer {
  return Buffer.of(removed ? 1 : 0);
}

/** Decode an UNWATCH_ACK body. */
export function decodeUnwatchAck(body: Buffer): boolean {
  const r = new Reader(body, M);
  const v = r.u8('removed');
  if (v > 1) throw new FerryError(M, `UNWATCH_ACK byte ${v}`);
  r.end('UNWATCH_ACK');
  return v === 1;
}

// ---------------------------------------------------------------------------------------------
// RELAY (request, client host -> rendezvous) -> RELAY_ACK; RELAYED (request, rendezvous -> the
// agent's current host) -> RELAYED_ACK. RFC 8004's relay of a first packet, in request/reply form.

/** RELAY: "deliver this control request to wherever `to` is now". */
export interface Relay {
  /** The agent whose current host should receive the request. */
  readonly to: AgentId;
  /** The inner request's type (the rendezvous relays only the types it allows: CONNECT). */
  readonly innerType: number;
  /** The inner request's body, untouched. */
  readonly innerBody: Buffer;
}

/** Fixed RELAY fields before the inner body. */
export const RELAY_FIXED_BYTES = ID_BYTES + 1;
/** Largest RELAYED fixed part (IPv6 origin): origin address, port, inner type. */
export const RELAYED_FIXED_MAX_BYTES = 1 + 16 + 2 + 1;
/** Largest inner body a relay carries: what a RELAYED with an IPv6 origin leaves of a datagram. */
export const MAX_RELAY_INNER_BODY = MAX_DATAGRAM_BODY - RELAYED_FIXED_MAX_BYTES;

function checkInner(type: number, body: Uint8Array, code: 'FERRY_ERR_INVALID_ARGUMENT' | typeof M): void {
  if (!Number.isInteger(type) || type < 1 || type > 0xfe) throw new FerryError(code, `relayed type ${type} outside 1..254`);
  if (body.length > MAX_RELAY_INNER_BODY) throw new FerryError(code, `relayed body of ${body.length} bytes exceeds ${MAX_RELAY_INNER_BODY}`);
}

/** Encode a RELAY body: toAgent, u8 innerType, inner body. */
export function encodeRelay(m: Relay): Buffer {
  checkInner(m.innerType, m.innerBody, 'FERRY_ERR_INVALID_ARGUMENT');
  return new Writer().fixed(idToBytes(m.to), ID_BYTES, 'to').u8(m.innerType).bytes(m.innerBody).finish();
}

/** Decode a RELAY body (the inner body is a view: copy it to keep it). */
export function decodeRelay(body: Buffer): Relay {
  const r = new Reader(body, M);
  const to = idFromBytes(r.bytes(ID_BYTES, 'to'));
  const innerType = r.u8('innerType');
  const innerBody = r.rest();
  checkInner(innerType, innerBody, M);
  return { to, innerType, innerBody };
}

/** RELAYED: the rendezvous hands a host a request from `originIp:originPort`. */
export interface Relayed {
  /** Where the inner request really came from: the requester's control address. */
  readonly originIp: string;
  readonly originPort: number;
  readonly innerType: number;
  readonly innerBody: Buffer;
}

/** Encode a RELAYED body: u8 ipLength, ip, u16 port, u8 innerType, inner body. */
export function encodeRelayed(m: Relayed): Buffer {
  checkInner(m.innerType, m.innerBody, 'FERRY_ERR_INVALID_ARGUMENT');
  if (!Number.isInteger(m.originPort) || m.originPort < 1 || m.originPort > 0xffff) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `origin port ${m.originPort} outside 1..65535`);
  const ip = ipToBytes(m.originIp);
  return new Writer().u8(ip.length).bytes(ip).u16(m.originPort).u8(m.innerType).bytes(m.innerBody).finish();
}

/** Decode a RELAYED body. */
export function decodeRelayed(body: Buffer): Relayed {
  const r = new Reader(body, M);
  const ipLen = r.u8('ipLength');
  if (ipLen !== 4 && ipLen !== 16) throw new FerryError(M, `IP length ${ipLen}, expected 4 or 16`);
  const originIp = ipFromBytes(r.bytes(ipLen, 'originIp'));
  const originPort = r.u16('originPort');
  if (originPort === 0) throw new FerryError(M, 'origin port 0');
  const innerType = r.u8('innerType');
  const innerBody = r.rest();
  checkInner(innerType, innerBody, M);
  return { originIp, originPort, innerType, innerBody };
}

/** The inner reply a host returns in RELAYED_ACK, and the rendezvous passes on in RELAY_ACK. */
export interface InnerReply {
  readonly innerType: number;
  readonly innerBody: Buffer;
}

/** Encode a RELAYED_ACK body: u8 innerType, inner reply body. */
export function encodeRelayedAck(m: InnerReply): Buffer {
  checkInner(m.innerType, m.innerBody, 'FERRY_ERR_INVALID_ARGUMENT');
  return new Writer().u8(m.innerType).bytes(m.innerBody).finish();
}

/** Decode a RELAYED_ACK body. */
export function decodeRelayedAck(body: Buffer): InnerReply {
  const r = new Reader(body, M);
  const innerType = r.u8('innerType');
  const innerBody = r.rest();
  checkInner(innerType, innerBody, M);
  return { innerType, innerBody };
}

/** RELAY_ACK: where the agent was reached, and its host's reply. */
export interface RelayAck extends InnerReply {
  readonly location: LocationRecord;
}

/** Encode a RELAY_ACK body: the location record, u8 innerType, inner reply body. */
export function encodeRelayAck(m: RelayAck): Buffer {
  checkInner(m.innerType, m.innerBody, 'FERRY_ERR_INVALID_ARGUMENT');
  const w = new Writer();
  writeRecord(w, m.location);
  return w.u8(m.innerType).bytes(m.innerBody).finish();
}

/** Decode a RELAY_ACK body. */
export function decodeRelayAck(body: Buffer): RelayAck {
  const r = new Reader(body, M);
  const location = readRecord(r);
  const innerType = r.u8('innerType');
  const innerBody = r.rest();
  checkInner(innerType, innerBody, M);
  return { location, innerType, innerBody };
}

// ---------------------------------------------------------------------------------------------
// PATH_CHALLENGE (request, rendezvous -> a registered control address) -> PATH_RESPONSE. RFC 9000
// §8.2's path validation: the address proves it receives by echoing 16 random bytes it could only
// have read there. Every control channel answers it (src/control/channel.ts).

/** Bytes of a path challenge (and of its echo). */
export const PATH_CHALLENGE_BYTES = 16;
/** A PATH_CHALLENGE datagram, header included: what each send to an unproven address costs. */
export const PATH_CHALLENGE_DATAGRAM = DATAGRAM_HEADER_BYTES + PATH_CHALLENGE_BYTES;

function encodeChallenge(challenge: Uint8Array): Buffer {
  return new Writer().fixed(challenge, PATH_CHALLENGE_BYTES, 'challenge').finish();
}

function decodeChallenge(body: Buffer, what: string): Buffer {
  const r = new Reader(body, M);
  const c = Buffer.from(r.bytes(PATH_CHALLENGE_BYTES, 'challenge'));
  r.end(what);
  return c;
}

/** Encode a PATH_CHALLENGE body: the 16 challenge bytes. */
export function encodePathChallenge(challenge: Uint8Array): Buffer {
  return encodeChallenge(challenge);
}

/** Decode a PATH_CHALLENGE body (exactly 16 bytes). */
export function decodePathChallenge(body: Buffer): Buffer {
  return decodeChallenge(body, 'PATH_CHALLENGE');
}

/** Encode a PATH_RESPONSE body: the challenge echoed. */
export function encodePathResponse(challenge: Uint8Array): Buffer {
  return encodeChallenge(challenge);
}

/** Decode a PATH_RESPONSE body (exactly 16 bytes). */
export function decodePathResponse(body: Buffer): Buffer {
  return decodeChallenge(body, 'PATH_RESPONSE');
}

/**
 * How many times a request datagram of `requestDatagramBytes` pays for sending a PATH_CHALLENGE
 * (first send and retransmissions): the address is unproven, so everything sent there because of
 * the request stays within AMPLIFICATION_FACTOR times the request (at least 3 for the smallest
 * RELAY, 25 bytes), and never more than CONTROL_MAX_TRIES.
 */
export function pathChallengeTries(requestDatagramBytes: number): number {
  const paid = Math.floor((limit('AMPLIFICATION_FACTOR') * requestDatagramBytes) / PATH_CHALLENGE_DATAGRAM);
  return Math.max(0, Math.min(limit('CONTROL_MAX_TRIES'), paid));
}
