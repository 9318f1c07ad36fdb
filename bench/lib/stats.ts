/**
 * Samples, summaries and the row shape every suite reports. A latency row is a summary of one
 * sample per iteration (ms); a throughput or memory row carries one value. Percentiles are
 * nearest-rank on the sorted sample, so a p99 of 200 iterations is the second-largest value.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';

/** Median and tail of a latency sample, in ms (rounded to µs). */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** One measured figure. `id` is stable (`suite/system/op`) and what ratios refer to. */
export interface Row {
  id: string;
  /** The system measured: `tcp`, `tls`, `tls-resumed`, `libp2p`, `ferry-plain`, `ferry-secure`, ... */
  system: string;
  /** What was measured, in words for the report. */
  what: string;
  unit: 'ms' | 'MiB/s' | 'KiB' | 'count' | 's';
  /** Latency rows: the sample summary. */
  summary?: Summary;
  /** Single-value rows (throughput, memory, counts). */
  value?: number;
  /** For throughput rows: the message size in bytes. */
  messageBytes?: number;
  /** For migration rows: the number of connections moved. */
  connections?: number;
  /** The id of the baseline row measured in the same run, and Ferry over baseline. */
  baseline?: string;
  ratio?: number;
  /**
   * Rows measured in interleaved rounds (bench/lib/rounds.ts): `value` is the median over rounds,
   * `ratio` the median of the per-round ratios, and this their range over `rounds` rounds.
   */
  ratioRange?: { min: number; max: number; rounds: number };
  note?: string;
}

/** What a suite returns. */
export interface SuiteResult {
  rows: Row[];
  /** Anything else worth keeping in the JSON (sizes used, verification counts). */
  info?: Record<string, unknown>;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Summarise a sample (ms). Throws on an empty sample: a missing figure is a broken suite. */
export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) throw new Error('empty sample');
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: r3(at(0.5)), p90: r3(at(0.9)), p99: r3(at(0.99)), mean: r3(mean), min: r3(s[0]!), max: r3(s[s.length - 1]!) };
}

/** The central figure of a row: p50 for latency rows, the value otherwise. */
export function central(row: Row | undefined): number | undefined {
  if (!row) return undefined;
  return row.summary ? row.summary.p50 : row.value;
}

/** Round for reports: 3 significant decimals below 10, 1 above. */
export function fmt(x: number | undefined | null): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(x === 0 ? 0 : 2);
}

/** Rounded ratio (3 decimals). */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !(b > 0)) return undefined;
  return Math.round((a / b) * 1000) / 1000;
}

let gcFn: (() => void) | undefined;
/**
 * A full garbage collection, between measurements and before memory readings. Uses the global
 * `gc` when node runs with --expose-gc, otherwise turns the flag on at run time and takes `gc`
 * from a fresh context (V8 installs it on contexts created after the flag is set).
 */
export function gc(): void {
  if (!gcFn) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  gcFn();
}

/** Wait `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Yield to the event loop once (lets pending I/O callbacks run). */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Run `fn` on `items` with at most `limit` in flight. */
export async function pool<T>(items: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(items);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items) }, worker));
  return out;
}

/** Wait until `pred()` holds, checking every tick, or throw after `timeoutMs`. */
export async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
