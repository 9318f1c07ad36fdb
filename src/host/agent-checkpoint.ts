/**
 * The agent checkpoint's codecs: what a move carries of an agent (its key seed, epoch, whether it
 * listens, its connections) and, for an agent with code, its landing (code, credential, state,
 * the bytes its connections carry). Both come from another host (over the migration channel, or
 * as plain data between two hosts of one process), so the destination checks them field by field
 * and gets them typed, never through a cast. Each connection is checked by the endpoint
 * checkpoint's codec (connection/checkpoint.ts). A bad field is refused with
 * FERRY_ERR_MALFORMED_CHECKPOINT, an unknown version with FERRY_ERR_UNSUPPORTED_VERSION; a landing
 * without a credential with FERRY_ERR_NO_CREDENTIAL, as admission always answered.
 */
import { decodeEndpointCheckpoint } from '../connection/index.js';
import type { AgentId } from '../identity/index.js';
import { FerryError } from '../util/index.js';
import type { AgentCheckpoint } from './host.js';
import type { OwnerId } from './policy.js';
import type { AgentLanding, CarriedConnection } from './runtime.js';

/** A key seed is 32 bytes (hex); agent and owner ids are 16 (hex). */
const SEED_RE = /^[0-9a-f]{64}$/;
const ID_RE = /^[0-9a-f]{32}$/;

function malformed(what: string, why: string): never {
  throw new FerryError('FERRY_ERR_MALFORMED_CHECKPOINT', `${what}: ${why}`);
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed(what, 'not an object');
  return v as Record<string, unknown>;
}

function text(v: unknown, what: string): string {
  return typeof v === 'string' ? v : malformed(what, 'not a string');
}

/** An agent or owner id: 32 lowercase hex digits (then branded, as parseId does). */
function id<T extends AgentId | OwnerId>(v: unknown, what: string): T {
  return typeof v === 'string' && ID_RE.test(v) ? (v as T) : malformed(what, 'not 32 hex digits');
}

function flag(v: unknown, what: string): boolean {
  return typeof v === 'boolean' ? v : malformed(what, 'not a boolean');
}

/** The name of a version for a message: a number as it is, anything else by its type (String() of an object can throw). */
const versionText = (v: unknown): string => (typeof v === 'number' ? String(v) : typeof v);

/**
 * Check an agent checkpoint from another host (or handed to `Host.attachAgent`) and return it
 * typed: version 1, a 64-hex-digit key seed, a list of endpoint checkpoints each checked field by
 * field, `listening` a boolean, `epoch` absent or a non-negative integer. A `landing` is not part
 * of what attaching uses: it is not returned (the runtime checks it, {@link decodeAgentLanding}).
 *
 * @throws FerryError `FERRY_ERR_UNSUPPORTED_VERSION`, `FERRY_ERR_MALFORMED_CHECKPOINT`.
 */
export function decodeAgentCheckpoint(input: unknown): AgentCheckpoint {
  const o = record(input, 'agent checkpoint');
  if (o.v !== 1) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `agent checkpoint version ${versionText(o.v)}`);
  if (typeof o.agentSeed !== 'string' || !SEED_RE.test(o.agentSeed)) malformed('agent checkpoint agentSeed', 'not 64 hex digits');
  if (!Array.isArray(o.endpoints)) malformed('agent checkpoint endpoints', 'not an array');
  const listening = flag(o.listening, 'agent checkpoint listening');
  if (o.epoch !== undefined && (typeof o.epoch !== 'number' || !Number.isSafeInteger(o.epoch) || o.epoch < 0)) malformed('agent checkpoint epoch', 'not a non-negative integer');
  const endpoints = o.endpoints.map((e) => decodeEndpointCheckpoint(e));
  return { v: 1, ...(o.epoch !== undefined ? { epoch: o.epoch } : {}), agentSeed: o.agentSeed, listening, endpoints };
}

/** One carried connection of a landing (see {@link CarriedConnection}); absent optional fields may also be `undefined`. */
function decodeCarried(input: unknown, what: string): CarriedConnection {
  const c = record(input, what);
  let error: CarriedConnection['error'];
  if (c.error !== undefined) {
    const e = record(c.error, `${what}.error`);
    error = { code: text(e.code, `${what}.error.code`), message: text(e.message, `${what}.error.message`) };
  }
  if (c.queued !== undefined) flag(c.queued, `${what}.queued`);
  return {
    key: text(c.key, `${what}.key`),
    remoteAgent: text(c.remoteAgent, `${what}.remoteAgent`),
    connectionId: text(c.connectionId, `${what}.connectionId`),
    undelivered: text(c.undelivered, `${what}.undelivered`),
    writeEnded: flag(c.writeEnded, `${what}.writeEnded`),
    closed: flag(c.closed, `${what}.closed`),
    ...(error ? { error } : {}),
    ...(c.queued === true ? { queued: true } : {}),
  };
}

/**
 * Check an agent landing from another host and return it typed. In the order admission judged it
 * before (a landing that is no object or of another version: FERRY_ERR_UNSUPPORTED_VERSION; no
 * credential text: FERRY_ERR_NO_CREDENTIAL), then every other field's type: the agent and owner
 * ids are 32 hex digits, the code, code hash and state strings, and each carried connection has its strings and flags
 * (an error, if any, with a code and a message). What the fields mean (the credential, the code
 * hash, the policy, the state's encoding) the runtime's admission checks next.
 *
 * @throws FerryError `FERRY_ERR_UNSUPPORTED_VERSION`, `FERRY_ERR_NO_CREDENTIAL`,
 *   `FERRY_ERR_MALFORMED_CHECKPOINT`.
 */
export function decodeAgentLanding(input: unknown): AgentLanding {
  if (typeof input !== 'object' || input === null || Array.isArray(input) || (input as { v?: unknown }).v !== 1) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', 'agent landing version');
  const o = input as Record<string, unknown>;
  if (typeof o.credential !== 'string') throw new FerryError('FERRY_ERR_NO_CREDENTIAL', 'landing without a credential');
  if (!Array.isArray(o.connections)) malformed('agent landing connections', 'not a list');
  return {
    v: 1,
    agentId: id<AgentId>(o.agentId, 'agent landing agentId'),
    owner: id<OwnerId>(o.owner, 'agent landing owner'),
    code: text(o.code, 'agent landing code'),
    codeHash: text(o.codeHash, 'agent landing codeHash'),
    credential: o.credential,
    state: text(o.state, 'agent landing state'),
    connections: o.connections.map((c, i) => decodeCarried(c, `agent landing connections[${i}]`)),
  };
}
