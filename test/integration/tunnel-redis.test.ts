// Scenario: a redis-server started here, `ferry tunnel serve --to` it and `ferry tunnel connect
// --listen` as processes (sealed). While the data path between the tunnel hosts is cut every
// 250 ms: redis-benchmark (SET, GET, INCR; 4 clients, pipelines of 16) runs through the tunnel
// (in rounds until three cuts have reset data sockets three times) and reports no error, and redis-cli --pipe writes 2000 keys and 2000 INCRs through it. Then,
// straight to the server (not through the tunnel): the benchmark's INCR counter holds exactly the
// number of INCRs it sent, every key holds its value, and the pipe's counter is exactly 2000, so
// no command was lost or run twice.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisServer, type RedisServerHandle } from '../../src/testing/index.js';
import { Processes } from '../helpers/processes.js';
import { Cutter, runProgram, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
let redis: RedisServerHandle | undefined;
after(async () => {
  procs.killAll();
  await redis?.destroy();
});

const CLIENTS = 4;
const PIPELINE = 16;
/** A multiple of clients × pipeline, so redis-benchmark sends exactly this many of each command. */
const REQUESTS = CLIENTS * PIPELINE * 60;
const KEYS = 2000;

test('tunnel: redis-benchmark and redis-cli --pipe through a tunnel cut every 250 ms, nothing lost or doubled', async () => {
  redis = await startRedisServer();
  const pair = await startTunnelPair(procs, `127.0.0.1:${redis.port}`);
  const port = String(pair.listenPort);
  const cutter = new Cutter(pair.redirectorPorts, 250).start();

  // Rounds of redis-benchmark until three cuts have come and reset data sockets three times (a
  // fast machine finishes one round within a cut's interval; one cut may reset several sockets).
  let rounds = 0;
  let bench: Awaited<ReturnType<typeof runProgram>>;
  do {
    bench = await runProgram('redis-benchmark', ['-h', '127.0.0.1', '-p', port, '-c', String(CLIENTS), '-P', String(PIPELINE), '-n', String(REQUESTS), '-t', 'set,get,incr', '-q'], { timeoutMs: 60_000 });
    rounds++;
    assert.equal(bench.code, 0, `redis-benchmark: ${bench.stderr}`);
    assert.doesNotMatch(bench.stdout + bench.stderr, /error|reset|refused/i, 'redis-benchmark reported no error');
  } while ((cutter.cuts < 3 || cutter.killed < 3) && rounds < 20);
  let pipeInput = '';
  for (let i = 0; i < KEYS; i++) pipeInput += `SET tunnel:key:${i} value-${i}-${'x'.repeat(i % 64)}\r\nINCR tunnel:counter\r\n`;
  const pipe = await runProgram('redis-cli', ['-h', '127.0.0.1', '-p', port, '--pipe'], { input: pipeInput, timeoutMs: 60_000 });
  const { cuts, killed } = await cutter.stop();

  assert.match(bench.stdout, /INCR: [\d.]+ requests per second/);
  assert.equal(pipe.code, 0, `redis-cli --pipe: ${pipe.stdout} ${pipe.stderr}`);
  assert.match(pipe.stdout, new RegExp(`errors: 0, replies: ${2 * KEYS}`));

  // Checked straight at the server, not through the tunnel.
  const direct = (...args: string[]): Promise<string> => runProgram('redis-cli', ['-h', '127.0.0.1', '-p', String(redis!.port), ...args]).then((r) => r.stdout.trim());
  assert.equal(await direct('GET', 'counter:__rand_int__'), String(REQUESTS * rounds), 'each benchmark INCR ran exactly once');
  assert.equal(await direct('GET', 'tunnel:counter'), String(KEYS), 'each piped INCR ran exactly once');
  const keys = Array.from({ length: KEYS }, (_, i) => `tunnel:key:${i}`);
  const values = (await direct('MGET', ...keys)).split('\n');
  assert.deepEqual(values, keys.map((_, i) => `value-${i}-${'x'.repeat(i % 64)}`));
  assert.ok(cuts >= 3 && killed >= 3, `cuts=${cuts} sockets reset=${killed}`);
  console.log(`# ${cuts} cuts, ${killed} data sockets reset; ${bench.stdout.split(/[\r\n]/).filter((l) => /requests per second/.test(l)).join('; ')}`);
  await pair.close();
});
