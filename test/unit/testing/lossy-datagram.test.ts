// The lossy datagram wrapper: seeded determinism, the fault rates it claims, reordering by delay,
// incoming faults, and that close drops what is still delayed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, isFerryError } from '../../../src/util/index.js';
import type { DatagramSocketLike } from '../../../src/control/index.js';
import { LossyDatagramSocket, seededRandom } from '../../../src/testing/index.js';

type Listener = (msg: Buffer, rinfo: { address: string; port: number }) => void;

/** Records what reaches the "wire"; `emit` plays a received datagram. */
class FakeSocket implements DatagramSocketLike {
  readonly sent: Buffer[] = [];
  closed = false;
  private listener: Listener | undefined;
  send(buf: Buffer): void {
    this.sent.push(buf);
  }
  on(_event: 'message', l: Listener): this {
    this.listener = l;
    return this;
  }
  close(): void {
    this.closed = true;
  }
  address(): { address: string; port: number } {
    return { address: '10.0.0.1', port: 1 };
  }
  emit(msg: Buffer): void {
    this.listener?.(msg, { address: '10.0.0.2', port: 2 });
  }
}

function fates(seed: number, n = 1000): number[] {
  const inner = new FakeSocket();
  const lossy = new LossyDatagramSocket(inner, { drop: 0.3, duplicate: 0.2, seed });
  for (let i = 0; i < n; i++) lossy.send(Buffer.from([i & 0xff, i >> 8]), 1, '10.0.0.2');
  const copies = new Array<number>(n).fill(0);
  for (const b of inner.sent) copies[(b[0] as number) | ((b[1] as number) << 8)]!++;
  return copies;
}

describe('seededRandom', () => {
  it('is deterministic per seed and uniform-ish in [0, 1)', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    assert.deepEqual(xs.slice(0, 100), Array.from({ length: 100 }, () => b()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
    assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, seededRandom(43)));
  });
});

describe('LossyDatagramSocket', () => {
  it('drops and duplicates the same datagrams for the same seed', () => {
    assert.deepEqual(fates(7), fates(7));
    assert.notDeepEqual(fates(7), fates(8));
  });

  it('applies roughly the configured rates and counts them', () => {
    const inner = new FakeSocket();
    const lossy = new LossyDatagramSocket(inner, { drop: 0.3, duplicate: 0.2, seed: 1 });
    for (let i = 0; i < 10_000; i++) lossy.send(Buffer.alloc(1), 1, 'x');
    const c = lossy.outgoing;
    assert.equal(c.seen, 10_000);
    assert.ok(Math.abs(c.dropped / 10_000 - 0.3) < 0.02, `dropped ${c.dropped}`);
    assert.ok(Math.abs(c.duplicated / (10_000 - c.dropped) - 0.2) < 0.02, `duplicated ${c.duplicated}`);
    assert.equal(c.delivered, inner.sent.length);
    assert.equal(c.delivered, 10_000 - c.dropped + c.duplicated);
  });

  it('reorders by delay, and the schedule depends only on the seed', () => {
    const run = (): number[] => {
      const clock = new ManualClock();
      const inner = new FakeSocket();
      const lossy = new LossyDatagramSocket(inner, { delayMs: [0, 50], seed: 3, clock });
      for (let i = 0; i < 100; i++) lossy.send(Buffer.from([i]), 1, 'x');
      assert.equal(inner.sent.length, lossy.outgoing.delivered);
      clock.advance(50);
      return inner.sent.map((b) => b[0] as number);
    };
    const order = run();
    assert.equal(order.length, 100);
    assert.deepEqual([...order].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
    assert.notDeepEqual(order, Array.from({ length: 100 }, (_, i) => i), 'delays reorder');
    assert.deepEqual(run(), order);
  });

  it('applies incoming faults with their own stream', () => {
    const inner = new FakeSocket();
    const lossy = new LossyDatagramSocket(inner, { seed: 5, incoming: { drop: 0.5, duplicate: 1 } });
    let got = 0;
    lossy.on('message', () => got++);
    for (let i = 0; i < 1000; i++) inner.emit(Buffer.alloc(1));
    const c = lossy.incoming;
    assert.ok(c.dropped > 400 && c.dropped < 600, `dropped ${c.dropped}`);
    assert.equal(got, 2 * (1000 - c.dropped));
    lossy.send(Buffer.alloc(1), 1, 'x');
    assert.equal(inner.sent.length, 1, 'outgoing has no faults configured');
  });

  it('close cancels delayed datagrams and closes the inner socket', () => {
    const clock = new ManualClock();
    const inner = new FakeSocket();
    const lossy = new LossyDatagramSocket(inner, { delayMs: [10, 20], seed: 9, clock });
    lossy.send(Buffer.alloc(1), 1, 'x');
    assert.equal(clock.pending, 1);
    lossy.close();
    assert.equal(clock.pending, 0);
    clock.advance(100);
    assert.equal(inner.sent.length, 0);
    assert.ok(inner.closed);
    lossy.send(Buffer.alloc(1), 1, 'x');
    assert.equal(inner.sent.length, 0);
  });

  it('never drops a spared datagram, either way, and the others keep their fates', () => {
    const inner = new FakeSocket();
    const got: Buffer[] = [];
    const lossy = new LossyDatagramSocket(inner, { drop: 1, seed: 5, incoming: { drop: 1 }, spare: (d) => d[0] === 1 });
    lossy.on('message', (m) => got.push(m));
    for (const b of [0, 1, 2, 1]) lossy.send(Buffer.from([b]), 1, '10.0.0.2');
    for (const b of [1, 0]) inner.emit(Buffer.from([b]));
    assert.deepEqual(inner.sent.map((b) => b[0]), [1, 1]);
    assert.deepEqual(got.map((b) => b[0]), [1]);
    assert.equal(lossy.outgoing.dropped, 2);
  });

  it('refuses nonsense options', () => {
    const inner = new FakeSocket();
    for (const bad of [{ drop: 1.5 }, { duplicate: -0.1 }, { delayMs: [5, 1] as [number, number] }, { drop: Number.NaN }]) {
      assert.throws(() => new LossyDatagramSocket(inner, { seed: 1, ...bad }), (e: unknown) => isFerryError(e, 'FERRY_ERR_INVALID_ARGUMENT'));
    }
  });
});
