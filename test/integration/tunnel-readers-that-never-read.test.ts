// Scenario: backpressure from the target's side (tunnel-backpressure covers the client's). Through
// `ferry tunnel serve` and `ferry tunnel connect` processes (sealed), 20 local clients connect
// and never read, and the target writes to each as fast as write() and 'drain' let it, without
// end. Every writer stops: no byte is accepted for a whole second, after at most the tunnel's
// announced per-connection budget plus the kernel's socket buffers each; neither tunnel end's
// resident memory grows by more than the announced budget per connection (plus 128 MiB for the
// heap's own growth). Meanwhile an honest client's 256 KiB each way arrives whole (sha256).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { limit } from '../../src/util/index.js';
import { sleep } from '../helpers/agents.js';
import { Processes, type Proc } from '../helpers/processes.js';
import { EndlessWriter, exchange, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const MiB = 1024 * 1024;
const SILENT = 20;
/** What one tunnelled connection may hold in one tunnel end (the ready line's budget). */
const BUDGET = limit('SEND_BUDGET_BYTES') + limit('RECEIVE_WINDOW_BYTES') + 4 * 64 * 1024;
/** Loopback socket buffers on the path of one connection: three sockets each way, generously. */
const KERNEL = 3 * 8 * MiB;

const rssOf = (p: Proc): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]) * 1024;

test('tunnel: clients that never read stop an endless target writer, bounded at both ends; another client is unharmed', { timeout: 120_000 }, async () => {
  const target = await EndlessWriter.start();
  cleanups.push(() => target.close());
  const { written, honest } = target;
  const pair = await startTunnelPair(procs, target.address);
  cleanups.push(() => pair.close());
  const before = [rssOf(pair.serve), rssOf(pair.connect)];

  const silent = EndlessWriter.silentClients([pair.listenPort], SILENT);
  cleanups.push(() => silent.forEach((c) => c.destroy()));
  const total = (): number => target.total;
  // Until every writer made no progress for a whole second.
  const last = await target.untilStopped(SILENT);
  assert.equal(written.size, SILENT, 'every silent client reached the target');
  assert.equal(total(), last, 'the writers stopped');
  const most = Math.max(...written.values());
  console.log(`${SILENT} silent clients: the target wrote ${(total() / MiB).toFixed(0)} MiB in all, ${(most / MiB).toFixed(1)} MiB at most to one; RSS grew ${((rssOf(pair.serve) - before[0]!) / MiB).toFixed(0)} MiB (serve), ${((rssOf(pair.connect) - before[1]!) / MiB).toFixed(0)} MiB (connect)`);
  assert.ok(most <= BUDGET + KERNEL, `at most ${((BUDGET + KERNEL) / MiB).toFixed(1)} MiB accepted for one connection, got ${(most / MiB).toFixed(1)}`);
  for (const [i, p] of [pair.serve, pair.connect].entries()) {
    const grew = rssOf(p) - before[i]!;
    assert.ok(grew <= SILENT * BUDGET + 128 * MiB, `${i === 0 ? 'serving' : 'connecting'} end grew ${(grew / MiB).toFixed(0)} MiB for ${SILENT} connections`);
  }

  // Another client, meanwhile: 256 KiB each way, every byte once.
  const errors: Error[] = [];
  const h = netConnect({ host: '127.0.0.1', port: pair.listenPort, allowHalfOpen: true });
  h.on('error', (e) => errors.push(e));
  h.write('h');
  for (let t = 0; t < 200 && !honest.socket; t++) await sleep(50);
  assert.ok(honest.socket, 'the honest client reached the target');
  honest.socket.resume();
  const [client, server] = await Promise.all([exchange(h, 256 * 1024, true, errors), exchange(honest.socket, 256 * 1024, false, errors)]);
  assert.deepEqual(errors, []);
  assert.equal(client.receivedSha, server.sentSha);
  assert.equal(server.receivedSha, client.sentSha);
  assert.equal(pair.serve.child.exitCode, null);
  assert.equal(pair.connect.child.exitCode, null);
});
