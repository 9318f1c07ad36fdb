// Scenario: an operator moves an agent; after the snapshot, while the source waits for the
// destination to commit, the agent's run() returns on the source. The destination commits and
// runs the agent on from the snapshot, so the source must not also report it finished: one agent
// ends on exactly one host (the demo saw "ended on host2 and host0" under load from this).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, linesOf, sleep, startAgentNet } from '../helpers/agents.js';
import { waitFor } from '../helpers/harness.js';
import type { AgentExit } from '../../src/host/index.js';
import { FerryError, isFerryError } from '../../src/util/index.js';

test('run() returning on the source after the snapshot of a committed move does not end the agent there', async () => {
  let texts = (): string[] => [];
  const net = await startAgentNet(2, {
    runtime: { heartbeatTimeoutMs: 5000 },
    // The source hands the move to its host only once run() returned in the snapshot's worker.
    wrapHost: (i, binding) =>
      i !== 0
        ? binding
        : {
            ...binding,
            migrate: async (id, target, outgoing) => {
              await waitFor(() => texts().includes('finish-soon returning run=1'), 10_000, 'run() returned on the source after the snapshot');
              await sleep(200);
              return binding.migrate(id, target, outgoing);
            },
          },
  });
  try {
    const exits: { host: number; exit: AgentExit }[] = [];
    net.runtimes.forEach((r, host) => r.on('exit', (exit: AgentExit) => exits.push({ host, exit })));
    const agent = await net.launch(0, fixture('finish-soon.mjs'), { state: { ms: 300 } });
    texts = () => linesOf(net.log, 'agent_log').filter((l) => l.fields['agent'] === agent.id).map((l) => String(l.fields['text']));
    await waitFor(() => texts().includes('finish-soon run=1'), 10_000, 'run() began on the source');
    await net.runtimes[0]!.migrate(agent.id, net.hosts[1]!.id);
    await waitFor(() => exits.some((e) => e.host === 1), 10_000, 'the agent ended on the destination');
    const ended = exits.filter((e) => e.exit.reason !== 'migrated').map((e) => `host${e.host}:${e.exit.reason}`);
    assert.deepEqual(ended, ['host1:finished'], `exits: ${JSON.stringify(exits.map((e) => [e.host, e.exit.reason]))}`);
    assert.deepEqual(exits.find((e) => e.host === 1)!.exit.result, { runs: 2, hostId: net.hosts[1]!.id });
  } finally {
    await net.close();
  }
});

test('run() returning after the snapshot of a move that rolls back ends the agent on the source, once', async () => {
  let texts = (): string[] => [];
  const net = await startAgentNet(2, {
    runtime: { heartbeatTimeoutMs: 5000 },
    // The destination refuses once run() returned on the source: the move rolls back.
    wrapHost: (i, binding) =>
      i !== 0
        ? binding
        : {
            ...binding,
            migrate: async () => {
              await waitFor(() => texts().includes('finish-soon returning run=1'), 10_000, 'run() returned on the source after the snapshot');
              await sleep(200);
              throw new FerryError('FERRY_ERR_REFUSED', 'refused by the test');
            },
          },
  });
  try {
    const exits: { host: number; exit: AgentExit }[] = [];
    net.runtimes.forEach((r, host) => r.on('exit', (exit: AgentExit) => exits.push({ host, exit })));
    const agent = await net.launch(0, fixture('finish-soon.mjs'), { state: { ms: 300 } });
    texts = () => linesOf(net.log, 'agent_log').filter((l) => l.fields['agent'] === agent.id).map((l) => String(l.fields['text']));
    await waitFor(() => texts().includes('finish-soon run=1'), 10_000, 'run() began on the source');
    await assert.rejects(net.runtimes[0]!.migrate(agent.id, net.hosts[1]!.id), (err) => isFerryError(err, 'FERRY_ERR_REFUSED'));
    const exit = await agent.exited;
    assert.equal(exit.reason, 'finished');
    assert.deepEqual(exit.result, { runs: 1, hostId: net.hosts[0]!.id });
    assert.deepEqual(exits.map((e) => `host${e.host}:${e.exit.reason}`), ['host0:finished']);
  } finally {
    await net.close();
  }
});
