/**
 * `ferry bench`: the NapletSocket paper's evaluation (§4: Table 2, Fig. 4, §4.2, Fig. 5) and the
 * issue's extensions (migration downtime, scale), with raw TCP, TLS 1.3 and js-libp2p measured
 * in the same run. `runBench` runs the suites, derives the flat `ratios` and `absolute` figures
 * tools read, checks them against the goals (reported, never asserted), and writes the report.
 *
 * A suite that throws, or a Ferry figure that is missing for a suite that ran, makes the result
 * `ok: false`; a slow figure never does (STYLE.md §14).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { Progress } from '../src/cli/progress.js';
import { keepFreedMemory } from '../src/util/malloc.js';
import type { BenchContext } from './lib/context.js';
import type { OpenResult } from './lib/latency.js';
import { central, fmt, type Row, type SuiteResult } from './lib/stats.js';
import { renderMarkdown, renderSvgs, renderTable } from './report.js';
import { runBreakdown } from './suites/breakdown.js';
import { runDirectory } from './suites/directory.js';
import { runMigration } from './suites/migration.js';
import { runOpen } from './suites/open.js';
import { runScale } from './suites/scale.js';
import { runSuspendResume } from './suites/suspend-resume.js';
import { runThroughput } from './suites/throughput.js';
import { runTunnel } from './suites/tunnel.js';

/** Suite names: the `--suite` values and the keys of `suites` in the JSON. */
export const SUITES = {
  open: runOpen,
  breakdown: runBreakdown,
  'suspend-resume': runSuspendResume,
  throughput: runThroughput,
  migration: runMigration,
  scale: runScale,
  directory: runDirectory,
  tunnel: runTunnel,
} as const satisfies Record<string, (ctx: BenchContext) => Promise<SuiteResult>>;

/** A suite name. */
export type SuiteName = keyof typeof SUITES;

/** Options of {@link runBench} (see `ferry bench --help`). */
export interface BenchOptions {
  quick: boolean;
  /** Run only these suites (default: all). */
  suites?: SuiteName[];
  /** Write JSON, Markdown and SVG charts here. */
  out?: string;
  /** No progress display. */
  quiet?: boolean;
  /** `open` also measures between two network namespaces (needs root and iproute2). */
  netns?: boolean;
  /** Rounds of interleaved trials for the tunnel suite (default: its own, 5; quick 2). */
  rounds?: number;
}

/** Where each flat ratio comes from: a row id (its `ratio`) and the suite that makes it. */
const RATIO_SOURCES = {
  secureOpenVsTls: ['open', 'open/ferry-secure/open'],
  plainOpenVsTcp: ['open', 'open/ferry-plain/open'],
  suspendResumeVsCloseReopen: ['suspend-resume', 'suspend-resume/ferry-secure/suspend+resume'],
  plainThroughput64kVsTcp: ['throughput', 'throughput/ferry-plain/65536'],
  plainThroughput1mVsTcp: ['throughput', 'throughput/ferry-plain/1048576'],
  sealedThroughput64kVsTls: ['throughput', 'throughput/ferry-sealed/65536'],
  sealedThroughput1mVsTls: ['throughput', 'throughput/ferry-sealed/1048576'],
  secureOpenVsLibp2p: ['open', 'open/ferry-secure-vs-libp2p/open'],
  sealedThroughput64kVsLibp2p: ['throughput', 'throughput/ferry-sealed/65536/vs-libp2p'],
  migrationDowntime1000Vs1: ['migration', 'migration/ferry-secure/downtime-scaling'],
  directoryLookupRedisVsMemory: ['directory', 'directory/ferry-redis/lookup'],
  directoryRegistrations2Vs1Nodes: ['directory', 'directory/ferry-redis/registrations-2'],
  directoryRegistrations3Vs1Nodes: ['directory', 'directory/ferry-redis/registrations-3'],
  tunnelSealed64kVsSsh: ['tunnel', 'tunnel/ferry-sealed/65536'],
  tunnelSealed1mVsSsh: ['tunnel', 'tunnel/ferry-sealed/1048576'],
  tunnelPlain64kVsTcp: ['tunnel', 'tunnel/ferry-plain/65536'],
  tunnelPlain1mVsTcp: ['tunnel', 'tunnel/ferry-plain/1048576'],
  tunnelRedisVsDirect: ['tunnel', 'tunnel/redis/ferry-sealed'],
  tunnelRedisVsSsh: ['tunnel', 'tunnel/redis/ferry-sealed/vs-ssh'],
  tunnelRttSealedVsRelay: ['tunnel', 'tunnel/rtt/ferry-sealed'],
  tunnelRttSealedVsSsh: ['tunnel', 'tunnel/rtt/ferry-sealed/vs-ssh'],
} as const satisfies Record<string, readonly [SuiteName, string]>;

/** Where each absolute figure comes from (the row's p50 or value). */
const ABSOLUTE_SOURCES = {
  migrationDowntime1Ms: ['migration', 'migration/ferry-secure/downtime/1'],
  idleConnectionKiB: ['scale', 'scale/ferry-secure/idle-connection-rss'],
  directoryLookupRedisMs: ['directory', 'directory/ferry-redis/lookup'],
  redisBytesPerAgent: ['directory', 'directory/redis/bytes-per-agent'],
  memoryStoreBytesPerAgent: ['directory', 'directory/ferry-memory/bytes-per-agent'],
  tunnelCutRecoveryMs: ['tunnel', 'tunnel/ferry-sealed/cut-recovery'],
  tunnelRttMs: ['tunnel', 'tunnel/ferry-sealed/rtt'],
  tunnelIdleConnectionKiB: ['tunnel', 'tunnel/ferry-sealed/idle-connection-rss'],
} as const satisfies Record<string, readonly [SuiteName, string]>;

/** The goals: a figure, a bar, and which way is better. */
export interface Goal {
  goal: string;
  figure: string;
  bar: string;
  value: number | null;
  met: boolean | null;
  note?: string;
}

/** The whole result; `--json` prints exactly this. */
export interface BenchResult {
  ok: boolean;
  date: string;
  quick: boolean;
  /** `loadavg` is the 1-minute load average at the start and the end: other work on the machine skews absolute figures (ratios less, as systems are interleaved). */
  machine: { node: string; cpu: string; cores: number; memoryGiB: number; os: string; loadavg: { start: number; end: number } };
  seconds: number;
  suites: Partial<Record<SuiteName, SuiteResult | { error: string }>>;
  ratios: Record<keyof typeof RATIO_SOURCES, number | null>;
  absolute: Record<keyof typeof ABSOLUTE_SOURCES, number | null>;
  notes: Record<string, string>;
  goals: Goal[];
  errors: string[];
}

/** Every row of the suites that ran. */
export function allRows(r: Pick<BenchResult, 'suites'>): Row[] {
  return Object.values(r.suites).flatMap((s) => (s && 'rows' in s ? s.rows : []));
}

function findRow(r: Pick<BenchResult, 'suites'>, id: string): Row | undefined {
  return allRows(r).find((x) => x.id === id);
}

function goals(r: BenchResult): Goal[] {
  const v = (x: number | null | undefined): number | null => (x === undefined ? null : x);
  const le = (x: number | null, bar: number): boolean | null => (x === null ? null : x <= bar);
  const ge = (x: number | null, bar: number): boolean | null => (x === null ? null : x >= bar);
  const lt = (x: number | null, bar: number): boolean | null => (x === null ? null : x < bar);
  const rows = allRows(r);
  const vsLibp2p = rows.filter((x) => x.id.startsWith('throughput/ferry-sealed/') && x.id.endsWith('/vs-libp2p'));
  const minVsLibp2p = vsLibp2p.length === 4 ? Math.min(...vsLibp2p.map((x) => x.ratio ?? 0)) : null;
  const conns = v(central(findRow(r, 'scale/ferry-secure/connections')));
  const q = r.ratios;
  // A tunnel goal's note: the per-round range of its ratio and, against direct, the relay pair's
  // ratio in the same rounds (the most a two-process tunnel can reach on this machine).
  const rounds = (id: string, bound?: string): { note?: string } => {
    const row = findRow(r, id);
    if (!row?.ratioRange) return {};
    const b = bound ? findRow(r, bound) : undefined;
    const range = `median of ${row.ratioRange.rounds} rounds, per round ${fmt(row.ratioRange.min)}–${fmt(row.ratioRange.max)}`;
    return { note: b?.ratio !== undefined ? `${range}; relay pair (the bound) ${fmt(b.ratio)} × direct` : range };
  };
  return [
    { goal: 'Secure open p50 ≤ 0.75 × TLS 1.3 full handshake p50', figure: 'ratios.secureOpenVsTls', bar: '≤ 0.75', value: q.secureOpenVsTls, met: le(q.secureOpenVsTls, 0.75) },
    { goal: 'Open without security ≤ 2 × raw TCP connect', figure: 'ratios.plainOpenVsTcp', bar: '≤ 2', value: q.plainOpenVsTcp, met: le(q.plainOpenVsTcp, 2) },
    { goal: 'Suspend + resume ≤ 1/5 of secure close + reopen', figure: 'ratios.suspendResumeVsCloseReopen', bar: '≤ 0.2', value: q.suspendResumeVsCloseReopen, met: le(q.suspendResumeVsCloseReopen, 0.2) },
    { goal: 'Plain throughput ≥ 95 % of raw TCP at 64 KiB', figure: 'ratios.plainThroughput64kVsTcp', bar: '≥ 0.95', value: q.plainThroughput64kVsTcp, met: ge(q.plainThroughput64kVsTcp, 0.95) },
    { goal: 'Plain throughput ≥ 95 % of raw TCP at 1 MiB', figure: 'ratios.plainThroughput1mVsTcp', bar: '≥ 0.95', value: q.plainThroughput1mVsTcp, met: ge(q.plainThroughput1mVsTcp, 0.95) },
    { goal: 'Sealed throughput ≥ 95 % of TLS 1.3 at 64 KiB', figure: 'ratios.sealedThroughput64kVsTls', bar: '≥ 0.95', value: q.sealedThroughput64kVsTls, met: ge(q.sealedThroughput64kVsTls, 0.95) },
    { goal: 'Sealed throughput ≥ 95 % of TLS 1.3 at 1 MiB', figure: 'ratios.sealedThroughput1mVsTls', bar: '≥ 0.95', value: q.sealedThroughput1mVsTls, met: ge(q.sealedThroughput1mVsTls, 0.95) },
    { goal: 'Secure open faster than js-libp2p (dial + stream)', figure: 'ratios.secureOpenVsLibp2p', bar: '< 1', value: q.secureOpenVsLibp2p, met: lt(q.secureOpenVsLibp2p, 1) },
    { goal: 'Sealed throughput ahead of js-libp2p at every message size', figure: 'min over sizes of throughput/ferry-sealed/*/vs-libp2p', bar: '> 1', value: minVsLibp2p, met: minVsLibp2p === null ? null : minVsLibp2p > 1 },
    { goal: 'Migration downtime with one connection < 10 ms', figure: 'absolute.migrationDowntime1Ms', bar: '< 10 ms', value: r.absolute.migrationDowntime1Ms, met: lt(r.absolute.migrationDowntime1Ms, 10) },
    { goal: 'Migration downtime with 1000 connections < 20 × one connection', figure: 'ratios.migrationDowntime1000Vs1', bar: '< 20', value: q.migrationDowntime1000Vs1, met: lt(q.migrationDowntime1000Vs1, 20), ...(r.notes.migrationDowntime1000Vs1 ? { note: r.notes.migrationDowntime1000Vs1 } : {}) },
    { goal: '10 000 connections per host', figure: 'scale/ferry-secure/connections', bar: '≥ 10 000', value: conns, met: ge(conns, 10_000), ...(r.quick ? { note: 'quick runs open 500' } : {}) },
    { goal: 'Directory lookup p50 through a node over Redis ≤ 2 × the memory store', figure: 'ratios.directoryLookupRedisVsMemory', bar: '≤ 2', value: q.directoryLookupRedisVsMemory, met: le(q.directoryLookupRedisVsMemory, 2) },
    { goal: 'Directory lookup p50 through a node over Redis ≤ 0.3 ms on loopback', figure: 'absolute.directoryLookupRedisMs', bar: '≤ 0.3 ms', value: r.absolute.directoryLookupRedisMs, met: le(r.absolute.directoryLookupRedisMs, 0.3) },
    { goal: 'Registrations/s with 2 rendezvous nodes over one Redis ≥ 1.7 × with 1', figure: 'ratios.directoryRegistrations2Vs1Nodes', bar: '≥ 1.7', value: q.directoryRegistrations2Vs1Nodes, met: ge(q.directoryRegistrations2Vs1Nodes, 1.7), note: 'each node is a process; on a machine with fewer free cores than nodes + Redis + the sender the verification cannot spread' },
    { goal: 'Redis memory ≤ 1 KiB per registered agent (chain included)', figure: 'absolute.redisBytesPerAgent', bar: '≤ 1024 bytes', value: r.absolute.redisBytesPerAgent, met: le(r.absolute.redisBytesPerAgent, 1024), ...(r.quick ? { note: 'quick runs store 10 000 agents (full: 100 000)' } : {}) },
    { goal: 'User-space memory < 16 KiB per idle connection', figure: 'absolute.idleConnectionKiB', bar: '< 16 KiB', value: r.absolute.idleConnectionKiB, met: lt(r.absolute.idleConnectionKiB, 16) },
    { goal: 'Sealed tunnel throughput ≥ 1.0 × ssh -L at 64 KiB', figure: 'ratios.tunnelSealed64kVsSsh', bar: '≥ 1', value: q.tunnelSealed64kVsSsh, met: ge(q.tunnelSealed64kVsSsh, 1), ...rounds('tunnel/ferry-sealed/65536') },
    { goal: 'Sealed tunnel throughput ≥ 1.0 × ssh -L at 1 MiB', figure: 'ratios.tunnelSealed1mVsSsh', bar: '≥ 1', value: q.tunnelSealed1mVsSsh, met: ge(q.tunnelSealed1mVsSsh, 1), ...rounds('tunnel/ferry-sealed/1048576') },
    { goal: 'Plain tunnel throughput ≥ 0.8 × direct TCP at 64 KiB', figure: 'ratios.tunnelPlain64kVsTcp', bar: '≥ 0.8', value: q.tunnelPlain64kVsTcp, met: ge(q.tunnelPlain64kVsTcp, 0.8), ...rounds('tunnel/ferry-plain/65536', 'tunnel/relay/65536') },
    { goal: 'Plain tunnel throughput ≥ 0.8 × direct TCP at 1 MiB', figure: 'ratios.tunnelPlain1mVsTcp', bar: '≥ 0.8', value: q.tunnelPlain1mVsTcp, met: ge(q.tunnelPlain1mVsTcp, 0.8), ...rounds('tunnel/ferry-plain/1048576', 'tunnel/relay/1048576') },
    { goal: 'redis-benchmark -P 16 through the tunnel ≥ 0.8 × direct', figure: 'ratios.tunnelRedisVsDirect', bar: '≥ 0.8', value: q.tunnelRedisVsDirect, met: ge(q.tunnelRedisVsDirect, 0.8), ...rounds('tunnel/redis/ferry-sealed', 'tunnel/redis/relay') },
    { goal: 'redis-benchmark -P 16 through the tunnel ≥ 1.0 × ssh -L', figure: 'ratios.tunnelRedisVsSsh', bar: '≥ 1', value: q.tunnelRedisVsSsh, met: ge(q.tunnelRedisVsSsh, 1), ...rounds('tunnel/redis/ferry-sealed/vs-ssh') },
  ];
}

/** Run the suites and assemble the result (and the report files with `out`). */
export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const started = Date.now();
  // Every system in this process, baselines included, measured in one allocator regime: without it
  // a Node process's heap is trimmed after collections and bulk transfers fault fresh pages in
  // (raw TCP at 1 MiB: 300-600 MiB/s with 50-160 faults per MiB, 1,500-1,850 without), and a
  // Host started later (Host.start keeps freed memory too) changed the regime for the systems
  // measured after it only (docs/BENCHMARKS.md, Method).
  keepFreedMemory();
  const progress = new Progress(process.stderr, opts.quiet ?? false);
  const names = opts.suites ?? (Object.keys(SUITES) as SuiteName[]);
  const result: BenchResult = {
    ok: true,
    date: new Date().toISOString(),
    quick: opts.quick,
    machine: { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), os: `${process.platform} ${release()}`, loadavg: { start: Math.round(loadavg()[0]! * 100) / 100, end: 0 } },
    seconds: 0,
    suites: {},
    ratios: Object.fromEntries(Object.keys(RATIO_SOURCES).map((k) => [k, null])) as BenchResult['ratios'],
    absolute: Object.fromEntries(Object.keys(ABSOLUTE_SOURCES).map((k) => [k, null])) as BenchResult['absolute'],
    notes: {},
    goals: [],
    errors: [],
  };
  for (const [i, name] of names.entries()) {
    const t0 = Date.now();
    const ctx: BenchContext = { quick: opts.quick, netns: opts.netns ?? false, ...(opts.rounds !== undefined ? { rounds: opts.rounds } : {}), progress: (line, force) => progress.update(`[${i + 1}/${names.length}] ${line}`, force) };
    progress.update(`[${i + 1}/${names.length}] ${name}: starting`, true);
    try {
      result.suites[name] = await SUITES[name](ctx);
      progress.done(`[${i + 1}/${names.length}] ${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      const msg = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
      result.suites[name] = { error: msg };
      result.errors.push(`suite ${name} failed: ${msg}`);
      progress.done(`[${i + 1}/${names.length}] ${name}: FAILED: ${msg}`);
    }
  }
  for (const [key, [suite, id]] of Object.entries(RATIO_SOURCES)) {
    const row = findRow(result, id);
    const v = row?.ratio ?? null;
    result.ratios[key as keyof typeof RATIO_SOURCES] = v;
    if (v === null && names.includes(suite) && !('error' in (result.suites[suite] ?? {}))) result.errors.push(`figure missing: ratios.${key} (${id})`);
  }
  for (const [key, [suite, id]] of Object.entries(ABSOLUTE_SOURCES)) {
    const v = central(findRow(result, id)) ?? null;
    result.absolute[key as keyof typeof ABSOLUTE_SOURCES] = v;
    if (v === null && names.includes(suite) && !('error' in (result.suites[suite] ?? {}))) result.errors.push(`figure missing: absolute.${key} (${id})`);
  }
  // With --netns, the namespace part of `open` is a figure like any other: its failure fails the run.
  const open = result.suites.open;
  if (opts.netns && open && 'rows' in open) {
    const ns = (open as OpenResult).netns;
    if (!ns) result.errors.push('open --netns: no result');
    else if ('error' in ns) result.errors.push(`open --netns failed: ${ns.error}`);
    else for (const id of ['open/netns/ferry-plain/open', 'open/netns/ferry-secure/open']) if (findRow(result, id)?.ratio === undefined) result.errors.push(`figure missing: ${id}`);
  }
  const scaling = findRow(result, 'migration/ferry-secure/downtime-scaling');
  if (scaling?.note) result.notes.migrationDowntime1000Vs1 = scaling.note;
  const idle = findRow(result, 'scale/ferry-secure/idle-connection-rss');
  if (idle) result.notes.idleConnectionKiB = `RSS per connection end after gc, larger of the two hosts, ${idle.connections} connections; ${idle.note ?? ''}`.trim();
  result.goals = goals(result);
  result.ok = result.errors.length === 0;
  result.seconds = Math.round((Date.now() - started) / 100) / 10;
  result.machine.loadavg.end = Math.round(loadavg()[0]! * 100) / 100;
  if (opts.out) {
    mkdirSync(opts.out, { recursive: true });
    writeFileSync(join(opts.out, 'bench.json'), JSON.stringify(result, null, 2) + '\n');
    for (const [file, svg] of Object.entries(renderSvgs(result))) writeFileSync(join(opts.out, file), svg);
    writeFileSync(join(opts.out, 'REPORT.md'), renderMarkdown(result));
  }
  return result;
}

/** The human-readable table for stdout. */
export function formatResult(r: BenchResult): string {
  return renderTable(r);
}
