/**
 * `ferry bench`: parses its arguments and runs the benchmark runner, which lives in `bench/`
 * (compiled to dist/bench/) with its dev-only baselines (js-libp2p), so it is loaded on demand.
 */
import { parseArgs } from 'node:util';
import { netnsUnavailableReason } from '../testing/index.js';

/** Help text of `ferry bench`. */
export const BENCH_HELP = `ferry bench [options]    the NapletSocket paper's evaluation with raw TCP, TLS 1.3 and
                          js-libp2p measured in the same run; prints a table (progress on stderr)

Bench options:
  --suite NAME              run one suite: open, breakdown, suspend-resume, throughput,
                            migration, scale, directory, tunnel (repeatable; default all)
  --quick                   every suite small (under a minute in all), every figure present
  --netns                   open also measures between two network namespaces, each with its
                            own address on a veth pair and a bridge: a serving process in one,
                            the measuring process in the other; rows open/netns/SYSTEM/OP,
                            summary under suites.open.netns in the JSON; tunnel also measures
                            the time from a serving host changing its address to bytes flowing
                            again (rows tunnel/ferry-sealed/address-change-*). Needs root and
                            iproute2; not with --suite without open or tunnel
  --rounds N                tunnel: measure in N rounds, each one trial of every path (direct,
                            relay pair, plain and sealed tunnel, ssh -L) per workload (64 KiB,
                            1 MiB, redis-benchmark -P 16) in a rotating order; each ratio is the
                            median of the per-round ratios, with their range (default 5, about
                            4 minutes for the suite; quick 2); not with --suite without tunnel
  --json                    end the output with one JSON object holding every figure
  --out DIR                 also write DIR/bench.json, DIR/REPORT.md and SVG charts
  -h, --help                this text

Environment: FERRY_BENCH_ACK_NOW=1 adds to every tunnel round a plain and a sealed tunnel whose
ends acknowledge every DATA at once (the delayed ACK off), with rows '-ack-now' over the default.
FERRY_BENCH_TUNNEL_BASELINE=DIR (the root of another built tree of Ferry) adds to every tunnel
round a plain and a sealed tunnel run by that tree's CLI, with rows 'vs-baseline' (this build
over that one) and the baseline's own ratios.

Exit status: 0 unless a suite failed or a Ferry figure is missing (never for a slow figure);
2 for bad arguments, or --netns where namespaces cannot be made.`;

/** Most `--rounds`: at about 45 s a round, 100 is over an hour already. */
const MAX_ROUNDS = 100;

const SUITE_NAMES = ['open', 'breakdown', 'suspend-resume', 'throughput', 'migration', 'scale', 'directory', 'tunnel'] as const;

/** Run `ferry bench` with its arguments; returns the exit status. */
export async function benchMain(args: string[], fail: (msg: string) => never): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        suite: { type: 'string', multiple: true },
        quick: { type: 'boolean' },
        netns: { type: 'boolean' },
        rounds: { type: 'string' },
        json: { type: 'boolean' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(BENCH_HELP + '\n');
    return 0;
  }
  for (const s of values.suite ?? []) if (!(SUITE_NAMES as readonly string[]).includes(s)) fail(`unknown suite '${s}' (one of ${SUITE_NAMES.join(', ')})`);
  if (values.netns) {
    if (values.suite && !values.suite.includes('open') && !values.suite.includes('tunnel')) fail('--netns adds to the open suite and the tunnel suite: add --suite open or --suite tunnel (or run all suites)');
    const why = netnsUnavailableReason();
    if (why) {
      process.stderr.write(`ferry bench: --netns: ${why}; run without --netns for the loopback figures\n`);
      return 2;
    }
  }
  let rounds: number | undefined;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!/^\d+$/.test(values.rounds) || rounds < 1 || rounds > MAX_ROUNDS) fail(`--rounds must be a whole number from 1 to ${MAX_ROUNDS}, got '${values.rounds}'`);
    if (values.suite && !values.suite.includes('tunnel')) fail('--rounds sets the rounds of the tunnel suite: add --suite tunnel (or run all suites)');
  }
  let runner: typeof import('../../bench/run.js');
  try {
    runner = await import('../../bench/run.js');
  } catch (err) {
    process.stderr.write(`ferry: the bench needs a built checkout with dev dependencies (npm ci && npm run build): ${(err as Error).message}\n`);
    return 1;
  }
  const result = await runner.runBench({
    quick: Boolean(values.quick),
    netns: Boolean(values.netns),
    ...(rounds !== undefined ? { rounds } : {}),
    ...(values.suite ? { suites: values.suite as (typeof SUITE_NAMES)[number][] } : {}),
    ...(values.out ? { out: values.out } : {}),
  });
  process.stdout.write(runner.formatResult(result) + '\n');
  if (values.out) process.stdout.write(`wrote ${values.out}/bench.json, REPORT.md, throughput.svg, open-breakdown.svg, downtime.svg\n`);
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  return result.ok ? 0 : 1;
}
