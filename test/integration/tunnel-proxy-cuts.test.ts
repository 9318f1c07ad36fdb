// Scenario: `ferry tunnel serve` and `ferry tunnel connect` as processes (sealed), each behind a
// TCP proxy in this process (CuttingProxy, src/testing/) that it advertises as its redirector
// (`--advertise-port`), so every Ferry data socket, opens and resumes alike, runs through a proxy.
// Both proxies reset every connection through them every 300 ms (each side gets a RST) while four
// TCP clients stream 2 MiB each way at once and then six more connections open one after
// another and carry 256 KiB each way. No TCP client or target sees an error and every byte
// arrives once (sha256 of each direction); the proxies carried the bytes and reset connections.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CuttingProxy } from '../../src/testing/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, exchange, startTunnelPair, taggedClient, type Exchange } from '../helpers/tunnel.js';

const procs = new Processes();
const proxies: CuttingProxy[] = [];
after(async () => {
  for (const p of proxies) await p.close();
  await procs.killAll();
});

const MiB = 1024 * 1024;
const STREAMS = 4;
const OPENS = 6;

test('tunnel: every data socket through a TCP proxy that resets all its connections every 300 ms', { timeout: 120_000 }, async () => {
  const bytesOf = (tag: number): number => (tag < STREAMS ? 2 * MiB : 256 * 1024);
  const target = await ShaTarget.start((tag) => ({ bytes: bytesOf(tag), endFirst: true }));
  const [serveProxy, connectProxy] = [await CuttingProxy.start(), await CuttingProxy.start()];
  proxies.push(serveProxy, connectProxy);
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`, {
    serveArgs: ['--advertise-port', String(serveProxy.port)],
    connectArgs: ['--advertise-port', String(connectProxy.port)],
  });
  serveProxy.setUpstream('127.0.0.1', pair.redirectorPorts[0]!);
  connectProxy.setUpstream('127.0.0.1', pair.redirectorPorts[1]!);
  serveProxy.startCutting(300);
  connectProxy.startCutting(300);

  const errors: Error[] = [];
  try {
    const run = (tag: number): Promise<Exchange> => exchange(taggedClient(pair.listenPort, tag, errors), bytesOf(tag), true, errors);
    const streams = await Promise.all(Array.from({ length: STREAMS }, (_, i) => run(i)));
    const opens: Exchange[] = [];
    for (let i = STREAMS; i < STREAMS + OPENS; i++) opens.push(await run(i));
    serveProxy.stopCutting();
    connectProxy.stopCutting();
    const clients = [...streams, ...opens];
    await waitFor(() => target.results.size === clients.length, 10_000, 'every connection reached the target');
    const targetSide = await Promise.all(clients.map((_, i) => target.results.get(i)!));

    assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'no TCP client saw an error');
    assert.deepEqual(target.errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'the target saw no error');
    for (let i = 0; i < clients.length; i++) {
      assert.equal(clients[i]!.received, bytesOf(i), `connection ${i}: client received every byte once`);
      assert.equal(clients[i]!.receivedSha, targetSide[i]!.sentSha, `connection ${i}: target -> client sha256`);
      assert.equal(targetSide[i]!.received, bytesOf(i), `connection ${i}: target received every byte once`);
      assert.equal(targetSide[i]!.receivedSha, clients[i]!.sentSha, `connection ${i}: client -> target sha256`);
    }
    // The data path really ran through the proxies, and they really cut it.
    const total = clients.reduce((n, _, i) => n + 2 * bytesOf(i), 0);
    const s = [serveProxy.stats, connectProxy.stats];
    assert.ok(s[0]!.bytes + s[1]!.bytes >= total, `proxies forwarded ${s[0]!.bytes + s[1]!.bytes} bytes of ${total}`);
    assert.ok(s[0]!.reset + s[1]!.reset >= 4 && s[0]!.cuts >= 3, `cuts: ${JSON.stringify(s)}`);
    console.log(`# serve proxy ${JSON.stringify(s[0])}; connect proxy ${JSON.stringify(s[1])}`);
  } finally {
    serveProxy.stopCutting();
    connectProxy.stopCutting();
    await pair.close();
    await target.close();
  }
});
