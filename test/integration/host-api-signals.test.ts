// Scenario: the Host API as a library user drives it. `Host.listen()`'s server socket is
// async-iterable (the loop ends when it closes, as on the agent side); a pending accept() rejects
// with FERRY_ERR_CONNECTION_CLOSED on close and FERRY_ERR_ABORTED through its AbortSignal;
// `Host.connect()` takes an AbortSignal: aborted before or while it opens, it rejects with
// FERRY_ERR_ABORTED and leaves no connection behind, and the next connect works.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startHosts } from '../helpers/harness.js';
import { isFerryError } from '../../src/util/index.js';
import type { AgentSocket } from '../../src/connection/index.js';

const net = await startHosts(2);
after(() => net.close());
const [h1, h2] = net.hosts as [(typeof net.hosts)[0], (typeof net.hosts)[0]];

test('Host.listen() server: for await yields connections and ends on close; accept() honours close and its signal', async () => {
  const alice = await h1.addAgent();
  const bob = await h2.addAgent();
  const server = h2.listen(bob.id);
  const got: AgentSocket[] = [];
  const loop = (async () => {
    for await (const sock of server) got.push(sock);
  })();
  const a = await h1.connect(alice.id, bob.id);
  const b = await h1.connect(alice.id, bob.id);
  while (got.length < 2) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got.map((s) => s.connectionId).sort(), [a.connectionId, b.connectionId].sort());
  server.close();
  await loop; // the loop ended with the server socket

  const carol = await h2.addAgent();
  const s2 = h2.listen(carol.id);
  const ac = new AbortController();
  const aborted = s2.accept({ signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, (e) => isFerryError(e, 'FERRY_ERR_ABORTED'));
  const closed = s2.accept();
  s2.close();
  await assert.rejects(closed, (e) => isFerryError(e, 'FERRY_ERR_CONNECTION_CLOSED'));
  for (const s of [a, b, ...got]) s.destroy();
});

test('Host.connect() with an AbortSignal: aborted before or during the open, it rejects and leaves nothing', async () => {
  const alice = await h1.addAgent();
  const bob = await h2.addAgent();
  const server = h2.listen(bob.id);
  server.on('connection', (s: AgentSocket) => s.pipe(s));
  const before = new AbortController();
  before.abort(new Error('changed my mind'));
  await assert.rejects(h1.connect(alice.id, bob.id, { signal: before.signal }), (e) => isFerryError(e, 'FERRY_ERR_ABORTED'));
  const during = new AbortController();
  const opening = h1.connect(alice.id, bob.id, { signal: during.signal });
  queueMicrotask(() => during.abort());
  await assert.rejects(opening, (e) => isFerryError(e, 'FERRY_ERR_ABORTED'));
  assert.equal(h1.socketsOf(alice.id).length, 0, 'no connection left behind');
  const ok = await h1.connect(alice.id, bob.id, { signal: new AbortController().signal });
  ok.write('still works');
  const [echo] = (await once(ok, 'data')) as [Buffer];
  assert.equal(String(echo), 'still works');
  ok.destroy();
});
