/**
 * What a rendezvous accepts (src/location/registration.ts), decided without a socket: a proven
 * registration (1..8-link chain, host signature) is accepted at a newer epoch; forged, expired,
 * not-yet-valid, truncated, broken, too-long and other-agent chains are refused with the chain's
 * codes; a chain for another host or epoch, a stale epoch, a bad or missing host signature, a
 * locator changed after signing, and bare claims (when chains are required, or over a proven
 * location) are refused with their own codes. Wall time is injected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extendChain, freshChain, issueDelegation, type Identity } from '../../../src/identity/index.js';
import { checkDeregistration, checkRegistration, registrationDigest, type LocationEntry } from '../../../src/location/index.js';
import { limit } from '../../../src/util/index.js';
import { deregisterSigned, type Deregister, type Register } from '../../../src/wire/index.js';
import { HOUR, T0, agent, chainOf, ferry, host, mallory, otherAgent, provenRegister, registration, signed } from './fixtures.js';

const STRICT = { requireChains: true };
const DEV = { requireChains: false };
const NOW = T0 + 1000;

const stored = (epoch: number, proven = true): LocationEntry => ({
  agent: agent.id,
  hostId: host(0).id,
  ip: '127.0.0.1',
  controlPort: 1,
  redirectorPort: 2,
  epoch,
  ...(proven ? { agentKey: agent.publicRaw, chain: freshChain(agent, host(0).publicRaw, epoch, T0, HOUR) } : {}),
});

test('a proven registration is accepted and the entry keeps its proof', () => {
  const reg = provenRegister(host(1), 2);
  const e = checkRegistration(reg, undefined, NOW, STRICT);
  assert.equal(e.epoch, 2);
  assert.equal(e.hostId, host(1).id);
  assert.deepEqual(e.chain, reg.chain);
  assert.deepEqual(Buffer.from(e.agentKey!), agent.publicRaw);
  // Newer than what is stored: accepted too.
  assert.equal(checkRegistration(provenRegister(host(1), 5), stored(4), NOW, STRICT).epoch, 5);
});

test('multi-link chains (2..8) are accepted for their last subject; 9 links are too long', () => {
  for (let n = 2; n <= 8; n++) {
    const now = T0 + n * 60_000;
    const reg = signed(registration(chainOf(n), host(n - 1), n), host(n - 1));
    assert.equal(checkRegistration(reg, undefined, now, STRICT).hostId, host(n - 1).id, `${n} links`);
  }
  const nine = signed(registration(chainOf(9), host(8), 9), host(8));
  assert.throws(() => checkRegistration(nine, undefined, T0 + 9 * 60_000, STRICT), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
});

test('forged, expired, future, truncated, broken and foreign chains: the chain codes', () => {
  const h = host(0);
  const sign = (reg: Omit<Register, 'signature'>): Register => signed(reg, h);
  // Forged: a flipped signature bit in the link.
  const good = freshChain(agent, h.publicRaw, 1, T0, HOUR);
  const forgedLink = { ...good[0]!, signature: Buffer.from(good[0]!.signature) };
  forgedLink.signature[5]! ^= 1;
  assert.throws(() => checkRegistration(sign(registration([forgedLink], h, 1)), undefined, NOW, STRICT), ferry('FERRY_ERR_CHAIN_FORGED'));
  // A link signed by someone else than its stated issuer.
  const wrongIssuer = { ...good[0]!, signature: mallory.sign(Buffer.from('x')) };
  assert.throws(() => checkRegistration(sign(registration([wrongIssuer], h, 1)), undefined, NOW, STRICT), ferry('FERRY_ERR_CHAIN_FORGED'));
  // Expired: past notAfter + skew.
  assert.throws(() => checkRegistration(provenRegister(h, 1), undefined, T0 + HOUR + limit('CLOCK_SKEW_MS') + 1, STRICT), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  // Not yet valid: issued in the future beyond the skew.
  assert.throws(() => checkRegistration(provenRegister(h, 1, T0 + limit('CLOCK_SKEW_MS') + 1), undefined, T0, STRICT), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  // Truncated: empty chain; a chain whose first link is missing (starts at a host's delegation).
  assert.throws(() => checkRegistration(sign(registration([], h, 1)), undefined, NOW, STRICT), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  const two = chainOf(2);
  assert.throws(() => checkRegistration(signed(registration(two.slice(1), host(1), 2), host(1)), undefined, T0 + 60_000, STRICT), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  // Broken: a link whose issuer is not the previous subject (mallory extends host 0's delegation).
  const spliced = [two[0]!, issueDelegation(mallory, agent.id, host(1).publicRaw, 2, T0 + 60_000, T0 + HOUR)];
  assert.throws(() => checkRegistration(signed(registration(spliced, host(1), 2), host(1)), undefined, T0 + 60_000, STRICT), ferry('FERRY_ERR_CHAIN_BROKEN'));
  // A chain of another agent under this agent's key: identity check or truncation.
  const foreign = freshChain(otherAgent, h.publicRaw, 1, T0, HOUR);
  assert.throws(() => checkRegistration(sign(registration(foreign, h, 1)), undefined, NOW, STRICT), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  const wrongKey = { ...registration(good, h, 1), agentKey: Buffer.from(otherAgent.publicRaw) };
  assert.throws(() => checkRegistration(sign(wrongKey), undefined, NOW, STRICT), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
});

test('a chain for another host or epoch is a mismatch; an old epoch is stale', () => {
  const chain = freshChain(agent, host(0).publicRaw, 3, T0, HOUR);
  // Host 1 presents host 0's delegation as its own.
  assert.throws(() => checkRegistration(signed(registration(chain, host(1), 3), host(1)), undefined, NOW, STRICT), ferry('FERRY_ERR_REGISTRATION_MISMATCH'));
  // The entry claims epoch 4 with a delegation for epoch 3.
  assert.throws(() => checkRegistration(signed(registration(chain, host(0), 4), host(0)), undefined, NOW, STRICT), ferry('FERRY_ERR_REGISTRATION_MISMATCH'));
  // Same or lower epoch than stored: stale, even with a valid proof (a replay).
  assert.throws(() => checkRegistration(provenRegister(host(0), 3), stored(3), NOW, STRICT), ferry('FERRY_ERR_STALE_EPOCH'));
  assert.throws(() => checkRegistration(provenRegister(host(0), 2), stored(3), NOW, STRICT), ferry('FERRY_ERR_STALE_EPOCH'));
});

test('the host signature binds the locator: changed, missing or foreign signatures refused', () => {
  const reg = provenRegister(host(0), 1);
  assert.throws(() => checkRegistration({ ...reg, ip: '10.0.0.66' }, undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
  assert.throws(() => checkRegistration({ ...reg, controlPort: reg.controlPort + 1 }, undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
  assert.throws(() => checkRegistration({ ...reg, signature: undefined }, undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
  const { signature: _s, ...unsigned } = reg;
  assert.throws(() => checkRegistration(signed(unsigned, mallory), undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
});

test('bare claims: refused when chains are required, accepted in development mode by epoch only', () => {
  const bare = registration(undefined, host(0), 1);
  assert.throws(() => checkRegistration(bare, undefined, NOW, STRICT), ferry('FERRY_ERR_REGISTRATION_UNPROVEN'));
  assert.equal(checkRegistration(bare, undefined, NOW, DEV).epoch, 1);
  assert.throws(() => checkRegistration(bare, stored(1, false), NOW, DEV), ferry('FERRY_ERR_STALE_EPOCH'));
  assert.equal(checkRegistration(registration(undefined, host(1), 2), stored(1, false), NOW, DEV).hostId, host(1).id);
  // Never over a proven location, even in development mode.
  assert.throws(() => checkRegistration(registration(undefined, host(1), 9), stored(1), NOW, DEV), ferry('FERRY_ERR_REGISTRATION_UNPROVEN'));
  // A key that does not hash to the agent.
  assert.throws(() => checkRegistration({ ...bare, agentKey: Buffer.from(mallory.publicRaw) }, undefined, NOW, DEV), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
  // A proven registration still passes in development mode, and is checked as strictly.
  assert.equal(checkRegistration(provenRegister(host(0), 2), stored(1, false), NOW, DEV).epoch, 2);
  assert.throws(() => checkRegistration(provenRegister(host(0), 2), undefined, T0 + 2 * HOUR, DEV), ferry('FERRY_ERR_CHAIN_EXPIRED'));
});

test('a renewal (fresh chain, next epoch, same host) replaces the entry; a chain extended by a key-less host too', () => {
  const first = checkRegistration(provenRegister(host(0), 1), undefined, NOW, STRICT);
  const renewed = checkRegistration(provenRegister(host(0), 2, T0 + HOUR - 1000), first, T0 + HOUR - 500, STRICT);
  assert.equal(renewed.epoch, 2);
  const chain = extendChain(freshChain(agent, host(0).publicRaw, 2, T0, HOUR), host(0), host(1).publicRaw, 3, HOUR, T0 + 10);
  assert.equal(checkRegistration(signed(registration(chain, host(1), 3), host(1)), renewed, T0 + 20, STRICT).hostId, host(1).id);
});

test('a host registers its own locator under its own id (empty chain, signed by its key); forgeries refused', () => {
  const h = host(2);
  const self = (who: Identity, key: Uint8Array, epoch: number): Omit<Register, 'signature'> => ({
    agent: who.id as unknown as Register['agent'],
    hostId: who.id,
    ip: '127.0.0.1',
    controlPort: 4000,
    redirectorPort: 5000,
    epoch,
    agentKey: Buffer.from(key),
    chain: [],
  });
  const e = checkRegistration(signed(self(h, h.publicRaw, 7), h), undefined, NOW, STRICT);
  assert.equal(e.agent, h.id);
  assert.equal(e.redirectorPort, 5000);
  assert.deepEqual(e.chain, []);
  // A newer start replaces it; an older one is stale.
  assert.equal(checkRegistration(signed(self(h, h.publicRaw, 8), h), e, NOW, STRICT).epoch, 8);
  assert.throws(() => checkRegistration(signed(self(h, h.publicRaw, 7), h), e, NOW, STRICT), ferry('FERRY_ERR_STALE_EPOCH'));
  // Mallory claims host 2's id with her own key, signed by her: the key does not hash to the id.
  assert.throws(() => checkRegistration(signed(self(h, mallory.publicRaw, 9), mallory), undefined, NOW, STRICT), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
  // Host 2's key and id, but signed by mallory (or the locator changed after signing).
  assert.throws(() => checkRegistration(signed(self(h, h.publicRaw, 9), mallory), undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
  const moved = { ...signed(self(h, h.publicRaw, 9), h), redirectorPort: 5001 };
  assert.throws(() => checkRegistration(moved, undefined, NOW, STRICT), ferry('FERRY_ERR_BAD_SIGNATURE'));
  // An entry keyed by another id than the host's: an agent's registration with no delegation.
  const other = { ...self(h, h.publicRaw, 9), agent: agent.id };
  assert.throws(() => checkRegistration(signed(other, h), undefined, NOW, STRICT), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
});

/** A DEREGISTER of `entry` by `signer`, claiming host `claimed` (default: the signer). */
function deregistration(entry: LocationEntry, signer: Identity, claimed: Identity = signer, over: Partial<Deregister> = {}): Deregister {
  const unsigned = { agent: entry.agent, hostId: claimed.id, epoch: entry.epoch, registration: registrationDigest(entry.chain), hostKey: Buffer.from(claimed.publicRaw), ...over };
  return { ...unsigned, signature: signer.sign(deregisterSigned(unsigned)) };
}

test('deregistration: only the holder of the current registration, proven by its key; stale, replayed and forged ones refused', () => {
  const cur = stored(4);
  assert.equal(checkDeregistration(deregistration(cur, host(0)), cur), true);
  assert.equal(checkDeregistration(deregistration(cur, host(0)), undefined), false, 'nothing to remove: acknowledged, not refused');
  // A stale one: the agent moved on to host 1 at epoch 5; host 0 still deregisters epoch 4.
  const moved: LocationEntry = { ...stored(5), hostId: host(1).id, chain: freshChain(agent, host(1).publicRaw, 5, T0, HOUR) };
  assert.throws(() => checkDeregistration(deregistration(cur, host(0)), moved), ferry('FERRY_ERR_NOT_HOLDER'));
  // Replayed: the same host and epoch, registered again since (a fresh chain names it).
  const again = stored(4);
  const later: LocationEntry = { ...again, chain: freshChain(agent, host(0).publicRaw, 4, T0 + 5000, HOUR) };
  assert.throws(() => checkDeregistration(deregistration(again, host(0)), later), ferry('FERRY_ERR_NOT_HOLDER'));
  // Another host naming itself is not the holder; naming the holder, its key must hash to it and sign.
  assert.throws(() => checkDeregistration(deregistration(cur, mallory), cur), ferry('FERRY_ERR_NOT_HOLDER'));
  assert.throws(() => checkDeregistration(deregistration(cur, mallory, host(0)), cur), ferry('FERRY_ERR_BAD_SIGNATURE'));
  assert.throws(() => checkDeregistration(deregistration(cur, mallory, host(0), { hostKey: Buffer.from(mallory.publicRaw) }), cur), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
  const d = deregistration(cur, host(0));
  assert.throws(() => checkDeregistration({ ...d, signature: Buffer.alloc(64) }, cur), ferry('FERRY_ERR_BAD_SIGNATURE'));
  // A bare (development-mode) entry is deregistered by the host it names, proven the same way.
  const bare = stored(2, false);
  assert.equal(checkDeregistration(deregistration(bare, host(0)), bare), true);
  assert.throws(() => checkDeregistration(deregistration(bare, mallory, host(0)), bare), ferry('FERRY_ERR_BAD_SIGNATURE'));
});
