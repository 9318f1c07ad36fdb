/**
 * One simulator thread (see pool.ts): takes schedule indices from the shared counter until they
 * run out or a schedule failed anywhere (unless keepGoing), runs each, and posts a
 * {@link WorkerReport} for each.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { makeSchedule, runSchedule } from './world.js';
import type { WorkerReport } from './pool.js';

// No stack traces in this thread: the product builds FerryErrors on ordinary paths (a refused or
// cancelled control request, an error reply), and capturing the stack is most of their cost.
// Nothing reads a stack here; a failing seed is shrunk and replayed in the main thread, which
// keeps them.
Error.stackTraceLimit = 0;

const { seed, runs, shared, keepGoing } = workerData as { seed: number; runs: number; shared: Int32Array; keepGoing: boolean };
for (;;) {
  if (!keepGoing && Atomics.load(shared, 1) !== 0) break;
  const i = Atomics.add(shared, 0, 1);
  if (i >= runs) break;
  const s = (seed + i) >>> 0;
  const r = await runSchedule(makeSchedule(s));
  if (r.failure !== undefined) Atomics.store(shared, 1, 1);
  const report: WorkerReport = { seed: s, steps: r.steps, simulatedMs: r.simulatedMs, failure: r.failure };
  parentPort!.postMessage(report);
}
