// Scenario: an iperf3 server started here (one test, free port), `ferry tunnel serve --to` it and
// `ferry tunnel connect --listen` as processes (sealed). iperf3 -c runs a 2-second TCP test through
// the tunnel (its control connection and its data connection are both tunnelled) while the data
// path between the tunnel hosts is cut every 250 ms. iperf3 exits 0 on both sides, reports no
// error, and the server received bytes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freeTcpPort } from '../../src/testing/index.js';
import { Processes } from '../helpers/processes.js';
import { waitFor } from '../helpers/harness.js';
import { Cutter, runProgram, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
let server: ChildProcess | undefined;
after(() => {
  procs.killAll();
  server?.kill('SIGKILL');
});

test('tunnel: iperf3 through a tunnel cut every 250 ms', async () => {
  const port = await freeTcpPort();
  let serverOut = '';
  server = spawn('iperf3', ['-s', '-1', '--forceflush', '-B', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (c: Buffer) => (serverOut += c.toString()));
  server.stderr!.on('data', (c: Buffer) => (serverOut += c.toString()));
  await waitFor(() => /Server listening/.test(serverOut) || server!.exitCode !== null, 10_000, 'iperf3 server listening');
  assert.equal(server.exitCode, null, `iperf3 -s: ${serverOut}`);

  const pair = await startTunnelPair(procs, `127.0.0.1:${port}`);
  const cutter = new Cutter(pair.redirectorPorts, 250).start();
  const client = await runProgram('iperf3', ['-c', '127.0.0.1', '-p', String(pair.listenPort), '-t', '2', '-J'], { timeoutMs: 60_000 });
  const { cuts, killed } = await cutter.stop();
  const serverExit = server.exitCode ?? ((await once(server, 'exit')) as [number | null])[0];

  assert.equal(client.code, 0, `iperf3 -c: ${client.stdout.slice(-2000)} ${client.stderr}`);
  const report = JSON.parse(client.stdout) as { error?: string; end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
  assert.equal(report.error, undefined);
  assert.ok(report.end.sum_received.bytes > 0, 'the iperf3 server received bytes');
  assert.equal(serverExit, 0, `iperf3 -s: ${serverOut.slice(-2000)}`);
  assert.doesNotMatch(serverOut, /error/i);
  assert.ok(cuts >= 3 && killed >= 3, `cuts=${cuts} sockets reset=${killed}`);
  console.log(`# ${cuts} cuts, ${killed} data sockets reset; ${(report.end.sum_received.bytes / 1048576).toFixed(1)} MiB received in 2 s`);
  await pair.close();
});
