/**
 * IndexedHeap against a sorted array: random pushes, pops and removals of arbitrary items keep
 * the order and every item's own slot, and removing an item twice (or one it never held) is a
 * no-op that says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IndexedHeap, type HeapItem } from '../../../src/util/index.js';

interface Item extends HeapItem {
  readonly id: number;
}

test('IndexedHeap: pop order and removal of any item match a sorted model', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('push' as const), at: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ kind: fc.constant('pop' as const) }),
    fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const heap = new IndexedHeap<Item>();
      let model: Item[] = [];
      let next = 0;
      for (const o of ops) {
        if (o.kind === 'push') {
          const item: Item = { id: next++, at: o.at, heapIndex: -1 };
          heap.push(item);
          model.push(item);
        } else if (o.kind === 'pop') {
          const got = heap.pop();
          const min = model.reduce<Item | undefined>((m, x) => (m === undefined || x.at < m.at ? x : m), undefined);
          assert.equal(got?.at, min?.at);
          if (got) {
            assert.equal(got.heapIndex, -1);
            model = model.filter((x) => x !== got);
          }
        } else if (model.length > 0) {
          const victim = model[o.pick % model.length] as Item;
          assert.equal(heap.remove(victim), true);
          assert.equal(heap.remove(victim), false, 'a second removal finds nothing');
          model = model.filter((x) => x !== victim);
        }
        assert.equal(heap.size, model.length);
        assert.equal(heap.peek()?.at, model.length ? Math.min(...model.map((x) => x.at)) : undefined);
      }
      // Drain: ascending.
      const out: number[] = [];
      for (let x = heap.pop(); x; x = heap.pop()) out.push(x.at);
      assert.deepEqual(out, model.map((x) => x.at).sort((a, b) => a - b));
    }),
  );
});

test('IndexedHeap: an item of another heap is not removed', () => {
  const a = new IndexedHeap<Item>();
  const b = new IndexedHeap<Item>();
  const x: Item = { id: 1, at: 1, heapIndex: -1 };
  const y: Item = { id: 2, at: 2, heapIndex: -1 };
  a.push(x);
  b.push(y);
  assert.equal(a.remove(y), false);
  assert.equal(a.size, 1);
  assert.equal(b.size, 1);
});
