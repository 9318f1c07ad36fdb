// The in-memory stream network under a ManualClock: bytes arrive in order, in seeded segments,
// only as time passes; cut, reset, stall and black hole behave as their comments say; a dial to
// nobody is refused. And ManualClock.fireNext runs one timer at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStreamNetwork, seededRandom, type MemoryStreamSocket } from '../../../src/testing/index.js';
import { ManualClock } from '../../../src/util/index.js';

function world(seed = 1): { clock: ManualClock; net: MemoryStreamNetwork; accepted: MemoryStreamSocket[] } {
  const clock = new ManualClock();
  const net = new MemoryStreamNetwork({ clock, random: seededRandom(seed), delayMs: [1, 5], maxSegment: 7 });
  const accepted: MemoryStreamSocket[] = [];
  net.listen('10.0.0.2', 80, (s) => accepted.push(s));
  return { clock, net, accepted };
}

/** Run clock timers one at a time, letting stream callbacks run after each. */
async function runAll(clock: ManualClock): Promise<void> {
  for (;;) {
    await new Promise((r) => setImmediate(r));
    if (!clock.fireNext()) break;
  }
  await new Promise((r) => setImmediate(r));
}

test('bytes arrive in order, in segments, only as virtual time passes; the acceptor sees the dialer address', async () => {
  const { clock, net, accepted } = world();
  const d = net.dial('10.0.0.1', '10.0.0.2', 80);
  const got: Buffer[] = [];
  const data = Buffer.from('the quick brown fox jumps over the lazy dog');
  d.write(data.subarray(0, 20));
  d.write(data.subarray(20));
  await new Promise((r) => setImmediate(r));
  assert.equal(accepted.length, 0, 'nothing before time passes');
  await runAll(clock);
  assert.equal(accepted.length, 1);
  const a = accepted[0]!;
  assert.equal(a.remoteAddress, '10.0.0.1');
  a.on('data', (c: Buffer) => got.push(c));
  await runAll(clock);
  assert.ok(got.length >= 2 && got.every((c) => c.length <= 7), 'cut into segments of at most maxSegment');
  assert.ok(Buffer.concat(got).equals(data));
  assert.ok(clock.now() > 0);
});

test('cut ends both sides without error; reset gives both ECONNRESET', async () => {
  for (const kind of ['cut', 'reset'] as const) {
    const { clock, net, accepted } = world(2);
    const d = net.dial('10.0.0.1', '10.0.0.2', 80);
    await runAll(clock);
    const a = accepted[0]!;
    const errors: string[] = [];
    let closed = 0;
    for (const s of [d, a]) {
      s.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
      s.on('close', () => closed++);
    }
    net.links[0]![kind]();
    await runAll(clock);
    assert.equal(closed, 2, `${kind}: both ends closed`);
    assert.deepEqual(errors, kind === 'reset' ? ['ECONNRESET', 'ECONNRESET'] : []);
  }
});

test('a stall holds bytes until lifted; a black hole drops them and resets the link later', async () => {
  const { clock, net, accepted } = world(3);
  const d = net.dial('10.0.0.1', '10.0.0.2', 80);
  await runAll(clock);
  const a = accepted[0]!;
  const got: Buffer[] = [];
  a.on('data', (c: Buffer) => got.push(c));
  const link = net.links[0]!;
  link.stall();
  d.write(Buffer.from('held'));
  await runAll(clock);
  assert.equal(got.length, 0, 'held while stalled');
  link.unstall();
  await runAll(clock);
  assert.equal(Buffer.concat(got).toString(), 'held');
  const errors: string[] = [];
  for (const s of [d, a]) s.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? ''));
  link.blackhole(1000);
  d.write(Buffer.from('lost'));
  const t = clock.now();
  await runAll(clock);
  assert.equal(Buffer.concat(got).toString(), 'held', 'nothing through the black hole');
  assert.deepEqual(errors, ['ECONNRESET', 'ECONNRESET']);
  assert.ok(clock.now() >= t + 1000, 'reset only after the black hole time');
});

test('a dial to an address nobody listens on is refused', async () => {
  const { clock, net } = world(4);
  const d = net.dial('10.0.0.1', '10.0.0.9', 80);
  let code = '';
  d.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? ''));
  await runAll(clock);
  assert.equal(code, 'ECONNREFUSED');
});

test('ManualClock.fireNext fires the earliest timer only and moves time to it', () => {
  const clock = new ManualClock();
  const order: string[] = [];
  clock.setTimer(10, () => order.push('b'));
  clock.setTimer(5, () => order.push('a'));
  clock.setTimer(10, () => order.push('c'));
  assert.equal(clock.nextDeadline(), 5);
  assert.equal(clock.fireNext(), true);
  assert.deepEqual(order, ['a']);
  assert.equal(clock.now(), 5);
  clock.fireNext();
  clock.fireNext();
  assert.deepEqual(order, ['a', 'b', 'c'], 'ties in creation order');
  assert.equal(clock.fireNext(), false);
  assert.equal(clock.nextDeadline(), undefined);
});

test('an address that goes down: its process (reset, dials refused) or its machine (silence, then reset; dials time out)', async () => {
  for (const how of ['process', 'machine'] as const) {
    const { clock, net, accepted } = world(3);
    const d = net.dial('10.0.0.1', '10.0.0.2', 80);
    await runAll(clock);
    const a = accepted[0]!;
    const errors: string[] = [];
    const got: Buffer[] = [];
    a.on('data', (c: Buffer) => got.push(c));
    for (const s of [d, a]) s.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
    const t0 = clock.now();
    net.hostDown('10.0.0.2', how, 2000);
    d.write(Buffer.from('lost'));
    const again = net.dial('10.0.0.1', '10.0.0.2', 80);
    const from = net.dial('10.0.0.2', '10.0.0.1', 80);
    const dialErrors: string[] = [];
    for (const s of [again, from]) s.on('error', (e: NodeJS.ErrnoException) => dialErrors.push(e.code ?? e.message));
    await runAll(clock);
    assert.equal(got.length, 0, `${how}: nothing arrives after it went down`);
    assert.deepEqual(errors, ['ECONNRESET', 'ECONNRESET'], `${how}: both ends reset`);
    const code = how === 'process' ? 'ECONNREFUSED' : 'ETIMEDOUT';
    assert.deepEqual(dialErrors, [code, code]);
    assert.equal(accepted.length, 1, 'no dial got through');
    if (how === 'machine') assert.ok(clock.now() - t0 >= 2000, 'the machine is silent first');
  }
});

test('with a window, a reader that stops backs up its peer: writes wait for room, drain comes once it reads, every byte arrives once', async () => {
  const clock = new ManualClock();
  const net = new MemoryStreamNetwork({ clock, random: seededRandom(5), delayMs: [1, 5], maxSegment: 700, window: 4000 });
  const accepted: MemoryStreamSocket[] = [];
  net.listen('10.0.0.2', 80, (s) => accepted.push(s));
  const d = net.dial('10.0.0.1', '10.0.0.2', 80);
  await runAll(clock);
  const a = accepted[0]!;
  const got: Buffer[] = [];
  a.on('data', (c: Buffer) => got.push(c));
  a.pause();
  const data = Buffer.alloc(100_000, 7).map((_, i) => i % 251);
  let drains = 0;
  d.on('drain', () => drains++);
  let ok = true;
  for (let o = 0; o < data.length; o += 1000) ok = d.write(data.subarray(o, o + 1000)) && ok;
  assert.equal(ok, false, 'write() pushes back');
  await runAll(clock);
  // The reader stopped: at most the window and the write that crossed it left the writer.
  assert.equal(Buffer.concat(got).length, 0);
  assert.ok(a.readableLength <= 4000 + 1000, `the reader holds at most the window and one write (${a.readableLength})`);
  assert.ok(d.writableLength >= 100_000 - 4000 - 2000, `the rest waits at the writer (${d.writableLength})`);
  assert.equal(drains, 0, 'no drain while the reader does not read');
  a.resume();
  await runAll(clock);
  assert.ok(Buffer.concat(got).equals(data), 'every byte, once, in order');
  assert.equal(drains, 1);
  assert.equal(d.writableLength, 0);
});
