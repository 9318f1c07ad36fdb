#!/usr/bin/env node
// CPU per simulated schedule of one build, in this thread, after a warm-up, so two builds can be
// compared in alternating rounds (a shared machine's load moves both alike):
//
//   node scripts/sim-cpu.mjs [seed=2000000] [count=300] [distDir=dist] [warmup=50]
//
// Prints the process's CPU per schedule (every thread: V8 compiles and collects garbage on its
// own threads) and the main thread's share of it (Linux only), and the steps as a check that both
// builds ran the same schedules. The warm-up schedules (seeds 100,000,001 on) are not counted.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const SEED = Number(process.argv[2] ?? 2_000_000);
const COUNT = Number(process.argv[3] ?? 300);
const DIST = resolve(process.argv[4] ?? 'dist');
const WARMUP = Number(process.argv[5] ?? 50);
if (![SEED, COUNT, WARMUP].every(Number.isSafeInteger) || COUNT < 1 || WARMUP < 0) {
  console.error('usage: node scripts/sim-cpu.mjs [seed] [count] [distDir] [warmup]');
  process.exit(2);
}
// As in the simulator's worker threads (test/sim/worker.ts).
Error.stackTraceLimit = 0;
const { makeSchedule, runSchedule } = await import(pathToFileURL(`${DIST}/test/sim/world.js`).href);

/** This thread's CPU in ms, or undefined where /proc does not say. */
function threadCpuMs() {
  try {
    const f = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

for (let i = 1; i <= WARMUP; i++) await runSchedule(makeSchedule(100_000_000 + i));
const c0 = process.cpuUsage();
const t0 = threadCpuMs();
let steps = 0;
let failed = 0;
for (let seed = SEED; seed < SEED + COUNT; seed++) {
  const r = await runSchedule(makeSchedule(seed));
  steps += r.steps;
  if (r.failure) failed++;
}
const c = process.cpuUsage(c0);
const t1 = threadCpuMs();
const cpuMs = (c.user + c.system) / 1000;
const main = t0 === undefined || t1 === undefined ? '' : `, main thread ${((t1 - t0) / COUNT).toFixed(2)} ms (${((100 * (t1 - t0)) / cpuMs).toFixed(0)} %)`;
console.log(`${COUNT} schedules from ${SEED}: ${(cpuMs / COUNT).toFixed(2)} ms of CPU each${main}; ${steps} steps, ${failed} failed (${DIST})`);
