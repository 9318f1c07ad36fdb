/**
 * The bench's interleaved rounds (bench/lib/rounds.ts): every round runs each system of each
 * workload once, in a rotating order; a ratio is the median of the per-round ratios with their
 * range, not a ratio of medians, and a round missing a figure is left out of a ratio rather than
 * counted as 0. No speed is measured here: the trials are fakes that return given figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { roundRatio, rotation, runRounds, spread, systemSpread, type RoundFigures, type RoundStep } from '../../../bench/lib/rounds.js';

test('rotation: each round is a permutation, rotated by one per round, wrapping', () => {
  const s = ['a', 'b', 'c'];
  assert.deepEqual(rotation(s, 0), ['a', 'b', 'c']);
  assert.deepEqual(rotation(s, 1), ['b', 'c', 'a']);
  assert.deepEqual(rotation(s, 2), ['c', 'a', 'b']);
  assert.deepEqual(rotation(s, 3), ['a', 'b', 'c']);
  assert.deepEqual(rotation([], 4), []);
  fc.assert(
    fc.property(fc.uniqueArray(fc.string(), { minLength: 1, maxLength: 8 }), fc.nat(100), (xs, r) => {
      const o = rotation(xs, r);
      assert.deepEqual([...o].sort(), [...xs].sort());
      assert.equal(o[0], xs[r % xs.length]);
    }),
  );
  // Over n rounds every system runs first once.
  assert.deepEqual(new Set([0, 1, 2].map((r) => rotation(s, r)[0])), new Set(s));
});

test('spread: median (mean of the middle two when even), range, and no figure from nothing', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7, n: 1 });
  assert.throws(() => spread([]), /empty sample/);
  assert.throws(() => spread([1, Number.NaN]), /not a figure/);
  assert.throws(() => spread([1, Number.POSITIVE_INFINITY]), /not a figure/);
  fc.assert(
    fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e9, max: 1e9 }), { minLength: 1, maxLength: 30 }), (xs) => {
      const s = spread(xs);
      assert.ok(s.min <= s.median && s.median <= s.max);
      assert.equal(s.n, xs.length);
      assert.equal(xs.filter((x) => x < s.median).length <= xs.length / 2, true);
      assert.equal(xs.filter((x) => x > s.median).length <= xs.length / 2, true);
    }),
  );
});

test('roundRatio: the median of per-round ratios, so load that moves both systems in a round cancels', () => {
  // The machine slows down from round to round; in every round the tunnel makes half of direct,
  // except one round where it makes 0.4. The ratio of the medians (40 / 100) would say 0.4.
  const rounds = [
    { tunnel: 100, direct: 200 },
    { tunnel: 40, direct: 100 },
    { tunnel: 10, direct: 20 },
  ];
  assert.deepEqual(roundRatio(rounds, 'tunnel', 'direct'), { median: 0.5, min: 0.4, max: 0.5, n: 3 });
  assert.equal(systemSpread(rounds, 'tunnel').median, 40);
  assert.equal(systemSpread(rounds, 'direct').median, 100);
});

test('roundRatio: a round without both figures, or with a baseline of 0, is left out; none at all throws', () => {
  const rounds: RoundFigures[] = [{ tunnel: 30, direct: 60 }, { tunnel: 10 }, { direct: 50 }, { tunnel: 5, direct: 0 }, { tunnel: 20, direct: 20 }];
  assert.deepEqual(roundRatio(rounds, 'tunnel', 'direct'), { median: 0.75, min: 0.5, max: 1, n: 2 });
  assert.throws(() => roundRatio([{ tunnel: 1 }, { direct: 2 }], 'tunnel', 'direct'), /no round measured both tunnel and direct/);
  assert.throws(() => systemSpread([{ direct: 2 }], 'tunnel'), /empty sample/);
});

test('runRounds: each round runs every system of every workload once, rotated, figures kept by round', async () => {
  const calls: string[] = [];
  const steps: RoundStep[] = [];
  const workloads = ['64k', 'redis'].map((name) => ({
    name,
    systems: name === '64k' ? ['tcp', 'relay', 'sealed'] : ['direct', 'sealed'],
    trial: async (system: string, round: number): Promise<number> => {
      calls.push(`${round}:${name}:${system}`);
      return round * 100 + system.length;
    },
  }));
  const out = await runRounds(workloads, 3, (s) => steps.push(s));
  assert.deepEqual(calls, [
    '0:64k:tcp', '0:64k:relay', '0:64k:sealed', '0:redis:direct', '0:redis:sealed',
    '1:64k:relay', '1:64k:sealed', '1:64k:tcp', '1:redis:sealed', '1:redis:direct',
    '2:64k:sealed', '2:64k:tcp', '2:64k:relay', '2:redis:direct', '2:redis:sealed',
  ]);
  assert.deepEqual(out.get('64k'), [0, 1, 2].map((r) => ({ tcp: r * 100 + 3, relay: r * 100 + 5, sealed: r * 100 + 6 })));
  assert.deepEqual(out.get('redis'), [0, 1, 2].map((r) => ({ direct: r * 100 + 6, sealed: r * 100 + 6 })));
  assert.equal(steps.length, 15);
  assert.deepEqual(steps.map((s) => s.done), [...Array(15).keys()]);
  assert.ok(steps.every((s) => s.trials === 15 && s.rounds === 3));
  assert.deepEqual(steps[5], { round: 1, rounds: 3, workload: '64k', system: 'relay', done: 5, trials: 15 });
});

test('runRounds: refuses a round count that is not a positive integer, and a failed trial fails the run', async () => {
  const w = [{ name: 'x', systems: ['a'], trial: async (): Promise<number> => 1 }];
  for (const bad of [0, -1, 1.5, Number.NaN]) await assert.rejects(runRounds(w, bad), /rounds must be a positive integer/);
  const failing = [{ name: 'x', systems: ['a', 'b'], trial: async (s: string): Promise<number> => (s === 'b' ? Promise.reject(new Error('drain got 3 bytes')) : 1) }];
  await assert.rejects(runRounds(failing, 2), /drain got 3 bytes/);
});
