// Scenario: agent code passes AbortSignals to its server socket's accept() and to an accept loop
// (server.connections({ signal })). An already-aborted signal rejects at once, an abort while
// waiting rejects (FERRY_ERR_ABORTED, an AbortError with the reason as cause) and ends the loop,
// the server socket stays open, and the connection that arrives afterwards is taken by the next
// accept() and echoed exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { connectWhenListening, echoRoundTrip, fixture, linesOf, startAgentNet } from '../helpers/agents.js';
import { waitFor } from '../helpers/harness.js';

test('ctx server accept() and connections() with an AbortSignal', async () => {
  const net = await startAgentNet(2);
  try {
    const [h0] = net.hosts as [Host, Host];
    const agent = await net.launch(1, fixture('accept-abort.mjs'));
    await waitFor(() => linesOf(net.log, 'agent_log').some((l) => String(l.fields.text) === 'accepts aborted'), 10_000, 'the aborts');
    const sock = await connectWhenListening(h0, agent.id);
    await echoRoundTrip(sock, 41, 100_000);
    sock.end();
    const exit = await agent.exited;
    assert.equal(exit.reason, 'finished', exit.error?.message);
    assert.deepEqual(exit.result, {
      already: 'FERRY_ERR_ABORTED/AbortError/not now',
      aborted: 'FERRY_ERR_ABORTED/AbortError/waited enough',
      loop: 'FERRY_ERR_ABORTED/AbortError/loop done',
      closed: false,
    });
    sock.destroy();
  } finally {
    await net.close();
  }
});
