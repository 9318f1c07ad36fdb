// Scenario: an application passes AbortSignals to AgentSocket.suspend(), resumeConnection() and
// close() over real loopback hosts. An already-aborted signal rejects at once with
// FERRY_ERR_ABORTED (name AbortError, cause the reason) and changes nothing. A pending suspend
// that is aborted rejects at once and the connection still reaches SUSPENDED; a pending resume
// that is aborted (the peer's host not answering, or the RES just sent) rejects once the
// connection is SUSPENDED again, and a later resume works; a pending graceful close that is
// aborted (the peer not reading) becomes destroy(): the peer sees PEER_ABORTED after an exact
// prefix of the stream. After every abort both streams are checked byte for byte, and a signal
// reused for many calls holds no listener once they settled.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { isAbortError, isFerryError } from '../../src/util/index.js';
import { Link, tapper } from '../helpers/attacker.js';
import { pattern, Reader, waitFor } from '../helpers/harness.js';

const location = new MemoryLocationTable();
const taps = tapper();
const h0 = await Host.start({ location, name: 'h0', wrapControlSocket: taps.wrap });
const h1 = await Host.start({ location, name: 'h1', wrapControlSocket: taps.wrap });
after(() => Promise.all([h0.close(), h1.close()]));
const peerTap = taps.taps[1]!;

let seed = 400;
async function link(): Promise<Link> {
  const a = await h0.addAgent();
  const b = await h1.addAgent();
  const l = await Link.open(h0, a.id, h1, b.id, seed++);
  await l.exchange(20_000, 'opened');
  return l;
}

const abortedWith = (reason: unknown) => (e: unknown): boolean => isAbortError(e) && (e as Error).name === 'AbortError' && (e as Error).cause === reason;

test('an already-aborted signal rejects at once and changes nothing', async () => {
  const l = await link();
  const reason = new Error('no');
  const signal = AbortSignal.abort(reason);
  await assert.rejects(l.a.suspend({ signal }), abortedWith(reason));
  assert.equal(l.a.state, 'ESTABLISHED');
  await assert.rejects(l.a.close({ signal }), abortedWith(reason));
  assert.equal(l.a.state, 'ESTABLISHED');
  assert.equal(l.a.writableEnded, false, 'close did not even end our side');
  await l.exchange(30_000, 'after aborted suspend and close');
  await l.a.suspend();
  await assert.rejects(l.a.resumeConnection({ signal }), abortedWith(reason));
  assert.equal(l.a.state, 'SUSPENDED', 'no RES went out');
  await l.a.resumeConnection();
  await l.exchange(30_000, 'after aborted resume');
});

test('a suspend aborted while pending rejects at once; the connection reaches SUSPENDED and resumes', async () => {
  const l = await link();
  l.write(200_000);
  const ac = new AbortController();
  const suspending = l.a.suspend({ signal: ac.signal });
  ac.abort('enough');
  await assert.rejects(suspending, abortedWith('enough'));
  await waitFor(() => l.a.state === 'SUSPENDED', 10_000, 'SUSPENDED after the aborted suspend');
  await l.a.resumeConnection();
  await l.settle('after the aborted suspend', 10_000);
  await l.exchange(30_000, 'after');
});

test('a resume aborted while the peer host does not answer: rejects, SUSPENDED, and a later resume works', async () => {
  const l = await link();
  await l.a.suspend();
  // No socket kept to resume in-band on, and the peer's host silent: the RES goes unanswered.
  h0.breakDataSockets(l.a.localAgent);
  await waitFor(() => l.b.state === 'SUSPENDED', 5000, 'peer SUSPENDED');
  peerTap.silent = true;
  try {
    l.write(50_000);
    const ac = new AbortController();
    let settled = false;
    const resuming = l.a.resumeConnection({ signal: ac.signal });
    void resuming.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(settled, false, 'the resume is pending');
    assert.ok(l.a.state === 'RES_SENT' || l.a.state === 'SUSPENDED', `resuming (${l.a.state})`);
    ac.abort('give up');
    await assert.rejects(resuming, abortedWith('give up'));
    assert.equal(l.a.state, 'SUSPENDED', 'SUSPENDED when the aborted resume settles');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(l.a.state, 'SUSPENDED', 'and it stays so: no resume on its own');
  } finally {
    peerTap.silent = false;
  }
  await l.a.resumeConnection();
  await l.settle('after the aborted resume', 10_000);
  await l.exchange(30_000, 'after');
});

test('a resume aborted right after its RES left, many times with one signal per call: SUSPENDED each time, streams exact', async () => {
  const l = await link();
  for (let i = 0; i < 10; i++) {
    await l.a.suspend();
    l.write(10_000);
    const ac = new AbortController();
    const resuming = l.a.resumeConnection({ signal: ac.signal });
    ac.abort();
    await assert.rejects(resuming, (e) => isAbortError(e));
    assert.equal(l.a.state, 'SUSPENDED', `round ${i}: SUSPENDED`);
    await l.a.resumeConnection();
    await l.settle(`round ${i}`, 10_000);
  }
  await l.exchange(30_000, 'after');
});

test('a graceful close aborted while the peer does not read becomes destroy(); the peer gets an exact prefix then PEER_ABORTED', async () => {
  const a = await h0.addAgent();
  const b = await h1.addAgent();
  const server = h1.listen(b.id);
  const accepted = server.accept();
  const c = await h0.connect(a.id, b.id);
  const s = await accepted;
  server.close();
  // The peer reads nothing: what we write beyond its receive window stays unacknowledged.
  const total = 4 * 1024 * 1024;
  c.write(pattern(7, 0, total));
  const peerErrors: unknown[] = [];
  s.on('error', (e) => peerErrors.push(e));
  const ac = new AbortController();
  const closing = c.close({ signal: ac.signal });
  await new Promise((r) => setTimeout(r, 200));
  assert.notEqual(c.state, 'CLOSED', 'the close is still waiting for the peer');
  ac.abort();
  await assert.rejects(closing, (e) => isAbortError(e));
  assert.equal(c.destroyed, true, 'our socket is destroyed');
  const rs = new Reader();
  rs.attach(s);
  await waitFor(() => s.destroyed || s.readableEnded, 10_000, 'the peer socket ends');
  assert.ok(rs.length < total, 'not everything arrived');
  assert.ok(rs.bytes().equals(pattern(7, 0, rs.length)), 'what arrived is an exact prefix');
  assert.ok(peerErrors.some((e) => isFerryError(e, 'FERRY_ERR_PEER_ABORTED')), `the peer saw PEER_ABORTED (${String(peerErrors[0])})`);
  await waitFor(() => c.state === 'CLOSED' && s.state === 'CLOSED', 10_000, 'both CLOSED');
});

test('a signal reused for many calls holds no listener once they settled', async () => {
  const l = await link();
  const ac = new AbortController();
  for (let i = 0; i < 100; i++) {
    await l.a.suspend({ signal: ac.signal });
    await l.a.resumeConnection({ signal: ac.signal });
  }
  assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind');
  await l.exchange(30_000, 'after 100 suspend-resume rounds');
  // The same signal still aborts the call pending when it fires.
  await l.a.suspend({ signal: ac.signal });
  const resuming = l.a.resumeConnection({ signal: ac.signal });
  assert.equal(getEventListeners(ac.signal, 'abort').length, 1, 'one listener while the call is pending');
  ac.abort();
  await assert.rejects(resuming, (e) => isAbortError(e));
  assert.equal(l.a.state, 'SUSPENDED');
  await l.a.resumeConnection();
  await l.exchange(30_000, 'after the abort');
  const closer = new AbortController();
  await l.a.close({ signal: closer.signal });
  assert.equal(getEventListeners(closer.signal, 'abort').length, 0, 'none after close either');
  assert.equal(l.a.state, 'CLOSED');
});
