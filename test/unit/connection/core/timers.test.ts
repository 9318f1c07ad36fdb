/**
 * The connection's timer table under plain `now` numbers: named deadlines per socket slot, the
 * next deadline the adapter's one timer is set from, expiry in deadline order (ties in the order
 * set), and that a cancelled or moved deadline never expires at its old time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimerTable, type TimerName } from '../../../../src/connection/core/index.js';

test('TimerTable: nextDeadline is the earliest deadline set, undefined when none', () => {
  const t = new TimerTable();
  assert.equal(t.nextDeadline(), undefined);
  t.set('resume_retry', 500);
  t.set('handshake', 300);
  t.set('drain', 400, 7);
  assert.equal(t.nextDeadline(), 300);
  t.cancel('handshake');
  assert.equal(t.nextDeadline(), 400);
  t.cancelSlot(7);
  assert.equal(t.nextDeadline(), 500);
  t.clear();
  assert.equal(t.nextDeadline(), undefined);
  assert.equal(t.size, 0);
});

test('TimerTable: nothing expires before its deadline; at it, it expires once', () => {
  const t = new TimerTable();
  t.set('hello', 1000, 3);
  assert.deepEqual(t.expired(999), []);
  assert.deepEqual(t.expired(1000), [{ name: 'hello', slot: 3, at: 1000 }]);
  assert.deepEqual(t.expired(5000), []);
  assert.equal(t.has('hello', 3), false);
});

test('TimerTable: expiries come earliest first, ties in the order they were set', () => {
  const t = new TimerTable();
  t.set('kept_socket', 200, 2);
  t.set('drain', 100, 1);
  t.set('resume_deadline', 200);
  t.set('hello', 50, 4);
  assert.deepEqual(
    t.expired(1000).map((e) => `${e.name}/${e.slot}@${e.at}`),
    ['hello/4@50', 'drain/1@100', 'kept_socket/2@200', 'resume_deadline/0@200'],
  );
});

test('TimerTable: setting a deadline again moves it (the old time never fires)', () => {
  const t = new TimerTable();
  t.set('resume_offer', 100, 9);
  t.set('resume_offer', 300, 9);
  assert.equal(t.get('resume_offer', 9), 300);
  assert.equal(t.nextExpired(200), undefined);
  assert.deepEqual(t.nextExpired(300), { name: 'resume_offer', slot: 9, at: 300 });
});

test('TimerTable: the same name on different slots is two deadlines; cancelSlot ends only that slot', () => {
  const t = new TimerTable();
  t.set('drain', 100, 1);
  t.set('drain', 100, 2);
  t.set('kept_socket', 150, 1);
  assert.equal(t.cancel('drain', 3), false);
  t.cancelSlot(1);
  assert.deepEqual(t.expired(1000), [{ name: 'drain', slot: 2, at: 100 }]);
});

test('TimerTable: nextExpired sees what handling an earlier expiry cancelled', () => {
  const t = new TimerTable();
  t.set('resume_deadline', 10);
  t.set('resume_retry', 10);
  const first = t.nextExpired(10);
  assert.equal(first?.name, 'resume_deadline');
  // Handling it (say, the resume failed) cancels the retry scheduled for the same instant.
  t.cancel('resume_retry');
  assert.equal(t.nextExpired(10), undefined);
});

test('TimerTable: matches a model of named deadlines under random sets, cancels and expiries', () => {
  const names: TimerName[] = ['handshake', 'resume_deadline', 'resume_retry', 'close_retry', 'kept_socket', 'resume_offer', 'drain', 'hello'];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...names), slot: fc.integer({ min: 0, max: 3 }), at: fc.integer({ min: 0, max: 100 }) }),
    fc.record({ kind: fc.constant('cancel' as const), name: fc.constantFrom(...names), slot: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('expire' as const), now: fc.integer({ min: 0, max: 100 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const t = new TimerTable();
      const model = new Map<string, { at: number; seq: number }>();
      let seq = 0;
      for (const o of ops) {
        if (o.kind === 'set') {
          t.set(o.name, o.at, o.slot);
          model.set(`${o.name}/${o.slot}`, { at: o.at, seq: seq++ });
        } else if (o.kind === 'cancel') {
          assert.equal(t.cancel(o.name, o.slot), model.delete(`${o.name}/${o.slot}`));
        } else {
          const due = [...model.entries()].filter(([, v]) => v.at <= o.now).sort(([, a], [, b]) => a.at - b.at || a.seq - b.seq);
          for (const [k] of due) model.delete(k);
          assert.deepEqual(
            t.expired(o.now).map((e) => `${e.name}/${e.slot}`),
            due.map(([k]) => k),
          );
        }
        const min = [...model.values()].reduce<number | undefined>((m, v) => (m === undefined || v.at < m ? v.at : m), undefined);
        assert.equal(t.nextDeadline(), min);
      }
    }),
  );
});
