// The test byte stream (test/helpers/harness.ts `pattern`) is built from a table of rows, and
// `isPattern` checks a read stream chunk by chunk: both must say exactly what the formula says,
// since every simulated and integration test compares what it read against them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPattern, pattern } from '../../helpers/harness.js';
import { seededRandom } from '../../../src/testing/index.js';

/** The stream's definition, byte by byte. */
function formula(seed: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    b[i] = (x * 31 + seed * 17 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
  }
  return b;
}

test('pattern gives the formula’s bytes for any seed, offset and length', () => {
  const r = seededRandom(11);
  const seeds = [0, 1, 2, 255, 256, 65_537, -1, -300, 2 ** 31 - 1, 2 ** 40 + 3, 0.5];
  // Offsets across 256- and 65,536-byte boundaries, and near 2^32 (where `>>>` wraps).
  const offsets = [0, 1, 255, 256, 65_535, 65_536, 16_777_215, 2 ** 32 - 300, 2 ** 32 + 5];
  for (const seed of seeds) {
    for (const offset of offsets) for (const length of [0, 1, 7, 256, 257, 1000]) assert.deepEqual(pattern(seed, offset, length), formula(seed, offset, length), `${seed} ${offset} ${length}`);
    for (let k = 0; k < 20; k++) {
      const offset = Math.floor(r() * 300_000);
      const length = Math.floor(r() * 70_000);
      assert.deepEqual(pattern(seed, offset, length), formula(seed, offset, length), `${seed} ${offset} ${length}`);
    }
  }
});

test('isPattern holds exactly for the stream’s prefix of that length, however it is cut', () => {
  const whole = formula(9, 0, 5000);
  const cut = (b: Buffer, at: number[]): Buffer[] => [0, ...at, b.length].slice(1).map((end, i, ends) => b.subarray(i === 0 ? 0 : ends[i - 1], end));
  const pieces = cut(whole, [0, 1, 256, 257, 4000, 4000]);
  assert.equal(isPattern(pieces, 9, 5000), true);
  assert.equal(isPattern([], 9, 0), true);
  assert.equal(isPattern(pieces, 9, 4999), false, 'longer than asked');
  assert.equal(isPattern(pieces, 9, 5001), false, 'shorter than asked');
  assert.equal(isPattern(pieces, 8, 5000), false, 'another seed');
  const flipped = Buffer.from(whole);
  flipped[4321] = flipped[4321]! ^ 1;
  assert.equal(isPattern(cut(flipped, [100, 4321, 4322]), 9, 5000), false, 'one byte differs');
  // A byte missing and one repeated: same length, not the stream.
  assert.equal(isPattern([whole.subarray(0, 2000), whole.subarray(2001, 3000), whole.subarray(2999, 5000)], 9, 5000), false);
});
