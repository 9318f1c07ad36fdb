/**
 * Owner credentials for agents (NapletSocket §3.2): the owner's Ed25519 key signs "this agent key
 * may run this code (by SHA-256), asking for these rights, in this window". The codec and the
 * verifier live in `src/host/policy.ts` (hosts check credentials, and host may not import agent);
 * this module is the owner's side.
 */
import { codeHashOf, signCredential, type AgentCredential, type CredentialRights, type OwnerId } from '../host/index.js';
import type { AgentId, Identity } from '../identity/index.js';
import { FerryError, limit } from '../util/index.js';

export {
  codeHashOf,
  credentialFromText,
  credentialToText,
  decodeCredential,
  encodeCredential,
  type AgentCredential,
  type CredentialRights,
  type OwnerId,
} from '../host/index.js';

/** Default validity of an issued credential: one day. */
export const DEFAULT_CREDENTIAL_VALIDITY_MS = 24 * 3600_000;

/** What to sign. */
export interface IssueOptions {
  /** The agent's identity or raw Ed25519 public key. */
  agent: Identity | Uint8Array;
  /** The module source, or its hash. */
  code: string | { hash: string };
  /** Requested rights; anything omitted is the least: no listen, no connect targets. */
  rights?: Partial<CredentialRights>;
  /** Unix ms; default now. */
  notBefore?: number;
  /** Unix ms; default notBefore + {@link DEFAULT_CREDENTIAL_VALIDITY_MS}. */
  notAfter?: number;
  /** Wall clock for the defaults (Unix ms). */
  now?: number;
}

/** The owner id of an owner key. */
export function ownerIdOf(owner: Identity): OwnerId {
  return owner.id as unknown as OwnerId;
}

/** Sign a credential for an agent with the owner's key. */
export function issueCredential(owner: Identity, o: IssueOptions): AgentCredential {
  const agentKey = o.agent instanceof Uint8Array ? Buffer.from(o.agent) : o.agent.publicRaw;
  const codeHash = typeof o.code === 'string' ? codeHashOf(o.code) : o.code.hash;
  if (!/^[0-9a-f]{64}$/.test(codeHash)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'code hash must be SHA-256 hex');
  const notBefore = o.notBefore ?? o.now ?? Date.now();
  const notAfter = o.notAfter ?? notBefore + DEFAULT_CREDENTIAL_VALIDITY_MS;
  const connect = o.rights?.connect ?? [];
  return signCredential(owner, {
    agentKey,
    codeHash,
    rights: {
      listen: o.rights?.listen ?? false,
      connect: connect === '*' ? '*' : ([...connect] as AgentId[]),
      maxConnections: o.rights?.maxConnections ?? limit('AGENT_MAX_CONNECTIONS'),
      maxBufferedBytes: o.rights?.maxBufferedBytes ?? limit('AGENT_MAX_BUFFERED_BYTES'),
    },
    notBefore,
    notAfter,
  });
}
