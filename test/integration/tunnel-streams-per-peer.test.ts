// Scenario: one allowed peer of a `ferry tunnel serve --no-security` process (an agent on a host written against
// the library in the test process) opens 1,100 STREAMs and holds them, each spliced to a target
// connection. It gets TUNNEL_STREAMS_PER_PEER (1,024) of them; the rest are aborted without
// ACCEPTED and logged with FERRY_ERR_LIMIT_EXCEEDED. Another allowed peer, a `ferry tunnel connect`
// process, still opens streams and carries 64 KiB each way (sha256). Before, one allowed peer
// could take every place of TUNNEL_MAX_STREAMS, and every other allowed client was refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { AgentSocket } from '../../src/connection/index.js';
import { readPreamble } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { Identity } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { encodeTunnelPreamble, TunnelKind } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, askStream, exchange, startPeerHost, startTunnelPair, taggedClient } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const GREEDY = 1100;

test('tunnel: one allowed peer gets at most TUNNEL_STREAMS_PER_PEER streams, and another allowed peer is served', { timeout: 180_000 }, async () => {
  const target = await ShaTarget.start(() => ({ bytes: 64 * 1024, endFirst: false }));
  cleanups.push(() => target.close());
  const untagged = new Set<Socket>();
  target.server.on('connection', (s: Socket) => {
    untagged.add(s);
    s.once('close', () => untagged.delete(s));
  });
  const greedy = Identity.generate();
  // Plain (--no-security): the limit does not depend on sealing, and 1,100 sealed handshakes cost
  // this test three times the time.
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`, { plain: true, serveArgs: ['--allow', greedy.id] });
  cleanups.push(() => pair.close());
  const peer = await startPeerHost(pair.rendezvous, [greedy], { plain: true });
  cleanups.push(() => peer.close());

  const held: AgentSocket[] = [];
  cleanups.push(() => held.forEach((fs) => fs.destroy()));
  const answers = new Map<string, number>();
  await Promise.all(
    Array.from({ length: GREEDY }, async () => {
      const answer = await askStream(peer.host, greedy.id, pair.serveAgent as AgentId, held);
      answers.set(answer, (answers.get(answer) ?? 0) + 1);
    }),
  );
  const perPeer = limit('TUNNEL_STREAMS_PER_PEER');
  assert.deepEqual(Object.fromEntries(answers), { [`kind ${TunnelKind.ACCEPTED}`]: perPeer, FERRY_ERR_PEER_ABORTED: GREEDY - perPeer });
  await waitFor(() => /"event":"tunnel_denied".*"code":"FERRY_ERR_LIMIT_EXCEEDED".*"limit":"TUNNEL_STREAMS_PER_PEER"/.test(pair.serve.err()), 10_000, 'a coded denial line');

  // Another allowed peer, while the greedy one holds its share.
  const errors: Error[] = [];
  const client = await exchange(taggedClient(pair.listenPort, 1, errors), 64 * 1024, true, errors);
  await waitFor(() => target.results.has(1), 10_000, 'the other peer\'s client at the target');
  const server = await target.results.get(1)!;
  assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), []);
  assert.equal(client.receivedSha, server.sentSha);
  assert.equal(server.receivedSha, client.sentSha);

  // The greedy peer's places come back when its streams end.
  for (const fs of held.splice(0)) fs.destroy();
  await waitFor(() => untagged.size <= 1, 20_000, `the greedy peer's target connections closed (${untagged.size} open)`);
  const again = await peer.host.connect(greedy.id, pair.serveAgent as AgentId);
  held.push(again);
  again.on('error', () => {});
  again.write(encodeTunnelPreamble({ kind: TunnelKind.STREAM }));
  assert.equal((await readPreamble(again, 10_000)).preamble.kind, TunnelKind.ACCEPTED, 'a stream again after its streams ended');
  assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
});
