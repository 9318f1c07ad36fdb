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
  // Each tag's size: 2 MiB for the streams, 256 KiB for the sequential opens.
  const sizes = new Map<number, number>();
  const bytesOf = (tag: number): number => sizes.get(tag)!;
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
    let next = 0;
    const run = (bytes: number): Promise<Exchange> => {
      const tag = next++;
      sizes.set(tag, bytes);
      return exchange(taggedClient(pair.listenPort, tag, errors), bytes, true, errors);
    };
    // Rounds of parallel streams until both proxies have cut while bytes flowed (on a quiet
    // machine one round can finish between two cuts), then opens one after another.
    const cutEnough = (): boolean => serveProxy.stats.cuts >= 3 && connectProxy.stats.cuts >= 3 && serveProxy.stats.reset + connectProxy.stats.reset >= 4;
    const clients: Exchange[] = [];
    for (let round = 0; round < 20 && (round === 0 || !cutEnough()); round++) clients.push(...(await Promise.all(Array.from({ length: STREAMS }, () => run(2 * MiB)))));
    for (let i = 0; i < OPENS; i++) clients.push(await run(256 * 1024));
    serveProxy.stopCutting();
    connectProxy.stopCutting();
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
