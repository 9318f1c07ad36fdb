// Scenario: one agent opens 1,000 connections at once to one agent on another host (what `ferry
// tunnel connect` does when 1,000 TCP clients arrive together). The peer host lets one source hold
// HALF_OPEN_PER_SOURCE half-opens and drops that source's oldest beyond it; an opening host keeps
// at most OPENS_IN_FLIGHT_PER_PEER opens in flight towards one peer host and queues the rest, so
// its own burst never has the peer drop its opens. Every open succeeds, the peer refuses nothing,
// and each connection carries bytes both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { limit } from '../../src/util/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';

const OPENS = 1000;

test('1,000 opens at once from one agent to one peer host: all succeed, none dropped as half-open', { timeout: 120_000 }, async () => {
  const net = await startHosts(2);
  const [h0, h1] = net.hosts as [Host, Host];
  try {
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const accepted: AgentSocket[] = [];
    h1.listen(b.id).on('connection', (s: AgentSocket) => accepted.push(s));
    const halfOpen = (h1 as unknown as { halfOpen: { held(source: string): number } }).halfOpen;
    let mostHalfOpen = 0;
    const sample = setInterval(() => (mostHalfOpen = Math.max(mostHalfOpen, halfOpen.held('127.0.0.1'))), 1);
    const opened = await Promise.allSettled(Array.from({ length: OPENS }, () => h0.connect(a.id, b.id)));
    clearInterval(sample);
    const failed = opened.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as { code?: string }).code ?? String(r.reason));
    assert.deepEqual(failed, [], 'every open succeeded');
    assert.equal(h1.refusals.get('FERRY_ERR_LIMIT_EXCEEDED') ?? 0, 0, 'the peer dropped none of our half-opens');
    assert.ok(mostHalfOpen <= limit('OPENS_IN_FLIGHT_PER_PEER'), `the peer held at most ${mostHalfOpen} of our half-opens at once`);
    await waitFor(() => accepted.length === OPENS, 30_000, `${OPENS} connections accepted`);
    // Each connection carries a byte each way (no mixed-up pairing: the value is the index).
    const socks = opened.map((r) => (r as PromiseFulfilledResult<AgentSocket>).value);
    const byLocal = new Map<string, number>();
    socks.forEach((s, i) => {
      byLocal.set(s.connectionId, i);
      s.write(Buffer.from([i & 0xff]));
    });
    const echoed = await Promise.all(
      accepted.map(
        (s) =>
          new Promise<boolean>((resolve) => {
            s.once('data', (d: Buffer) => resolve(d[0] === ((byLocal.get(s.connectionId) ?? -1) & 0xff)));
          }),
      ),
    );
    assert.equal(echoed.filter(Boolean).length, OPENS, 'every connection delivered its byte to its own peer');
  } finally {
    await net.close();
  }
});
