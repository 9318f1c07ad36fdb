// ctx sockets say who opened the connection (`initiator`), and that survives moves: a carried
// connection the agent had not recorded yet can still be told apart (dialed or accepted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { waitFor } from '../helpers/harness.js';
import { fixture, linesOf, startAgentNet } from '../helpers/agents.js';

test('socket.initiator: true for the dialer, false for the acceptor, the same after both move', async () => {
  const net = await startAgentNet(3);
  try {
    const [, , h2] = net.hosts as [Host, Host, Host];
    const texts = (): string[] => linesOf(net.log, 'agent_log').map((l) => String(l.fields.text));
    const acceptor = await net.launch(0, fixture('initiator.mjs'));
    const dialer = await net.launch(1, fixture('initiator.mjs'), { state: { peer: acceptor.id } });
    const first = [`initiator run=1 peer=${dialer.id} initiator=false`, `initiator run=1 peer=${acceptor.id} initiator=true`];
    await waitFor(() => first.every((t) => texts().includes(t)), 10_000, 'both report their socket');
    const to = h2.id;
    await Promise.all([net.runtimes[0]!.migrate(acceptor.id, to), net.runtimes[1]!.migrate(dialer.id, to)]);
    const second = [`initiator run=2 peer=${dialer.id} initiator=false`, `initiator run=2 peer=${acceptor.id} initiator=true`];
    await waitFor(() => second.every((t) => texts().includes(t)), 10_000, `both report the carried socket; got ${texts().join(' | ')}`);
  } finally {
    await net.close();
  }
});
