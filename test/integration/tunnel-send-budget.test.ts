// Scenario: a tunnel end's send budget across its streams. Through `ferry tunnel serve
// --send-budget 16MiB --allow-any` and two `ferry tunnel connect` processes (sealed; two agent
// ids, one address), 10 local clients of each connect and never read while the target writes to
// each without end. The serving end's streams together hold no more than the budget allows: a
// quarter of it for the one source address (the two agents share it: ids are free to make), plus
// each stream's floor and a read or two each. Before, each held a whole SEND_BUDGET_BYTES (20 MiB
// together); its TCP sides wait ('starved'). An honest client still gets 256 KiB each way whole
// (its floor keeps it moving), and once the silent clients go, the serving end holds nothing.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { limit } from '../../src/util/index.js';
import { sleep } from '../helpers/agents.js';
import { join } from 'node:path';
import { Processes, type Proc } from '../helpers/processes.js';
import { EndlessWriter, exchange, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const KiB = 1024;
const MiB = 1024 * KiB;
const SILENT = 20;
const BUDGET = 16 * MiB;
const FLOOR = limit('TUNNEL_STREAM_SEND_FLOOR_BYTES');
/** One read of a TCP socket, the most a stream takes in beyond what it was allowed. */
const READ = 64 * KiB;

interface Stats {
  active: number;
  held: number;
  starved: number;
}

/** Ask a tunnel process for its counters (SIGUSR2) and read the line it prints. */
async function statsOf(p: Proc): Promise<Stats> {
  const before = p.out().length;
  p.child.kill('SIGUSR2');
  for (let t = 0; t < 100; t++) {
    const m = /ferry tunnel stats: active=(\d+) opened=\d+ reset=\d+ denied=\d+ held=(\d+) starved=(\d+)/.exec(p.out().slice(before));
    if (m) return { active: Number(m[1]), held: Number(m[2]), starved: Number(m[3]) };
    await sleep(50);
  }
  throw new Error(`no stats line after SIGUSR2; stdout: ${p.out().slice(-500)}`);
}

test('tunnel: the serving end holds its send budget across streams whose readers never read; an honest stream still flows', { timeout: 120_000 }, async () => {
  const target = await EndlessWriter.start();
  cleanups.push(() => target.close());
  const { written, honest } = target;
  const pair = await startTunnelPair(procs, target.address, { serveArgs: ['--send-budget', '16MiB', '--allow-any'] });
  cleanups.push(() => pair.close());
  assert.match(pair.serve.out(), /ferry tunnel ready: .* send-budget=16384KiB/);
  // A second connecting end: another agent on the same address.
  const second = await procs.start(['tunnel', 'connect', pair.serveAgent, '--key', join(pair.dir, 'second.key'), '--rendezvous', pair.rendezvous, '--listen', '127.0.0.1:0'], /^ferry tunnel ready: .*listen=127\.0\.0\.1:(\d+)/m);
  cleanups.push(() => second.child.kill('SIGKILL'));
  const ports = [pair.listenPort, Number(second.ready[1])];

  const silent = EndlessWriter.silentClients(ports, SILENT);
  cleanups.push(() => silent.forEach((c) => c.destroy()));
  // Until every writer made no progress for a whole second.
  const last = await target.untilStopped(SILENT);
  assert.equal(written.size, SILENT, 'every silent client reached the target');
  assert.equal(target.total, last, 'the writers stopped');

  const held = await statsOf(pair.serve);
  // One source: a quarter of the pool, every stream its floor, and two reads beyond each.
  const bound = BUDGET / 4 + SILENT * (FLOOR + 2 * READ);
  console.log(`${SILENT} silent streams: the serving end holds ${(held.held / MiB).toFixed(2)} MiB (bound ${(bound / MiB).toFixed(2)} MiB; without a budget ${SILENT} x ${limit('SEND_BUDGET_BYTES') / MiB} MiB), ${held.starved} starved`);
  assert.equal(held.active, SILENT);
  assert.ok(held.held <= bound, `held ${held.held} > ${bound}`);
  assert.ok(held.held >= SILENT * FLOOR, `every stream holds at least its floor (${held.held})`);
  assert.ok(held.starved > 0, 'streams wait for room in the budget');

  // An honest client of the same peer, meanwhile: 256 KiB each way, every byte once.
  const errors: Error[] = [];
  const h = netConnect({ host: '127.0.0.1', port: pair.listenPort, allowHalfOpen: true });
  h.on('error', (e) => errors.push(e));
  h.write('h');
  for (let t = 0; t < 200 && !honest.socket; t++) await sleep(50);
  assert.ok(honest.socket, 'the honest client reached the target');
  honest.socket.resume();
  const [client, server] = await Promise.all([exchange(h, 256 * KiB, true, errors), exchange(honest.socket, 256 * KiB, false, errors)]);
  assert.deepEqual(errors, []);
  assert.equal(client.receivedSha, server.sentSha);
  assert.equal(server.receivedSha, client.sentSha);

  // The silent clients go: their streams end and give back all they held.
  for (const c of silent) c.destroy();
  let after: Stats = held;
  for (let t = 0; t < 100; t++) {
    after = await statsOf(pair.serve);
    if (after.active === 0) break;
    await sleep(100);
  }
  assert.deepEqual({ active: after.active, held: after.held, starved: after.starved }, { active: 0, held: 0, starved: 0 });
  assert.equal(pair.serve.child.exitCode, null);
  assert.equal(pair.connect.child.exitCode, null);
});
