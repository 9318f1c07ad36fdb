// freshBytes hands out CSPRNG bytes drawn ahead in a pool: each value has the length asked for,
// is a copy (the caller may keep or change it), and no byte of the pool is handed out twice,
// across refills and beside requests too large for the pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshBytes } from '../../../src/identity/index.js';

test('freshBytes: the length asked for, never the same bytes twice, across refills', () => {
  const seen = new Set<string>();
  let total = 0;
  // Well past several refills of the 4 KiB pool, with sizes that do not divide it.
  for (let i = 0; i < 3000; i++) {
    const n = [8, 16, 32, 24, 7][i % 5]!;
    const b = freshBytes(n);
    assert.equal(b.length, n);
    total += n;
    // 7-byte values may collide by chance (2^-56 per pair); the rest never do unless reused.
    if (n >= 16) {
      const k = b.toString('hex');
      assert.ok(!seen.has(k), `value ${i} repeated`);
      seen.add(k);
    }
  }
  assert.ok(total > 3 * 4096);
  const big = freshBytes(4096);
  assert.equal(big.length, 4096);
  assert.notDeepEqual(big.subarray(0, 2048), big.subarray(2048));
});

test('freshBytes: a value stays as it was handed out, whatever is done with the others', () => {
  const a = freshBytes(16);
  const b = freshBytes(16);
  const keep = Buffer.from(b);
  a.fill(0);
  for (let i = 0; i < 600; i++) freshBytes(16).fill(1);
  assert.deepEqual(b, keep);
});
