// SourceSlots: slots strangers can fill, shared among source addresses; the idlest slot of the
// address holding the most gives way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SourceSlots } from '../../../src/util/index.js';

test('a source at its share gives up its own idlest slot, never another source\'s', () => {
  const t = new SourceSlots<string>(10, 3);
  for (const x of ['a1', 'a2', 'a3']) assert.deepEqual(t.admit('A', x), { admitted: true });
  assert.deepEqual(t.admit('B', 'b1'), { admitted: true });
  t.touch('A', 'a1'); // a1 showed activity: a2 is now A's idlest
  assert.deepEqual(t.admit('A', 'a4'), { admitted: true, evicted: 'a2' });
  assert.equal(t.held('A'), 3);
  assert.equal(t.held('B'), 1);
  assert.equal(t.size, 4);
});

test('a full table takes the idlest slot of the source holding the most', () => {
  const t = new SourceSlots<string>(6, 5);
  for (let i = 0; i < 5; i++) t.admit('attacker', `x${i}`);
  t.admit('honest', 'h0');
  // Full: a newcomer from anywhere evicts the attacker's oldest.
  assert.deepEqual(t.admit('honest', 'h1'), { admitted: true, evicted: 'x0' });
  assert.deepEqual(t.admit('other', 'o0'), { admitted: true, evicted: 'x1' });
  assert.equal(t.size, 6);
  assert.equal(t.held('attacker'), 3);
  // The attacker's own newcomer evicts its own oldest too.
  assert.deepEqual(t.admit('attacker', 'x5'), { admitted: true, evicted: 'x2' });
  assert.equal(t.held('honest'), 2);
});

test('release is idempotent and frees the slot; zero limits refuse', () => {
  const t = new SourceSlots<number>(2, 2);
  t.admit('A', 1);
  assert.equal(t.release('A', 1), true);
  assert.equal(t.release('A', 1), false);
  assert.equal(t.size, 0);
  assert.equal(t.held('A'), 0);
  t.touch('A', 1); // unknown: no effect
  assert.equal(t.size, 0);
  assert.deepEqual(new SourceSlots<number>(0, 1).admit('A', 1), { admitted: false });
});
