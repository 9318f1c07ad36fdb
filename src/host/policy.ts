/**
 * Agent credentials and host policy (NapletSocket §3.2, agent-oriented access control).
 *
 * An owner (a principal with an Ed25519 key) signs a credential for each agent it launches:
 * "agent key K may run code with SHA-256 hash H, asking for these rights, from t0 to t1". A host
 * admits the agent only when the credential verifies, names the code it was handed, and the
 * host's policy grants that owner the right to land here. The agent's effective rights are the
 * intersection of what the credential requests and what the policy grants: an owner can narrow
 * an agent below its own grant, never widen it.
 *
 * Everything here is pure: wall time comes in as `now` (Unix ms, because credentials cross
 * hosts), and {@link readPolicyFile} is the only I/O. The agent-facing signing helper is
 * `issueCredential` in `src/agent/credential.ts`; the codec lives here because the host
 * verifies and the host layer may not import the agent layer.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  ED25519_PUBLIC_BYTES,
  ED25519_SIGNATURE_BYTES,
  ID_BYTES,
  Identity,
  equalBytes,
  idFromBytes,
  idOfPublicKey,
  idToBytes,
  verifySignature,
  type AgentId,
} from '../identity/index.js';
import { FerryError, limit } from '../util/index.js';

/** An owner id: the first 128 bits of SHA-256 of the owner's Ed25519 public key (hex). */
export type OwnerId = string & { readonly __brand: 'OwnerId' };

/** Version byte of the credential layout. */
export const CREDENTIAL_VERSION = 1;

/**
 * Signature domain separation. The same owner key may sign other things one day (and agent keys
 * already sign delegations and handshake transcripts under "ferry/1 …" labels); this label makes a
 * credential signature useless as anything else, and the reverse.
 */
const CREDENTIAL_LABEL = Buffer.from('ferry/1 agent credential');

/** Fixed part of the encoded credential before the connect list (see docs/AGENTS.md). */
const FIXED_BYTES = 1 + ED25519_PUBLIC_BYTES * 2 + 32 + 1 + 4 + 4 + 8 + 8 + 2; // 124

/** The rights an owner asks for on behalf of its agent. */
export interface CredentialRights {
  /** May the agent open a server socket (`ctx.listen()`)? */
  readonly listen: boolean;
  /** Agent ids it may connect to, or '*' for any. */
  readonly connect: '*' | readonly AgentId[];
  /** Connections (opened and accepted) it may hold at once. */
  readonly maxConnections: number;
  /** Per-connection bytes the runtime may buffer for it (see LIMITS AGENT_MAX_BUFFERED_BYTES). */
  readonly maxBufferedBytes: number;
}

/** A decoded, not yet verified, agent credential. */
export interface AgentCredential {
  readonly version: typeof CREDENTIAL_VERSION;
  /** Raw Ed25519 public key of the owner who signed it. */
  readonly ownerKey: Buffer;
  readonly ownerId: OwnerId;
  /** Raw Ed25519 public key of the agent. */
  readonly agentKey: Buffer;
  readonly agentId: AgentId;
  /** SHA-256 of the agent module source, lowercase hex. */
  readonly codeHash: string;
  readonly rights: CredentialRights;
  /** Validity window, Unix milliseconds, inclusive. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** Ed25519 signature by the owner over the label and every field above. */
  readonly signature: Buffer;
}

/** The fields an owner signs. */
export type CredentialFields = Omit<AgentCredential, 'version' | 'ownerId' | 'agentId' | 'signature' | 'ownerKey'>;

/** SHA-256 of an agent module's source (UTF-8), lowercase hex: the code's identity. */
export function codeHashOf(source: string | Uint8Array): string {
  return createHash('sha256').update(typeof source === 'string' ? Buffer.from(source, 'utf8') : source).digest('hex');
}

const bad = (why: string): FerryError => new FerryError('FERRY_ERR_BAD_CREDENTIAL', `credential: ${why}`);
const HEX64 = /^[0-9a-f]{64}$/;

function checkRights(r: CredentialRights): void {
  if (typeof r.listen !== 'boolean') throw bad('rights.listen must be a boolean');
  if (r.connect !== '*') {
    if (!Array.isArray(r.connect)) throw bad('rights.connect must be "*" or a list of agent ids');
    if (r.connect.length > limit('CREDENTIAL_CONNECT_IDS')) throw bad(`rights.connect lists more than ${limit('CREDENTIAL_CONNECT_IDS')} ids`);
  }
  if (!Number.isInteger(r.maxConnections) || r.maxConnections < 0 || r.maxConnections > 0xffff_ffff) throw bad('rights.maxConnections must be an integer in 0..2^32-1');
  if (!Number.isInteger(r.maxBufferedBytes) || r.maxBufferedBytes < 0 || r.maxBufferedBytes > 0xffff_ffff) throw bad('rights.maxBufferedBytes must be an integer in 0..2^32-1');
}

/** The exact bytes an owner signs (everything but the signature), label first. */
export function credentialSigningBytes(ownerKey: Uint8Array, f: CredentialFields): Buffer {
  return Buffer.concat([CREDENTIAL_LABEL, encodeBody(ownerKey, f)]);
}

function encodeBody(ownerKey: Uint8Array, f: CredentialFields): Buffer {
  if (ownerKey.length !== ED25519_PUBLIC_BYTES) throw bad('owner key must be 32 bytes');
  if (f.agentKey.length !== ED25519_PUBLIC_BYTES) throw bad('agent key must be 32 bytes');
  if (!HEX64.test(f.codeHash)) throw bad('code hash must be 64 lowercase hex characters (SHA-256)');
  checkRights(f.rights);
  if (!Number.isSafeInteger(f.notBefore) || !Number.isSafeInteger(f.notAfter) || f.notBefore < 0 || f.notAfter < f.notBefore) {
    throw bad('validity window must be safe integers with notBefore <= notAfter');
  }
  const ids = f.rights.connect === '*' ? [] : f.rights.connect.map((id) => idToBytes(id));
  const b = Buffer.alloc(FIXED_BYTES + ids.length * ID_BYTES);
  let o = 0;
  b.writeUInt8(CREDENTIAL_VERSION, o++);
  b.set(ownerKey, o);
  o += ED25519_PUBLIC_BYTES;
  b.set(f.agentKey, o);
  o += ED25519_PUBLIC_BYTES;
  b.write(f.codeHash, o, 'hex');
  o += 32;
  b.writeUInt8((f.rights.listen ? 1 : 0) | (f.rights.connect === '*' ? 2 : 0), o++);
  b.writeUInt32BE(f.rights.maxConnections, o);
  o += 4;
  b.writeUInt32BE(f.rights.maxBufferedBytes, o);
  o += 4;
  b.writeBigUInt64BE(BigInt(f.notBefore), o);
  o += 8;
  b.writeBigUInt64BE(BigInt(f.notAfter), o);
  o += 8;
  b.writeUInt16BE(ids.length, o);
  o += 2;
  for (const id of ids) {
    b.set(id, o);
    o += ID_BYTES;
  }
  return b;
}

/** Sign a credential with the owner's key. */
export function signCredential(owner: Identity, f: CredentialFields): AgentCredential {
  const signature = owner.sign(credentialSigningBytes(owner.publicRaw, f));
  return {
    version: CREDENTIAL_VERSION,
    ownerKey: Buffer.from(owner.publicRaw),
    ownerId: owner.id as unknown as OwnerId,
    agentKey: Buffer.from(f.agentKey),
    agentId: idOfPublicKey(f.agentKey),
    codeHash: f.codeHash,
    rights: { ...f.rights, connect: f.rights.connect === '*' ? '*' : [...f.rights.connect] },
    notBefore: f.notBefore,
    notAfter: f.notAfter,
    signature,
  };
}

/** The credential's wire form: body then signature. */
export function encodeCredential(c: AgentCredential): Buffer {
  return Buffer.concat([encodeBody(c.ownerKey, c), c.signature]);
}

/**
 * Decode a credential strictly: exact length, known version and flags, sorted-free id list of the
 * announced length. Throws FERRY_ERR_BAD_CREDENTIAL. Does not verify the signature.
 */
export function decodeCredential(bytes: Uint8Array): AgentCredential {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < FIXED_BYTES + ED25519_SIGNATURE_BYTES) throw bad(`truncated (${b.length} bytes)`);
  let o = 0;
  const version = b.readUInt8(o++);
  if (version !== CREDENTIAL_VERSION) throw bad(`unknown version ${version}`);
  const ownerKey = Buffer.from(b.subarray(o, (o += ED25519_PUBLIC_BYTES)));
  const agentKey = Buffer.from(b.subarray(o, (o += ED25519_PUBLIC_BYTES)));
  const codeHash = b.subarray(o, (o += 32)).toString('hex');
  const flags = b.readUInt8(o++);
  if (flags & ~3) throw bad(`unknown flags 0x${flags.toString(16)}`);
  const maxConnections = b.readUInt32BE(o);
  o += 4;
  const maxBufferedBytes = b.readUInt32BE(o);
  o += 4;
  const nb = b.readBigUInt64BE(o);
  o += 8;
  const na = b.readBigUInt64BE(o);
  o += 8;
  if (nb > BigInt(Number.MAX_SAFE_INTEGER) || na > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('validity beyond 2^53 ms');
  const count = b.readUInt16BE(o);
  o += 2;
  if (count > limit('CREDENTIAL_CONNECT_IDS')) throw bad(`connect list of ${count} ids exceeds ${limit('CREDENTIAL_CONNECT_IDS')}`);
  if ((flags & 2) && count !== 0) throw bad('connect "*" with a list of ids');
  if (b.length !== FIXED_BYTES + count * ID_BYTES + ED25519_SIGNATURE_BYTES) throw bad(`length ${b.length} does not match ${count} connect ids`);
  const ids: AgentId[] = [];
  for (let i = 0; i < count; i++) ids.push(idFromBytes(b.subarray(o, (o += ID_BYTES))));
  const signature = Buffer.from(b.subarray(o, o + ED25519_SIGNATURE_BYTES));
  const notBefore = Number(nb);
  const notAfter = Number(na);
  if (notAfter < notBefore) throw bad('notAfter before notBefore');
  return {
    version: CREDENTIAL_VERSION,
    ownerKey,
    ownerId: idOfPublicKey(ownerKey) as unknown as OwnerId,
    agentKey,
    agentId: idOfPublicKey(agentKey),
    codeHash,
    rights: { listen: (flags & 1) !== 0, connect: flags & 2 ? '*' : ids, maxConnections, maxBufferedBytes },
    notBefore,
    notAfter,
    signature,
  };
}

/** Text form (base64 of the wire form), for files, flags and JSON checkpoints. */
export function credentialToText(c: AgentCredential): string {
  return encodeCredential(c).toString('base64');
}

/** Parse the text form. Throws FERRY_ERR_BAD_CREDENTIAL. */
export function credentialFromText(text: string): AgentCredential {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length > 4 * 8192) throw bad('not base64');
  return decodeCredential(Buffer.from(text, 'base64'));
}

/** A credential in any accepted form: decoded, wire bytes or text; undefined means none. */
export type CredentialInput = AgentCredential | Uint8Array | string | undefined | null;

/** Decode whatever form was given. Throws FERRY_ERR_NO_CREDENTIAL or FERRY_ERR_BAD_CREDENTIAL. */
export function toCredential(input: CredentialInput): AgentCredential {
  if (input === undefined || input === null || input === '') throw new FerryError('FERRY_ERR_NO_CREDENTIAL', 'no agent credential was presented');
  if (typeof input === 'string') return credentialFromText(input);
  if (input instanceof Uint8Array) return decodeCredential(input);
  if (typeof input === 'object' && 'signature' in input) return decodeCredential(encodeCredential(input)); // re-derive ids from keys
  throw bad('unrecognised credential form');
}

/**
 * Verify a credential for a launch or a landing. Checks, in order: the owner signature
 * (FERRY_ERR_BAD_CREDENTIAL), that it names this agent key (BAD_CREDENTIAL), the validity window
 * with CLOCK_SKEW_MS of slack and at most CREDENTIAL_MAX_VALIDITY_MS long
 * (FERRY_ERR_CREDENTIAL_EXPIRED / BAD_CREDENTIAL), and the code hash (FERRY_ERR_CODE_HASH_MISMATCH).
 * The signature comes first so an unsigned blob learns nothing about which check it would fail.
 */
export function verifyCredential(c: AgentCredential, expect: { agentKey: Uint8Array; codeHash: string; now: number }): void {
  if (!verifySignature(c.ownerKey, credentialSigningBytes(c.ownerKey, c), c.signature)) throw bad('owner signature does not verify');
  if (!equalBytes(c.agentKey, expect.agentKey)) throw bad(`issued for agent ${c.agentId}, not for ${idOfPublicKey(expect.agentKey)}`);
  if (c.notAfter - c.notBefore > limit('CREDENTIAL_MAX_VALIDITY_MS')) throw bad('validity window longer than CREDENTIAL_MAX_VALIDITY_MS');
  const skew = limit('CLOCK_SKEW_MS');
  if (expect.now + skew < c.notBefore) throw new FerryError('FERRY_ERR_CREDENTIAL_EXPIRED', `credential not valid before ${new Date(c.notBefore).toISOString()}`);
  if (expect.now - skew > c.notAfter) throw new FerryError('FERRY_ERR_CREDENTIAL_EXPIRED', `credential expired at ${new Date(c.notAfter).toISOString()}`);
  if (c.codeHash !== expect.codeHash) throw new FerryError('FERRY_ERR_CODE_HASH_MISMATCH', `credential signs code ${c.codeHash.slice(0, 16)}…, the code hashes to ${expect.codeHash.slice(0, 16)}…`);
}

// ------------------------------------------------------------------ policy

/** Which agents an owner's agents may connect to. */
export type ConnectGrant = '*' | { readonly agents: readonly AgentId[]; readonly owners: readonly OwnerId[] };

/** Limits a policy sets for an owner's agents. */
export interface PolicyLimits {
  readonly maxConnections: number;
  readonly maxBufferedBytes: number;
  readonly maxHeapMb: number;
}

/** What a host grants one owner. Anything not granted is denied. */
export interface PolicyRule {
  readonly land: boolean;
  readonly listen: boolean;
  readonly connect: ConnectGrant;
  readonly limits: PolicyLimits;
}

/** A validated host policy. */
export interface HostPolicy {
  readonly version: 1;
  readonly owners: ReadonlyMap<OwnerId, PolicyRule>;
  /** The rule for owners not listed; undefined denies them everything. */
  readonly default: PolicyRule | undefined;
}

const badPolicy = (path: string, why: string): FerryError => new FerryError('FERRY_ERR_BAD_POLICY', `policy${path}: ${why}`);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ID = /^[0-9a-f]{32}$/;

function onlyKeys(path: string, o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw badPolicy(path, `unknown field ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
}

function bool(path: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw badPolicy(path, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function int(path: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badPolicy(path, `expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

function ids<T extends string>(path: string, v: unknown, what: string): T[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw badPolicy(path, `expected a list of ${what} ids`);
  if (v.length > limit('POLICY_OWNERS')) throw badPolicy(path, `more than ${limit('POLICY_OWNERS')} ids`);
  return v.map((x, i) => {
    if (typeof x !== 'string' || !ID.test(x)) throw badPolicy(`${path}[${i}]`, `expected a ${what} id (32 lowercase hex characters), got ${JSON.stringify(x)}`);
    return x as T;
  });
}

function parseRule(path: string, v: unknown): PolicyRule {
  if (!isObject(v)) throw badPolicy(path, 'expected an object');
  onlyKeys(path, v, ['name', 'land', 'listen', 'connect', 'limits']);
  if (v.name !== undefined && (typeof v.name !== 'string' || v.name.length > 200)) throw badPolicy(`${path}.name`, 'expected a string of at most 200 characters');
  let connect: ConnectGrant;
  if (v.connect === '*') connect = '*';
  else if (v.connect === undefined) connect = { agents: [], owners: [] };
  else if (isObject(v.connect)) {
    onlyKeys(`${path}.connect`, v.connect, ['agents', 'owners']);
    connect = { agents: ids<AgentId>(`${path}.connect.agents`, v.connect.agents, 'agent'), owners: ids<OwnerId>(`${path}.connect.owners`, v.connect.owners, 'owner') };
  } else throw badPolicy(`${path}.connect`, 'expected "*" or { "agents": [...], "owners": [...] }');
  const l = v.limits === undefined ? {} : v.limits;
  if (!isObject(l)) throw badPolicy(`${path}.limits`, 'expected an object');
  onlyKeys(`${path}.limits`, l, ['maxConnections', 'maxBufferedBytes', 'maxHeapMb']);
  return {
    land: bool(`${path}.land`, v.land, false),
    listen: bool(`${path}.listen`, v.listen, false),
    connect,
    limits: {
      maxConnections: int(`${path}.limits.maxConnections`, l.maxConnections, 0, limit('AGENT_MAX_CONNECTIONS'), limit('AGENT_MAX_CONNECTIONS')),
      maxBufferedBytes: int(`${path}.limits.maxBufferedBytes`, l.maxBufferedBytes, 1024, limit('AGENT_MAX_BUFFERED_BYTES'), limit('AGENT_MAX_BUFFERED_BYTES')),
      maxHeapMb: int(`${path}.limits.maxHeapMb`, l.maxHeapMb, 8, 4096, limit('AGENT_HEAP_MB')),
    },
  };
}

/**
 * Validate a host policy (parsed JSON or its text) strictly: unknown fields, wrong types, out of
 * range numbers and malformed ids are errors that name the field (FERRY_ERR_BAD_POLICY). Omitted
 * rights are denied; omitted limits take the LIMITS defaults. Schema in docs/AGENTS.md.
 */
export function parsePolicy(input: unknown): HostPolicy {
  let v = input;
  if (typeof input === 'string') {
    if (input.length > limit('POLICY_FILE_BYTES')) throw badPolicy('', `longer than ${limit('POLICY_FILE_BYTES')} bytes`);
    try {
      v = JSON.parse(input) as unknown;
    } catch (cause) {
      throw new FerryError('FERRY_ERR_BAD_POLICY', `policy: not valid JSON (${(cause as Error).message})`, { cause });
    }
  }
  if (!isObject(v)) throw badPolicy('', 'expected a JSON object');
  onlyKeys('', v, ['version', 'owners', 'default']);
  if (v.version !== 1) throw badPolicy('.version', `expected 1, got ${JSON.stringify(v.version)}`);
  const owners = new Map<OwnerId, PolicyRule>();
  if (v.owners !== undefined) {
    if (!isObject(v.owners)) throw badPolicy('.owners', 'expected an object keyed by owner id');
    const keys = Object.keys(v.owners);
    if (keys.length > limit('POLICY_OWNERS')) throw badPolicy('.owners', `more than ${limit('POLICY_OWNERS')} owners`);
    for (const k of keys) {
      if (!ID.test(k)) throw badPolicy(`.owners`, `key ${JSON.stringify(k)} is not an owner id (32 lowercase hex characters)`);
      owners.set(k as OwnerId, parseRule(`.owners.${k}`, v.owners[k]));
    }
  }
  const dflt = v.default === undefined || v.default === null ? undefined : parseRule('.default', v.default);
  return { version: 1, owners, default: dflt };
}

/** Read and validate a policy file. Errors: FERRY_ERR_BAD_POLICY (unreadable, too large, invalid). */
export async function readPolicyFile(path: string): Promise<HostPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new FerryError('FERRY_ERR_BAD_POLICY', `policy file ${path}: ${(cause as Error).message}`, { cause });
  }
  return parsePolicy(text);
}

/** A policy that grants nothing to anyone: the safe default for a host with no policy file. */
export const DENY_ALL_POLICY: HostPolicy = { version: 1, owners: new Map(), default: undefined };

/** The effective rights of one admitted agent: credential ∩ policy. */
export interface AgentGrant {
  readonly owner: OwnerId;
  readonly listen: boolean;
  /** What the credential asks for ('*' or ids) — checked together with {@link policyConnect}. */
  readonly credentialConnect: '*' | ReadonlySet<AgentId>;
  readonly policyConnect: ConnectGrant;
  readonly maxConnections: number;
  readonly maxBufferedBytes: number;
  readonly maxHeapMb: number;
}

/** The policy rule for an owner, or undefined when the owner is unknown and there is no default. */
export function ruleFor(policy: HostPolicy, owner: OwnerId): PolicyRule | undefined {
  return policy.owners.get(owner) ?? policy.default;
}

/**
 * Admission: may this credential's owner land an agent here, and with what rights?
 * Throws FERRY_ERR_POLICY_DENIED when the policy does not grant `land` to the owner.
 */
export function grantFor(policy: HostPolicy, c: AgentCredential): AgentGrant {
  const rule = ruleFor(policy, c.ownerId);
  if (!rule || !rule.land) throw new FerryError('FERRY_ERR_POLICY_DENIED', `owner ${c.ownerId} may not land agents on this host`);
  return {
    owner: c.ownerId,
    listen: c.rights.listen && rule.listen,
    credentialConnect: c.rights.connect === '*' ? '*' : new Set(c.rights.connect),
    policyConnect: rule.connect,
    maxConnections: Math.min(c.rights.maxConnections, rule.limits.maxConnections),
    maxBufferedBytes: Math.max(1024, Math.min(c.rights.maxBufferedBytes, rule.limits.maxBufferedBytes)),
    maxHeapMb: rule.limits.maxHeapMb,
  };
}

/** Throws FERRY_ERR_POLICY_DENIED unless the grant allows listening. */
export function checkListen(g: AgentGrant): void {
  if (!g.listen) throw new FerryError('FERRY_ERR_POLICY_DENIED', 'listen is not granted (credential and host policy must both allow it)');
}

/**
 * Throws FERRY_ERR_POLICY_DENIED unless both the credential and the policy allow a connection to
 * `to`. `toOwner` is the target's owner when this host knows it (see docs/AGENTS.md: owner rules
 * match only agents whose owner is known).
 */
export function checkConnect(g: AgentGrant, to: AgentId, toOwner: OwnerId | undefined): void {
  if (g.credentialConnect !== '*' && !g.credentialConnect.has(to)) throw new FerryError('FERRY_ERR_POLICY_DENIED', `the credential does not request connections to ${to}`);
  const p = g.policyConnect;
  if (p === '*') return;
  if (p.agents.includes(to)) return;
  if (toOwner !== undefined && p.owners.includes(toOwner)) return;
  throw new FerryError('FERRY_ERR_POLICY_DENIED', `host policy does not let owner ${g.owner} connect to ${to}${toOwner ? ` (owner ${toOwner})` : ''}`);
}
