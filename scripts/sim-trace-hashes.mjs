#!/usr/bin/env node
// Prints the simulator's trace hash of each schedule in a range of seeds, for one build, so two
// builds can be compared: a change meant to move code without changing behaviour must give the
// same hashes, seed for seed (the trace records every operation, state change, promise outcome,
// socket error, open, host death, replay and end of stream of a schedule, with its simulated time,
// and every segment that reaches a data socket end and every read, with its length).
//
//   node scripts/sim-trace-hashes.mjs [seed=1] [count=500] [distDir=dist] > hashes.txt
//   diff old.txt new.txt      # no output: the same behaviour on every seed of the range
//
// The last line is the sha256 of all the lines before it. Needs `npm run build` first.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const SEED = Number(process.argv[2] ?? 1);
const COUNT = Number(process.argv[3] ?? 500);
const DIST = resolve(process.argv[4] ?? 'dist');
if (!Number.isSafeInteger(SEED) || !Number.isSafeInteger(COUNT) || COUNT < 1) {
  console.error('usage: node scripts/sim-trace-hashes.mjs [seed] [count] [distDir]');
  process.exit(2);
}

const { makeSchedule, runSchedule } = await import(pathToFileURL(`${DIST}/test/sim/world.js`).href);
const all = createHash('sha256');
let failures = 0;
for (let seed = SEED; seed < SEED + COUNT; seed++) {
  const r = await runSchedule(makeSchedule(seed));
  if (r.failure) failures++;
  const line = `${seed} ${r.hash}${r.failure ? ' FAILED' : ''}`;
  all.update(line + '\n');
  console.log(line);
}
console.log(`all ${all.digest('hex')} (${COUNT} seeds from ${SEED}, ${failures} failed)`);
