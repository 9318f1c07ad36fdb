// ManualClock.jump: time moves on without firing; the timers that came due fire late, in deadline
// order, and time never goes back for them (the simulator's clock jumps rely on it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/util/index.js';

test('a jump fires nothing; overdue timers then fire in deadline order at the jumped time', () => {
  const c = new ManualClock();
  const fired: string[] = [];
  c.setTimer(30, () => fired.push(`b@${c.now()}`));
  c.setTimer(10, () => fired.push(`a@${c.now()}`));
  c.setTimer(5000, () => fired.push(`c@${c.now()}`));
  c.jump(2000);
  assert.equal(c.now(), 2000);
  assert.equal(fired.length, 0);
  assert.equal(c.nextDeadline(), 10);
  assert.ok(c.fireNext());
  assert.ok(c.fireNext());
  assert.deepEqual(fired, ['a@2000', 'b@2000']);
  // A timer set after the jump counts from the jumped time.
  c.setTimer(100, () => fired.push(`d@${c.now()}`));
  c.advance(3000);
  assert.deepEqual(fired, ['a@2000', 'b@2000', 'd@2100', 'c@5000']);
  c.jump(-5);
  assert.equal(c.now(), 5000);
});
