// Scenario: a connection reaches a listening agent that has not accepted it yet, its bytes are in
// the agent's worker, and then the agent moves. The connection travels with the agent but stays
// unaccepted: on the destination it is in the agent's listen queue (the agent accepts it there,
// through its server, and echoes what was sent before and after the move), never in
// ctx.connections, which holds only connections agent code had taken. Both ways a runtime moves:
// the in-process binding, and the real migration channel between hosts (the landing with its
// queued connection travels in the checkpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectWhenListening, fixture, linesOf, startAgentNet, startChannelNet, type AgentNet } from '../helpers/agents.js';
import { formatMigrationTarget } from '../../src/host/index.js';
import { pattern, waitFor } from '../helpers/harness.js';

async function scenario(net: AgentNet, target: string): Promise<void> {
  try {
    const agent = await net.launch(0, fixture('bystander.mjs'), { state: { accept: 0, acceptAfterMove: true } });
    const texts = (): string[] => linesOf(net.log, 'agent_log').filter((l) => l.fields['agent'] === agent.id).map((l) => String(l.fields['text']));
    const client = await connectWhenListening(net.hosts[1]!, agent.id);
    const got: Buffer[] = [];
    client.on('data', (c: Buffer) => got.push(c));
    const before = pattern(7, 0, 1000);
    client.write(before);
    // The agent's host handed the bytes to the worker: the connection is in the worker's listen queue.
    await waitFor(() => net.hosts[0]!.socketsOf(agent.id).some((s) => s.endpoint.recv.delivered >= before.length && s.readableLength === 0), 10_000, 'bytes in the worker');
    await waitFor(() => texts().includes('bystander holding'), 10_000, 'the agent holds');

    await net.runtimes[0]!.migrate(agent.id, target);
    await waitFor(() => texts().some((t) => t.startsWith('bystander run=2')), 10_000, 'run() again on the destination');
    assert.ok(texts().includes('bystander run=2 connections=0'), `ctx.connections on the destination: ${texts().join(' | ')}`);
    await waitFor(() => texts().some((t) => t.startsWith('bystander accepted after the move')), 10_000, 'accepted through the server on the destination');
    assert.ok(texts().includes(`bystander accepted after the move from ${client.localAgent}`));

    const after = pattern(7, before.length, 3000);
    client.write(after);
    const all = pattern(7, 0, before.length + after.length);
    await waitFor(() => Buffer.concat(got).length >= all.length, 10_000, 'the echo of every byte, from before and after the move');
    assert.ok(Buffer.concat(got).equals(all), 'the echo is exactly what was sent, once');
    assert.equal(net.runtimes[1]!.handleOf(agent.id)?.id, agent.id, 'the agent runs on the destination');
  } finally {
    await net.close();
  }
}

test('a connection not yet accepted when the agent moves is accepted on the destination through its server, not handed over in ctx.connections', async () => {
  const net = await startAgentNet(2, { runtime: { heartbeatTimeoutMs: 5000 } });
  await scenario(net, net.hosts[1]!.id);
});

test('the same over the migration channel: the queued connection travels in the checkpoint', async () => {
  const net = await startChannelNet(2, { runtime: { heartbeatTimeoutMs: 5000 } });
  const h1 = net.hosts[1]!;
  await scenario(net, formatMigrationTarget({ ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id }));
});
