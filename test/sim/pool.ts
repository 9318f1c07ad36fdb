/**
 * Runs many simulated schedules across worker threads (each schedule is single-threaded and
 * deterministic; only which thread runs it varies). Workers take the next schedule index from one
 * shared counter, so a slow schedule holds up one thread, not a fixed share of the seeds. After a
 * failure no worker takes a new index: every index below the failing one was taken, and is run to
 * its end, so the lowest failing index reported is the first failing seed in order, whatever the
 * thread count.
 */
import { Worker } from 'node:worker_threads';

/** What the workers report together. */
export interface PoolResult {
  /** Schedules run to their end. */
  ran: number;
  steps: number;
  simulatedMs: number;
  /** The first failing schedule in seed order, if any. */
  failure: { seed: number; message: string } | undefined;
}

/** What a worker posts: one message per finished schedule. */
export interface WorkerReport {
  seed: number;
  steps: number;
  simulatedMs: number;
  failure: string | undefined;
}

/** Run the schedules of seeds `seed`, `seed + 1`, … (`runs` of them) on `workers` threads. */
export async function simulate(seed: number, runs: number, workers: number): Promise<PoolResult> {
  // [0]: the next index to take; [1]: 1 once any schedule failed.
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const out: PoolResult = { ran: 0, steps: 0, simulatedMs: 0, failure: undefined };
  const failures: { index: number; seed: number; message: string }[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { seed, runs, shared } });
      w.on('message', (r: WorkerReport) => {
        out.ran++;
        out.steps += r.steps;
        out.simulatedMs += r.simulatedMs;
        if (r.failure !== undefined) failures.push({ index: (r.seed - seed) >>> 0, seed: r.seed, message: r.failure });
      });
      w.on('error', reject);
      w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`simulator worker exited with code ${code}`))));
    });
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, runs)) }, one));
  failures.sort((a, b) => a.index - b.index);
  if (failures[0]) out.failure = { seed: failures[0].seed, message: failures[0].message };
  return out;
}
