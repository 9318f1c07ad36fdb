// Scenario: a stranger agent (not on --allow) floods a `ferry tunnel serve` process with Ferry
// connections, 100 at once, ten rounds in a row, from a host written against the library in the
// test process, while an allowed `ferry tunnel connect` carries a 2 MiB stream each way and opens
// a new tunnelled connection in every round. Every stranger connection is aborted (the stranger
// sees FERRY_ERR_PEER_ABORTED) and none stays open; the serving end logs the denials with
// FERRY_ERR_TUNNEL_DENIED, a few lines per window (LOG_REFUSAL_LINES_PER_KEY), and counts every
// other one in a log.suppressed line (before, the count of the flood's last second was never
// logged); its data sockets go back to the allowed ones; the allowed client's bytes all arrive,
// once (sha256).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { AgentId } from '../../src/identity/index.js';
import { Identity } from '../../src/identity/index.js';
import { limit, type FerryError } from '../../src/util/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, exchange, startPeerHost, startTunnelPair, taggedClient, type Exchange } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const MiB = 1024 * 1024;
const ROUNDS = 10;
const AT_ONCE = 100;

/** TCP connections established to `port` (a host's redirector: its data sockets). */
function establishedTo(port: number): number {
  const out = execFileSync('ss', ['-t', '-n', '-H', 'state', 'established', '(', 'sport', '=', `:${port}`, ')'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim().length > 0).length;
}

test('tunnel: a stranger flooding the serving end is denied, logged rate-limited, holds nothing, and harms no allowed stream', { timeout: 180_000 }, async () => {
  const target = await ShaTarget.start((tag) => ({ bytes: tag === 0 ? 2 * MiB : 64 * 1024, endFirst: false }));
  cleanups.push(() => target.close());
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`);
  cleanups.push(() => pair.close());
  const stranger = Identity.generate();
  const peer = await startPeerHost(pair.rendezvous, [stranger]);
  cleanups.push(() => peer.close());
  const serveRedirector = pair.redirectorPorts[0]!;

  const errors: Error[] = [];
  const streams: Array<Promise<[Exchange, Exchange]>> = [];
  const allowed = (tag: number, bytes: number): void => {
    const s = taggedClient(pair.listenPort, tag, errors);
    streams.push(exchange(s, bytes, true, errors).then(async (c) => [c, await waitForResult(tag)]));
  };
  const waitForResult = async (tag: number): Promise<Exchange> => {
    await waitFor(() => target.results.has(tag), 60_000, `connection ${tag} at the target`);
    return target.results.get(tag)!;
  };
  allowed(0, 2 * MiB);
  await waitFor(() => target.results.has(0), 20_000, 'the long allowed stream open');
  const before = establishedTo(serveRedirector);

  const outcomes = new Map<string, number>();
  const started = Date.now();
  for (let round = 1; round <= ROUNDS; round++) {
    allowed(round, 64 * 1024);
    await Promise.all(
      Array.from({ length: AT_ONCE }, async () => {
        let code: string;
        try {
          const fs = await peer.host.connect(stranger.id, pair.serveAgent as AgentId);
          code = await new Promise<string>((resolve) => {
            let seen = 'closed without an error';
            fs.on('error', (err: FerryError) => (seen = err.code ?? String(err)));
            fs.once('close', () => resolve(seen));
            fs.resume();
          });
        } catch (err) {
          code = (err as FerryError).code ?? String(err);
        }
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      }),
    );
  }
  const seconds = (Date.now() - started) / 1000;

  const results = await Promise.all(streams);
  assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'no allowed client saw an error');
  for (const [i, [client, server]] of results.entries()) {
    assert.equal(client.receivedSha, server.sentSha, `allowed connection ${i}: target to client`);
    assert.equal(server.receivedSha, client.sentSha, `allowed connection ${i}: client to target`);
  }
  assert.deepEqual([...outcomes], [['FERRY_ERR_PEER_ABORTED', ROUNDS * AT_ONCE]], 'every stranger connection was aborted');

  // Each denial is written or counted in a log.suppressed line at the end of its window.
  const logged = (): { denied: Array<{ code: string; peer: string }>; suppressed: number } => {
    const lines = pair.serve
      .err()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; code: string; peer: string; of?: string; suppressed?: number });
    return {
      denied: lines.filter((l) => l.event === 'tunnel_denied'),
      suppressed: lines.filter((l) => l.event === 'log.suppressed' && l.of === 'tunnel_denied').reduce((n, l) => n + (l.suppressed ?? 0), 0),
    };
  };
  const windowMs = limit('LOG_REFUSAL_WINDOW_MS');
  await waitFor(() => logged().denied.length + logged().suppressed >= ROUNDS * AT_ONCE, windowMs + 10_000, `every denial written or counted: ${JSON.stringify({ written: logged().denied.length, counted: logged().suppressed })}`);
  const { denied, suppressed } = logged();
  console.log(`${ROUNDS * AT_ONCE} stranger connections in ${seconds.toFixed(1)} s; ${denied.length} tunnel_denied lines, ${suppressed} more counted`);
  assert.equal(denied.length + suppressed, ROUNDS * AT_ONCE, 'every denial written or counted, once');
  assert.ok(denied.every((l) => l.code === 'FERRY_ERR_TUNNEL_DENIED' && l.peer === stranger.id), 'coded denial lines naming the stranger');
  const windows = Math.ceil((Date.now() - started) / windowMs) + 1;
  assert.ok(denied.length <= limit('LOG_REFUSAL_LINES_PER_KEY') * windows, `${denied.length} lines in ${windows} windows of ${windowMs} ms`);
  // The stranger's data sockets are gone; the allowed ones (now closed too) were there before.
  await waitFor(() => establishedTo(serveRedirector) <= before, 10_000, `data sockets at the serving end back to ${before} (now ${establishedTo(serveRedirector)})`);
  assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
  assert.doesNotMatch(pair.serve.err(), /Unhandled|TypeError|RangeError/);
});
