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

/**
 * The operator stops an agent with code during its move, at `step` of the source, and the move
 * is not cut. The stop calls the move off and waits for its outcome. Before the commit the move
 * rolls back and the agent ends here: the stop resolves, and the agent runs and is registered
 * nowhere. Once committing, the move lands: the stop rejects FERRY_ERR_AGENT_ELSEWHERE naming the
 * destination, where the agent runs, alone. Before the fix the stop ended the source copy at
 * once and resolved 'stopped' in both cases, while a move past its commit ran the agent on at
 * the destination.
 */
async function stopAt(step: number, after: boolean, graceful = false): Promise<{ stop: AgentExit | unknown; moved: unknown; where: string[][]; registered: string | undefined; h1: string }> {
  let hook: ((side: 'source' | 'destination', step: number, after?: boolean) => 'cut' | undefined) | undefined;
  const net = await startAgentNet(2, { host: { migrationFault: (side, s, a) => hook?.(side, s, a) }, wrapHost: (_i, _b, host) => channelHost(host) });
  try {
    net.hosts.forEach((h, i) => h.useRuntime(net.runtimes[i]));
    const [h0, h1] = net.hosts as [Host, Host];
    const e1 = await net.launch(0, fixture('echo.mjs'));
    let stopped: Promise<AgentExit | unknown> | undefined;
    hook = (side, s, a) => {
      if (side !== 'source' || s !== step || (a ?? false) !== after) return undefined;
      hook = undefined;
      stopped = net.runtimes[0]!.stop(e1.id, { graceful }).then(
        (x) => x,
        (e: unknown) => e,
      );
      return undefined;
    };
    const moved = await net.runtimes[0]!.migrate(e1.id, formatMigrationTarget({ ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id })).then(
      () => 'committed',
      (e: unknown) => e,
    );
    assert.ok(stopped, 'the stop came during the move');
    const stop = await stopped;
    // Whatever is left to happen (a rollback's re-attach going quietly) has happened.
    await new Promise((r) => setTimeout(r, 300));
    const where = [h0.agentIds(), h1.agentIds(), net.runtimes[0]!.agentIds(), net.runtimes[1]!.agentIds()];
    const registered = (await net.location.lookup(e1.id))?.hostId;
    return { stop, moved, where, registered, h1: h1.id };
  } finally {
    await net.close();
  }
}

test('a stop before the commit of a move calls it off: the agent ends at its host and runs nowhere', async () => {
  for (const [step, graceful] of [
    [MigrationStep.DELEGATE, false],
    [MigrationStep.CONFIRM, false],
    // A graceful stop freezes the agent again once the rolled-back move thawed it.
    [MigrationStep.CONFIRM, true],
  ] as const) {
    const r = await stopAt(step, false, graceful);
    assert.ok(isFerryError(r.moved) && r.moved.code === 'FERRY_ERR_ABORTED', `step ${step}${graceful ? ', graceful' : ''}: the move was called off: ${String(r.moved)}`);
    assert.ok(!isFerryError(r.stop) && (r.stop as AgentExit).reason === 'stopped', `step ${step}: the stop took effect: ${String(r.stop)}`);
    assert.deepEqual(r.where, [[], [], [], []], `step ${step}: it runs nowhere`);
    assert.equal(r.registered, undefined, `step ${step}: and is registered nowhere`);
  }
});

test('a stop once a move is committing does not end it silently: it rejects AGENT_ELSEWHERE, and the agent runs at the destination alone', async () => {
  const r = await stopAt(MigrationStep.COMMITTED, false);
  assert.equal(r.moved, 'committed', `the move landed: ${String(r.moved)}`);
  assert.ok(isFerryError(r.stop) && r.stop.code === 'FERRY_ERR_AGENT_ELSEWHERE', `the stop says where the agent went: ${String(r.stop)}`);
  assert.match((r.stop as Error).message, /stop it there/);
  assert.equal(r.where[0]!.length + r.where[2]!.length, 0, 'nothing is left at the source');
  assert.equal(r.where[1]!.length, 1, 'the destination host holds it');
  assert.equal(r.where[3]!.length, 1, 'and runs its code');
  assert.equal(r.registered, r.h1, 'registered at the destination');
});
