// Scenario: peers connect to an agent that listens but has not accepted yet, send some bytes and
// close gracefully, one after another. Each connection leaves the agent's listen queue when it is
// over (one `agent_connection_dropped` line each, code FERRY_ERR_CONNECTION_CLOSED), so connections that
// ended before the agent took them cannot pile up in a queue no one reads; the agent runs on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectWhenListening, fixture, linesOf, startAgentNet } from '../helpers/agents.js';
import { codeOf, waitFor } from '../helpers/harness.js';

test('connections closed gracefully before the agent accepted them leave its listen queue', async () => {
  const net = await startAgentNet(2, { runtime: { heartbeatTimeoutMs: 5000 } });
  try {
    const agent = await net.launch(0, fixture('bystander.mjs'), { state: { accept: 0 } });
    const N = 3;
    const errors: string[] = [];
    for (let i = 0; i < N; i++) {
      const s = await connectWhenListening(net.hosts[1]!, agent.id);
      s.on('error', (e: unknown) => errors.push(codeOf(e)));
      s.write(Buffer.alloc(500, i));
      await s.close();
    }
    const dropped = (): typeof net.log.lines => linesOf(net.log, 'agent_connection_dropped').filter((l) => l.fields['agent'] === agent.id);
    await waitFor(() => dropped().length >= N, 10_000, `${N} connections dropped from the queue`);
    assert.deepEqual(errors, [], 'the clients had closed gracefully: no error at their end');
    assert.deepEqual(
      dropped().map((l) => [l.fields['why'], l.fields['code']]),
      Array.from({ length: N }, () => ['unaccepted', 'FERRY_ERR_CONNECTION_CLOSED']),
    );
    assert.ok(net.runtimes[0]!.handleOf(agent.id), 'the agent runs on');
    await waitFor(() => net.hosts[0]!.socketsOf(agent.id).length === 0, 10_000, 'the host holds none of them');
  } finally {
    await net.close();
  }
});
