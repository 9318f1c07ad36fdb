/**
 * What a rendezvous accepts as a location update: the decision, pure (wall time passed in), so
 * every refusal can be tested without a socket. The server stores what this returns.
 *
 * A proven registration says "host H runs agent A at epoch e, reachable at this locator": the
 * delegation chain proves H may act for A at epoch e (docs/DELEGATION.md), and H's signature
 * over the whole REGISTER binds the locator to it, so a copy of a chain seen on the wire cannot
 * be re-registered with another address. Freshness is the epoch: it must exceed the stored one.
 *
 * A self-registration says "host H is reachable at this locator": the entry is keyed by H's own
 * id, carries H's key as the agent key and an empty chain (the holder is the subject: the id is
 * the hash of the key, which is the proof), and is signed by that key. It lets agents and the CLI
 * name a migration target by host id alone (docs/DELEGATION.md, "Hosts by id").
 *
 * A deregistration says "host H, which holds A's entry, removes it" (the agent ended there, or H
 * stops): see {@link checkDeregistration}.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { FerryError } from '../util/index.js';
import { encodeChain, idOfPublicKey, verifyChain, verifySignature, type ChainPolicy, type DelegationChain } from '../identity/index.js';
import { REGISTRATION_DIGEST_BYTES, deregisterSigned, registerSigned, type Deregister, type Register } from '../wire/index.js';
import type { LocationEntry } from './table.js';

/** How strict a rendezvous is. */
export interface RegistrationPolicy {
  /**
   * Refuse registrations without a chain (default true). `false` is development mode: a bare
   * claim is accepted, ordered only by its epoch, for hosts that do not send chains yet. Even
   * then, an agent whose location was once proven is never overwritten by a bare claim.
   */
  readonly requireChains: boolean;
  /** Bounds for {@link verifyChain} (default: LIMITS). */
  readonly chain?: ChainPolicy;
}

/**
 * Check `reg` against the stored entry `current` at wall time `now` (Unix ms) and return the
 * entry to store. Cheap checks come first, so a replayed or mismatched registration costs no
 * signature verification:
 *
 * 1. `FERRY_ERR_REGISTRATION_UNPROVEN`: no chain, and chains are required or `current` was proven.
 * 2. `FERRY_ERR_REGISTRATION_MISMATCH`: the chain's last subject does not hash to `hostId`, or
 *    its last epoch is not `epoch`.
 * 3. `FERRY_ERR_STALE_EPOCH`: `epoch` is at or below the stored one.
 * 4. The chain's own codes from {@link verifyChain} (`IDENTITY_MISMATCH`, `CHAIN_TRUNCATED`,
 *    `CHAIN_TOO_LONG`, `CHAIN_FORGED`, `CHAIN_BROKEN`, `CHAIN_EXPIRED`); for a bare claim with a
 *    key, `IDENTITY_MISMATCH` if the key does not hash to the agent.
 * 5. `FERRY_ERR_BAD_SIGNATURE`: the registering host's signature does not verify.
 *
 * An empty chain is a host's self-registration: `agent` must equal `hostId`
 * (`FERRY_ERR_CHAIN_TRUNCATED` otherwise, as before: an agent's registration needs links), the key must hash to it (`FERRY_ERR_IDENTITY_MISMATCH`),
 * and the signature must verify under that key (`FERRY_ERR_BAD_SIGNATURE`).
 */
export function checkRegistration(reg: Register, current: LocationEntry | undefined, now: number, policy: RegistrationPolicy): LocationEntry {
  const base = { agent: reg.agent, hostId: reg.hostId, ip: reg.ip, controlPort: reg.controlPort, redirectorPort: reg.redirectorPort, epoch: reg.epoch };
  const stale = (): void => {
    if (current && reg.epoch <= current.epoch) throw new FerryError('FERRY_ERR_STALE_EPOCH', `epoch ${reg.epoch} ≤ registered ${current.epoch} for ${reg.agent}`);
  };
  if (!reg.chain) {
    if (policy.requireChains) throw new FerryError('FERRY_ERR_REGISTRATION_UNPROVEN', `registration of ${reg.agent} carries no delegation chain`);
    // A proven location must not be displaced by a claim anyone could make.
    if (current?.chain) throw new FerryError('FERRY_ERR_REGISTRATION_UNPROVEN', `${reg.agent} has a proven location; a bare claim cannot replace it`);
    stale();
    if (reg.agentKey && idOfPublicKey(reg.agentKey) !== reg.agent) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', `agent key does not hash to ${reg.agent}`);
    return reg.agentKey ? { ...base, agentKey: Buffer.from(reg.agentKey) } : base;
  }
  if (reg.chain.length === 0) return checkSelfRegistration(reg, base, stale);
  const last = reg.chain[reg.chain.length - 1];
  if (last) {
    if (idOfPublicKey(last.subject) !== reg.hostId) throw new FerryError('FERRY_ERR_REGISTRATION_MISMATCH', `the chain delegates to another host than ${reg.hostId}`);
    if (last.epoch !== reg.epoch) throw new FerryError('FERRY_ERR_REGISTRATION_MISMATCH', `the chain is for epoch ${last.epoch}, the registration for ${reg.epoch}`);
  }
  stale();
  const rep = verifyChain(reg.agent, reg.agentKey!, reg.chain, now, policy.chain);
  const { signature, ...unsigned } = reg;
  if (!signature || !verifySignature(rep.subject, registerSigned(unsigned), signature)) {
    throw new FerryError('FERRY_ERR_BAD_SIGNATURE', `registration of ${reg.agent} is not signed by host ${reg.hostId}`);
  }
  return { ...base, agentKey: Buffer.from(reg.agentKey!), chain: reg.chain };
}

/** A host registering its own locator under its own id (empty chain): see {@link checkRegistration}. */
function checkSelfRegistration(reg: Register, base: LocationEntry, stale: () => void): LocationEntry {
  // For an agent other than the host, nothing delegates it: the chain is missing its links.
  if (reg.agent !== reg.hostId) throw new FerryError('FERRY_ERR_CHAIN_TRUNCATED', `empty delegation chain: ${reg.agent} is not host ${reg.hostId}, so only a host's own registration may omit it`);
  stale();
  if (!reg.agentKey || idOfPublicKey(reg.agentKey) !== reg.hostId) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', `the key does not hash to host ${reg.hostId}`);
  const { signature, ...unsigned } = reg;
  if (!signature || !verifySignature(reg.agentKey, registerSigned(unsigned), signature)) {
    throw new FerryError('FERRY_ERR_BAD_SIGNATURE', `self-registration of host ${reg.hostId} is not signed by its key`);
  }
  return { ...base, agentKey: Buffer.from(reg.agentKey), chain: [] };
}

/**
 * The digest that names one registration of an agent: the first 16 bytes of SHA-256 over the
 * encoded delegation chain the entry keeps (over no bytes for an entry without one). Every
 * registration of an agent carries a freshly issued chain (its own validity window and
 * signature), so the digest tells two registrations at the same host and epoch apart: a
 * DEREGISTER names the one registration it removes, and removes nothing registered after it.
 */
export function registrationDigest(chain: DelegationChain | undefined): Buffer {
  const h = createHash('sha256');
  if (chain) h.update(encodeChain(chain));
  return h.digest().subarray(0, REGISTRATION_DIGEST_BYTES);
}

/**
 * Check a DEREGISTER against the stored entry `current`. Returns false when there is no entry
 * (nothing to remove: a retransmission after the removal, or a directory that lost it), true
 * when `d` may remove `current`. Cheap checks first, so a stale or replayed deregistration costs
 * no signature verification:
 *
 * 1. `FERRY_ERR_NOT_HOLDER`: the entry names another host or epoch, or another registration
 *    (digest) than `d`: a host that moved the agent on, or a copy of an old DEREGISTER.
 * 2. `FERRY_ERR_IDENTITY_MISMATCH`: the key does not hash to `hostId`.
 * 3. `FERRY_ERR_BAD_SIGNATURE`: the signature does not verify under that key.
 *
 * The holder is proven as a registration is: its key hashes to the host id that the entry names
 * (for a proven entry, the chain's last subject, which the rendezvous verified when it stored it),
 * and it signed this request.
 */
export function checkDeregistration(d: Deregister, current: LocationEntry | undefined): boolean {
  if (!current) return false;
  if (current.hostId !== d.hostId || current.epoch !== d.epoch) {
    throw new FerryError('FERRY_ERR_NOT_HOLDER', `${d.agent} is registered by host ${current.hostId} at epoch ${current.epoch}, not by ${d.hostId} at ${d.epoch}`);
  }
  if (!timingSafeEqual(registrationDigest(current.chain), d.registration)) {
    throw new FerryError('FERRY_ERR_NOT_HOLDER', `${d.agent} at epoch ${d.epoch} is another registration than the one this deregistration names (replayed?)`);
  }
  if (idOfPublicKey(d.hostKey) !== d.hostId) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', `the key does not hash to host ${d.hostId}`);
  const { signature, ...unsigned } = d;
  if (!verifySignature(d.hostKey, deregisterSigned(unsigned), signature)) {
    throw new FerryError('FERRY_ERR_BAD_SIGNATURE', `deregistration of ${d.agent} is not signed by host ${d.hostId}`);
  }
  return true;
}
