// Owner credentials: encode/decode round trips (also under fast-check), strict decoding of every
// truncation and bit flip, and each refusal of verifyCredential with its own code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { credentialFromText, credentialToText, decodeCredential, encodeCredential, issueCredential, ownerIdOf } from '../../../src/agent/index.js';
import { codeHashOf, toCredential, verifyCredential, type AgentCredential } from '../../../src/host/index.js';
import { Identity, type AgentId } from '../../../src/identity/index.js';
import { isFerryError, limit } from '../../../src/util/index.js';

const owner = Identity.generate();
const agent = Identity.generate();
const code = 'export default { run() {} }';
const NOW = Date.UTC(2025, 0, 1);

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => isFerryError(err) && err.code === code, `expected ${code}`);
}

test('issue, encode, decode and text form round-trip; ids derive from the keys', () => {
  const peers = [Identity.generate().id, Identity.generate().id];
  const c = issueCredential(owner, { agent, code, rights: { listen: true, connect: peers, maxConnections: 7, maxBufferedBytes: 123_456 }, now: NOW });
  assert.equal(c.ownerId, ownerIdOf(owner));
  assert.equal(c.agentId, agent.id);
  assert.equal(c.codeHash, codeHashOf(code));
  assert.equal(c.notAfter - c.notBefore, 24 * 3600_000);
  const back = decodeCredential(encodeCredential(c));
  assert.deepEqual(back, c);
  assert.deepEqual(credentialFromText(credentialToText(c)), c);
  assert.deepEqual(toCredential(credentialToText(c)), c);
  assert.deepEqual(toCredential(encodeCredential(c)), c);
  verifyCredential(back, { agentKey: agent.publicRaw, codeHash: codeHashOf(code), now: NOW + 1000 });
});

test('round trip of arbitrary rights and windows (fast-check)', () => {
  const ids = fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex') as AgentId), { maxLength: 20 });
  fc.assert(
    fc.property(fc.boolean(), fc.oneof(fc.constant('*' as const), ids), fc.nat(0xffff_ffff), fc.nat(0xffff_ffff), fc.nat(2 ** 40), fc.nat(2 ** 30), (listen, connect, maxConnections, maxBufferedBytes, notBefore, span) => {
      const c = issueCredential(owner, { agent, code: { hash: 'ab'.repeat(32) }, rights: { listen, connect, maxConnections, maxBufferedBytes }, notBefore, notAfter: notBefore + span });
      const d = decodeCredential(encodeCredential(c));
      assert.deepEqual(d, c);
      verifyCredential(d, { agentKey: agent.publicRaw, codeHash: 'ab'.repeat(32), now: notBefore });
    }),
    { numRuns: 100 },
  );
});

test('every truncation and every extension is refused with FERRY_ERR_BAD_CREDENTIAL', () => {
  const bytes = encodeCredential(issueCredential(owner, { agent, code, rights: { connect: [Identity.generate().id] }, now: NOW }));
  for (let n = 0; n < bytes.length; n++) expectCode(() => decodeCredential(bytes.subarray(0, n)), 'FERRY_ERR_BAD_CREDENTIAL');
  expectCode(() => decodeCredential(Buffer.concat([bytes, Buffer.alloc(1)])), 'FERRY_ERR_BAD_CREDENTIAL');
  expectCode(() => toCredential('not base64 !'), 'FERRY_ERR_BAD_CREDENTIAL');
  expectCode(() => toCredential(undefined), 'FERRY_ERR_NO_CREDENTIAL');
  expectCode(() => toCredential(''), 'FERRY_ERR_NO_CREDENTIAL');
});

test('no single bit flip survives decode + verify', () => {
  const c = issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' }, now: NOW });
  const bytes = encodeCredential(c);
  const hash = codeHashOf(code);
  for (let i = 0; i < bytes.length * 8; i++) {
    const f = Buffer.from(bytes);
    f[i >> 3]! ^= 1 << (i & 7);
    assert.throws(
      () => verifyCredential(decodeCredential(f), { agentKey: agent.publicRaw, codeHash: hash, now: NOW }),
      (err: unknown) => isFerryError(err) && ['FERRY_ERR_BAD_CREDENTIAL', 'FERRY_ERR_INVALID_ARGUMENT'].includes(err.code),
      `bit ${i} flipped was accepted`,
    );
  }
});

test('verifyCredential: forged, other agent, expired, not yet valid, too long, wrong code — each its own code', () => {
  const hash = codeHashOf(code);
  const good = issueCredential(owner, { agent, code, now: NOW });
  // Forged: the same fields signed by someone who is not the owner named in it.
  const mallory = Identity.generate();
  const forged: AgentCredential = { ...issueCredential(mallory, { agent, code, now: NOW }), ownerKey: good.ownerKey, ownerId: good.ownerId };
  expectCode(() => verifyCredential(forged, { agentKey: agent.publicRaw, codeHash: hash, now: NOW }), 'FERRY_ERR_BAD_CREDENTIAL');
  // Rights widened after signing.
  const widened: AgentCredential = { ...good, rights: { ...good.rights, listen: true, connect: '*' } };
  expectCode(() => verifyCredential(widened, { agentKey: agent.publicRaw, codeHash: hash, now: NOW }), 'FERRY_ERR_BAD_CREDENTIAL');
  expectCode(() => verifyCredential(good, { agentKey: Identity.generate().publicRaw, codeHash: hash, now: NOW }), 'FERRY_ERR_BAD_CREDENTIAL');
  const skew = limit('CLOCK_SKEW_MS');
  expectCode(() => verifyCredential(good, { agentKey: agent.publicRaw, codeHash: hash, now: good.notAfter + skew + 1 }), 'FERRY_ERR_CREDENTIAL_EXPIRED');
  expectCode(() => verifyCredential(good, { agentKey: agent.publicRaw, codeHash: hash, now: good.notBefore - skew - 1 }), 'FERRY_ERR_CREDENTIAL_EXPIRED');
  verifyCredential(good, { agentKey: agent.publicRaw, codeHash: hash, now: good.notAfter + skew - 1 }); // skew tolerated
  const long = issueCredential(owner, { agent, code, notBefore: NOW, notAfter: NOW + limit('CREDENTIAL_MAX_VALIDITY_MS') + 1 });
  expectCode(() => verifyCredential(long, { agentKey: agent.publicRaw, codeHash: hash, now: NOW }), 'FERRY_ERR_BAD_CREDENTIAL');
  expectCode(() => verifyCredential(good, { agentKey: agent.publicRaw, codeHash: codeHashOf(`${code} `), now: NOW }), 'FERRY_ERR_CODE_HASH_MISMATCH');
});

test('a connect list longer than CREDENTIAL_CONNECT_IDS cannot be issued or decoded', () => {
  const many = Array.from({ length: limit('CREDENTIAL_CONNECT_IDS') + 1 }, () => 'ab'.repeat(16) as AgentId);
  expectCode(() => issueCredential(owner, { agent, code, rights: { connect: many } }), 'FERRY_ERR_BAD_CREDENTIAL');
});
