// Scenario: host policy and owner credentials decide what agents may do at call time. listen()
// is refused unless both grant it; connect() is refused to targets outside the credential's list
// or the policy's agents/owners; maxConnections caps both opened and accepted connections. Each
// refusal reaches the agent as a typed error and the host log as one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Identity } from '../../src/identity/index.js';
import { connectWhenListening, fixture, linesOf, startAgentNet } from '../helpers/agents.js';

test('listen and connect are checked against credential ∩ policy when called', async () => {
  const owner = Identity.generate();
  const friend = Identity.generate();
  const policy = {
    version: 1,
    owners: {
      [owner.id]: { land: true, listen: true, connect: '*' },
      // The restricted owner may listen, and connect only to `friend`'s agents and one named agent.
      [friend.id]: { land: true, listen: false, connect: { owners: [owner.id], agents: [] } },
    },
  };
  const net = await startAgentNet(2, { owner, policies: [policy, policy] });
  try {
    const a = await net.launch(1, fixture('echo.mjs')); // owned by `owner`
    const b = await net.launch(1, fixture('echo.mjs'), { owner: friend }); // owned by `friend`; cannot listen
    (await connectWhenListening(net.hosts[1]!, a.id)).destroy();
    const probe = fixture('probe-rights.mjs');
    // 1. Credential asks for nothing: listen and connect refused although the policy allows them.
    const meek = await (await net.launch(0, probe, { state: { targets: [a.id] }, rights: {} })).exited;
    assert.deepEqual(meek.result, { listen: 'FERRY_ERR_POLICY_DENIED', [a.id]: 'FERRY_ERR_POLICY_DENIED' });
    // 2. Credential names only `a`: connecting to `b` is refused, `a` works.
    const named = await (await net.launch(0, probe, { state: { targets: [a.id, b.id] }, rights: { listen: true, connect: [a.id] } })).exited;
    assert.deepEqual(named.result, { listen: 'ok', [a.id]: 'ok', [b.id]: 'FERRY_ERR_POLICY_DENIED' });
    // 3. Owner `friend`: the policy refuses listen, allows agents of `owner` (a) by owner rule,
    //    refuses `b` (its own owner is not in the rule) even though the credential asks for '*'.
    const restricted = await (await net.launch(0, probe, { owner: friend, state: { targets: [a.id, b.id] }, rights: { listen: true, connect: '*' } })).exited;
    assert.deepEqual(restricted.result, { listen: 'FERRY_ERR_POLICY_DENIED', [a.id]: 'ok', [b.id]: 'FERRY_ERR_POLICY_DENIED' });
    // `b` could not listen either: its run() rejected with the refusal.
    const bExit = await b.exited;
    assert.equal(bExit.reason, 'failed');
    assert.match(bExit.error!.message, /FERRY_ERR_POLICY_DENIED/);
    // One log line per refusal: 2 + 1 + 2 on host 0, 1 (b's listen) on host 1.
    const refused = linesOf(net.log, 'agent_refused');
    assert.equal(refused.filter((l) => l.fields.h === 0).length, 5);
    assert.equal(refused.filter((l) => l.fields.h === 1 && l.fields.op === 'listen').length, 1);
    for (const l of refused) assert.equal(l.fields.code, 'FERRY_ERR_POLICY_DENIED');
  } finally {
    await net.close();
  }
});

test('maxConnections caps connections opened and accepted', async () => {
  const net = await startAgentNet(1);
  try {
    const echo = await net.launch(0, fixture('echo.mjs'), { rights: { listen: true, connect: '*', maxConnections: 1 } });
    const first = await connectWhenListening(net.hosts[0]!, echo.id);
    first.write('x');
    await new Promise((r) => first.once('data', r));
    // The second connection opens at the host level, then the runtime refuses it for the agent.
    const second = await connectWhenListening(net.hosts[0]!, echo.id);
    const err = await new Promise<Error>((resolve) => second.once('error', resolve));
    assert.equal((err as { code?: string }).code, 'FERRY_ERR_PEER_ABORTED');
    const refused = linesOf(net.log, 'agent_refused').filter((l) => l.fields.op === 'accept');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.fields.code, 'FERRY_ERR_LIMIT_EXCEEDED');
    // The first still works.
    first.write('y');
    await new Promise((r) => first.once('data', r));
    first.destroy();
    // Opened connections: a probe with maxConnections 1 connects once, then is refused.
    const probe = await (await net.launch(0, fixture('probe-rights.mjs'), { state: { targets: [echo.id] }, rights: { connect: '*', maxConnections: 0 } })).exited;
    assert.deepEqual(probe.result, { listen: 'FERRY_ERR_POLICY_DENIED', [echo.id]: 'FERRY_ERR_LIMIT_EXCEEDED' });
  } finally {
    await net.close();
  }
});
