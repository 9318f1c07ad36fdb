// The send budget of a tunnel end (host/tunnel-budget.ts): a floor per stream, one pool, a share
// per peer, and room given back when a stream's bytes are acknowledged or it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendBudget } from '../../../src/host/tunnel-budget.js';

const KiB = 1024;
const limits = { max: 1024 * KiB, perSource: 512 * KiB, floor: 64 * KiB };

test('a stream below its floor may always read, whatever the pool holds', () => {
  const b = new SendBudget(limits);
  const hog = {};
  const small = {};
  assert.equal(b.update(hog, 'a', 2048 * KiB).mayRead, false, 'beyond the pool');
  assert.equal(b.update(small, 'b', 63 * KiB).mayRead, true);
  assert.equal(b.update(small, 'b', 64 * KiB).mayRead, false, 'at its floor, with the pool used up');
  assert.equal(b.held, 2048 * KiB + 64 * KiB);
});

test('the streams of one source take at most its share of the pool; another source still draws from it', () => {
  const b = new SendBudget(limits);
  const s = [{}, {}, {}];
  assert.equal(b.update(s[0]!, 'a', 64 * KiB + 300 * KiB).mayRead, true);
  assert.equal(b.update(s[1]!, 'a', 64 * KiB + 212 * KiB).mayRead, false, "source a's share (512 KiB) is used up");
  assert.equal(b.mayReadNow(s[0]!), false, 'for every stream of source a');
  assert.equal(b.update(s[2]!, 'b', 64 * KiB + 100 * KiB).mayRead, true, 'source b draws from what is left');
  assert.equal(b.pooled, 612 * KiB);
});

test('the pool as a whole is bounded across sources', () => {
  const b = new SendBudget({ max: 256 * KiB, perSource: 256 * KiB, floor: 0 });
  const x = {};
  const y = {};
  assert.equal(b.update(x, 'a', 200 * KiB).mayRead, true);
  assert.equal(b.update(y, 'b', 56 * KiB).mayRead, false, 'the pool is full');
  assert.equal(b.mayReadNow(x), false);
});

test('acknowledged bytes give room back, and say so', () => {
  const b = new SendBudget(limits);
  const x = {};
  b.update(x, 'a', 64 * KiB + 512 * KiB);
  assert.equal(b.mayReadNow(x), false);
  const r = b.update(x, 'a', 64 * KiB + 100 * KiB);
  assert.deepEqual(r, { mayRead: true, freed: true });
  assert.equal(b.update(x, 'a', 64 * KiB + 200 * KiB).freed, false, 'holding more frees nothing');
  assert.equal(b.update(x, 'a', 10 * KiB).freed, true, 'back under the floor: all it drew goes back');
  assert.equal(b.pooled, 0);
});

test('a stream that ends gives back all it held; an unknown one changes nothing', () => {
  const b = new SendBudget(limits);
  const x = {};
  const y = {};
  b.update(x, 'a', 64 * KiB + 512 * KiB);
  b.update(y, 'a', 32 * KiB);
  assert.equal(b.mayReadNow(y), true, 'below its floor');
  assert.equal(b.release(x), true);
  assert.equal(b.release(x), false, 'released once');
  assert.equal(b.release({}), false);
  assert.equal(b.pooled, 0);
  assert.equal(b.held, 32 * KiB);
  assert.equal(b.mayReadNow(x), false, 'an ended stream reads nothing');
  assert.equal(b.update(y, 'a', 64 * KiB + 511 * KiB).mayRead, true, "source a's share is whole again");
});
