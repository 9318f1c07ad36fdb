/**
 * The bodies of the migration channel's steps (inside sealed MIG_STEP frames, see migration.ts):
 * one encode/decode pair per step, every field checked. Layouts: docs/PROTOCOL.md §6.7.
 *
 * The bodies are UTF-8 JSON objects (host-to-host control data, a few per move, not per-byte
 * traffic). A decoder refuses, with FERRY_ERR_MALFORMED_MIGRATION_STEP: a body longer than
 * MAX_FRAME_PAYLOAD (before it is parsed), anything but a JSON object, a field missing, of the
 * wrong type or outside its range, a field it does not know, and a list or string above its bound
 * (checked before any hex or list is turned into buffers or records). The delegation chain inside
 * DELEGATE is decoded by its own codec and keeps its codes (FERRY_ERR_CHAIN_TOO_LONG,
 * FERRY_ERR_MALFORMED_CERTIFICATE).
 *
 * The peer is an authenticated host, but any host key may open a channel unless the destination
 * restricts sources (`acceptMigrationFrom`), so these bodies are treated as a stranger's input.
 */
import { chainSizeBytes, decodeChain, encodeChain, type AgentId, type DelegationChain } from '../identity/index.js';
import { FerryError, limit, type LIMITS } from '../util/index.js';
import { CONNECTION_ID_BYTES } from './frames.js';

const M = 'FERRY_ERR_MALFORMED_MIGRATION_STEP' as const;

/** The longest `detail` an ABORT carries (UTF-16 code units; the sender cuts it to this). */
export const MIGRATION_ABORT_DETAIL_CHARS = 200;
/** The longest error code an ABORT carries. */
const ABORT_CODE_CHARS = 64;
/** An owner-signed credential in text form (base64 of at most 8 KiB, as policy.ts reads it). */
const CREDENTIAL_TEXT_CHARS = 4 * 8192;

const ID_RE = /^[0-9a-f]{32}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const CODE_RE = /^FERRY_ERR_[A-Z0-9_]+$/;
const CONNECTION_KEY_RE = new RegExp(`^[0-9a-f]{${2 * CONNECTION_ID_BYTES}}/(?:client|server)$`);

/** What the destination's runtime needs to admit an agent with code before anything moves. */
export interface MigrationAdmission {
  /** The owner id (32 hex digits) the credential names. */
  owner: string;
  /** SHA-256 of the agent's code, 64 hex digits. */
  codeHash: string;
  /** The owner-signed credential, text form (base64). */
  credential: string;
}

/** DELEGATE (step 1, source): per member, a fresh delegation to the destination at `epoch`. */
export interface DelegateStep {
  agents: {
    agent: AgentId;
    /** The agent's Ed25519 public key, 32 bytes. */
    agentKey: Buffer;
    /** The location epoch the destination will register (current + 1, so at least 1). */
    epoch: number;
    chain: DelegationChain;
    admission?: MigrationAdmission;
  }[];
}

/** One connection of PEERS (step 2). */
export interface MigrationPeer {
  agent: AgentId;
  /** The connection id, 16 bytes. */
  id: Buffer;
  role: 'client' | 'server';
  peer: AgentId;
}

/** PEERS (step 2, source): the members' connections as of now. */
export interface PeersStep {
  connections: MigrationPeer[];
}

/** CONNECTION_IDS (step 3, destination): whether every (id, role) is free there. */
export interface ConnectionIdsStep {
  /** True exactly when `collisions` is empty. */
  ok: boolean;
  /** `connectionIdHex/role` of each connection that already lives at the destination. */
  collisions: string[];
}

/** CHECKPOINT_END (after the CHECKPOINT_PARTs, source): the checkpoint's length and digest. */
export interface CheckpointEndStep {
  length: number;
  /** SHA-256 of the concatenated parts, 32 bytes. */
  sha256: Buffer;
}

/** COMMITTED (destination): the epoch each member was registered at. */
export interface CommittedStep {
  epochs: Map<AgentId, number>;
}

/** ABORT (destination): why it refused or failed. */
export interface AbortStep {
  /** A Ferry error code (the source maps one it does not know to FERRY_ERR_REFUSED). */
  code: string;
  detail: string;
}

// ------------------------------------------------------------------ encoders

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

/** Encode DELEGATE. */
export function encodeDelegateStep(s: DelegateStep): Buffer {
  return json({
    agents: s.agents.map((a) => ({
      agent: a.agent,
      agentKey: a.agentKey.toString('hex'),
      epoch: a.epoch,
      chain: encodeChain(a.chain).toString('hex'),
      ...(a.admission ? { admission: { owner: a.admission.owner, codeHash: a.admission.codeHash, credential: a.admission.credential } } : {}),
    })),
  });
}

/** Encode PEERS. */
export function encodePeersStep(s: PeersStep): Buffer {
  return json({ connections: s.connections.map((c) => ({ agent: c.agent, id: c.id.toString('hex'), role: c.role, peer: c.peer })) });
}

/** Encode CONNECTION_IDS. */
export function encodeConnectionIdsStep(s: ConnectionIdsStep): Buffer {
  return json({ ok: s.ok, collisions: s.collisions });
}

/** Encode CONFIRM (an empty object). */
export function encodeConfirmStep(): Buffer {
  return json({});
}

/** Encode CHECKPOINT_END. */
export function encodeCheckpointEndStep(s: CheckpointEndStep): Buffer {
  return json({ length: s.length, sha256: s.sha256.toString('hex') });
}

/** Encode COMMITTED. */
export function encodeCommittedStep(s: CommittedStep): Buffer {
  return json({ epochs: Object.fromEntries(s.epochs) });
}

/** Encode ABORT; `detail` is cut to {@link MIGRATION_ABORT_DETAIL_CHARS}. */
export function encodeAbortStep(s: AbortStep): Buffer {
  return json({ code: s.code, detail: s.detail.slice(0, MIGRATION_ABORT_DETAIL_CHARS) });
}

// ------------------------------------------------------------------ decoders

type Obj = Record<string, unknown>;

const bad = (step: string, why: string): FerryError => new FerryError(M, `migration ${step}: ${why}`);

/** The body as a JSON object with exactly the fields allowed (those in `optional` may be absent). */
function parseBody(step: string, body: Buffer, required: readonly string[], optional: readonly string[] = []): Obj {
  if (body.length > limit('MAX_FRAME_PAYLOAD')) throw bad(step, `body of ${body.length} bytes exceeds MAX_FRAME_PAYLOAD`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw bad(step, 'body is not UTF-8 JSON');
  }
  return object(step, '', v, required, optional);
}

function object(step: string, path: string, v: unknown, required: readonly string[], optional: readonly string[] = []): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(step, `${path || 'body'} is not an object`);
  const o = v as Obj;
  for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) throw bad(step, `unknown field ${JSON.stringify(k.slice(0, 40))}${path ? ` in ${path}` : ''}`);
  for (const k of required) if (!Object.hasOwn(o, k)) throw bad(step, `missing field ${path ? `${path}.` : ''}${k}`);
  return o;
}

function list(step: string, path: string, v: unknown, min: number, max: number): unknown[] {
  if (!Array.isArray(v)) throw bad(step, `${path} is not a list`);
  if (v.length < min || v.length > max) throw bad(step, `${path} has ${v.length} entries, allowed ${min} to ${max}`);
  return v;
}

/** A string of at most `max` characters matching `re` (the length is checked before the pattern). */
function text(step: string, path: string, v: unknown, max: number, re?: RegExp): string {
  if (typeof v !== 'string' || v.length > max || (re && !re.test(v))) throw bad(step, `${path} is not ${re ? 'a well-formed string' : 'a string'} of at most ${max} characters`);
  return v;
}

function int(step: string, path: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw bad(step, `${path} is not an integer in ${min}..${max}`);
  return v;
}

/** Exactly `bytes` bytes as lowercase hex. */
function hex(step: string, path: string, v: unknown, bytes: number): Buffer {
  return Buffer.from(text(step, path, v, 2 * bytes, new RegExp(`^[0-9a-f]{${2 * bytes}}$`)), 'hex');
}

const agentId = (step: string, path: string, v: unknown): AgentId => text(step, path, v, 32, ID_RE) as AgentId;
const max = (name: keyof typeof LIMITS): number => limit(name);

/** Decode DELEGATE: 1 to MIGRATION_GROUP_AGENTS members, each with a well-formed chain. */
export function decodeDelegateStep(body: Buffer): DelegateStep {
  const S = 'DELEGATE';
  const o = parseBody(S, body, ['agents']);
  const agents = list(S, 'agents', o.agents, 1, max('MIGRATION_GROUP_AGENTS')).map((x, i) => {
    const p = `agents[${i}]`;
    const a = object(S, p, x, ['agent', 'agentKey', 'epoch', 'chain'], ['admission']);
    const chainHex = text(S, `${p}.chain`, a.chain, 2 * chainSizeBytes(max('MAX_CHAIN_LINKS')), HEX_RE);
    const chainBytes = Buffer.from(chainHex, 'hex');
    const chain = decodeChain(chainBytes);
    if (chain.bytes !== chainBytes.length) throw bad(S, `${p}.chain has ${chainBytes.length - chain.bytes} trailing bytes`);
    const entry: DelegateStep['agents'][number] = {
      agent: agentId(S, `${p}.agent`, a.agent),
      agentKey: hex(S, `${p}.agentKey`, a.agentKey, 32),
      epoch: int(S, `${p}.epoch`, a.epoch, 1, Number.MAX_SAFE_INTEGER),
      chain: chain.value,
    };
    if (a.admission !== undefined) {
      const ad = object(S, `${p}.admission`, a.admission, ['owner', 'codeHash', 'credential']);
      entry.admission = {
        owner: text(S, `${p}.admission.owner`, ad.owner, 32, ID_RE),
        codeHash: text(S, `${p}.admission.codeHash`, ad.codeHash, 64, SHA256_RE),
        credential: text(S, `${p}.admission.credential`, ad.credential, CREDENTIAL_TEXT_CHARS, BASE64_RE),
      };
    }
    return entry;
  });
  return { agents };
}

/** Decode PEERS: at most MAX_CONNECTIONS connections. */
export function decodePeersStep(body: Buffer): PeersStep {
  const S = 'PEERS';
  const o = parseBody(S, body, ['connections']);
  const connections = list(S, 'connections', o.connections, 0, max('MAX_CONNECTIONS')).map((x, i) => {
    const p = `connections[${i}]`;
    const c = object(S, p, x, ['agent', 'id', 'role', 'peer']);
    if (c.role !== 'client' && c.role !== 'server') throw bad(S, `${p}.role is neither "client" nor "server"`);
    return { agent: agentId(S, `${p}.agent`, c.agent), id: hex(S, `${p}.id`, c.id, CONNECTION_ID_BYTES), role: c.role, peer: agentId(S, `${p}.peer`, c.peer) } satisfies MigrationPeer;
  });
  return { connections };
}

/** Decode CONNECTION_IDS: `ok` must say whether `collisions` (at most MAX_CONNECTIONS) is empty. */
export function decodeConnectionIdsStep(body: Buffer): ConnectionIdsStep {
  const S = 'CONNECTION_IDS';
  const o = parseBody(S, body, ['ok', 'collisions']);
  if (typeof o.ok !== 'boolean') throw bad(S, 'ok is not a boolean');
  const collisions = list(S, 'collisions', o.collisions, 0, max('MAX_CONNECTIONS')).map((c, i) => text(S, `collisions[${i}]`, c, 2 * CONNECTION_ID_BYTES + 7, CONNECTION_KEY_RE));
  if (o.ok !== (collisions.length === 0)) throw bad(S, `ok is ${o.ok} with ${collisions.length} collisions`);
  return { ok: o.ok, collisions };
}

/** Decode CONFIRM: exactly `{}`. */
export function decodeConfirmStep(body: Buffer): void {
  parseBody('CONFIRM', body, []);
}

/** Decode CHECKPOINT_END: a length up to MAX_CHECKPOINT_BYTES and a SHA-256 digest. */
export function decodeCheckpointEndStep(body: Buffer): CheckpointEndStep {
  const S = 'CHECKPOINT_END';
  const o = parseBody(S, body, ['length', 'sha256']);
  return { length: int(S, 'length', o.length, 0, max('MAX_CHECKPOINT_BYTES')), sha256: hex(S, 'sha256', o.sha256, 32) };
}

/** Decode COMMITTED: 1 to MIGRATION_GROUP_AGENTS agent ids, each with an epoch of at least 1. */
export function decodeCommittedStep(body: Buffer): CommittedStep {
  const S = 'COMMITTED';
  const o = parseBody(S, body, ['epochs']);
  if (typeof o.epochs !== 'object' || o.epochs === null || Array.isArray(o.epochs)) throw bad(S, 'epochs is not an object');
  const e = o.epochs as Obj;
  // Counted before any key is checked: the body bound already caps them, this caps the work.
  const keys = Object.keys(e);
  if (keys.length < 1 || keys.length > max('MIGRATION_GROUP_AGENTS')) throw bad(S, `epochs has ${keys.length} entries, allowed 1 to ${max('MIGRATION_GROUP_AGENTS')}`);
  const epochs = new Map<AgentId, number>();
  for (const k of keys) epochs.set(agentId(S, 'epochs key', k), int(S, `epochs.${k}`, e[k], 1, Number.MAX_SAFE_INTEGER));
  return { epochs };
}

/** Decode ABORT: a FERRY_ERR_ code and a detail of at most {@link MIGRATION_ABORT_DETAIL_CHARS}. */
export function decodeAbortStep(body: Buffer): AbortStep {
  const S = 'ABORT';
  const o = parseBody(S, body, ['code', 'detail']);
  return { code: text(S, 'code', o.code, ABORT_CODE_CHARS, CODE_RE), detail: text(S, 'detail', o.detail, MIGRATION_ABORT_DETAIL_CHARS) };
}

// ------------------------------------------------------------------ the checkpoint body

/**
 * One member's entry in the streamed checkpoint body (the CHECKPOINT_PARTs put together). The
 * envelope is checked here; each connection in `endpoints` is checked by the connection
 * checkpoint's own decoder as the member is attached, and `landing` by the destination's runtime
 * when it admits it.
 */
export interface MigrationCheckpointAgent {
  v: 1;
  /** The agent's location epoch at the detach. */
  epoch?: number;
  /** The agent key's seed, 64 hex digits (a secret: it travels sealed, host to host). */
  agentSeed: string;
  listening: boolean;
  endpoints: unknown[];
  landing?: Record<string, unknown>;
}

/** Encode the checkpoint body, `{agents: [...]}` as JSON, one entry per member in DELEGATE order. */
export function encodeCheckpointBody(agents: readonly object[]): Buffer {
  return json({ agents });
}

/**
 * Decode the checkpoint body: at most MAX_CHECKPOINT_BYTES (checked before parsing), exactly
 * `members` entries, each with the fields of {@link MigrationCheckpointAgent} and nothing else,
 * at most MAX_CONNECTIONS connections each. Throws FERRY_ERR_MALFORMED_CHECKPOINT.
 */
export function decodeCheckpointBody(bytes: Buffer, members: number): { agents: MigrationCheckpointAgent[] } {
  const fail = (why: string): FerryError => new FerryError('FERRY_ERR_MALFORMED_CHECKPOINT', `migration checkpoint: ${why}`);
  if (bytes.length > max('MAX_CHECKPOINT_BYTES')) throw fail(`${bytes.length} bytes exceed MAX_CHECKPOINT_BYTES`);
  let o: Obj;
  try {
    o = object('CHECKPOINT', '', JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)), ['agents']);
  } catch (err) {
    throw fail(err instanceof FerryError ? err.message : 'not UTF-8 JSON');
  }
  if (!Array.isArray(o.agents) || o.agents.length !== members) throw fail(`agents is not a list of the ${members} delegated members`);
  const agents = o.agents.map((x, i): MigrationCheckpointAgent => {
    const p = `agents[${i}]`;
    let a: Obj;
    try {
      a = object('CHECKPOINT', p, x, ['v', 'agentSeed', 'listening', 'endpoints'], ['epoch', 'landing']);
    } catch (err) {
      throw fail((err as Error).message);
    }
    if (a.v !== 1) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `migration checkpoint ${p}: version ${JSON.stringify(a.v)}`);
    if (typeof a.agentSeed !== 'string' || !SHA256_RE.test(a.agentSeed)) throw fail(`${p}.agentSeed is not 64 hex digits`);
    if (typeof a.listening !== 'boolean') throw fail(`${p}.listening is not a boolean`);
    if (!Array.isArray(a.endpoints) || a.endpoints.length > max('MAX_CONNECTIONS')) throw fail(`${p}.endpoints is not a list of at most MAX_CONNECTIONS`);
    if (a.epoch !== undefined && (typeof a.epoch !== 'number' || !Number.isSafeInteger(a.epoch) || a.epoch < 0)) throw fail(`${p}.epoch is not a non-negative integer`);
    if (a.landing !== undefined && (typeof a.landing !== 'object' || a.landing === null || Array.isArray(a.landing))) throw fail(`${p}.landing is not an object`);
    return {
      v: 1,
      ...(a.epoch !== undefined ? { epoch: a.epoch as number } : {}),
      agentSeed: a.agentSeed,
      listening: a.listening,
      endpoints: a.endpoints as unknown[],
      ...(a.landing !== undefined ? { landing: a.landing as Record<string, unknown> } : {}),
    };
  });
  return { agents };
}
