// Scenario: the operator stops an agent with code while it is being migrated away, after its host
// detached it, and the move then fails (the channel is cut at CONFIRM). The agent ends once: one
// 'exit' event (the stop), it runs nowhere and is registered nowhere. Before the fix the failed
// move ended it a second time ('failed', AGENT_CRASHED): two 'exit' events for one agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelHost, formatMigrationTarget, type AgentExit, type Host } from '../../src/host/index.js';
import { isFerryError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { fixture, startAgentNet } from '../helpers/agents.js';

test('an agent stopped during its move, which then fails, ends once', async () => {
  let hook: ((side: 'source' | 'destination', step: number) => 'cut' | undefined) | undefined;
  const net = await startAgentNet(2, { host: { migrationFault: (side, step) => hook?.(side, step) }, wrapHost: (_i, _b, host) => channelHost(host) });
  try {
    net.hosts.forEach((h, i) => h.useRuntime(net.runtimes[i]));
    const [h0, h1] = net.hosts as [Host, Host];
    const e1 = await net.launch(0, fixture('echo.mjs'));
    const exits: AgentExit[] = [];
    net.runtimes[0]!.on('exit', (x: AgentExit) => exits.push(x));
    let stopped: Promise<AgentExit> | undefined;
    hook = (side, step) => {
      if (side !== 'source' || step !== MigrationStep.CONFIRM) return undefined;
      hook = undefined;
      stopped = net.runtimes[0]!.stop(e1.id);
      return 'cut';
    };
    const err = await net.runtimes[0]!.migrate(e1.id, formatMigrationTarget({ ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isFerryError(err), `the move failed: ${String(err)}`);
    assert.ok(stopped, 'the stop came during the move');
    await stopped;
    // Nothing more comes: the rollback re-attached the agent at its host, and that goes quietly.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(exits.map((x) => [x.reason, x.error?.code]), [['stopped', 'FERRY_ERR_ABORTED']], 'one exit: the stop');
    assert.deepEqual([h0.agentIds(), h1.agentIds(), net.runtimes[0]!.agentIds(), net.runtimes[1]!.agentIds()], [[], [], [], []], 'it runs nowhere');
    assert.equal(await net.location.lookup(e1.id), undefined, 'and is registered nowhere');
  } finally {
    await net.close();
  }
});
