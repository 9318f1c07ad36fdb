// Host policy: strict validation with errors that name the field, defaults that deny, and the
// intersection of credential and policy rights for land, listen and connect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../../src/agent/index.js';
import { DENY_ALL_POLICY, checkConnect, checkListen, grantFor, parsePolicy, readPolicyFile, type OwnerId } from '../../../src/host/index.js';
import { Identity, type AgentId } from '../../../src/identity/index.js';
import { isFerryError, limit } from '../../../src/util/index.js';

const alice = Identity.generate();
const bob = Identity.generate();
const agent = Identity.generate();
const peer = Identity.generate().id;

function badPolicy(input: unknown, mentions: string): void {
  assert.throws(
    () => parsePolicy(input),
    (err: unknown) => isFerryError(err, 'FERRY_ERR_BAD_POLICY') && err.message.includes(mentions),
    `expected FERRY_ERR_BAD_POLICY mentioning ${mentions}`,
  );
}

test('a valid policy parses; omitted rights are denied and omitted limits take the defaults', () => {
  const p = parsePolicy(
    JSON.stringify({
      version: 1,
      owners: {
        [alice.id]: { name: 'alice', land: true, listen: true, connect: '*', limits: { maxConnections: 3, maxBufferedBytes: 65536, maxHeapMb: 32 } },
        [bob.id]: { land: true, connect: { agents: [peer], owners: [alice.id] } },
      },
    }),
  );
  assert.deepEqual(p.owners.get(alice.id as unknown as OwnerId), { land: true, listen: true, connect: '*', limits: { maxConnections: 3, maxBufferedBytes: 65536, maxHeapMb: 32 } });
  const b = p.owners.get(bob.id as unknown as OwnerId)!;
  assert.equal(b.listen, false);
  assert.deepEqual(b.connect, { agents: [peer], owners: [alice.id] });
  assert.equal(b.limits.maxConnections, limit('AGENT_MAX_CONNECTIONS'));
  assert.equal(p.default, undefined);
});

test('schema errors name the field', () => {
  badPolicy('{', 'not valid JSON');
  badPolicy([], 'expected a JSON object');
  badPolicy({ version: 2 }, '.version');
  badPolicy({ version: 1, extra: true }, 'unknown field "extra"');
  badPolicy({ version: 1, owners: { nothex: {} } }, 'is not an owner id');
  badPolicy({ version: 1, owners: { [alice.id]: { land: 'yes' } } }, `.owners.${alice.id}.land`);
  badPolicy({ version: 1, owners: { [alice.id]: { lnad: true } } }, 'unknown field "lnad"');
  badPolicy({ version: 1, owners: { [alice.id]: { connect: 'everyone' } } }, '.connect');
  badPolicy({ version: 1, owners: { [alice.id]: { connect: { agents: ['x'] } } } }, '.connect.agents[0]');
  badPolicy({ version: 1, owners: { [alice.id]: { connect: { hosts: [] } } } }, 'unknown field "hosts"');
  badPolicy({ version: 1, owners: { [alice.id]: { limits: { maxConnections: -1 } } } }, '.limits.maxConnections');
  badPolicy({ version: 1, owners: { [alice.id]: { limits: { maxHeapMb: 1.5 } } } }, '.limits.maxHeapMb');
  badPolicy({ version: 1, owners: { [alice.id]: { limits: { maxBufferedBytes: 10 ** 12 } } } }, '.limits.maxBufferedBytes');
  badPolicy({ version: 1, default: { land: 1 } }, '.default.land');
});

test('readPolicyFile: a missing file and a bad file are FERRY_ERR_BAD_POLICY', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-policy-'));
  try {
    await assert.rejects(readPolicyFile(join(dir, 'none.json')), (e: unknown) => isFerryError(e, 'FERRY_ERR_BAD_POLICY'));
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ version: 1, owners: { [alice.id]: { land: true } } }));
    assert.equal((await readPolicyFile(join(dir, 'p.json'))).owners.size, 1);
    writeFileSync(join(dir, 'bad.json'), '{"version":1,"owners":{"x":{}}}');
    await assert.rejects(readPolicyFile(join(dir, 'bad.json')), (e: unknown) => isFerryError(e, 'FERRY_ERR_BAD_POLICY'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('grant = credential ∩ policy; land needs the policy; unknown owners fall to the default', () => {
  const policy = parsePolicy({ version: 1, owners: { [alice.id]: { land: true, listen: true, connect: '*', limits: { maxConnections: 5, maxBufferedBytes: 8192 } } } });
  const cred = issueCredential(alice, { agent, code: 'x', rights: { listen: false, connect: [peer], maxConnections: 50, maxBufferedBytes: 4096 } });
  const g = grantFor(policy, cred);
  assert.equal(g.listen, false, 'the credential did not ask to listen');
  assert.equal(g.maxConnections, 5, 'policy limit is lower');
  assert.equal(g.maxBufferedBytes, 4096, 'credential limit is lower');
  assert.throws(() => checkListen(g), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
  checkConnect(g, peer, undefined);
  assert.throws(() => checkConnect(g, Identity.generate().id, undefined), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
  const bobs = issueCredential(bob, { agent, code: 'x' });
  assert.throws(() => grantFor(policy, bobs), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
  assert.throws(() => grantFor(DENY_ALL_POLICY, cred), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
  const open = parsePolicy({ version: 1, default: { land: true } });
  assert.equal(grantFor(open, bobs).listen, false);
});

test('connect rules by agent id and by owner; owner rules need a known owner', () => {
  const policy = parsePolicy({ version: 1, owners: { [alice.id]: { land: true, connect: { agents: [peer], owners: [bob.id] } } } });
  const g = grantFor(policy, issueCredential(alice, { agent, code: 'x', rights: { connect: '*' } }));
  const other = Identity.generate().id as AgentId;
  checkConnect(g, peer, undefined);
  checkConnect(g, other, bob.id as unknown as OwnerId);
  assert.throws(() => checkConnect(g, other, undefined), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
  assert.throws(() => checkConnect(g, other, alice.id as unknown as OwnerId), (e: unknown) => isFerryError(e, 'FERRY_ERR_POLICY_DENIED'));
});
