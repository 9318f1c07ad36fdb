#!/usr/bin/env node
// Runs, in this thread, only the simulator schedules that aim a host's crash at a migration in
// flight or migrate a host's agents as one group ('hostmates'): the schedules of the seeds from
// `seed` upward whose makeSchedule() has either, until `count` of them ran. For long runs at the
// migration paths; prints each failing seed (replay it with FERRY_SIM_SEED=<seed> FERRY_SIM_RUNS=1
// node --test dist/test/sim/exactly-once.test.js) and a line every 500 schedules.
//
//   node scripts/sim-focused.mjs [seed=3000000] [count=1000] [distDir=dist]
//
// Needs `npm run build` first. Exits 1 if any schedule failed.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const SEED = Number(process.argv[2] ?? 3_000_000);
const COUNT = Number(process.argv[3] ?? 1000);
const DIST = resolve(process.argv[4] ?? 'dist');
if (!Number.isSafeInteger(SEED) || !Number.isSafeInteger(COUNT) || COUNT < 1) {
  console.error('usage: node scripts/sim-focused.mjs [seed] [count] [distDir]');
  process.exit(2);
}
// As in the simulator's worker threads (test/sim/worker.ts).
Error.stackTraceLimit = 0;
const { makeSchedule, runSchedule } = await import(pathToFileURL(`${DIST}/test/sim/world.js`).href);
let ran = 0;
let failed = 0;
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);
let seed = SEED;
for (; ran < COUNT; seed++) {
  const s = makeSchedule(seed);
  if (!s.ops.some((o) => (o.kind === 'crash' && o.of) || (o.kind === 'move' && o.hostmates))) continue;
  ran++;
  const r = await runSchedule(s);
  if (r.failure) {
    failed++;
    console.log(`failed: seed ${seed}: ${r.failure.split('\n')[0]}`);
  }
  if (ran % 500 === 0 && ran < COUNT) console.log(`${ran} schedules (seeds ${SEED} to ${seed}), ${failed} failed, ${secs()} s`);
}
console.log(`${ran} focused schedules (seeds ${SEED} to ${seed - 1}), ${failed} failed, ${secs()} s`);
process.exit(failed > 0 ? 1 : 0);
