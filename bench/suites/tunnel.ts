/**
 * `tunnel`: `ferry tunnel` (serve and connect as processes, as a user runs them) against direct
 * TCP and OpenSSH's `ssh -L` to an sshd started here, in one run (docs/TUNNEL.md):
 *
 * - throughput of one TCP connection, 64 KiB and 1 MiB messages: sealed tunnel over `ssh -L`,
 *   plain tunnel over direct TCP (bytes pushed from this process to a drain in this process);
 * - the bound of the topology: two minimal Node relay processes in a row (what the two tunnel
 *   ends cost if they only copied), in the throughput and redis figures, each tunnel figure also
 *   as a ratio over it;
 * - `redis-benchmark -P 16` (SET and GET, 4 clients) operations per second through the sealed
 *   tunnel, over direct and over `ssh -L`;
 * - the time from a cut of the data path (every Ferry data socket reset, as the tests do) to the
 *   next echoed byte, p50, with the round-trip time through the tunnel in the same run;
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
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeTcpPort, startRedisServer } from '../../src/testing/index.js';
import type { BenchContext } from '../lib/context.js';
import { ratio, sleep, summarize, type Row, type SuiteResult } from '../lib/stats.js';
import { drainDuplex, pushDuplex, transfer } from '../lib/systems.js';
import { addressChangeRows } from './tunnel-roam.js';

const FERRY = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      resolve({ code: c.exitCode, out: String(out), err: String(errOut) });
    });
  });
}

/** Spawn and wait for a line of stdout or stderr matching `re`. */
async function startUntil(cmd: string, args: string[], re: RegExp, ms = 15_000): Promise<{ child: ChildProcess; m: RegExpExecArray }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd}: no line matching ${re} within ${ms} ms: ${text.slice(-1000)}`)), ms);
    const on = (c: Buffer): void => {
      text += c.toString();
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve({ child, m });
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

const rssKiB = async (pid: number): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]);

/** A serving and a connecting tunnel end to 127.0.0.1:`to`; the connecting end listens on `listenPort`. */
async function tunnel(dir: string, to: number, plain: boolean, tag: string): Promise<{ listenPort: number; ports: number[]; pids: number[]; stop(): void }> {
  const sec = plain ? ['--no-security'] : [];
  const id = (await run(process.execPath, [FERRY, 'tunnel', 'id', '--key', join(dir, `${tag}-c.key`)])).out.trim();
  const ready = /ferry tunnel ready: agent=([0-9a-f]{32}) .*redirector=[0-9.]+:(\d+) rendezvous=([0-9.]+:\d+)/;
  const serve = await startUntil(process.execPath, [FERRY, 'tunnel', 'serve', '--key', join(dir, `${tag}-s.key`), '--to', `127.0.0.1:${to}`, '--allow', id, ...sec], ready);
  const connect = await startUntil(process.execPath, [FERRY, 'tunnel', 'connect', serve.m[1]!, '--key', join(dir, `${tag}-c.key`), '--rendezvous', serve.m[3]!, '--listen', '127.0.0.1:0', ...sec], ready);
  const listenPort = Number(/listen=127\.0\.0\.1:(\d+)/.exec(connect.m[0])![1]);
  return {
    listenPort,
    ports: [Number(serve.m[2]), Number(connect.m[2])],
    pids: [serve.child.pid!, connect.child.pid!],
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

/** Push bytes through `port` to the drain; MiB/s of the median trial, verified. */
async function throughput(port: number, drains: Socket[] & { next?: () => Promise<Socket> }, next: () => Promise<Socket>, msg: Buffer, maxBytes: number, ms: number, trials: number): Promise<number> {
  const results: number[] = [];
  for (let i = 0; i < trials; i++) {
    const c = netConnect({ port, host: '127.0.0.1', noDelay: true });
    await once(c, 'connect');
    const recv = drainDuplex(await next());
    const t0 = performance.now();
    const sent = await pushDuplex(c, msg, maxBytes, t0 + ms);
    const { bytes, end } = await recv;
    if (bytes !== sent) throw new Error(`tunnel bench: sent ${sent}, drain got ${bytes}`);
    c.destroy();
    results.push(transfer(bytes, t0, end).mibps);
    await sleep(100);
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)]!;
}

function redisOps(out: string): number {
  const rates = [...out.matchAll(/: ([\d.]+) requests per second/g)].map((m) => Number(m[1]));
  if (rates.length === 0) throw new Error(`redis-benchmark printed no rate: ${out.slice(-500)}`);
  return rates.reduce((a, b) => a + b, 0) / rates.length;
}

/** Run the suite. */
export async function runTunnel(ctx: BenchContext): Promise<SuiteResult> {
  const rows: Row[] = [];
  const stops: (() => void)[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-tunnel-'));
  const info: Record<string, unknown> = {};
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

    ctx.progress('tunnel: starting tunnels and ssh -L', true);
    const sealed = await tunnel(dir, drainPort, false, 'sealed');
    stops.push(sealed.stop);
    const plain = await tunnel(dir, drainPort, true, 'plain');
    stops.push(plain.stop);
    const ssh = await sshForward(dir, drainPort, stops);
    const relay = await relayPair(drainPort, stops);

    const trials = ctx.quick ? 1 : 5;
    const maxBytes = ctx.quick ? 8 * 1048576 : 256 * 1048576;
    const ms = ctx.quick ? 250 : 2000;
    for (const size of [64 * 1024, 1048576]) {
      const msg = randomBytes(size);
      const label = size === 65536 ? '64 KiB' : '1 MiB';
      const fig: Record<string, number> = {};
      for (const [system, port] of [['tcp', drainPort], ['ssh-L', ssh], ['relay', relay], ['tunnel-plain', plain.listenPort], ['tunnel-sealed', sealed.listenPort]] as const) {
        ctx.progress(`tunnel: throughput ${system} ${label}`);
        fig[system] = await throughput(port, [], next, msg, maxBytes, ms, trials);
      }
      rows.push({ id: `tunnel/tcp/${size}`, system: 'tcp', what: `direct TCP, ${label} messages`, unit: 'MiB/s', value: fig.tcp!, messageBytes: size });
      rows.push({ id: `tunnel/ssh-L/${size}`, system: 'ssh-L', what: `ssh -L (OpenSSH), ${label} messages`, unit: 'MiB/s', value: fig['ssh-L']!, messageBytes: size });
      rows.push({ id: `tunnel/ferry-plain/${size}`, system: 'ferry-plain', what: `plain tunnel, ${label} messages`, unit: 'MiB/s', value: fig['tunnel-plain']!, messageBytes: size, baseline: `tunnel/tcp/${size}`, ratio: ratio(fig['tunnel-plain'], fig.tcp)! });
      rows.push({ id: `tunnel/ferry-sealed/${size}`, system: 'ferry-sealed', what: `sealed tunnel, ${label} messages`, unit: 'MiB/s', value: fig['tunnel-sealed']!, messageBytes: size, baseline: `tunnel/ssh-L/${size}`, ratio: ratio(fig['tunnel-sealed'], fig['ssh-L'])! });
      rows.push({ id: `tunnel/relay/${size}`, system: 'relay', what: `two minimal Node relay processes (the bound), ${label} messages`, unit: 'MiB/s', value: fig.relay!, messageBytes: size, baseline: `tunnel/tcp/${size}`, ratio: ratio(fig.relay, fig.tcp)! });
      rows.push({ id: `tunnel/ferry-plain/${size}/vs-relay`, system: 'ferry-plain', what: `plain tunnel over the relay pair, ${label} messages`, unit: 'MiB/s', value: fig['tunnel-plain']!, messageBytes: size, baseline: `tunnel/relay/${size}`, ratio: ratio(fig['tunnel-plain'], fig.relay)! });
    }

    // redis-benchmark -P 16: a redis-server of its own, reached direct, through ssh -L, through the sealed tunnel.
    const redis = await startRedisServer();
    stops.push(() => void redis.destroy());
    const redisSealed = await tunnel(dir, redis.port, false, 'redis');
    stops.push(redisSealed.stop);
    const redisSsh = await sshForward(await mkdtemp(join(dir, 'ssh2-')), redis.port, stops);
    const redisRelay = await relayPair(redis.port, stops);
    const n = ctx.quick ? 5000 : 200_000;
    const ops: Record<string, number> = {};
    for (const [system, port] of [['direct', redis.port], ['ssh-L', redisSsh], ['relay', redisRelay], ['tunnel', redisSealed.listenPort]] as const) {
      ctx.progress(`tunnel: redis-benchmark ${system}`);
      const r = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-P', '16', '-c', '4', '-n', String(n), '-t', 'set,get', '-q']);
      if (r.code !== 0) throw new Error(`redis-benchmark ${system}: ${r.err}`);
      ops[system] = Math.round(redisOps(r.out));
    }
    rows.push({ id: 'tunnel/redis/direct', system: 'tcp', what: 'redis-benchmark -P 16 (SET, GET) ops/s, direct', unit: 'count', value: ops.direct! });
    rows.push({ id: 'tunnel/redis/ssh-L', system: 'ssh-L', what: 'redis-benchmark -P 16 ops/s through ssh -L', unit: 'count', value: ops['ssh-L']! });
    rows.push({ id: 'tunnel/redis/ferry-sealed', system: 'ferry-sealed', what: 'redis-benchmark -P 16 ops/s through the sealed tunnel, over direct', unit: 'count', value: ops.tunnel!, baseline: 'tunnel/redis/direct', ratio: ratio(ops.tunnel, ops.direct)! });
    rows.push({ id: 'tunnel/redis/relay', system: 'relay', what: 'redis-benchmark -P 16 ops/s through two minimal Node relays (the bound), over direct', unit: 'count', value: ops.relay!, baseline: 'tunnel/redis/direct', ratio: ratio(ops.relay, ops.direct)! });
    rows.push({ id: 'tunnel/redis/ferry-sealed/vs-relay', system: 'ferry-sealed', what: 'redis-benchmark -P 16 ops/s through the sealed tunnel, over the relay pair', unit: 'count', value: ops.tunnel!, baseline: 'tunnel/redis/relay', ratio: ratio(ops.tunnel, ops.relay)! });
    rows.push({ id: 'tunnel/redis/ferry-sealed/vs-ssh', system: 'ferry-sealed', what: 'redis-benchmark -P 16 ops/s through the sealed tunnel, over ssh -L', unit: 'count', value: ops.tunnel!, baseline: 'tunnel/redis/ssh-L', ratio: ratio(ops.tunnel, ops['ssh-L'])! });

    // Time from a cut to the next echoed byte, and the RTT, through the sealed tunnel to an echo.
    const echo = createServer({ noDelay: true }, (s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    stops.push(() => echo.close());
    const echoTunnel = await tunnel(dir, (echo.address() as AddressInfo).port, false, 'echo');
    stops.push(echoTunnel.stop);
    const c = netConnect({ port: echoTunnel.listenPort, host: '127.0.0.1', noDelay: true });
    await once(c, 'connect');
    const ping = async (): Promise<number> => {
      const t0 = performance.now();
      c.write('x');
      await once(c, 'data');
      return performance.now() - t0;
    };
    for (let i = 0; i < 20; i++) await ping();
    const rtts: number[] = [];
    const recoveries: number[] = [];
    const cuts = ctx.quick ? 3 : 30;
    for (let i = 0; i < cuts; i++) {
      ctx.progress(`tunnel: cut ${i + 1}/${cuts}`);
      for (let j = 0; j < 10; j++) rtts.push(await ping());
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
    const holder = createServer(() => {});
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    stops.push(() => holder.close());
    const idleTunnel = await tunnel(dir, (holder.address() as AddressInfo).port, false, 'idle');
    stops.push(idleTunnel.stop);
    await sleep(500);
    const before = (await Promise.all(idleTunnel.pids.map(rssKiB))).reduce((a, b) => a + b, 0);
    const socks: Socket[] = [];
    ctx.progress(`tunnel: ${idle} idle connections`);
    for (let i = 0; i < idle; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, idle - i) }, async () => {
          const s = netConnect({ port: idleTunnel.listenPort, host: '127.0.0.1' });
          await once(s, 'connect');
          return s;
        }),
      );
      socks.push(...batch);
    }
    // Until the holder has them all (each open is a Ferry handshake), then let the heaps settle.
    for (let t = 0; t < 600; t++) {
      const n = await new Promise<number>((r) => holder.getConnections((_e, k) => r(k)));
      if (n >= idle) break;
      await sleep(100);
    }
    await sleep(1000);
    const after = (await Promise.all(idleTunnel.pids.map(rssKiB))).reduce((a, b) => a + b, 0);
    for (const s of socks) s.destroy();
    rows.push({ id: 'tunnel/ferry-sealed/idle-connection-rss', system: 'ferry-sealed', what: `RSS of both tunnel processes per idle tunnelled connection, ${idle} of them`, unit: 'KiB', value: Math.round(((after - before) / idle) * 10) / 10, connections: idle });
    info.idleConnections = idle;
    info.cuts = cuts;
    if (ctx.netns) {
      const roam = await addressChangeRows(ctx, dir);
      rows.push(...roam.rows);
      info.addressChanges = roam.changes;
    }
    return { rows, info };
  } finally {
    for (const s of stops.reverse()) s();
    await rm(dir, { recursive: true, force: true });
  }
}
