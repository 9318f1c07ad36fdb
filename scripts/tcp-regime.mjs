#!/usr/bin/env node
// Plain 1 MiB throughput over loopback, one fresh connection per trial, with the TCP regime each
// trial ran in. Linux only: it reads the kernel's TcpExt counters (/proc/net/netstat).
//
//   node scripts/tcp-regime.mjs DIR… [--rounds R] [--trials N] [--mib M] [--sealed]
//
// Each DIR is a built tree (its dist/bench/lib/systems.js is used, so old commits work too). The
// trees run in turn, R rounds, each in its own process of N trials of M MiB (after one warm-up).
// A trial is "window-limited" when the receiving kernel coalesced more than 5 segments per MiB
// into its receive queue (TCPRcvCoalesce): the receiver's TCP buffer stopped growing below what
// Ferry lets the sender have in flight, the sender's TCP holds bytes it may not send, and the
// stream goes on ACK-clocked in smaller segments at about two thirds of the speed
// (docs/BENCHMARKS.md, "Plain 1 MiB against 6c254fa: the TCP receive window"). Whether a
// connection falls into that regime is decided early and stays; its share is what this counts,
// a figure far steadier on a shared machine than the MiB/s.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '2' },
    trials: { type: 'string', default: '40' },
    mib: { type: 'string', default: '512' },
    sealed: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
  },
});

/** The kernel's TcpExt counter `name`. */
function tcpExt(name) {
  const lines = readFileSync('/proc/net/netstat', 'utf8').trim().split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const head = lines[i].split(' ');
    const j = head.indexOf(name);
    if (head[0] === 'TcpExt:' && j > 0) return Number(lines[i + 1].split(' ')[j]);
  }
  throw new Error(`no TcpExt counter ${name}`);
}

async function child(dir, trials, mib, sealed) {
  // Like ferry bench: free one 16 MiB block first, so that glibc keeps freed memory (util/malloc.ts).
  void Buffer.allocUnsafeSlow(16 * 1024 * 1024);
  const { ferryPair, pushDuplex, drainDuplex } = await import(`${dir}/dist/bench/lib/systems.js`);
  const { randomBytes } = await import('node:crypto');
  const pair = await ferryPair(sealed);
  const msg = randomBytes(1048576);
  const out = [];
  for (let t = 0; t <= trials; t++) {
    const accepted = pair.server.accept();
    const c = await pair.hosts[0].connect(pair.a.id, pair.b.id);
    const s = await accepted;
    const recv = drainDuplex(s);
    const coalesced = tcpExt('TCPRcvCoalesce');
    const t0 = performance.now();
    await pushDuplex(c, msg, mib * 1048576, t0 + 5000);
    const { bytes, end } = await recv;
    await c.close();
    const m = bytes / 1048576;
    if (t > 0) out.push({ mibps: m / ((end - t0) / 1000), coalescedPerMiB: (tcpExt('TCPRcvCoalesce') - coalesced) / m });
  }
  await pair.close();
  process.stdout.write(JSON.stringify(out));
}

if (values.child) {
  await child(positionals[0], Number(values.trials), Number(values.mib), values.sealed);
} else {
  if (positionals.length === 0) throw new Error('usage: node scripts/tcp-regime.mjs DIR… [--rounds R] [--trials N] [--mib M] [--sealed]');
  const dirs = positionals.map((d) => resolve(d));
  const all = new Map(dirs.map((d) => [d, []]));
  const rounds = Number(values.rounds);
  for (let r = 0; r < rounds; r++) {
    for (const d of dirs) {
      const p = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--child', d, '--trials', values.trials, '--mib', values.mib, ...(values.sealed ? ['--sealed'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (p.status !== 0) throw new Error(`${d}: exit ${p.status}`);
      const trials = JSON.parse(p.stdout);
      all.get(d).push(...trials);
      const slow = trials.filter((t) => t.coalescedPerMiB > 5).length;
      process.stderr.write(`round ${r + 1}/${rounds} ${d}: ${slow}/${trials.length} window-limited\n`);
    }
  }
  const mean = (xs) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
  for (const [d, trials] of all) {
    const slow = trials.filter((t) => t.coalescedPerMiB > 5).map((t) => t.mibps);
    const fast = trials.filter((t) => t.coalescedPerMiB <= 5).map((t) => t.mibps);
    console.log(`${d}: window-limited ${slow.length}/${trials.length} (mean ${mean(slow)} MiB/s), other ${fast.length} (mean ${mean(fast)} MiB/s), all ${mean(trials.map((t) => t.mibps))} MiB/s`);
  }
}
