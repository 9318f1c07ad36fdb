// Scenario: a server agent loops `for await (const sock of server.connections({ signal }))` on
// real loopback hosts. Connections arrive in the loop; when the signal aborts, the loop throws
// FERRY_ERR_ABORTED (an AbortError) and holds no listener, the server socket stays open, and a
// connection that arrives afterwards waits for the next accept() and streams exactly. An accept()
// with an already-aborted signal rejects even with a connection queued, which stays queued.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import type { AgentSocket } from '../../src/connection/index.js';
import { isAbortError } from '../../src/util/index.js';
import { pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

const net = await startHosts(2);
after(() => net.close());
const [h0, h1] = net.hosts as [(typeof net.hosts)[0], (typeof net.hosts)[0]];

test('an accept loop with a signal: aborting ends it with an AbortError, the server socket goes on', async () => {
  const alice = await h0.addAgent();
  const bob = await h1.addAgent();
  const server = h1.listen(bob.id);
  const ac = new AbortController();
  const got: AgentSocket[] = [];
  const loop = (async () => {
    for await (const sock of server.connections({ signal: ac.signal })) got.push(sock);
  })();
  const a = await h0.connect(alice.id, bob.id);
  const b = await h0.connect(alice.id, bob.id);
  await waitFor(() => got.length === 2, 5000, 'both connections in the loop');
  assert.deepEqual(got.map((s) => s.connectionId).sort(), [a.connectionId, b.connectionId].sort());
  ac.abort('done accepting');
  await assert.rejects(loop, (e) => isAbortError(e) && (e as Error).cause === 'done accepting');
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no listener left behind');
  assert.equal(server.closed, false, 'the server socket stays open');

  // A connection after the loop ended is queued; an already-aborted accept leaves it there.
  const c = await h0.connect(alice.id, bob.id);
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(server.accept({ signal: AbortSignal.abort() }), (e) => isAbortError(e));
  const s = await server.accept();
  assert.equal(s.connectionId, c.connectionId);
  const rs = new Reader();
  rs.attach(s);
  c.write(pattern(8, 0, 100_000));
  await waitFor(() => rs.length === 100_000, 10_000, 'the stream after the loop');
  assert.ok(rs.bytes().equals(pattern(8, 0, 100_000)));
  for (const x of [a, b, c, ...got, s]) x.destroy();
  server.close();
});
