/**
 * Runs many simulated schedules across worker threads (each schedule is single-threaded and
 * deterministic; only which thread runs it varies). Workers take the next schedule index from one
 * shared counter, so a slow schedule holds up one thread, not a fixed share of the seeds. After a
 * failure no worker takes a new index (unless `keepGoing`): every index below the failing one was
 * taken, and is run to its end, so the lowest failing index reported is the first failing seed in
 * order, whatever the thread count. With `keepGoing` every seed runs and every failure is kept.
 */
import { Worker } from 'node:worker_threads';

/** One failing schedule. */
export interface PoolFailure {
  seed: number;
  message: string;
}

/** What the workers report together. */
export interface PoolResult {
  /** Schedules run to their end. */
  ran: number;
  steps: number;
  simulatedMs: number;
  /** The first failing schedule in seed order, if any. */
  failure: PoolFailure | undefined;
  /** Every failing schedule, in seed order (one at most, the first, without `keepGoing`). */
  failures: PoolFailure[];
}

/** What a worker posts: one message per finished schedule. */
export interface WorkerReport {
  seed: number;
  steps: number;
  simulatedMs: number;
  failure: string | undefined;
}

/** How a run goes on after a failure, and what it tells meanwhile. */
export interface SimulateOptions {
  /** Run every seed even after failures (a long soak run); else stop taking seeds at the first. */
  keepGoing?: boolean;
  /** Called in the main thread for each failing schedule as it is reported (not in seed order). */
  onFailure?: (f: PoolFailure) => void;
  /** Called after each finished schedule, with the totals so far. */
  onReport?: (ran: number, failures: number) => void;
}

/** Run the schedules of seeds `seed`, `seed + 1`, … (`runs` of them) on `workers` threads. */
export async function simulate(seed: number, runs: number, workers: number, opts: SimulateOptions = {}): Promise<PoolResult> {
  // [0]: the next index to take; [1]: 1 once any schedule failed.
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const keepGoing = opts.keepGoing === true;
  const out: PoolResult = { ran: 0, steps: 0, simulatedMs: 0, failure: undefined, failures: [] };
  const failures: { index: number; seed: number; message: string }[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { seed, runs, shared, keepGoing } });
      w.on('message', (r: WorkerReport) => {
        out.ran++;
        out.steps += r.steps;
        out.simulatedMs += r.simulatedMs;
        if (r.failure !== undefined) {
          failures.push({ index: (r.seed - seed) >>> 0, seed: r.seed, message: r.failure });
          opts.onFailure?.({ seed: r.seed, message: r.failure });
        }
        opts.onReport?.(out.ran, failures.length);
      });
      w.on('error', reject);
      w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`simulator worker exited with code ${code}`))));
    });
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, runs)) }, one));
  failures.sort((a, b) => a.index - b.index);
  // Without keepGoing, failures above the first one are those a thread found while the first ran:
  // only the first is reported (the count is then 0 or 1, whatever the thread count).
  out.failures = (keepGoing ? failures : failures.slice(0, 1)).map(({ seed: s, message }) => ({ seed: s, message }));
  out.failure = out.failures[0];
  return out;
}

/**
 * A progress line every `every` schedules (and none for short runs): how many of `runs` ran, the
 * failures so far, the rate since the start and the time left at that rate.
 */
export function progressLine(ran: number, runs: number, failures: number, elapsedMs: number): string {
  const rate = ran / Math.max(elapsedMs / 1000, 1e-3);
  const eta = (runs - ran) / Math.max(rate, 1e-9);
  const pct = ((100 * ran) / runs).toFixed(1);
  return `# progress: ${ran}/${runs} schedules (${pct} %), ${failures} failures, ${rate.toFixed(0)} schedules/s, ${formatSeconds(elapsedMs / 1000)} elapsed, about ${formatSeconds(eta)} left`;
}

/** 3725 → "1 h 02 min 05 s"; 65 → "1 min 05 s". */
function formatSeconds(s: number): string {
  const t = Math.round(s);
  const [h, m, sec] = [Math.floor(t / 3600), Math.floor((t % 3600) / 60), t % 60];
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h} h ${pad(m)} min ${pad(sec)} s` : m > 0 ? `${m} min ${pad(sec)} s` : `${sec} s`;
}
