// Scenario: an allowed but malicious peer of a `ferry tunnel serve` process (an agent on a host
// written against the library in the test process) sends STREAM and aborts its Ferry connection
// at once, 200 times, at varied moments of the serving end's dial of its target. Each dial that
// completes after the abort must not outlive it: the target sees every one of those connections
// closed, and the serving end's stream places come back. Before, a connection aborted while the
// dial was under way was spliced after its 'close' had passed, so its target connection stayed
// open for good and held a place of TUNNEL_MAX_STREAMS: 4,096 such aborts shut the tunnel for
// every allowed client. An allowed `ferry tunnel connect` then still carries 256 KiB each way.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { AgentId } from '../../src/identity/index.js';
import { Identity } from '../../src/identity/index.js';
import { encodeTunnelPreamble, TunnelKind } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, exchange, startPeerHost, startTunnelPair, taggedClient } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const ABORTS = 200;
const KiB = 1024;

test('tunnel: STREAMs aborted during the target dial leave no target connection and no stream place behind', { timeout: 120_000 }, async () => {
  const target = await ShaTarget.start(() => ({ bytes: 256 * KiB, endFirst: false }));
  cleanups.push(() => target.close());
  const open = new Set<Socket>();
  target.server.on('connection', (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  const malicious = Identity.generate();
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`, { serveArgs: ['--allow', malicious.id] });
  cleanups.push(() => pair.close());
  const peer = await startPeerHost(pair.rendezvous, [malicious]);
  cleanups.push(() => peer.close());

  for (let i = 0; i < ABORTS; i++) {
    const fs = await peer.host.connect(malicious.id, pair.serveAgent as AgentId);
    fs.on('error', () => {});
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.STREAM }));
    // Aborted once the STREAM has left (a destroy in the same turn discards it), at varied
    // moments of the serving end's dial.
    await new Promise((r) => (i % 3 === 0 ? setImmediate(r) : setTimeout(r, i % 5)));
    fs.destroy();
  }
  await waitFor(() => open.size === 0, 15_000, `every target connection of an aborted STREAM closed (${open.size} open)`);

  const errors: Error[] = [];
  const client = await exchange(taggedClient(pair.listenPort, 1, errors), 256 * KiB, true, errors);
  await waitFor(() => target.results.has(1), 10_000, 'the allowed client at the target');
  const server = await target.results.get(1)!;
  assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), []);
  assert.equal(client.receivedSha, server.sentSha);
  assert.equal(server.receivedSha, client.sentSha);
  assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
  assert.doesNotMatch(pair.serve.err(), /Unhandled|TypeError|RangeError/);
});
