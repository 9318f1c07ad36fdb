#!/usr/bin/env node
// Compare `ferry bench` between two commits in one run, back to back: each commit is checked out
// in a temporary worktree and built, then the chosen suites run alternately (old, new, old, new…)
// so that both see the same machine load. Each figure is a ratio against the baseline the suite
// measures in the same process (TCP, TLS, close-and-reopen…); the script prints, for every ratio,
// the median of each commit's rounds and new ÷ old. The machines are shared and noisy: judge
// "no worse" by the ratio of ratios, not by an absolute time.
//
//   node scripts/bench-compare.mjs OLD NEW [--rounds N] [--quick] [--suite S]… [--node-option O]… [--json FILE]
//
// --node-option passes O to node in both commits' bench processes alike. With
// `--node-option=--interrupt-budget=8448` V8 optimizes a function after an eighth of the work it
// otherwise waits for, so the figures show both builds with their code nearer its steady state:
// a bench suite runs only a few hundred opens, and a function run once per open stays in V8's
// baseline tier for over a thousand (see docs/BENCHMARKS.md). The default figures are the ones
// that count; this tells how much of a difference is the code's warm-up.
//
// OLD and NEW are anything `git rev-parse` takes (NEW may be `WORKTREE` for the files as they
// are). Default suites: open, suspend-resume, throughput, migration. Needs git and npm.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    suite: { type: 'string', multiple: true },
    'node-option': { type: 'string', multiple: true },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || positionals.length !== 2) {
  console.log('usage: node scripts/bench-compare.mjs OLD NEW [--rounds N] [--quick] [--suite S]… [--node-option O]… [--json FILE]');
  process.exit(values.help ? 0 : 2);
}
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
  console.error('--rounds must be an integer from 1 to 20');
  process.exit(2);
}
const suites = values.suite ?? ['open', 'suspend-resume', 'throughput', 'migration'];
const repo = resolve(execFileSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim());

/** A built tree of `rev` (or the repository as it is, for WORKTREE); returns its directory. */
function prepare(rev) {
  if (rev === 'WORKTREE') {
    run('npx', ['tsc', '-p', 'tsconfig.json'], repo);
    return { dir: repo, label: 'worktree', done: () => {} };
  }
  const sha = execFileSync('git', ['rev-parse', '--short', rev], { cwd: repo, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), `ferry-bench-${sha}-`));
  run('git', ['worktree', 'add', '--detach', dir, sha], repo);
  // The dependencies of the current checkout serve both commits when the lock file is the same.
  const sameLock = spawnSync('git', ['diff', '--quiet', sha, '--', 'package-lock.json'], { cwd: repo }).status === 0;
  if (sameLock && existsSync(join(repo, 'node_modules'))) symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  else run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], dir);
  run('npx', ['tsc', '-p', 'tsconfig.json'], dir);
  return {
    dir,
    label: sha,
    done: () => {
      spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: repo });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd} (${r.status ?? r.signal})`);
}

/**
 * Both commits' bench processes start by freeing one 16 MiB block (what src/util/malloc.ts does),
 * so glibc keeps freed memory in both: a commit from before `ferry bench` did so itself would
 * otherwise measure its baselines with the heap trimmed after every collection (raw TCP at 1 MiB
 * 3-5 times slower), and the ratios would compare allocator regimes, not code.
 */
const KEEP_FREED_MEMORY = '--import=data:text/javascript,void Buffer.allocUnsafeSlow(16777216)';

/** One `ferry bench --json` of `tree`; returns its ratios and absolute figures. */
function bench(tree, round) {
  const args = [KEEP_FREED_MEMORY, ...(values['node-option'] ?? []), join(tree.dir, 'dist/src/cli/main.js'), 'bench', '--json', ...(values.quick ? ['--quick'] : []), ...suites.flatMap((s) => ['--suite', s])];
  process.stderr.write(`bench-compare: round ${round + 1}/${rounds}, ${tree.label}…\n`);
  const r = spawnSync(process.execPath, args, { cwd: tree.dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`bench of ${tree.label} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const j = JSON.parse(last);
  return { ...j.ratios, ...Object.fromEntries(Object.entries(j.absolute ?? {}).map(([k, v]) => [`abs:${k}`, v])) };
}

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

const old = prepare(positionals[0]);
const neu = prepare(positionals[1]);
try {
  const results = { [old.label]: [], [neu.label]: [] };
  for (let i = 0; i < rounds; i++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    const order = i % 2 === 0 ? [old, neu] : [neu, old];
    for (const t of order) results[t.label].push(bench(t, i));
  }
  const keys = [...new Set([...results[old.label], ...results[neu.label]].flatMap((r) => Object.keys(r)))].sort();
  const rows = [];
  for (const k of keys) {
    const a = median(results[old.label].map((r) => r[k]));
    const b = median(results[neu.label].map((r) => r[k]));
    if (a === null && b === null) continue;
    rows.push({ figure: k, [old.label]: a, [neu.label]: b, newOverOld: a && b !== null ? Number((b / a).toFixed(3)) : null });
  }
  console.log(`ferry bench, ${old.label} (old) against ${neu.label} (new), ${rounds} round(s) each, alternating; suites ${suites.join(', ')}`);
  console.log('figure'.padEnd(36), old.label.padStart(10), neu.label.padStart(10), 'new/old'.padStart(8));
  for (const r of rows) console.log(r.figure.padEnd(36), String(r[old.label] ?? '-').padStart(10), String(r[neu.label] ?? '-').padStart(10), String(r.newOverOld ?? '-').padStart(8));
  if (values.json) writeFileSync(values.json, JSON.stringify({ old: old.label, new: neu.label, rounds, suites, nodeOptions: values['node-option'] ?? [], rows, raw: results }, null, 2));
} finally {
  old.done();
  neu.done();
}
