/**
 * `tunnel`: `ferry tunnel` (serve and connect as processes, as a user runs them) against direct
 * TCP and OpenSSH's `ssh -L` to an sshd started here, in one run (docs/TUNNEL.md):
 *
 * - in interleaved rounds (bench/lib/rounds.ts; `--rounds`, default 5): each round one trial of
 *   every path (direct, the relay pair, plain tunnel, sealed tunnel, `ssh -L`) per workload, in a
 *   rotating order, every path set up once and reused. The workloads: one TCP connection's
 *   throughput in 64 KiB and 1 MiB messages (bytes pushed from this process to a drain in this
 *   process), and `redis-benchmark -P 16` (SET and GET, 4 clients) to a redis-server. Each ratio
 *   (sealed over `ssh -L`, plain over direct, tunnel over the relay pair...) is the median of the
 *   per-round ratios, with their range: a change of the machine's load between systems moved
 *   the ratios of a suite that measured each system in turn by up to 4 ×;
 * - the relay pair is the bound of the topology: two minimal Node relay processes in a row (what
 *   the two tunnel ends cost if they only copied);
 * - with FERRY_BENCH_ACK_NOW=1, a plain and a sealed tunnel whose ends acknowledge every DATA at
 *   once (ack-now.ts) join the rounds: the delayed ACK measured against its absence;
 * - with FERRY_BENCH_TUNNEL_BASELINE=DIR (the root of another build of Ferry, with its dist/), a
 *   plain and a sealed tunnel run by that build's CLI join the rounds: a change measured against
 *   the code before it in the same rounds, so the machine's load meets both alike;
 * - the time from a cut of the data path (every Ferry data socket reset, as the tests do) to the
 *   next echoed byte, p50, with the round-trip time through that tunnel in the same run;
 * - memory (RSS of both tunnel processes) per idle tunnelled connection, with 1000 of them;
 * - with `--netns` (root): the time from the serving host changing its address to the next echoed
 *   byte, beside the RTT of the same run (tunnel-roam.ts).
 *
 * Every transfer checks that the drain got exactly the bytes sent. Needs redis-server,
 * redis-benchmark, sshd, ssh and ssh-keygen (the tests need them too).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeTcpPort, startRedisServer } from '../../src/testing/index.js';
import type { BenchContext } from '../lib/context.js';
import { sleep, summarize, type Row, type SuiteResult } from '../lib/stats.js';
import { roundRatio, rotation, runRounds, systemSpread, type Workload } from '../lib/rounds.js';
import { drainDuplex, pushDuplex, transfer } from '../lib/systems.js';
import { addressChangeRows } from './tunnel-roam.js';

const FERRY = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/** Preloaded (`node --import`) into the tunnel ends of the `-ack-now` systems: see ack-now.ts. */
const ACK_NOW = fileURLToPath(new URL('../lib/ack-now.js', import.meta.url));

/** The paths a round measures, each to the drain and to redis-server. */
type TunnelSystem = 'tcp' | 'relay' | 'tunnel-plain' | 'tunnel-sealed' | 'ssh-L' | 'tunnel-plain-ack-now' | 'tunnel-sealed-ack-now' | 'tunnel-plain-baseline' | 'tunnel-sealed-baseline';

/** Workload names of the rounds, in words. */
const WORKLOAD_LABEL: Record<string, string> = { '65536': '64 KiB messages', '1048576': '1 MiB messages', redis: 'redis-benchmark -P 16', rtt: 'one-byte round trips' };

/** Pings before a round-trip trial's kept ones: the connection's first exchanges (a tunnel's open, cold code) are not its round trip. */
const RTT_WARM_PINGS = 20;
/** Pings of the unkept warm-up round's round-trip trial, per path. */
const RTT_WARM_ROUND_PINGS = 3000;

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      resolve({ code: c.exitCode, out: String(out), err: String(errOut) });
    });
  });
}

/** Spawn and wait for a line of stdout or stderr matching `re`. */
async function startUntil(cmd: string, args: string[], re: RegExp, ms = 15_000): Promise<{ child: ChildProcess; m: RegExpExecArray; output(): string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd}: no line matching ${re} within ${ms} ms: ${text.slice(-1000)}`)), ms);
    let ready = false;
    const on = (c: Buffer): void => {
      // Kept after the ready line too (its last 64 KiB): why a tunnel end reset a connection.
      text = (text + c.toString()).slice(-65536);
      const m = ready ? null : re.exec(text);
      if (m) {
        ready = true;
        clearTimeout(timer);
        resolve({ child, m, output: () => text });
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited ${code}: ${text.slice(-1000)}`));
    });
  });
}

/** Wait until something listens on 127.0.0.1:`port` (asked of `ss`, so no connection is made: one through ssh -L would reach the drain). */
async function waitPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if ((await run('ss', ['-ltnH', `sport = :${port}`])).out.trim().length > 0) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await sleep(50);
  }
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

const rssKiB = async (pid: number): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]);

/**
 * A serving and a connecting tunnel end to 127.0.0.1:`to`; the connecting end listens on
 * `listenPort`. `nodeArgs` go to both processes' `node` before the CLI (a bench-only preload);
 * `cli` is the CLI to run (another build's, for a baseline).
 */
async function tunnel(dir: string, to: number, plain: boolean, tag: string, nodeArgs: string[] = [], cli = FERRY): Promise<{ listenPort: number; ports: number[]; pids: number[]; output(): string; stop(): void }> {
  const sec = plain ? ['--no-security'] : [];
  const id = (await run(process.execPath, [cli, 'tunnel', 'id', '--key', join(dir, `${tag}-c.key`)])).out.trim();
  const ready = /ferry tunnel ready: agent=([0-9a-f]{32}) .*redirector=[0-9.]+:(\d+) rendezvous=([0-9.]+:\d+)/;
  const serve = await startUntil(process.execPath, [...nodeArgs, cli, 'tunnel', 'serve', '--key', join(dir, `${tag}-s.key`), '--to', `127.0.0.1:${to}`, '--allow', id, ...sec], ready);
  const connect = await startUntil(process.execPath, [...nodeArgs, cli, 'tunnel', 'connect', serve.m[1]!, '--key', join(dir, `${tag}-c.key`), '--rendezvous', serve.m[3]!, '--listen', '127.0.0.1:0', ...sec], ready);
  const listenPort = Number(/listen=127\.0\.0\.1:(\d+)/.exec(connect.m[0])![1]);
  return {
    listenPort,
    ports: [Number(serve.m[2]), Number(connect.m[2])],
    pids: [serve.child.pid!, connect.child.pid!],
    output: () => `serve: ${serve.output()}\nconnect: ${connect.output()}`,
    stop: () => {
      connect.child.kill('SIGKILL');
      serve.child.kill('SIGKILL');
    },
  };
}

/** A minimal relay: one Node process piping each accepted TCP connection to 127.0.0.1:PORT (argv), noDelay both sides. */
const RELAY = `const net = require('node:net'); const to = Number(process.argv[1]);
net.createServer({ noDelay: true }, (c) => { const t = net.connect({ port: to, host: '127.0.0.1', noDelay: true });
  c.pipe(t); t.pipe(c); c.on('error', () => t.destroy()); t.on('error', () => c.destroy()); })
  .listen(0, '127.0.0.1', function () { console.log('relay port=' + this.address().port); });`;

/**
 * The bound a tunnel's topology allows on this machine: two {@link RELAY} processes in a row to
 * 127.0.0.1:`to`, as the two tunnel ends are, doing nothing but copy (no framing, no crypto, no
 * acknowledgements). Resolves with the first relay's port.
 */
async function relayPair(to: number, stops: (() => void)[]): Promise<number> {
  const far = await startUntil(process.execPath, ['-e', RELAY, String(to)], /relay port=(\d+)/);
  stops.push(() => far.child.kill('SIGKILL'));
  const near = await startUntil(process.execPath, ['-e', RELAY, far.m[1]!], /relay port=(\d+)/);
  stops.push(() => near.child.kill('SIGKILL'));
  return Number(near.m[1]);
}

/** An sshd here and `ssh -N -L` through it to 127.0.0.1:`to`; resolves with the forwarded port. */
async function sshForward(dir: string, to: number, stops: (() => void)[]): Promise<number> {
  for (const key of ['host', 'user']) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user.pub')));
  const port = await freeTcpPort();
  await writeFile(join(dir, 'sshd_config'), [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host')}`, `PidFile ${join(dir, 'sshd.pid')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'StrictModes no', 'PermitRootLogin yes', 'PasswordAuthentication no', 'UsePAM no'].join('\n') + '\n');
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const sshd = await startUntil('/usr/sbin/sshd', ['-f', join(dir, 'sshd_config'), '-D', '-e'], /Server listening on 127\.0\.0\.1/);
  stops.push(() => sshd.child.kill('SIGKILL'));
  const local = await freeTcpPort();
  const ssh = spawn('ssh', ['-N', '-L', `127.0.0.1:${local}:127.0.0.1:${to}`, '-p', String(port), '-i', join(dir, 'user'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', 'root@127.0.0.1'], { stdio: 'ignore' });
  stops.push(() => ssh.kill('SIGKILL'));
  await waitPort(local);
  return local;
}

/** One transfer: push `msg` through `port` to the drain until `maxBytes` or `ms`; MiB/s, verified. */
async function pushOnce(port: number, next: () => Promise<Socket>, msg: Buffer, maxBytes: number, ms: number): Promise<number> {
  const c = netConnect({ port, host: '127.0.0.1', noDelay: true });
  await once(c, 'connect');
  const recv = drainDuplex(await next());
  const t0 = performance.now();
  const sent = await pushDuplex(c, msg, maxBytes, t0 + ms);
  const { bytes, end } = await recv;
  if (bytes !== sent) throw new Error(`tunnel bench: sent ${sent}, drain got ${bytes}`);
  c.destroy();
  // The closed connections' last segments and the tunnel ends' teardown finish before the next trial.
  await sleep(100);
  return transfer(bytes, t0, end).mibps;
}

function redisOps(out: string): number {
  const rates = [...out.matchAll(/: ([\d.]+) requests per second/g)].map((m) => Number(m[1]));
  if (rates.length === 0) throw new Error(`redis-benchmark printed no rate: ${out.slice(-500)}`);
  return rates.reduce((a, b) => a + b, 0) / rates.length;
}

/** One byte to an echo and back on `c`: ms. */
async function ping(c: Socket): Promise<number> {
  const t0 = performance.now();
  c.write('x');
  await once(c, 'data');
  return performance.now() - t0;
}

/**
 * One round-trip trial: a new connection through `port` to the echo, {@link RTT_WARM_PINGS} pings,
 * then `n` kept (appended to `keep`); the p50 of those, ms.
 */
async function rttOnce(port: number, n: number, keep?: number[]): Promise<number> {
  const c = netConnect({ port, host: '127.0.0.1', noDelay: true });
  try {
    await once(c, 'connect');
    const xs: number[] = [];
    for (let i = 0; i < RTT_WARM_PINGS + n; i++) {
      const ms = await ping(c);
      if (i >= RTT_WARM_PINGS) xs.push(ms);
    }
    keep?.push(...xs);
    return summarize(xs).p50;
  } finally {
    c.destroy();
  }
}

/** Run the suite. */
export async function runTunnel(ctx: BenchContext): Promise<SuiteResult> {
  const rows: Row[] = [];
  const stops: (() => void)[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-tunnel-'));
  const info: Record<string, unknown> = {};
  // If the bench dies of an uncaught error, `finally` does not run: stop the processes started
  // here anyway (about 30 of them: tunnel ends, relays, sshd, ssh, redis-server), which would
  // otherwise outlive it, and remove their keys.
  const stopAll = (): void => {
    for (const s of stops.splice(0).reverse()) s();
  };
  const onExit = (): void => {
    stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  try {
    // The drain: every accepted socket is handed to whoever waits for the next one.
    const queue: Socket[] = [];
    const waiters: ((s: Socket) => void)[] = [];
    const drain = createServer({ noDelay: true }, (s) => {
      const w = waiters.shift();
      if (w) w(s);
      else queue.push(s);
    });
    drain.listen(0, '127.0.0.1');
    await once(drain, 'listening');
    stops.push(() => drain.close());
    const drainPort = (drain.address() as AddressInfo).port;
    const next = (): Promise<Socket> => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r)));
    // The echo: the round trips of the rounds and the cuts after them.
    const echo = createServer({ noDelay: true }, (s) => {
      // A client that resets (a tunnel end's reset after a failed open) ends only its echo.
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    stops.push(() => echo.close());
    const echoPort = (echo.address() as AddressInfo).port;

    ctx.progress('tunnel: starting tunnels, relays, ssh -L and redis-server', true);
    const ackNow = process.env.FERRY_BENCH_ACK_NOW === '1';
    const baselineDir = process.env.FERRY_BENCH_TUNNEL_BASELINE;
    const baselineCli = baselineDir ? join(baselineDir, 'dist', 'src', 'cli', 'main.js') : undefined;
    if (baselineCli) await readFile(baselineCli).catch(() => Promise.reject(new Error(`FERRY_BENCH_TUNNEL_BASELINE: no ${baselineCli} (build that tree first)`)));
    // Each path is set up once and reused by every round: a round then costs only its trials.
    const redis = await startRedisServer();
    stops.push(() => void redis.destroy());
    const toDrain: Partial<Record<TunnelSystem, number>> = { tcp: drainPort };
    const toRedis: Partial<Record<TunnelSystem, number>> = { tcp: redis.port };
    const toEcho: Partial<Record<TunnelSystem, number>> = { tcp: echoPort };
    for (const [target, ports, tag] of [
      [drainPort, toDrain, 'drain'],
      [redis.port, toRedis, 'redis'],
      [echoPort, toEcho, 'echo'],
    ] as const) {
      for (const [system, plainTunnel, preload, cli] of [
        ['tunnel-plain', true, false, FERRY],
        ['tunnel-sealed', false, false, FERRY],
        ...(ackNow
          ? ([
              ['tunnel-plain-ack-now', true, true, FERRY],
              ['tunnel-sealed-ack-now', false, true, FERRY],
            ] as const)
          : []),
        ...(baselineCli
          ? ([
              ['tunnel-plain-baseline', true, false, baselineCli],
              ['tunnel-sealed-baseline', false, false, baselineCli],
            ] as const)
          : []),
      ] as const) {
        const t = await tunnel(dir, target, plainTunnel, `${tag}-${system}`, preload ? ['--import', ACK_NOW] : [], cli);
        stops.push(t.stop);
        ports[system] = t.listenPort;
      }
      ports['ssh-L'] = await sshForward(await mkdtemp(join(dir, `ssh-${tag}-`)), target, stops);
      ports.relay = await relayPair(target, stops);
    }
    const systems: TunnelSystem[] = [
      'tcp',
      'relay',
      'tunnel-plain',
      'tunnel-sealed',
      'ssh-L',
      ...(ackNow ? (['tunnel-plain-ack-now', 'tunnel-sealed-ack-now'] as const) : []),
      ...(baselineCli ? (['tunnel-plain-baseline', 'tunnel-sealed-baseline'] as const) : []),
    ];

    const rounds = ctx.rounds ?? (ctx.quick ? 2 : 5);
    const maxBytes = ctx.quick ? 8 * 1048576 : 256 * 1048576;
    const ms = ctx.quick ? 250 : 1500;
    const requests = ctx.quick ? 5000 : 50_000;
    const redisOnce = async (port: number, n: number): Promise<number> => {
      const r = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-P', '16', '-c', '4', '-n', String(n), '-t', 'set,get', '-q']);
      if (r.code !== 0) throw new Error(`redis-benchmark on port ${port}: ${r.err}`);
      return Math.round(redisOps(r.out));
    };
    const pings = ctx.quick ? 50 : 200;
    /** Every kept round trip, by system (the rounds' pings, not the warm-up's). */
    const rttSamples = new Map<TunnelSystem, number[]>(systems.map((sys) => [sys, []]));
    const sizes = [65536, 1048576] as const;
    const workloads = (warm: boolean): Workload[] => [
      ...sizes.map((size) => {
        const msg = randomBytes(size);
        return { name: String(size), systems, trial: (sys: string) => pushOnce(toDrain[sys as TunnelSystem]!, next, msg, warm ? 8 * 1048576 : maxBytes, warm ? 250 : ms) };
      }),
      { name: 'redis', systems, trial: (sys: string) => redisOnce(toRedis[sys as TunnelSystem]!, warm ? 5000 : requests) },
      // The warm-up's pings are many: the echo tunnels carry nothing else, and a tunnel end's
      // per-exchange code needs a few thousand exchanges before V8 has optimised it (a fresh
      // tunnel's round trip fell from about 1.2 ms to 0.3 ms over its first 3,000 pings).
      { name: 'rtt', systems, trial: (sys: string) => rttOnce(toEcho[sys as TunnelSystem]!, warm ? RTT_WARM_ROUND_PINGS : pings, warm ? undefined : rttSamples.get(sys as TunnelSystem)) },
    ];
    // One short unkept round first: the tunnel processes' code is cold (JIT) and their first
    // connections allocate what later ones reuse.
    // (Quick runs are a smoke test: they skip it.)
    if (!ctx.quick) {
      ctx.progress('tunnel: warm-up round', true);
      await runRounds(workloads(true), 1, (s) => ctx.progress(`tunnel: warm-up: ${WORKLOAD_LABEL[s.workload]} through ${s.system}`));
    }
    const started = performance.now();
    const figures = await runRounds(workloads(false), rounds, (s) => {
      const left = s.done === 0 ? '' : `, about ${Math.ceil((((performance.now() - started) / s.done) * (s.trials - s.done)) / 1000)} s left`;
      ctx.progress(`tunnel: round ${s.round + 1}/${s.rounds}: ${WORKLOAD_LABEL[s.workload]} through ${s.system} (trial ${s.done + 1}/${s.trials}${left})`, s.workload === '65536' && s.system === rotation(systems, s.round)[0]);
    });
    info.rounds = rounds;
    info.systems = systems;
    info.ackNow = ackNow;
    if (baselineDir) info.baseline = baselineDir;
    info.figures = Object.fromEntries(figures);
    info.trial = { maxBytes, ms, redisRequests: requests, pings };

    const row = (id: string, system: string, what: string, unit: Row['unit'], workload: string, sys: TunnelSystem, baseline?: { id: string; sys: TunnelSystem }, extra: Partial<Row> = {}): Row => {
      const per = figures.get(workload)!;
      const r: Row = { id, system, what, unit, value: Math.round(systemSpread(per, sys).median * 10) / 10, ...extra };
      if (baseline) {
        const q = roundRatio(per, sys, baseline.sys);
        r.baseline = baseline.id;
        r.ratio = r3(q.median);
        r.ratioRange = { min: r3(q.min), max: r3(q.max), rounds: q.n };
      }
      return r;
    };
    for (const size of sizes) {
      const w = String(size);
      const label = WORKLOAD_LABEL[w]!;
      const b = (sys: TunnelSystem, id: string): { id: string; sys: TunnelSystem } => ({ id: `tunnel/${id}/${size}`, sys });
      const m = { messageBytes: size };
      rows.push(row(`tunnel/tcp/${size}`, 'tcp', `direct TCP, ${label}`, 'MiB/s', w, 'tcp', undefined, m));
      rows.push(row(`tunnel/ssh-L/${size}`, 'ssh-L', `ssh -L (OpenSSH), ${label}`, 'MiB/s', w, 'ssh-L', undefined, m));
      rows.push(row(`tunnel/ferry-plain/${size}`, 'ferry-plain', `plain tunnel, ${label}`, 'MiB/s', w, 'tunnel-plain', b('tcp', 'tcp'), m));
      rows.push(row(`tunnel/ferry-sealed/${size}`, 'ferry-sealed', `sealed tunnel, ${label}`, 'MiB/s', w, 'tunnel-sealed', b('ssh-L', 'ssh-L'), m));
      rows.push(row(`tunnel/relay/${size}`, 'relay', `two minimal Node relay processes (the bound), ${label}`, 'MiB/s', w, 'relay', b('tcp', 'tcp'), m));
      // What OpenSSH's own relay pair (C, sealed) reaches over direct TCP in the same rounds: the
      // plain tunnel's goal over direct TCP is to be read against it and the Node relay pair.
      rows.push(row(`tunnel/ssh-L/${size}/vs-tcp`, 'ssh-L', `ssh -L (OpenSSH) over direct TCP, ${label}`, 'MiB/s', w, 'ssh-L', b('tcp', 'tcp'), m));
      rows.push(row(`tunnel/ferry-plain/${size}/vs-relay`, 'ferry-plain', `plain tunnel over the relay pair, ${label}`, 'MiB/s', w, 'tunnel-plain', b('relay', 'relay'), m));
      rows.push(row(`tunnel/ferry-sealed/${size}/vs-relay`, 'ferry-sealed', `sealed tunnel over the relay pair, ${label}`, 'MiB/s', w, 'tunnel-sealed', b('relay', 'relay'), m));
      if (ackNow) {
        rows.push(row(`tunnel/ferry-plain-ack-now/${size}`, 'ferry-plain', `plain tunnel with every ACK at once (ACK_NOW_BYTES 0), over the delayed ACK, ${label}`, 'MiB/s', w, 'tunnel-plain-ack-now', b('tunnel-plain', 'ferry-plain'), m));
        rows.push(row(`tunnel/ferry-sealed-ack-now/${size}`, 'ferry-sealed', `sealed tunnel with every ACK at once (ACK_NOW_BYTES 0), over the delayed ACK, ${label}`, 'MiB/s', w, 'tunnel-sealed-ack-now', b('tunnel-sealed', 'ferry-sealed'), m));
      }
      if (baselineCli) {
        // Baseline over this build (as every other ratio here, the second system is the base):
        // the rows read "this build over the baseline build".
        rows.push(row(`tunnel/ferry-plain/${size}/vs-baseline`, 'ferry-plain', `plain tunnel of this build over the baseline build's, ${label}`, 'MiB/s', w, 'tunnel-plain', b('tunnel-plain-baseline', 'ferry-plain-baseline'), m));
        rows.push(row(`tunnel/ferry-sealed/${size}/vs-baseline`, 'ferry-sealed', `sealed tunnel of this build over the baseline build's, ${label}`, 'MiB/s', w, 'tunnel-sealed', b('tunnel-sealed-baseline', 'ferry-sealed-baseline'), m));
        rows.push(row(`tunnel/ferry-sealed-baseline/${size}`, 'ferry-sealed', `sealed tunnel of the baseline build, over ssh -L, ${label}`, 'MiB/s', w, 'tunnel-sealed-baseline', b('ssh-L', 'ssh-L'), m));
        rows.push(row(`tunnel/ferry-plain-baseline/${size}`, 'ferry-plain', `plain tunnel of the baseline build, over direct TCP, ${label}`, 'MiB/s', w, 'tunnel-plain-baseline', b('tcp', 'tcp'), m));
      }
    }
    const rb = (sys: TunnelSystem, id: string): { id: string; sys: TunnelSystem } => ({ id: `tunnel/redis/${id}`, sys });
    const what = 'redis-benchmark -P 16 (SET, GET) ops/s';
    rows.push(row('tunnel/redis/direct', 'tcp', `${what}, direct`, 'count', 'redis', 'tcp'));
    rows.push(row('tunnel/redis/ssh-L', 'ssh-L', `${what} through ssh -L`, 'count', 'redis', 'ssh-L'));
    rows.push(row('tunnel/redis/ferry-sealed', 'ferry-sealed', `${what} through the sealed tunnel, over direct`, 'count', 'redis', 'tunnel-sealed', rb('tcp', 'direct')));
    rows.push(row('tunnel/redis/ferry-plain', 'ferry-plain', `${what} through the plain tunnel, over direct`, 'count', 'redis', 'tunnel-plain', rb('tcp', 'direct')));
    rows.push(row('tunnel/redis/ssh-L/vs-direct', 'ssh-L', `${what} through ssh -L, over direct`, 'count', 'redis', 'ssh-L', rb('tcp', 'direct')));
    rows.push(row('tunnel/redis/relay', 'relay', `${what} through two minimal Node relays (the bound), over direct`, 'count', 'redis', 'relay', rb('tcp', 'direct')));
    rows.push(row('tunnel/redis/ferry-sealed/vs-relay', 'ferry-sealed', `${what} through the sealed tunnel, over the relay pair`, 'count', 'redis', 'tunnel-sealed', rb('relay', 'relay')));
    rows.push(row('tunnel/redis/ferry-sealed/vs-ssh', 'ferry-sealed', `${what} through the sealed tunnel, over ssh -L`, 'count', 'redis', 'tunnel-sealed', rb('ssh-L', 'ssh-L')));
    if (ackNow) {
      rows.push(row('tunnel/redis/ferry-plain-ack-now', 'ferry-plain', `${what} through the plain tunnel with every ACK at once, over the delayed ACK`, 'count', 'redis', 'tunnel-plain-ack-now', rb('tunnel-plain', 'ferry-plain')));
      rows.push(row('tunnel/redis/ferry-sealed-ack-now', 'ferry-sealed', `${what} through the sealed tunnel with every ACK at once, over the delayed ACK`, 'count', 'redis', 'tunnel-sealed-ack-now', rb('tunnel-sealed', 'ferry-sealed')));
    }
    if (baselineCli) {
      rows.push(row('tunnel/redis/ferry-sealed/vs-baseline', 'ferry-sealed', `${what} through the sealed tunnel of this build, over the baseline build's`, 'count', 'redis', 'tunnel-sealed', rb('tunnel-sealed-baseline', 'ferry-sealed-baseline')));
      rows.push(row('tunnel/redis/ferry-plain/vs-baseline', 'ferry-plain', `${what} through the plain tunnel of this build, over the baseline build's`, 'count', 'redis', 'tunnel-plain', rb('tunnel-plain-baseline', 'ferry-plain-baseline')));
      rows.push(row('tunnel/redis/ferry-sealed-baseline/vs-ssh', 'ferry-sealed', `${what} through the sealed tunnel of the baseline build, over ssh -L`, 'count', 'redis', 'tunnel-sealed-baseline', rb('ssh-L', 'ssh-L')));
    }

    // One byte's round trip through each path, in the same rounds: the p50 (p90, p99) of every kept
    // ping, and each ratio the median of the per-round ratios of the trials' p50s (below 1: faster
    // than the path it is over). What a request/response exchange costs the two middle processes.
    const rttRow = (id: string, system: string, what: string, sys: TunnelSystem, base?: { id: string; sys: TunnelSystem }): Row => {
      const r: Row = { id, system, what: `round trip of one byte ${what}`, unit: 'ms', summary: summarize(rttSamples.get(sys)!) };
      if (base) {
        const q = roundRatio(figures.get('rtt')!, sys, base.sys);
        r.baseline = base.id;
        r.ratio = r3(q.median);
        r.ratioRange = { min: r3(q.min), max: r3(q.max), rounds: q.n };
      }
      return r;
    };
    const rr = (sys: TunnelSystem, id: string): { id: string; sys: TunnelSystem } => ({ id: `tunnel/rtt/${id}`, sys });
    rows.push(rttRow('tunnel/rtt/direct', 'tcp', 'direct', 'tcp'));
    rows.push(rttRow('tunnel/rtt/relay', 'relay', 'through two minimal Node relays (the bound), over direct', 'relay', rr('tcp', 'direct')));
    rows.push(rttRow('tunnel/rtt/ssh-L', 'ssh-L', 'through ssh -L, over the relay pair', 'ssh-L', rr('relay', 'relay')));
    rows.push(rttRow('tunnel/rtt/ferry-plain', 'ferry-plain', 'through the plain tunnel, over the relay pair', 'tunnel-plain', rr('relay', 'relay')));
    rows.push(rttRow('tunnel/rtt/ferry-sealed', 'ferry-sealed', 'through the sealed tunnel, over the relay pair', 'tunnel-sealed', rr('relay', 'relay')));
    rows.push(rttRow('tunnel/rtt/ferry-sealed/vs-ssh', 'ferry-sealed', 'through the sealed tunnel, over ssh -L', 'tunnel-sealed', rr('ssh-L', 'ssh-L')));
    if (ackNow) {
      rows.push(rttRow('tunnel/rtt/ferry-plain-ack-now', 'ferry-plain', 'through the plain tunnel with every ACK at once, over the delayed ACK', 'tunnel-plain-ack-now', rr('tunnel-plain', 'ferry-plain')));
      rows.push(rttRow('tunnel/rtt/ferry-sealed-ack-now', 'ferry-sealed', 'through the sealed tunnel with every ACK at once, over the delayed ACK', 'tunnel-sealed-ack-now', rr('tunnel-sealed', 'ferry-sealed')));
    }
    if (baselineCli) {
      rows.push(rttRow('tunnel/rtt/ferry-sealed/vs-baseline', 'ferry-sealed', "through the sealed tunnel of this build, over the baseline build's", 'tunnel-sealed', rr('tunnel-sealed-baseline', 'ferry-sealed-baseline')));
      rows.push(rttRow('tunnel/rtt/ferry-plain/vs-baseline', 'ferry-plain', "through the plain tunnel of this build, over the baseline build's", 'tunnel-plain', rr('tunnel-plain-baseline', 'ferry-plain-baseline')));
      rows.push(rttRow('tunnel/rtt/ferry-sealed-baseline', 'ferry-sealed', 'through the sealed tunnel of the baseline build, over the relay pair', 'tunnel-sealed-baseline', rr('relay', 'relay')));
    }

    // Time from a cut to the next echoed byte, and the RTT, through a sealed tunnel of its own to
    // the echo (its data sockets are cut: the rounds' tunnels stay whole).
    const echoTunnel = await tunnel(dir, echoPort, false, 'echo-cut');
    stops.push(echoTunnel.stop);
    const c = netConnect({ port: echoTunnel.listenPort, host: '127.0.0.1', noDelay: true });
    await once(c, 'connect');
    for (let i = 0; i < RTT_WARM_PINGS; i++) await ping(c);
    const rtts: number[] = [];
    const recoveries: number[] = [];
    const cuts = ctx.quick ? 3 : 30;
    for (let i = 0; i < cuts; i++) {
      ctx.progress(`tunnel: cut ${i + 1}/${cuts}`);
      for (let j = 0; j < 10; j++) rtts.push(await ping(c));
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => execFile('ss', ['-K', '-t', '-n', '(', 'sport', '=', `:${echoTunnel.ports[0]}`, 'or', 'dport', '=', `:${echoTunnel.ports[0]}`, ')'], (err) => (err ? reject(err) : resolve())));
      c.write('x');
      await once(c, 'data');
      recoveries.push(performance.now() - t0);
      await sleep(100);
    }
    c.destroy();
    rows.push({ id: 'tunnel/ferry-sealed/rtt', system: 'ferry-sealed', what: 'round trip of one byte through the sealed tunnel', unit: 'ms', summary: summarize(rtts) });
    rows.push({ id: 'tunnel/ferry-sealed/cut-recovery', system: 'ferry-sealed', what: 'from a cut (every data socket reset) to the next echoed byte', unit: 'ms', summary: summarize(recoveries), note: 'the RTT row is the same run' });

    // Memory per idle tunnelled connection.
    const idle = ctx.quick ? 100 : 1000;
    const holder = createServer((s) => s.on('error', () => {}));
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    stops.push(() => holder.close());
    const idleTunnel = await tunnel(dir, (holder.address() as AddressInfo).port, false, 'idle');
    stops.push(idleTunnel.stop);
    await sleep(500);
    const before = (await Promise.all(idleTunnel.pids.map(rssKiB))).reduce((a, b) => a + b, 0);
    const socks: Socket[] = [];
    // A connection the tunnel resets (its open failed: the end logs one coded line) is counted,
    // not an unhandled error that ends the bench.
    const resets: string[] = [];
    const heldNow = (): Promise<number> => new Promise<number>((r) => holder.getConnections((_e, k) => r(k)));
    // Until the holder has the first `n` (each open is a Ferry handshake, done after the local
    // connect), or they were reset, or 60 s passed.
    const settle = async (n: number): Promise<void> => {
      for (let t = 0; t < 600; t++) {
        if ((await heldNow()) + resets.length >= n) return;
        await sleep(100);
      }
    };
    for (let i = 0; i < idle; i += 50) {
      ctx.progress(`tunnel: idle connections: ${i}/${idle} held`);
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, idle - i) }, async () => {
          const s = netConnect({ port: idleTunnel.listenPort, host: '127.0.0.1' });
          s.on('error', (err: NodeJS.ErrnoException) => resets.push(err.code ?? err.message));
          await once(s, 'connect');
          return s;
        }),
      );
      socks.push(...batch);
      // Paced: 50 opens at a time, as a user's clients would come, not 1000 handshakes at once
      // (on a loaded machine those outlast the handshake deadline and the figure is of failures).
      await settle(socks.length);
    }
    // Then let the heaps settle.
    await sleep(1000);
    const after = (await Promise.all(idleTunnel.pids.map(rssKiB))).reduce((a, b) => a + b, 0);
    const held = await heldNow();
    for (const s of socks) s.destroy();
    if (held === 0) throw new Error(`tunnel bench: no idle connection reached the target (${resets.length} reset): ${idleTunnel.output().slice(-1000)}`);
    const why = idleTunnel.output().match(/FERRY_ERR_[A-Z_]+/g);
    const note = held < idle ? `${idle - held} of ${idle} not held (${resets.length} reset${why ? `; the tunnel ends logged ${[...new Set(why)].join(', ')}` : ''}); per held connection` : undefined;
    rows.push({ id: 'tunnel/ferry-sealed/idle-connection-rss', system: 'ferry-sealed', what: `RSS of both tunnel processes per idle tunnelled connection, ${held} of them`, unit: 'KiB', value: Math.round(((after - before) / held) * 10) / 10, connections: held, ...(note ? { note } : {}) });
    info.idleConnections = idle;
    info.cuts = cuts;
    if (ctx.netns) {
      const roam = await addressChangeRows(ctx, dir);
      rows.push(...roam.rows);
      info.addressChanges = roam.changes;
    }
    return { rows, info };
  } finally {
    process.off('exit', onExit);
    stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}
