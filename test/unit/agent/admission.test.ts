// Admission: a launch (or a landing) without a credential, with a forged one, one for another
// agent key, an expired one, one for other code, or from an owner the policy does not let land
// is refused with its own code and exactly one log line; nothing is registered; a good launch
// still works afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { issueCredential } from '../../../src/agent/index.js';
import { AgentRuntime, credentialToText, inProcessHost, parsePolicy, type AgentCredential, type AgentLanding } from '../../../src/host/index.js';
import { Identity } from '../../../src/identity/index.js';
import { isFerryError, limit, MemoryLogger } from '../../../src/util/index.js';
import { startHosts } from '../../helpers/harness.js';
import { allowAll, fixture, linesOf } from '../../helpers/agents.js';

test('launch refusals: each typed, each logged once, nothing registered', async () => {
  const net = await startHosts(1);
  const host = net.hosts[0]!;
  const owner = Identity.generate();
  const stranger = Identity.generate();
  const log = new MemoryLogger();
  let now = Date.now();
  const policy = parsePolicy({ version: 1, owners: { [owner.id]: { land: true, listen: true, connect: '*' }, [Identity.generate().id]: { land: false } } });
  const runtime = new AgentRuntime({ host: inProcessHost(host, () => undefined), policy, logger: log, now: () => now });
  const code = fixture('hello.mjs');
  try {
    const refuse = async (what: string, expect: string, launch: () => Promise<unknown>): Promise<void> => {
      const before = linesOf(log, 'agent_refused').length;
      await assert.rejects(launch(), (e: unknown) => isFerryError(e) && e.code === expect, what);
      const lines = linesOf(log, 'agent_refused');
      assert.equal(lines.length, before + 1, `${what}: one log line`);
      assert.equal(lines.at(-1)!.fields.code, expect, what);
      assert.equal(lines.at(-1)!.fields.op, 'launch');
    };
    const agent = Identity.generate();
    await refuse('no credential', 'FERRY_ERR_NO_CREDENTIAL', () => runtime.launch(code, undefined, agent));
    await refuse('garbage', 'FERRY_ERR_BAD_CREDENTIAL', () => runtime.launch(code, 'AAAA', agent));
    const mallory = Identity.generate();
    const good = issueCredential(owner, { agent, code });
    const forged: AgentCredential = { ...issueCredential(mallory, { agent, code, rights: { listen: true, connect: '*' } }), ownerKey: good.ownerKey, ownerId: good.ownerId };
    await refuse('forged', 'FERRY_ERR_BAD_CREDENTIAL', () => runtime.launch(code, forged, agent));
    await refuse('other agent key', 'FERRY_ERR_BAD_CREDENTIAL', () => runtime.launch(code, good, Identity.generate()));
    await refuse('other code', 'FERRY_ERR_CODE_HASH_MISMATCH', () => runtime.launch(`${code}\n// changed`, good, agent));
    await refuse('owner not in policy', 'FERRY_ERR_POLICY_DENIED', () => runtime.launch(code, issueCredential(stranger, { agent, code }), agent));
    await refuse('too large', 'FERRY_ERR_LIMIT_EXCEEDED', () => runtime.launch('x'.repeat(limit('AGENT_CODE_BYTES') + 1), good, agent));
    await refuse('state not cloneable', 'FERRY_ERR_INVALID_ARGUMENT', () => runtime.launch(code, good, agent, { state: { f: () => 1 } }));
    now += 2 * 24 * 3600_000;
    await refuse('expired', 'FERRY_ERR_CREDENTIAL_EXPIRED', () => runtime.launch(code, good, agent));
    now -= 2 * 24 * 3600_000;
    assert.deepEqual(runtime.agentIds(), []);
    assert.deepEqual(host.agentIds(), [], 'nothing registered with the host');
    assert.equal(runtime.refusals.get('FERRY_ERR_BAD_CREDENTIAL'), 3);
    // A good launch still works, with the credential in text form.
    const exit = await (await runtime.launch(code, credentialToText(good), agent)).exited;
    assert.equal(exit.reason, 'finished');
  } finally {
    await runtime.close();
    await net.close();
  }
});

test('landing admission: tampered code, missing or mismatched credential, owner not allowed to land', async () => {
  const net = await startHosts(1);
  const owner = Identity.generate();
  const log = new MemoryLogger();
  const runtime = new AgentRuntime({ host: inProcessHost(net.hosts[0]!, () => undefined), policy: parsePolicy(allowAll(owner)), logger: log });
  const code = fixture('hello.mjs');
  const agent = Identity.generate();
  const landing: AgentLanding = {
    v: 1,
    agentId: agent.id,
    owner: owner.id as never,
    code,
    codeHash: issueCredential(owner, { agent, code }).codeHash,
    credential: credentialToText(issueCredential(owner, { agent, code })),
    state: Buffer.from([0xff, 0x0f, 0x6f, 0x7b, 0x00]).toString('base64'),
    connections: [],
  };
  try {
    runtime.admit(landing);
    const cases: [string, Partial<AgentLanding>][] = [
      ['FERRY_ERR_CODE_HASH_MISMATCH', { code: `${code} ` }],
      ['FERRY_ERR_NO_CREDENTIAL', { credential: undefined as never }],
      ['FERRY_ERR_BAD_CREDENTIAL', { agentId: Identity.generate().id }],
      ['FERRY_ERR_BAD_CREDENTIAL', { credential: credentialToText({ ...issueCredential(owner, { agent, code }), notAfter: Date.now() + 1 }) }],
      ['FERRY_ERR_POLICY_DENIED', { credential: credentialToText(issueCredential(Identity.generate(), { agent, code })) }],
    ];
    for (const [expect, change] of cases) {
      assert.throws(() => runtime.admit({ ...landing, ...change }), (e: unknown) => isFerryError(e) && e.code === expect, expect);
    }
    assert.equal(linesOf(log, 'agent_refused').filter((l) => l.fields.op === 'land').length, cases.length);
  } finally {
    await runtime.close();
    await net.close();
  }
});
