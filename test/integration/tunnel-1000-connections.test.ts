// Scenario: 1,000 tunnelled TCP connections open at once. `ferry tunnel serve` and `ferry tunnel
// connect` as processes (sealed), a TCP target and 1,000 TCP clients in this process. All 1,000
// clients connect at once; once every one has reached the target (1,000 target connections open
// together, each its own Ferry connection), each carries 1 to 8 KiB both ways and closes. No
// client or target sees an error, and every byte arrives once (sha256 of each direction).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, exchange, startTunnelPair, taggedClient } from '../helpers/tunnel.js';

const procs = new Processes();
after(() => procs.killAll());

const N = 1000;
/** A few KiB, different for each connection and direction (so a mixed-up splice shows). */
const bytesOf = (tag: number, dir: 0 | 1): number => 1024 + ((tag * 7919 + dir * 104_729) % (7 * 1024));

test('tunnel: 1,000 concurrent tunnelled connections, a few KiB each way, every byte once', { timeout: 180_000 }, async () => {
  // The target holds each connection open until the client's FIN: all 1,000 are open together.
  const target = await ShaTarget.start((tag) => ({ bytes: bytesOf(tag, 1), endFirst: false }));
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`);
  const errors: Error[] = [];
  const clients: Socket[] = [];
  const targetSockets: Socket[] = [];
  target.server.on('connection', (s: Socket) => targetSockets.push(s));
  try {
    for (let i = 0; i < N; i++) clients.push(taggedClient(pair.listenPort, i, errors));
    await waitFor(() => target.results.size === N || errors.length > 0, 120_000, `${N} connections at the target`).catch((err: Error) => {
      throw new Error(`${err.message}: ${target.results.size} there; client errors: ${errors.length}; connect end: ${pair.connect.err().slice(-1500)}; serve end: ${pair.serve.err().slice(-1500)}`);
    });
    assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'no client error while opening');
    const open = await new Promise<number>((resolve, reject) => target.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    assert.equal(open, N, 'every tunnelled connection open at the target at once');

    const clientSide = await Promise.all(clients.map((s, i) => exchange(s, bytesOf(i, 0), true, errors)));
    const targetSide = await Promise.all(clients.map((_, i) => target.results.get(i)!));
    assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'no TCP client saw an error');
    assert.deepEqual(target.errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'the target saw no error');
    for (let i = 0; i < N; i++) {
      assert.equal(clientSide[i]!.received, bytesOf(i, 1), `connection ${i}: client received every byte once`);
      assert.equal(clientSide[i]!.receivedSha, targetSide[i]!.sentSha, `connection ${i}: target -> client sha256`);
      assert.equal(targetSide[i]!.received, bytesOf(i, 0), `connection ${i}: target received every byte once`);
      assert.equal(targetSide[i]!.receivedSha, clientSide[i]!.sentSha, `connection ${i}: client -> target sha256`);
    }
  } finally {
    // Also on failure: 1,000 sockets left open would keep this process alive.
    for (const s of clients) s.destroy();
    for (const s of targetSockets) s.destroy();
    await pair.close();
    await target.close();
  }
});
