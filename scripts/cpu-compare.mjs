#!/usr/bin/env node
// Compare the CPU time per MiB of bulk transfers (or per open) between built trees of Ferry, in
// alternating rounds. On a shared machine a transfer's rate moves by 2-4 x between trials (other processes
// take the cores), so `bench-compare.mjs` resolves a factor of about 1.5 at a load average of 10;
// the CPU time a transfer costs moves far less, and what one build costs more than another shows
// round after round. Each figure is a median over rounds; each build is also set against the first
// one round by round (median, range, rounds above 1), so the machine's load meets both alike.
//
//   node scripts/cpu-compare.mjs [options] DIR...          # DIR: the root of a built tree (dist/)
//     --mode inproc     both ends in one process, as `ferry bench --suite throughput` (default):
//                       CPU of the process (every thread) and of its main thread, per MiB
//     --mode tunnel     a `ferry tunnel serve` and `connect` process pair per tree, bytes pushed
//                       from here through it to a drain here: CPU of each tunnel end per MiB
//     --mode open       both ends in one process, as `ferry bench --suite open`: `--opens N`
//                       connections opened and closed one after another (after a warm-up of
//                       200), CPU of the process and of its main thread per open + close, the
//                       open's and the close's p50 in ms; the rate is opens + closes per second
//     --sealed          AEAD on (default: plain); with --mode open: security on
//     --opens N         open mode: opens per trial (default 1000)
//     --size BYTES      message size (default 65536)
//     --mib N           MiB per trial (default 256)
//     --trials N        inproc: timed trials per process, median taken (default 3)
//     --rounds N        rounds (default 6)
//
// A tree is made with `git worktree add --detach DIR REV && cd DIR && npm ci && npm run build`
// (or a symlinked node_modules when package-lock.json is the same). Needs nothing else.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const SELF = fileURLToPath(import.meta.url);
/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

/** CPU milliseconds (user + system) of a process or one of its threads so far. */
function cpuMs(path) {
  const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

// ------------------------------------------------------------------ child: one tree, in-process

/** Run in a child process: warm-up, then timed transfers between two hosts of tree `root`. */
async function child(root, sealed, size, bytes, trials) {
  const L = await import(pathToFileURL(join(root, 'dist/bench/lib/systems.js')).href);
  const p = await L.ferryPair(sealed);
  const msg = randomBytes(size);
  const thread = `/proc/self/task/${process.pid}/stat`;
  const trial = async (max) => {
    const accepted = p.server.accept();
    const c = await p.hosts[0].connect(p.a.id, p.b.id);
    c.on('error', () => {});
    const s = await accepted;
    s.on('error', () => {});
    const recv = L.drainDuplex(s);
    const cpu0 = process.cpuUsage();
    const main0 = cpuMs(thread);
    const t0 = performance.now();
    const sent = await L.pushDuplex(c, msg, max, t0 + 120_000);
    const { bytes: got, end } = await recv;
    const cpu = process.cpuUsage(cpu0);
    const mainMs = cpuMs(thread) - main0;
    if (sent !== got) throw new Error(`sent ${sent} bytes, received ${got}`);
    await c.close();
    const mib = got / 1048576;
    return { mibps: mib / ((end - t0) / 1000), cpu: (cpu.user + cpu.system) / 1000 / mib, main: mainMs / mib };
  };
  await trial(64 * 1048576);
  const r = [];
  for (let i = 0; i < trials; i++) r.push(await trial(bytes));
  await p.close();
  console.log(JSON.stringify({ mibps: median(r.map((x) => x.mibps)), cpu: median(r.map((x) => x.cpu)), main: median(r.map((x) => x.main)) }));
  process.exit(0);
}

// ------------------------------------------------------------------ child: one tree, opens

/** Run in a child process: open and close `n` connections between two hosts of tree `root`, one at a time. */
async function openChild(root, secure, n) {
  const L = await import(pathToFileURL(join(root, 'dist/bench/lib/systems.js')).href);
  const p = await L.ferryPair(secure);
  p.server.on('connection', (s) => (s.on('error', () => {}), s.resume()));
  const thread = `/proc/self/task/${process.pid}/stat`;
  const once = async () => {
    const t0 = performance.now();
    const s = L.sink(await p.hosts[0].connect(p.a.id, p.b.id));
    const t1 = performance.now();
    await s.close();
    return [t1 - t0, performance.now() - t1];
  };
  for (let i = 0; i < 200; i++) await once();
  const opens = [];
  const closes = [];
  const cpu0 = process.cpuUsage();
  const main0 = cpuMs(thread);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const [o, c] = await once();
    opens.push(o);
    closes.push(c);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const mainMs = cpuMs(thread) - main0;
  await p.close();
  console.log(JSON.stringify({ mibps: n / (wall / 1000), cpu: (cpu.user + cpu.system) / 1000 / n, main: mainMs / n, openP50: median(opens), closeP50: median(closes) }));
  process.exit(0);
}

// ------------------------------------------------------------------ tunnel pairs

function startUntil(args, re) {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const on = (b) => {
      text += b;
      const m = re.exec(text);
      if (m) res({ c, m });
    };
    c.stdout.on('data', on);
    c.stderr.on('data', on);
    c.on('exit', (code) => rej(new Error(`tunnel end exited (${code}): ${text.slice(-2000)}`)));
  });
}

/** A serving and a connecting end of tree `root` to 127.0.0.1:`to`. */
async function tunnelPair(root, dir, tag, to, sealed) {
  const cli = join(root, 'dist/src/cli/main.js');
  const sec = sealed ? [] : ['--no-security'];
  const id = execFileSync(process.execPath, [cli, 'tunnel', 'id', '--key', join(dir, `${tag}-c.key`)], { encoding: 'utf8' }).trim();
  const ready = /ferry tunnel ready: agent=([0-9a-f]{32}) .*rendezvous=([0-9.]+:\d+)/;
  const serve = await startUntil([cli, 'tunnel', 'serve', '--key', join(dir, `${tag}-s.key`), '--to', `127.0.0.1:${to}`, '--allow', id, ...sec], ready);
  const conn = await startUntil([cli, 'tunnel', 'connect', serve.m[1], '--key', join(dir, `${tag}-c.key`), '--rendezvous', serve.m[2], '--listen', '127.0.0.1:0', ...sec], ready);
  return { port: Number(/listen=127\.0\.0\.1:(\d+)/.exec(conn.m[0])[1]), pids: [serve.c.pid, conn.c.pid], stop: () => (conn.c.kill('SIGKILL'), serve.c.kill('SIGKILL')) };
}

// ------------------------------------------------------------------ main

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    child: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'inproc' },
    sealed: { type: 'boolean', default: false },
    size: { type: 'string', default: '65536' },
    mib: { type: 'string', default: '256' },
    trials: { type: 'string', default: '3' },
    opens: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '6' },
    help: { type: 'boolean', short: 'h' },
  },
});
const size = Number(values.size);
const bytes = Number(values.mib) * 1048576;
const trials = Number(values.trials);
const rounds = Number(values.rounds);
const opens = Number(values.opens);
if (values.child && values.mode === 'open') await openChild(positionals[0], values.sealed, opens);
if (values.child) await child(positionals[0], values.sealed, size, bytes, trials);
if (values.help || positionals.length === 0 || !['inproc', 'tunnel', 'open'].includes(values.mode) || ![size, bytes, trials, rounds, opens].every((n) => Number.isInteger(n) && n > 0)) {
  console.log('usage: node scripts/cpu-compare.mjs [--mode inproc|tunnel|open] [--sealed] [--size BYTES] [--mib N] [--trials N] [--opens N] [--rounds N] DIR...');
  process.exit(values.help ? 0 : 2);
}
const roots = positionals.map((d) => resolve(d));
const label = (r) => r.split('/').slice(-2).join('/');
const results = roots.map(() => []);
const load0 = loadavg()[0];
const cleanup = [];

try {
  /** One trial of tree `i`; returns { mibps, cpu, ... } in ms of CPU per MiB. */
  let trialOf;
  if (values.mode === 'inproc' || values.mode === 'open') {
    trialOf = async (i) => {
      const args = [SELF, '--child', '--mode', values.mode, roots[i], '--size', String(size), '--mib', String(values.mib), '--trials', String(trials), '--opens', String(opens), ...(values.sealed ? ['--sealed'] : [])];
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`${roots[i]}: ${r.stderr.slice(-2000)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop());
    };
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cpu-compare-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    let delivered;
    const drain = createServer({ noDelay: true }, (s) => {
      let n = 0;
      s.on('data', (c) => (n += c.length));
      s.on('end', () => (delivered?.(n, performance.now()), s.end()));
    });
    await new Promise((r) => drain.listen(0, '127.0.0.1', r));
    cleanup.push(() => drain.close());
    const pairs = [];
    for (const [i, root] of roots.entries()) {
      const p = await tunnelPair(root, dir, String(i), drain.address().port, values.sealed);
      cleanup.push(p.stop);
      pairs.push(p);
    }
    const msg = randomBytes(size);
    const push = async (port, max) => {
      const sock = netConnect({ port, host: '127.0.0.1', noDelay: true });
      await new Promise((r, j) => (sock.once('connect', r), sock.once('error', j)));
      const done = new Promise((r) => (delivered = (n, t) => r({ n, t })));
      const t0 = performance.now();
      let sent = 0;
      while (sent < max) {
        sent += msg.length;
        if (!sock.write(msg)) await new Promise((r) => sock.once('drain', r));
      }
      sock.end();
      const { n, t } = await done;
      sock.destroy();
      if (n !== sent) throw new Error(`sent ${sent} bytes, the drain got ${n}`);
      return (n / 1048576) / ((t - t0) / 1000);
    };
    for (const p of pairs) await push(p.port, 32 * 1048576);
    trialOf = async (i) => {
      const stat = pairs[i].pids.map((pid) => `/proc/${pid}/stat`);
      const c0 = stat.map(cpuMs);
      const mibps = await push(pairs[i].port, bytes);
      const [serve, conn] = stat.map((s, k) => (cpuMs(s) - c0[k]) / (bytes / 1048576));
      await new Promise((r) => setTimeout(r, 100));
      return { mibps, cpu: serve + conn, serve, connect: conn };
    };
  }

  for (let r = 0; r < rounds; r++) {
    // Rotate the order, so that no tree always runs first (or last) in a round.
    for (let k = 0; k < roots.length; k++) {
      const i = (k + r) % roots.length;
      results[i].push(await trialOf(i));
    }
    process.stderr.write(`cpu-compare: round ${r + 1}/${rounds}: ${roots.map((x, i) => `${label(x)} ${results[i][r].cpu.toFixed(values.mode === 'open' ? 3 : 2)} ms/${values.mode === 'open' ? 'open' : 'MiB'}, ${results[i][r].mibps.toFixed(0)} ${values.mode === 'open' ? 'opens/s' : 'MiB/s'}`).join('; ')}; load ${loadavg()[0].toFixed(1)}\n`);
  }
} finally {
  for (const c of cleanup.reverse()) c();
}

const keys = Object.keys(results[0][0]).filter((k) => k !== 'mibps');
const per = values.mode === 'open' ? 'open + close' : 'MiB';
const rate = values.mode === 'open' ? 'opens/s' : 'MiB/s';
const what = values.mode === 'open' ? `${rounds} rounds of ${opens} opens` : `${size}-byte messages, ${rounds} rounds of ${values.mib} MiB${values.mode === 'inproc' ? ` (median of ${trials} trials)` : ''}`;
console.log(`cpu-compare: mode ${values.mode}, ${values.sealed ? 'sealed' : 'plain'}, ${what}; load average ${load0.toFixed(1)} -> ${loadavg()[0].toFixed(1)}`);
console.log(`CPU in ms per ${per} (${keys.join(', ')}${values.mode === 'open' ? '; openP50 and closeP50: latency in ms' : ''}), ${rate}; medians over rounds. Per round against ${label(roots[0])}: median (range, rounds above 1)`);
const spread = (xs) => `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}, ${xs.filter((x) => x > 1).length}/${xs.length})`;
for (const [i, root] of roots.entries()) {
  const rs = results[i];
  const own = keys.map((k) => `${k} ${median(rs.map((x) => x[k])).toFixed(3)}`).join(', ');
  const vs = i === 0 ? '' : `   cpu ${spread(rs.map((x, j) => x.cpu / results[0][j].cpu))}, ${rate} ${spread(rs.map((x, j) => x.mibps / results[0][j].mibps))}${values.mode === 'open' ? `, openP50 ${spread(rs.map((x, j) => x.openP50 / results[0][j].openP50))}` : ''}`;
  console.log(`${label(root)}: ${own}, ${median(rs.map((x) => x.mibps)).toFixed(0)} ${rate}${vs}`);
}
process.exit(0);
