// Scenario: an agent accepts a connection, destroys it without reading the bytes that came with it,
// and then moves. The host still holds those bytes (agent code never acknowledged them), but the
// agent let the connection go before the snapshot its state describes: on the destination the
// connection does not come back in ctx.connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectWhenListening, fixture, linesOf, startAgentNet } from '../helpers/agents.js';
import { codeOf, waitFor } from '../helpers/harness.js';

test('a connection the agent destroyed unread before a move is not handed back in ctx.connections on the destination', async () => {
  const net = await startAgentNet(2, { runtime: { heartbeatTimeoutMs: 5000 } });
  try {
    const agent = await net.launch(0, fixture('bystander.mjs'), { state: { accept: 1, destroyAccepted: true } });
    const texts = (): string[] => linesOf(net.log, 'agent_log').filter((l) => l.fields['agent'] === agent.id).map((l) => String(l.fields['text']));
    const client = await connectWhenListening(net.hosts[1]!, agent.id);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const errors: string[] = [];
    client.on('error', (e: unknown) => errors.push(codeOf(e)));
    client.write(Buffer.alloc(1000, 7));
    await waitFor(() => texts().includes('bystander holding'), 10_000, 'the agent destroyed the connection and holds');
    assert.ok(texts().includes('bystander destroyed it unread'));
    await closed;
    assert.deepEqual(errors, ['FERRY_ERR_PEER_ABORTED'], 'the client learns the agent destroyed the connection');

    await net.runtimes[0]!.migrate(agent.id, net.hosts[1]!.id);
    await waitFor(() => texts().some((t) => t.startsWith('bystander run=2')), 10_000, 'run() again on the destination');
    assert.ok(texts().includes('bystander run=2 connections=0'), `ctx.connections on the destination: ${texts().join(' | ')}`);
  } finally {
    await net.close();
  }
});
