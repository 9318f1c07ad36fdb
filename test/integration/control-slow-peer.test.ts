// Scenario: a burst of 500 requests over real loopback UDP to a control channel in another thread
// whose handler burns 2 ms of CPU on each, a second in all, as a host answering the SUS or RES of
// a moving agent's connections does. The per-peer window keeps most of the burst queued at the
// sender, so every request is answered once and few are retransmitted; sending all 500 at once
// (the channel before the window) retransmitted the ones still waiting, several times each.
//
// The peer runs in a worker so that the requester's timers run while the peer is busy, as they do
// between hosts: in one thread the peer's handlers would hold the requester's timers back too.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { ControlChannel, type ControlStats } from '../../src/control/index.js';

const closers: Array<() => unknown> = [];
after(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The slow peer: a control channel in a worker, answering each request after `burnMs` of CPU. */
const PEER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.control).then(async ({ ControlChannel }) => {
  const channel = await ControlChannel.bind();
  const calls = new Map();
  channel.onRequest((req) => {
    const key = req.body.toString();
    calls.set(key, (calls.get(key) ?? 0) + 1);
    const end = performance.now() + workerData.burnMs;
    while (performance.now() < end);
    return { type: 2, body: Buffer.from('reply:' + key) };
  });
  parentPort.on('message', () => {
    parentPort.postMessage({ stats: { ...channel.stats }, runs: [...calls.values()], distinct: calls.size });
    channel.close();
  });
  parentPort.postMessage({ address: channel.address });
});
`;

async function slowPeer(burnMs: number): Promise<{ address: string; finish(): Promise<{ stats: ControlStats; runs: number[]; distinct: number }> }> {
  const control = new URL('../../src/control/index.js', import.meta.url).href;
  const worker = new Worker(PEER, { eval: true, workerData: { control, burnMs } });
  closers.push(() => worker.terminate());
  const [{ address }] = (await once(worker, 'message')) as [{ address: string }];
  return {
    address,
    finish: async () => {
      worker.postMessage('finish');
      const [result] = (await once(worker, 'message')) as [{ stats: ControlStats; runs: number[]; distinct: number }];
      return result;
    },
  };
}

describe('a burst of control requests to a slow peer', () => {
  it('500 requests at 2 ms of peer CPU each: all answered once, few retransmitted', async () => {
    const peer = await slowPeer(2);
    const client = await ControlChannel.bind();
    closers.push(() => client.close());
    const n = 500;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => client.request(peer.address, 1, Buffer.from(`req-${i}`))));
    replies.forEach((r, i) => assert.equal(r.body.toString(), `reply:req-${i}`));
    const { stats, runs, distinct } = await peer.finish();
    assert.equal(distinct, n);
    assert.ok(runs.every((r) => r === 1), 'each handler ran once');
    // Measured: 90-130 with the window (the tail of each window waits 64 x 2 ms at the peer, past
    // the RTO the first replies measured; each is answered from its reply cache). Without it:
    // ~1050, and the peer received only ~512 datagrams, its socket buffer overflowing.
    assert.ok(client.stats.retransmitted < n / 2, `${client.stats.retransmitted} retransmissions for ${n} requests`);
    assert.ok(client.stats.queued > n / 2, 'most of the burst waited at the sender');
    assert.ok(stats.duplicatesAnswered + stats.duplicatesIgnored <= client.stats.retransmitted);
  });
});
