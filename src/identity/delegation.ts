/**
 * Delegation certificates and trust chains (the HIP application-mobility paper's delegation
 * primitive, SPKI-like, not X.509): "issuer key I lets subject key S act for agent A from
 * notBefore to notAfter, at epoch e", Ed25519-signed by I. A chain links an AgentId (the hash of
 * the agent key) to the host that now speaks for it: the agent key signs the first link, and
 * each later link is signed by the previous link's subject.
 *
 * Layout, rules and the strategy that keeps chains short are in docs/DELEGATION.md; this file is
 * the one implementation of both. Pure: no clock is read here, every check takes `now` (wall
 * time, Unix milliseconds: certificates cross hosts, so a monotonic clock would mean nothing).
 *
 * Identity sits below wire/, so this module does not use wire/bytes.ts: the certificate has a
 * fixed layout and is read at fixed offsets after one length check.
 */
import { FerryError, limit } from '../util/index.js';
import {
  ED25519_PUBLIC_BYTES,
  ED25519_SIGNATURE_BYTES,
  ID_BYTES,
  Identity,
  idFromBytes,
  idOfPublicKey,
  idToBytes,
  verifySignature,
  type AgentId,
  type HostId,
} from './keys.js';

/** Version byte of the certificate layout this module writes and reads. */
export const DELEGATION_VERSION = 1;

/**
 * Signature domain separation: an Ed25519 key that signs delegations also signs handshake
 * transcripts ("ferry/1 client sig", "ferry/1 server sig"); the labels differ from byte 8 on, so
 * no signature made for one purpose verifies as the other.
 */
const LABEL = Buffer.from('ferry/1 delegation');

// Field offsets of the fixed layout (docs/DELEGATION.md has the byte table).
const OFF_VERSION = 0;
const OFF_AGENT = 1;
const OFF_ISSUER = OFF_AGENT + ID_BYTES; // 17
const OFF_SUBJECT = OFF_ISSUER + ED25519_PUBLIC_BYTES; // 49
const OFF_EPOCH = OFF_SUBJECT + ED25519_PUBLIC_BYTES; // 81
const OFF_NOT_BEFORE = OFF_EPOCH + 4; // 85
const OFF_NOT_AFTER = OFF_NOT_BEFORE + 8; // 93
const OFF_SIGNATURE = OFF_NOT_AFTER + 8; // 101: everything before this is signed

/** Encoded size of one certificate: 165 bytes. */
export const CERTIFICATE_BYTES = OFF_SIGNATURE + ED25519_SIGNATURE_BYTES;
/** Encoded size of the chain header (a u8 link count). */
export const CHAIN_HEADER_BYTES = 1;
/** Largest epoch a certificate can carry (u32). */
export const MAX_DELEGATION_EPOCH = 0xffff_ffff;

/** One delegation: `issuer` lets `subject` act for `agentId` within [notBefore, notAfter] at `epoch`. */
export interface DelegationCertificate {
  readonly version: typeof DELEGATION_VERSION;
  /** The agent this delegation speaks for. */
  readonly agentId: AgentId;
  /** Raw Ed25519 key that signed: the agent key for the first link, else the previous subject. */
  readonly issuer: Buffer;
  /** Raw Ed25519 key (a host key) allowed to act for the agent. */
  readonly subject: Buffer;
  /** Location epoch of the move this delegation was issued for; strictly increases along a chain. */
  readonly epoch: number;
  /** Start of validity, Unix ms (issuer's wall clock). */
  readonly notBefore: number;
  /** End of validity, Unix ms, inclusive. */
  readonly notAfter: number;
  /** Ed25519 by `issuer` over "ferry/1 delegation" || bytes 0..100 of the encoding. */
  readonly signature: Buffer;
}

/** A trust chain, agent key first, current representative last. */
export type DelegationChain = readonly DelegationCertificate[];

/** What a verified chain proves: who speaks for the agent now, and since which move. */
export interface Representative {
  /** Raw public key of the host that now acts for the agent (the last link's subject). */
  readonly subject: Buffer;
  /** Its id (hash of `subject`), comparable with a host's `HostId`. */
  readonly subjectId: HostId;
  /** The last link's epoch. */
  readonly epoch: number;
  /** The last link's notAfter: renew, or stop trusting a cached verdict, by then (plus skew). */
  readonly notAfter: number;
  /** Number of links verified. */
  readonly links: number;
}

/** Bounds a verifier applies; each defaults to its row in LIMITS. */
export interface ChainPolicy {
  /** Most links accepted (MAX_CHAIN_LINKS). */
  readonly maxLinks?: number;
  /** Clock disagreement tolerated at either end of a window (CLOCK_SKEW_MS). */
  readonly skewMs?: number;
  /** Longest window one link may span (MAX_CERT_VALIDITY_MS). */
  readonly maxValidityMs?: number;
}

/** A decoded value and how many input bytes it took. */
export interface Decoded<T> {
  readonly value: T;
  readonly bytes: number;
}

function invalid(message: string): FerryError {
  return new FerryError('FERRY_ERR_INVALID_ARGUMENT', message);
}

function checkKey(raw: Uint8Array, what: string): void {
  if (!(raw instanceof Uint8Array) || raw.length !== ED25519_PUBLIC_BYTES) throw invalid(`${what} must be a 32-byte Ed25519 public key`);
}

function checkEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_DELEGATION_EPOCH) throw invalid(`epoch ${epoch} out of range 0..${MAX_DELEGATION_EPOCH}`);
}

function checkTime(t: number, what: string): void {
  if (!Number.isSafeInteger(t) || t < 0) throw invalid(`${what} must be a non-negative safe integer (Unix ms), got ${t}`);
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

/** The fields of `c` in wire order, without the signature (what the issuer signs). */
function encodeBody(c: Omit<DelegationCertificate, 'signature'>): Buffer {
  if (c.version !== DELEGATION_VERSION) throw invalid(`certificate version ${String(c.version)} is not ${DELEGATION_VERSION}`);
  checkKey(c.issuer, 'issuer');
  checkKey(c.subject, 'subject');
  checkEpoch(c.epoch);
  checkTime(c.notBefore, 'notBefore');
  checkTime(c.notAfter, 'notAfter');
  if (c.notAfter < c.notBefore) throw invalid('notAfter is before notBefore');
  const b = Buffer.alloc(OFF_SIGNATURE);
  b[OFF_VERSION] = c.version;
  idToBytes(c.agentId).copy(b, OFF_AGENT);
  b.set(c.issuer, OFF_ISSUER);
  b.set(c.subject, OFF_SUBJECT);
  b.writeUInt32BE(c.epoch, OFF_EPOCH);
  writeU64(b, OFF_NOT_BEFORE, c.notBefore);
  writeU64(b, OFF_NOT_AFTER, c.notAfter);
  return b;
}

function signedMessage(body: Buffer): Buffer {
  return Buffer.concat([LABEL, body]);
}

/**
 * Issue one delegation: `issuer` lets `subjectPublicRaw` act for `agentId` from `notBefore` to
 * `notAfter` (Unix ms, inclusive) at `epoch`. Refuses (FERRY_ERR_INVALID_ARGUMENT) a window that
 * ends before it starts or spans more than MAX_CERT_VALIDITY_MS, which verifiers would refuse.
 */
export function issueDelegation(
  issuer: Identity,
  agentId: AgentId,
  subjectPublicRaw: Uint8Array,
  epoch: number,
  notBefore: number,
  notAfter: number,
): DelegationCertificate {
  checkKey(subjectPublicRaw, 'subject');
  checkTime(notBefore, 'notBefore');
  checkTime(notAfter, 'notAfter');
  if (notAfter - notBefore > limit('MAX_CERT_VALIDITY_MS')) throw invalid(`validity ${notAfter - notBefore} ms exceeds MAX_CERT_VALIDITY_MS`);
  const fields = {
    version: DELEGATION_VERSION,
    agentId,
    issuer: Buffer.from(issuer.publicRaw),
    subject: Buffer.from(subjectPublicRaw),
    epoch,
    notBefore,
    notAfter,
  } as const;
  const signature = issuer.sign(signedMessage(encodeBody(fields)));
  return { ...fields, signature };
}

/**
 * A fresh 1-link chain signed by the agent key itself: what a host holding the agent (whose key
 * travels in its checkpoint) issues on every landing and renewal, so chains never grow while the
 * agent key is at hand. Valid from `now` for `validityMs` (default DELEGATION_VALIDITY_MS).
 */
export function freshChain(agent: Identity, subjectPublicRaw: Uint8Array, epoch: number, now: number, validityMs = limit('DELEGATION_VALIDITY_MS')): DelegationChain {
  checkTime(validityMs, 'validityMs');
  return [issueDelegation(agent, agent.id, subjectPublicRaw, epoch, now, now + validityMs)];
}

/**
 * Append a link by which `issuer` (the chain's current subject) lets `subjectPublicRaw` act for
 * the agent from `now` for `validityMs`, at `epoch` (above the last link's). For a host that acts
 * for an agent without holding its key. Does not re-verify `chain`: verify what you receive.
 *
 * Refuses, before signing anything a verifier would reject: an empty chain or an issuer that is
 * not the last subject or a non-increasing epoch (FERRY_ERR_INVALID_ARGUMENT); an issuer whose own
 * delegation has ended or not yet begun (FERRY_ERR_CHAIN_EXPIRED); a result longer than
 * `maxLinks` (FERRY_ERR_CHAIN_TOO_LONG; the agent must re-sign with {@link freshChain}).
 */
export function extendChain(
  chain: DelegationChain,
  issuer: Identity,
  subjectPublicRaw: Uint8Array,
  epoch: number,
  validityMs: number,
  now: number,
  policy: ChainPolicy = {},
): DelegationChain {
  const last = chain[chain.length - 1];
  if (!last) throw invalid('cannot extend an empty chain: the agent key issues the first link (freshChain)');
  if (!issuer.publicRaw.equals(last.subject)) throw invalid('only the current subject (last link) may extend a chain');
  checkEpoch(epoch);
  if (epoch <= last.epoch) throw invalid(`epoch ${epoch} must exceed the last link's ${last.epoch}`);
  checkTime(now, 'now');
  checkTime(validityMs, 'validityMs');
  const skew = policy.skewMs ?? limit('CLOCK_SKEW_MS');
  // Strict on the end (no skew): a verifier allows `skew` past prev.notAfter, keep that as margin.
  if (now > last.notAfter) throw new FerryError('FERRY_ERR_CHAIN_EXPIRED', `the issuer's delegation ended at ${last.notAfter}, now is ${now}`);
  if (now < last.notBefore - skew) throw new FerryError('FERRY_ERR_CHAIN_EXPIRED', `the issuer's delegation starts at ${last.notBefore}, now is ${now}`);
  const maxLinks = policy.maxLinks ?? limit('MAX_CHAIN_LINKS');
  if (chain.length + 1 > maxLinks) throw new FerryError('FERRY_ERR_CHAIN_TOO_LONG', `chain would have ${chain.length + 1} links, limit ${maxLinks}`);
  return [...chain, issueDelegation(issuer, last.agentId, subjectPublicRaw, epoch, now, now + validityMs)];
}

/** Encoded length of one certificate (always {@link CERTIFICATE_BYTES}). */
export function certificateLength(): number {
  return CERTIFICATE_BYTES;
}

/** Encode one certificate ({@link CERTIFICATE_BYTES} bytes). */
export function encodeCertificate(c: DelegationCertificate): Buffer {
  if (!(c.signature instanceof Uint8Array) || c.signature.length !== ED25519_SIGNATURE_BYTES) throw invalid('signature must be 64 bytes');
  return Buffer.concat([encodeBody(c), c.signature], CERTIFICATE_BYTES);
}

function checkOffset(buf: Uint8Array, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) throw invalid(`offset ${offset} outside 0..${buf.length}`);
}

function malformed(message: string): FerryError {
  return new FerryError('FERRY_ERR_MALFORMED_CERTIFICATE', message);
}

/** A u64 at `off` that must be a JS safe integer (Unix ms are far below 2^53). */
function readU64(b: Buffer, off: number, what: string): number {
  const hi = b.readUInt32BE(off);
  if (hi > 0x1f_ffff) throw malformed(`${what} exceeds 2^53`);
  return hi * 2 ** 32 + b.readUInt32BE(off + 4);
}

/**
 * Decode one certificate at `offset`. Checks the version, then the full fixed length, before
 * reading any field; copies what it keeps, so the input buffer may be reused. Throws
 * FERRY_ERR_UNSUPPORTED_VERSION for an unknown version byte, FERRY_ERR_MALFORMED_CERTIFICATE for
 * a short input, a time above 2^53 or a window that ends before it starts. The signature is not
 * checked here ({@link verifyChain} does).
 */
export function decodeCertificate(input: Uint8Array, offset = 0): Decoded<DelegationCertificate> {
  checkOffset(input, offset);
  const buf = asBuffer(input);
  const left = buf.length - offset;
  if (left < 1) throw malformed('truncated: certificate version missing');
  const version = buf[offset + OFF_VERSION]!;
  if (version !== DELEGATION_VERSION) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `delegation certificate version ${version}`);
  if (left < CERTIFICATE_BYTES) throw malformed(`truncated: certificate needs ${CERTIFICATE_BYTES} bytes, ${left} left`);
  const b = buf.subarray(offset, offset + CERTIFICATE_BYTES);
  const notBefore = readU64(b, OFF_NOT_BEFORE, 'notBefore');
  const notAfter = readU64(b, OFF_NOT_AFTER, 'notAfter');
  if (notAfter < notBefore) throw malformed('notAfter is before notBefore');
  const value: DelegationCertificate = {
    version: DELEGATION_VERSION,
    agentId: idFromBytes(b.subarray(OFF_AGENT, OFF_ISSUER)),
    issuer: Buffer.from(b.subarray(OFF_ISSUER, OFF_SUBJECT)),
    subject: Buffer.from(b.subarray(OFF_SUBJECT, OFF_EPOCH)),
    epoch: b.readUInt32BE(OFF_EPOCH),
    notBefore,
    notAfter,
    signature: Buffer.from(b.subarray(OFF_SIGNATURE, CERTIFICATE_BYTES)),
  };
  return { value, bytes: CERTIFICATE_BYTES };
}

/** Encoded size of a chain of `links` links (or of the given chain): 1 + 165 × links bytes. */
export function chainSizeBytes(chain: number | DelegationChain): number {
  const n = typeof chain === 'number' ? chain : chain.length;
  if (!Number.isInteger(n) || n < 0) throw invalid(`bad link count ${n}`);
  return CHAIN_HEADER_BYTES + n * CERTIFICATE_BYTES;
}

/** Encode a chain: u8 link count, then each certificate. At most 255 links fit the count. */
export function encodeChain(chain: DelegationChain): Buffer {
  if (chain.length > 0xff) throw invalid(`a chain of ${chain.length} links does not fit a u8 count`);
  const parts: Buffer[] = [Buffer.of(chain.length)];
  for (const c of chain) parts.push(encodeCertificate(c));
  return Buffer.concat(parts, chainSizeBytes(chain.length));
}

/**
 * Decode a chain at `offset`; returns it and the bytes taken (callers embedding a chain in a
 * larger message go on from there, and must reject what they do not expect after it). A count
 * above `maxLinks` is refused with FERRY_ERR_CHAIN_TOO_LONG and a count whose links do not fit the
 * input with FERRY_ERR_MALFORMED_CERTIFICATE, both before any link is read or allocated. An
 * empty chain decodes (it is well formed); {@link verifyChain} refuses it.
 */
export function decodeChain(input: Uint8Array, offset = 0, policy: ChainPolicy = {}): Decoded<DelegationCertificate[]> {
  checkOffset(input, offset);
  if (input.length - offset < CHAIN_HEADER_BYTES) throw malformed('truncated: chain link count missing');
  const count = input[offset]!;
  const maxLinks = policy.maxLinks ?? limit('MAX_CHAIN_LINKS');
  if (count > maxLinks) throw new FerryError('FERRY_ERR_CHAIN_TOO_LONG', `chain announces ${count} links, limit ${maxLinks}`);
  const need = chainSizeBytes(count);
  if (input.length - offset < need) throw malformed(`truncated: chain of ${count} links needs ${need} bytes, ${input.length - offset} left`);
  const chain: DelegationCertificate[] = [];
  let at = offset + CHAIN_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const { value, bytes } = decodeCertificate(input, at);
    chain.push(value);
    at += bytes;
  }
  return { value: chain, bytes: at - offset };
}

function refuse(code: 'FERRY_ERR_CHAIN_TRUNCATED' | 'FERRY_ERR_CHAIN_BROKEN' | 'FERRY_ERR_CHAIN_FORGED' | 'FERRY_ERR_CHAIN_EXPIRED', link: number, why: string): FerryError {
  return new FerryError(code, `delegation link ${link}: ${why}`);
}

/**
 * Verify that `chain` links agent `agentId` (whose key is `agentPublicRaw`) to the host that now
 * acts for it, at wall time `now` (Unix ms). Returns that host's key and the chain's epoch, or
 * throws, checking in this order:
 *
 * - FERRY_ERR_IDENTITY_MISMATCH: `agentPublicRaw` does not hash to `agentId`.
 * - FERRY_ERR_CHAIN_TRUNCATED: the chain is empty.
 * - FERRY_ERR_CHAIN_TOO_LONG: more than `maxLinks` links (before any signature is checked).
 * - then link by link, agent key first:
 *   - FERRY_ERR_CHAIN_FORGED: the signature does not verify under the link's issuer key;
 *   - FERRY_ERR_CHAIN_TRUNCATED: the first link names another agent or is not issued by the agent key;
 *   - FERRY_ERR_CHAIN_BROKEN: a later link names another agent, is not issued by the previous
 *     subject, does not raise the epoch, or starts before the previous link did (less skew);
 *   - FERRY_ERR_CHAIN_EXPIRED: a window spans more than `maxValidityMs`; a link starts after the
 *     previous one ended (plus skew: issued by a delegate whose authority had run out); a link
 *     starts after `now` + skew.
 * - FERRY_ERR_CHAIN_EXPIRED: `now` is outside the last link's [notBefore - skew, notAfter + skew].
 *
 * Earlier links need not be valid at `now`: as in the HIP paper's trust chain, a delegation only
 * had to be valid when the next one was issued (docs/DELEGATION.md, "Time").
 */
export function verifyChain(agentId: AgentId, agentPublicRaw: Uint8Array, chain: DelegationChain, now: number, policy: ChainPolicy = {}): Representative {
  checkKey(agentPublicRaw, 'agent public key');
  checkTime(now, 'now');
  if (idOfPublicKey(agentPublicRaw) !== agentId) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', `agent key does not hash to ${agentId}`);
  const maxLinks = policy.maxLinks ?? limit('MAX_CHAIN_LINKS');
  const skew = policy.skewMs ?? limit('CLOCK_SKEW_MS');
  const maxValidity = policy.maxValidityMs ?? limit('MAX_CERT_VALIDITY_MS');
  if (chain.length === 0) throw new FerryError('FERRY_ERR_CHAIN_TRUNCATED', 'empty delegation chain');
  // Cheap bound first: an attacker's chain costs at most maxLinks signature checks.
  if (chain.length > maxLinks) throw new FerryError('FERRY_ERR_CHAIN_TOO_LONG', `chain has ${chain.length} links, limit ${maxLinks}`);

  let prev: DelegationCertificate | undefined;
  for (let i = 0; i < chain.length; i++) {
    const c = chain[i]!;
    // Signature first: a tampered byte anywhere in a link is reported as a forgery, not as the
    // inconsistency it happens to create. encodeBody re-derives the signed bytes from the fields.
    if (!verifySignature(c.issuer, signedMessage(encodeBody(c)), c.signature)) throw refuse('FERRY_ERR_CHAIN_FORGED', i, 'signature does not verify under its issuer key');
    if (!prev) {
      // The root: only the key the AgentId is the hash of may start a chain for it.
      if (c.agentId !== agentId) throw refuse('FERRY_ERR_CHAIN_TRUNCATED', i, `chain is for agent ${c.agentId}, not ${agentId}`);
      if (!c.issuer.equals(agentPublicRaw)) throw refuse('FERRY_ERR_CHAIN_TRUNCATED', i, 'first link is not issued by the agent key');
    } else {
      // Splicing links from another agent's chain, or from a host never delegated to, stops here.
      if (c.agentId !== agentId) throw refuse('FERRY_ERR_CHAIN_BROKEN', i, `link is for agent ${c.agentId}, not ${agentId}`);
      if (!c.issuer.equals(prev.subject)) throw refuse('FERRY_ERR_CHAIN_BROKEN', i, 'issuer is not the previous link\'s subject');
      // Epochs order the moves: a replayed or reordered link cannot point back to an older host.
      if (c.epoch <= prev.epoch) throw refuse('FERRY_ERR_CHAIN_BROKEN', i, `epoch ${c.epoch} does not exceed the previous ${prev.epoch}`);
      if (c.notBefore < prev.notBefore - skew) throw refuse('FERRY_ERR_CHAIN_BROKEN', i, 'starts before the delegation of its issuer did');
      if (c.notBefore > prev.notAfter + skew) throw refuse('FERRY_ERR_CHAIN_EXPIRED', i, 'issued after the delegation of its issuer had ended');
    }
    // Caps what an expired delegate can gain by backdating a link into its old window.
    if (c.notAfter - c.notBefore > maxValidity) throw refuse('FERRY_ERR_CHAIN_EXPIRED', i, `window of ${c.notAfter - c.notBefore} ms exceeds ${maxValidity} ms`);
    if (c.notBefore > now + skew) throw refuse('FERRY_ERR_CHAIN_EXPIRED', i, `not valid before ${c.notBefore} (now ${now})`);
    prev = c;
  }
  const last = prev!;
  if (now > last.notAfter + skew) throw refuse('FERRY_ERR_CHAIN_EXPIRED', chain.length - 1, `expired at ${last.notAfter} (now ${now})`);
  return {
    subject: Buffer.from(last.subject),
    subjectId: idOfPublicKey(last.subject) as string as HostId,
    epoch: last.epoch,
    notAfter: last.notAfter,
    links: chain.length,
  };
}
