// Scenario: `ferry tunnel serve` and `ferry tunnel connect` as processes (sealed). (1) The target
// accepts, reads the client's first bytes, then resets: the client's connection is reset. (2) The
// target is gone (connection refused): the client's connection is reset; the serving end logs one
// line with FERRY_ERR_TUNNEL_TARGET and ECONNREFUSED, the connecting end one line with a code.
// (3) A connecting end whose agent is not on the serving end's --allow list: its client is reset
// and the serving end logs one FERRY_ERR_TUNNEL_DENIED line. The tunnel works on afterwards.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Processes, poll } from '../helpers/processes.js';
import { startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
after(() => procs.killAll());

/** Connect through the tunnel, send a line, and resolve with how the connection ended. */
function tryClient(port: number): Promise<{ code: string | undefined; data: string }> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let data = '';
    let code: string | undefined;
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
    s.on('close', () => resolve({ code, data }));
    s.write('hello\n');
  });
}

const lines = (text: string, event: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o.event === event);

test('tunnel: a target that resets or refuses, and an agent not allowed, reset the client with one coded log line', async () => {
  let resets = 0;
  const target = createServer((s) => {
    s.once('data', () => {
      resets++;
      s.resetAndDestroy();
    });
  });
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  const targetPort = (target.address() as AddressInfo).port;
  const pair = await startTunnelPair(procs, `127.0.0.1:${targetPort}`);

  // (1) the target resets mid-stream
  const reset = await tryClient(pair.listenPort);
  assert.equal(reset.code, 'ECONNRESET', 'the client saw a reset');
  assert.equal(resets, 1);

  // (2) the target is gone
  target.close();
  await once(target, 'close');
  const refused = await tryClient(pair.listenPort);
  assert.equal(refused.code, 'ECONNRESET', 'the client saw a reset');
  const failed = await poll(() => (lines(pair.serve.err(), 'tunnel_target_failed').length > 0 ? lines(pair.serve.err(), 'tunnel_target_failed') : undefined), 5000, () => pair.serve.err());
  assert.equal(failed.length, 1, 'one line at the serving end');
  assert.equal(failed[0]!.code, 'FERRY_ERR_TUNNEL_TARGET');
  assert.equal(failed[0]!.errno, 'ECONNREFUSED');
  const streamResets = lines(pair.connect.err(), 'tunnel_stream_reset');
  assert.equal(streamResets.length, 2, `one line per reset client at the connecting end: ${pair.connect.err()}`);
  for (const l of streamResets) assert.equal(l.code, 'FERRY_ERR_PEER_ABORTED');

  // (3) an agent the serving end does not allow
  const stranger = await procs.start(['tunnel', 'connect', pair.serveAgent, '--key', join(pair.dir, 'stranger.key'), '--rendezvous', pair.rendezvous, '--listen', '127.0.0.1:0'], /ferry tunnel ready: .*listen=127\.0\.0\.1:(\d+)/);
  const denied = await tryClient(Number(stranger.ready[1]));
  assert.equal(denied.code, 'ECONNRESET', 'the stranger\'s client saw a reset');
  const deniedLines = await poll(() => (lines(pair.serve.err(), 'tunnel_denied').length > 0 ? lines(pair.serve.err(), 'tunnel_denied') : undefined), 5000, () => pair.serve.err());
  assert.equal(deniedLines.length, 1);
  assert.equal(deniedLines[0]!.code, 'FERRY_ERR_TUNNEL_DENIED');
  const openFailed = lines(stranger.err(), 'tunnel_open_failed');
  assert.equal(openFailed.length, 1, stranger.err());
  assert.equal(openFailed[0]!.code, 'FERRY_ERR_PEER_ABORTED');

  // The tunnel still works: a target is back on the same port.
  const echo = createServer((s) => s.pipe(s));
  echo.listen(targetPort, '127.0.0.1');
  await once(echo, 'listening');
  const s = netConnect({ host: '127.0.0.1', port: pair.listenPort });
  s.end('still works\n');
  let got = '';
  for await (const c of s) got += (c as Buffer).toString();
  assert.equal(got, 'still works\n');
  echo.close();
  await pair.close();
});
