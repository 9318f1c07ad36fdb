#!/usr/bin/env node
// Charge each CPU sample of `perf record` to the nearest JavaScript function on its stack, so that
// what V8 and Node do for a function (a builtin, an inline-cache miss, an allocation, a system call)
// counts to the function that asked for it; a sampling profiler that only sees JavaScript frames
// misses or misplaces that work. With two recordings, prints what the second spends more, by tier
// (TurboFan `*`, baseline `^`, interpreter `~`) and by function. Only the busiest thread (the
// event loop) is counted; compilation and GC helper threads are reported as one total.
//
//   perf record -e cpu-clock -F 10000 -g -o A.data -- node --perf-basic-prof --interpreted-frames-native-stack PROGRAM
//   perf script -i A.data -F tid,ip,sym > A.txt
//   node scripts/perf-attribute.mjs A.txt [B.txt] [--per N] [--top K]
//
//   --per N   divide sample counts by N (e.g. the opens the program made) and print µs at 10 kHz
//   --top K   functions listed (default 40)
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { per: { type: 'string' }, top: { type: 'string', default: '40' }, help: { type: 'boolean', short: 'h' } } });
if (values.help || positionals.length < 1 || positionals.length > 2) {
  console.log('usage: node scripts/perf-attribute.mjs A.txt [B.txt] [--per N] [--top K]   (A.txt: perf script -F tid,ip,sym)');
  process.exit(values.help ? 0 : 2);
}
const per = values.per ? Number(values.per) : undefined;
/** Samples at 10 kHz to µs per unit of `--per`, or the count itself. */
const show = (n) => (per ? ((n * 100) / per).toFixed(2) : String(n));

/** One sample's frames, leaf first, from `perf script -F tid,ip,sym` (blocks split by blank lines). */
async function* samples(path) {
  let tid;
  let frames = [];
  for await (const line of createInterface({ input: createReadStream(path) })) {
    if (line.trim() === '') {
      if (tid !== undefined) yield { tid, frames };
      tid = undefined;
      frames = [];
    } else if (tid === undefined) tid = line.trim();
    else frames.push(line.trim().replace(/^[0-9a-f]+ /, ''));
  }
  if (tid !== undefined) yield { tid, frames };
}

const KERNEL = /^[a-z_][a-z0-9_.]*$/;

/** A JS frame's name without the checkout's path and the column (so two trees compare). */
const fnName = (js) => js.replace(/file:\/\/\/\S*?\/dist\//, 'dist/').replace(/:\d+:\d+$/, '');

async function load(path) {
  const threads = new Map();
  for await (const s of samples(path)) threads.set(s.tid, (threads.get(s.tid) ?? 0) + 1);
  const main = [...threads].sort((a, b) => b[1] - a[1])[0][0];
  const fns = new Map();
  const tiers = new Map();
  let kernel = 0;
  let total = 0;
  for await (const s of samples(path)) {
    if (s.tid !== main) continue;
    total++;
    if (s.frames.length > 0 && KERNEL.test(s.frames[0]) && !s.frames[0].startsWith('uv')) kernel++;
    const js = s.frames.find((f) => f.startsWith('JS:'));
    const name = js ? fnName(js) : '(no JS frame)';
    fns.set(name, (fns.get(name) ?? 0) + 1);
    const tier = !js ? 'no JS frame' : { '*': 'TurboFan', '^': 'baseline', '~': 'interpreter' }[js[3]] ?? 'other';
    const whose = !js ? '' : js.includes('/dist/src/') ? ' Ferry' : ' other';
    tiers.set(tier + whose, (tiers.get(tier + whose) ?? 0) + 1);
  }
  const others = [...threads].filter(([t]) => t !== main).reduce((n, [, c]) => n + c, 0);
  return { path, total, kernel, others, fns, tiers };
}

const runs = [];
for (const p of positionals) runs.push(await load(p));
const [a, b] = runs;
const diff = (xs) => (xs.length === 2 ? ((xs[1] >= xs[0] ? '+' : '') + show(xs[1] - xs[0])).padStart(10) : '');
const row = (label, xs) => console.log(`${xs.map((x) => show(x).padStart(10)).join(' ')}${diff(xs)}  ${label}`);
runs.forEach((r, i) => console.log(`${'AB'[i]}: ${r.path}`));
console.log(`${runs.map((_, i) => 'AB'[i].padStart(10)).join(' ')}${b ? '     B - A' : ''}  (${per ? `µs per 1/${per}, at 10 kHz` : 'samples'})`);
row('event-loop thread', runs.map((r) => r.total));
row('  of it in the kernel', runs.map((r) => r.kernel));
row('other threads (compiler, GC helpers)', runs.map((r) => r.others));
const tierKeys = [...new Set(runs.flatMap((r) => [...r.tiers.keys()]))].sort();
for (const k of tierKeys) row(`  ${k}`, runs.map((r) => r.tiers.get(k) ?? 0));
const names = [...new Set(runs.flatMap((r) => [...r.fns.keys()]))];
const key = b ? (n) => (b.fns.get(n) ?? 0) - (a.fns.get(n) ?? 0) : (n) => a.fns.get(n) ?? 0;
console.log(b ? '\nfunctions, by what the second spends more:' : '\nfunctions:');
for (const n of names.sort((x, y) => key(y) - key(x)).slice(0, Number(values.top))) row(`  ${n.replace(/^JS:/, '')}`, runs.map((r) => r.fns.get(n) ?? 0));
