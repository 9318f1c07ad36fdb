// Scenario: backpressure end to end through `ferry tunnel` processes (sealed). The target stops
// reading; the TCP client writes as fast as write() and 'drain' let it. Its progress stops: once
// the tunnel's bounded buffers (announced in the ready line) and the kernel's socket buffers are
// full, nothing more is accepted for a whole second, and what was accepted is bounded. Then the
// target reads again: the writer goes on, and every byte arrives once (sha256).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Processes } from '../helpers/processes.js';
import { sleep } from '../helpers/agents.js';
import { startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
after(() => procs.killAll());

const MiB = 1024 * 1024;

test('tunnel: a target that stops reading stops the client writer; bounded; all bytes once after', async () => {
  let accepted!: Socket;
  let gotIt!: () => void;
  const gotSocket = new Promise<void>((resolve) => (gotIt = resolve));
  const target = createServer((s) => {
    s.pause();
    accepted = s;
    gotIt();
  });
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  after(() => target.close());
  const targetPort = (target.address() as AddressInfo).port;
  const pair = await startTunnelPair(procs, `127.0.0.1:${targetPort}`);
  assert.match(pair.serve.out(), /ferry tunnel ready: .*budget=\d+x\d+KiB/, 'the serving end announces its buffer budget');

  const c = netConnect({ host: '127.0.0.1', port: pair.listenPort });
  c.resume();
  await once(c, 'connect');
  const sent = createHash('sha256');
  let pushed = 0;
  let stop = false;
  const total = 64 * MiB;
  const writer = (async () => {
    while (pushed < total && !stop) {
      const chunk = randomBytes(64 * 1024);
      sent.update(chunk);
      pushed += chunk.length;
      if (!c.write(chunk)) await once(c, 'drain');
    }
    c.end();
  })();
  await gotSocket;
  // Let the pipeline fill, then watch the writer for a second.
  let last = -1;
  for (let i = 0; i < 40 && pushed !== last; i++) {
    last = pushed;
    await sleep(500);
  }
  const stalledAt = pushed;
  await sleep(1000);
  assert.equal(pushed, stalledAt, 'the writer made no progress while the target did not read');
  assert.ok(stalledAt < 48 * MiB, `bounded: ${stalledAt} bytes accepted before the writer stopped`);
  console.log(`# the writer stopped after ${(stalledAt / MiB).toFixed(1)} MiB (tunnel buffers plus kernel socket buffers)`);

  // The target reads again: everything arrives, once.
  const got = createHash('sha256');
  let received = 0;
  accepted.on('data', (d: Buffer) => {
    received += d.length;
    got.update(d);
  });
  accepted.resume();
  await once(accepted, 'end');
  accepted.end();
  await writer;
  await once(c, 'end');
  assert.equal(received, total);
  assert.equal(got.digest('hex'), sent.digest('hex'));
  stop = true;
  await pair.close();
});
