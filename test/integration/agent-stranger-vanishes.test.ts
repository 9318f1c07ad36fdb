// Scenario: strangers with fresh keys connect to listening agents, send 2 bytes each and vanish
// (their host goes silent, then dies), so each connection gives up resuming after the reconnect
// limit (1.5 s here, a host option) with FERRY_ERR_PEER_UNREACHABLE — the real path, on real
// sockets. The agents they reached: a ring member (examples/agents/ring.mjs) that closes
// connections it does not expect; an agent that never accepts (the connection fails in its listen
// queue); one that accepted and holds the socket without an 'error' listener; one that listens for
// 'error'. None of them crashes: the queued and the unheard failures are one
// `agent_connection_dropped` line each, the listener gets its 'error', and the ring streams on and
// ends with every byte exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { Tap } from '../helpers/attacker.js';
import { connectWhenListening, fixture, linesOf, startAgentNet } from '../helpers/agents.js';
import { Ring, RING_RUNTIME } from '../helpers/ring.js';

const RECONNECT_LIMIT_MS = 1500;

test('a stranger that connects, sends 2 bytes and vanishes crashes no agent; the ring streams on exactly', async () => {
  const net = await startAgentNet(2, { runtime: RING_RUNTIME, host: { reconnectLimitMs: RECONNECT_LIMIT_MS } });
  let tap: Tap | undefined;
  const stranger = await Host.start({ location: net.location, name: 'stranger', wrapControlSocket: (s) => (tap = new Tap(s)) });
  try {
    const TOTAL = 2_000_000;
    const ring = await Ring.launch(net, 2, (i) => i, { total: TOTAL, chunk: 16 * 1024, bytesPerSecond: 250_000 });
    const bystander = fixture('bystander.mjs');
    const queued = await net.launch(0, bystander, { state: { accept: 0 } });
    const holder = await net.launch(0, bystander, { state: { accept: 1 } });
    const listener = await net.launch(0, bystander, { state: { accept: 1, listenErrors: true } });
    const texts = (id: AgentId): string[] => linesOf(net.log, 'agent_log').filter((l) => l.fields['agent'] === id).map((l) => String(l.fields['text']));
    await ring.flowing(64 * 1024, 'before the strangers');

    const targets = [ring.ids[0]!, queued.id, holder.id, listener.id];
    const socks: AgentSocket[] = [];
    for (const to of targets) {
      const s = await connectWhenListening(stranger, to);
      s.on('error', () => {});
      s.write(Buffer.from([0x17, 0x03]));
      socks.push(s);
    }
    // The bytes reached each agent's worker (the queued one's too: its host handed them over).
    await ring.waitFor(() => texts(holder.id).some((t) => t.startsWith('bystander accepted')) && texts(listener.id).some((t) => t.startsWith('bystander accepted')), 10_000, 'the holder and the listener accepted');
    await ring.waitFor(
      () => net.hosts[0]!.socketsOf(queued.id).some((s) => s.endpoint.recv.delivered >= 2 && s.readableLength === 0),
      10_000,
      'the queued connection handed its 2 bytes to the worker',
    );

    // The stranger vanishes: nothing more leaves its host, not even a CLS.
    tap!.silent = true;
    await stranger.close();

    const dropped = (id: AgentId, why: string): number => linesOf(net.log, 'agent_connection_dropped').filter((l) => l.fields['agent'] === id && l.fields['why'] === why).length;
    await ring.waitFor(
      () => dropped(queued.id, 'unaccepted') === 1 && dropped(holder.id, 'unhandled') === 1 && texts(listener.id).includes('bystander error FERRY_ERR_PEER_UNREACHABLE'),
      15_000,
      'each failure reported once, past the reconnect limit',
    );
    const line = linesOf(net.log, 'agent_connection_dropped').find((l) => l.fields['agent'] === queued.id)!;
    assert.equal(line.fields['code'], 'FERRY_ERR_PEER_UNREACHABLE');
    // Alive: no exit, still running, and still streaming after the failures.
    for (const id of [queued.id, holder.id, listener.id, ...ring.ids]) {
      assert.equal(ring.exits.get(id), undefined, `agent ${id.slice(0, 8)} did not end: ${JSON.stringify(ring.exits.get(id)?.map((e) => e.error?.message))}`);
    }
    assert.ok(net.runtimes[0]!.handleOf(queued.id) && net.runtimes[0]!.handleOf(holder.id) && net.runtimes[0]!.handleOf(listener.id));
    await ring.flowing(64 * 1024, 'after the strangers vanished');
    assert.equal(dropped(queued.id, 'unaccepted') + dropped(holder.id, 'unhandled'), 2, 'one line per dropped connection');

    for (const id of [queued.id, holder.id, listener.id]) await net.runtimes[0]!.stop(id);
    await ring.checkEnd(4, [0, 0], []);
    const results = await ring.results(1000);
    assert.equal(results[0]!.strangers, 1, 'ring member 0 closed the one connection it did not expect');
    assert.equal(results[1]!.strangers, 0);
  } finally {
    await stranger.close();
    await net.close();
  }
});
