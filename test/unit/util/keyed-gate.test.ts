import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedGate, isAbortError, isFerryError } from '../../../src/util/index.js';

test('keyed gate: at most `limit` holders per key, the rest in arrival order', async () => {
  const g = new KeyedGate(2, 10);
  const l1 = await g.enter('a', 'open');
  const l2 = await g.enter('a', 'open');
  const other = await g.enter('b', 'open'); // another key has its own places
  const order: number[] = [];
  const w3 = g.enter('a', 'open').then((l) => (order.push(3), l));
  const w4 = g.enter('a', 'open').then((l) => (order.push(4), l));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'both wait while two hold');
  assert.equal(g.waiting('a'), 2);
  l2();
  l2(); // a second call gives back nothing more
  const l3 = await w3;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [3], 'the first waiter got the freed place, only it');
  assert.equal(g.held('a'), 2);
  l1();
  const l4 = await w4;
  assert.deepEqual(order, [3, 4]);
  l3();
  l4();
  other();
  assert.equal(g.held('a'), 0);
  assert.equal(g.held('b'), 0);
  assert.equal(g.waiting('a'), 0);
});

test('keyed gate: an abort while waiting leaves the queue and holds nothing', async () => {
  const g = new KeyedGate(1, 10);
  const l1 = await g.enter('a', 'open');
  const ac = new AbortController();
  const aborted = g.enter('a', 'open', ac.signal);
  const next = g.enter('a', 'open');
  ac.abort();
  await assert.rejects(aborted, (err: unknown) => isAbortError(err));
  assert.equal(g.waiting('a'), 1);
  l1();
  const l2 = await next; // the place went past the aborted waiter
  assert.equal(g.held('a'), 1);
  l2();
  assert.equal(g.held('a'), 0);
  await assert.rejects(g.enter('a', 'open', AbortSignal.abort()), (err: unknown) => isAbortError(err));
  assert.equal(g.held('a'), 0, 'an aborted signal takes no place');
});

test('keyed gate: beyond maxWaiting a caller is refused LIMIT_EXCEEDED at once', async () => {
  const g = new KeyedGate(1, 1);
  const l1 = await g.enter('a', 'open');
  const waiting = g.enter('a', 'open');
  await assert.rejects(g.enter('a', 'open'), (err: unknown) => isFerryError(err) && err.code === 'FERRY_ERR_LIMIT_EXCEEDED');
  l1();
  (await waiting)();
  assert.equal(g.held('a'), 0);
});
