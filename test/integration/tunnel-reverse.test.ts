// Scenario: a reverse tunnel, as `ssh -R`. `ferry tunnel serve --allow-remote-listen` runs (its
// --to is never used here), and `ferry tunnel connect S --remote-listen 127.0.0.1:0 --to TARGET`
// asks it to listen on its side; the target runs next to the connecting end. A client of the
// serving end's new listener reaches the target (its connection cut twice first), then 1 MiB
// goes each way with half-close, while the data path is cut every 250 ms; both directions match by sha256. A serving end without
// --allow-remote-listen refuses: `connect` exits 2 (FERRY_ERR_TUNNEL_REFUSED) and logs one
// FERRY_ERR_TUNNEL_DENIED line at the serving end.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Processes } from '../helpers/processes.js';
import { Cutter, ShaTarget, exchange, startTunnelPair, taggedClient } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/harness.js';

const procs = new Processes();
after(() => procs.killAll());

const MiB = 1024 * 1024;

test('tunnel: reverse (-R) listener on the serving end reaches a target at the connecting end, across cuts', async () => {
  const target = await ShaTarget.start(() => ({ bytes: MiB, endFirst: false }));
  // The serving end's own --to points nowhere useful: reverse streams go to the connecting end's --to.
  const keys = await mkdtemp(join(tmpdir(), 'ferry-tunnel-rkey-'));
  const reverseKey = join(keys, 'reverse.key');
  const reverseId = (await procs.run(['tunnel', 'id', '--key', reverseKey])).out.trim();
  const pair = await startTunnelPair(procs, '127.0.0.1:9', { serveArgs: ['--allow-remote-listen', '--allow', reverseId] });
  const reverse = await procs.start(
    ['tunnel', 'connect', pair.serveAgent, '--key', reverseKey, '--rendezvous', pair.rendezvous, '--remote-listen', '127.0.0.1:0', '--to', `127.0.0.1:${target.port}`],
    /ferry tunnel ready: .*remote-listen=127\.0\.0\.1:(\d+) .*redirector=[0-9.]+:(\d+)/,
  );
  const remotePort = Number(reverse.ready[1]);
  const cutter = new Cutter([pair.redirectorPorts[0]!, Number(reverse.ready[2])], 250).start();
  const errors: Error[] = [];
  const s = taggedClient(remotePort, 0, errors);
  await waitFor(() => target.results.has(0), 20_000, 'the target reached through the reverse tunnel');
  // The stream's connection is cut at least twice before and during the exchange.
  await waitFor(() => cutter.killed >= 2, 10_000, 'two cuts of the open connection');
  const client = await exchange(s, MiB, true, errors);
  const server = await target.results.get(0)!;
  const { cuts, killed } = await cutter.stop();
  assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), []);
  assert.equal(client.received, MiB);
  assert.equal(client.receivedSha, server.sentSha);
  assert.equal(server.received, MiB);
  assert.equal(server.receivedSha, client.sentSha);
  assert.ok(killed >= 2, `cuts=${cuts} sockets reset=${killed}`);

  // A serving end that does not allow remote listens refuses.
  const otherId = (await procs.run(['tunnel', 'id', '--key', join(keys, 'other.key')])).out.trim();
  const strict = await startTunnelPair(procs, '127.0.0.1:9', { serveArgs: ['--allow', otherId] });
  const refused = await procs.run(['tunnel', 'connect', strict.serveAgent, '--key', join(keys, 'other.key'), '--rendezvous', strict.rendezvous, '--remote-listen', '127.0.0.1:0', '--to', `127.0.0.1:${target.port}`]);
  assert.equal(refused.code, 2, refused.err);
  assert.match(refused.err, /FERRY_ERR_TUNNEL_REFUSED/);
  await waitFor(() => /"event":"tunnel_denied".*"code":"FERRY_ERR_TUNNEL_DENIED"/.test(strict.serve.err()), 5000, 'the denial logged');
  assert.equal(strict.serve.err().split('\n').filter((l) => l.includes('"tunnel_denied"')).length, 1);
  await strict.close();
  await pair.close();
  await target.close();
  await rm(keys, { recursive: true, force: true });
});
