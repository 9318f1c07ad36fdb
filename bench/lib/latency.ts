/**
 * The latency method of the `open` suite, shared by its loopback run and its `--netns` run (whose
 * measuring side is a child process inside a network namespace): contenders measured in rounds,
 * rows with stable ids, and each Ferry row set against its baseline from the same run.
 */
import { gc, ratio, summarize, type Row, type SuiteResult } from './stats.js';

/** One measured operation: returns its samples (ms), keyed by what was timed. */
export interface Contender {
  system: string;
  what: string;
  /** One iteration; returns [open ms, close ms], or [first-byte ms] for first-byte contenders. */
  once(): Promise<number[]>;
}

/** Iterations per system per round, and the unkept ones that start each block. */
export const BLOCK = 10;
export const BLOCK_WARMUP = 2;

/** Time an open and a close given the two steps. */
export async function openClose<T>(open: () => Promise<T>, close: (c: T) => Promise<void>): Promise<number[]> {
  const t0 = performance.now();
  const c = await open();
  const t1 = performance.now();
  await close(c);
  return [t1 - t0, performance.now() - t1];
}

/**
 * Measure `group` in rounds: a warm-up of every contender, then rounds in which each contender
 * runs a block of {@link BLOCK} kept iterations after {@link BLOCK_WARMUP} unkept ones, until
 * each has `n` kept. Appends to `samples` (one array per figure a contender returns).
 */
export async function measureRounds(group: readonly Contender[], warmup: number, n: number, samples: Map<Contender, number[][]>, progress: (round: number, rounds: number) => void): Promise<void> {
  const rounds = Math.ceil(n / BLOCK);
  gc();
  for (const c of group) for (let i = 0; i < warmup; i++) await c.once();
  for (let r = 0; r < rounds; r++) {
    for (const c of group) {
      // The first iterations of a block absorb what the previous system left running
      // (sockets closing, timers) and are not kept.
      for (let i = 0; i < BLOCK_WARMUP; i++) await c.once();
      for (let i = 0; i < BLOCK && r * BLOCK + i < n; i++) {
        const xs = await c.once();
        if (!samples.has(c)) samples.set(c, xs.map(() => []));
        xs.forEach((x, k) => samples.get(c)![k]!.push(x));
      }
    }
    progress(r + 1, rounds);
  }
}

/** One open/close contender's samples: [open ms[], close ms[]]. */
export interface OpenCloseSamples {
  system: string;
  what: string;
  samples: number[][];
}

/** Rows `PREFIX/SYSTEM/open` and `PREFIX/SYSTEM/close` of open/close samples. */
export function openCloseRows(prefix: string, xs: readonly OpenCloseSamples[]): Row[] {
  const rows: Row[] = [];
  for (const [op, k] of [
    ['open', 0],
    ['close', 1],
  ] as const) {
    for (const c of xs) rows.push({ id: `${prefix}/${c.system}/${op}`, system: c.system, what: `${op}: ${c.what}`, unit: 'ms', summary: summarize(c.samples[k]!) });
  }
  return rows;
}

/** Each system's baseline in `open`: Ferry plain against raw TCP, the rest against TLS. */
const BASELINES: Record<string, string> = { 'ferry-plain': 'tcp', 'ferry-secure': 'tls', libp2p: 'tls', 'libp2p-dial': 'tls', 'tls-resumed': 'tls', 'tls-mutual': 'tls' };

/**
 * Set each `PREFIX/…` row's baseline (measured in the same run, same place) and ratio, and add
 * `PREFIX/ferry-secure-vs-libp2p/OP` rows: Ferry secure against libp2p, the other
 * identity-addressed system; and, where mutual TLS was measured, `PREFIX/ferry-secure-vs-tls-mutual/OP`.
 */
export function setBaselines(rows: Row[], prefix: string, ops: readonly string[]): void {
  for (const row of rows) {
    if (!row.id.startsWith(`${prefix}/`)) continue;
    const [system, op] = row.id.slice(prefix.length + 1).split('/');
    const b = BASELINES[system!];
    if (!b) continue;
    const baseRow = rows.find((r) => r.id === `${prefix}/${b}/${op}`);
    if (!baseRow) continue;
    row.baseline = baseRow.id;
    row.ratio = ratio(row.summary?.p50, baseRow.summary?.p50);
  }
  for (const op of ops) {
    if (op === 'close') continue;
    const fs = rows.find((r) => r.id === `${prefix}/ferry-secure/${op}`)!;
    const l = rows.find((r) => r.id === `${prefix}/libp2p/${op}`)!;
    rows.push({ id: `${prefix}/ferry-secure-vs-libp2p/${op}`, system: 'ferry-secure', what: `${op}: Ferry secure against js-libp2p dial + stream`, unit: 'ms', summary: fs.summary!, baseline: l.id, ratio: ratio(fs.summary!.p50, l.summary!.p50) });
    const m = rows.find((r) => r.id === `${prefix}/tls-mutual/${op}`);
    if (m) rows.push({ id: `${prefix}/ferry-secure-vs-tls-mutual/${op}`, system: 'ferry-secure', what: `${op}: Ferry secure (both agents authenticated) against mutual TLS 1.3`, unit: 'ms', summary: fs.summary!, baseline: m.id, ratio: ratio(fs.summary!.p50, m.summary!.p50) });
  }
}

/** What `runOpenNetns` reports besides its rows. */
export interface NetnsInfo {
  /** The server namespace's address (A: listeners, hosts, rendezvous) and the measuring one's (B). */
  server: string;
  client: string;
  iterations: { warmup: number; n: number };
  tlsResumed: string;
  /** Wall time of the namespace part: setup, both processes, teardown. */
  seconds: number;
}

/** `suites.open.netns` in the JSON: the `--netns` run at a glance (its rows are `open/netns/…`). */
export interface NetnsSummary extends NetnsInfo {
  /** Ferry p50 over the baseline's p50, both measured between the same namespaces in this run. */
  ratios: { plainOpenVsTcp: number | null; secureOpenVsTls: number | null; secureOpenVsLibp2p: number | null };
  /** Each system's open and close p50 (ms) on loopback and between the namespaces. */
  p50: Record<string, { open: { loopback: number | null; netns: number | null }; close: { loopback: number | null; netns: number | null } }>;
}

/** The `open` suite's result: `netns` only with `--netns` (an `error` if that part failed). */
export interface OpenResult extends SuiteResult {
  netns?: NetnsSummary | { error: string };
}

/** Build `suites.open.netns` from the suite's rows (loopback `open/…` and `open/netns/…`). */
export function netnsSummary(rows: readonly Row[], info: NetnsInfo): NetnsSummary {
  const p50 = (id: string): number | null => rows.find((r) => r.id === id)?.summary?.p50 ?? null;
  const r = (id: string): number | null => rows.find((x) => x.id === id)?.ratio ?? null;
  const systems = [...new Set(rows.filter((x) => x.id.startsWith('open/netns/') && x.id.endsWith('/close')).map((x) => x.system))];
  return {
    ...info,
    ratios: { plainOpenVsTcp: r('open/netns/ferry-plain/open'), secureOpenVsTls: r('open/netns/ferry-secure/open'), secureOpenVsLibp2p: r('open/netns/ferry-secure-vs-libp2p/open') },
    p50: Object.fromEntries(
      systems.map((s) => [
        s,
        {
          open: { loopback: p50(`open/${s}/open`), netns: p50(`open/netns/${s}/open`) },
          close: { loopback: p50(`open/${s}/close`), netns: p50(`open/netns/${s}/close`) },
        },
      ]),
    ),
  };
}
