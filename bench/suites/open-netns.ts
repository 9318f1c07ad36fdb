/**
 * `open --netns`: the `open` suite's open and close latency between two network namespaces, each
 * with its own address on a veth pair to a bridge (src/testing's `NetnsLab`), instead of on
 * loopback. Namespace A runs a serving process (raw TCP, TLS 1.3 and js-libp2p listeners, an
 * embedded rendezvous, Ferry hosts with security off and on, each with a listening agent);
 * namespace B runs a measuring process that opens and closes against A with the loopback
 * suite's contenders, method and iteration counts (see `open-netns-child.ts`). Ferry's client
 * hosts find A's agents through A's rendezvous, as `ferry host --rendezvous` does.
 *
 * Unlike the loopback run, the two ends are separate processes (one per namespace), as hosts
 * with their own addresses are. Rows: `open/netns/SYSTEM/{open,close}` with baselines and
 * ratios from the same namespaces in the same run.
 *
 * Needs root and iproute2; without them it throws with the reason (`ferry bench --netns`
 * refuses earlier with the same reason). The namespaces and both processes are removed on every
 * way out: return, throw, SIGINT/SIGTERM/SIGHUP, or process exit; the children also exit when
 * their stdin (a pipe from this process) ends.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lineMatching, NetnsLab, netnsUnavailableReason } from '../../src/testing/index.js';
import type { BenchContext } from '../lib/context.js';
import { openCloseRows, setBaselines, type NetnsInfo } from '../lib/latency.js';
import type { Row } from '../lib/stats.js';
import type { NetnsMeasurement, NetnsTarget } from './open-netns-child.js';

const CHILD = fileURLToPath(new URL('./open-netns-child.js', import.meta.url));

/** How long the serving side may take to start, and the measuring side to finish. */
const READY_MS = 30_000;
const MEASURE_MS = { quick: 120_000, full: 900_000 };

/** A child's end: its status and output (stderr lines starting "progress: " go to `onProgress`). */
interface Ended {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Collect `child`'s output from now on; resolves when it has exited and its pipes closed. */
function ended(child: ChildProcess, onProgress: (line: string) => void = () => {}): Promise<Ended> {
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => {
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      if (l.startsWith('progress: ')) onProgress(l.slice('progress: '.length));
      else stderr += l + '\n';
    }
  });
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr: stderr + partial })));
}

/** `end`, or undefined after `ms` (when `child` gets SIGKILL, and `end` still resolves). */
async function within(child: ChildProcess, end: Promise<Ended>, ms: number): Promise<Ended | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  const r = await Promise.race([end, late]);
  clearTimeout(timer);
  if (!r) {
    child.kill('SIGKILL');
    await end;
  }
  return r;
}

/** Run the namespace part of `open`; `it` are the loopback run's iterations (for the record). */
export async function runOpenNetns(ctx: BenchContext, it: { warmup: number; n: number }): Promise<{ rows: Row[]; info: NetnsInfo }> {
  const reason = netnsUnavailableReason();
  if (reason) throw new Error(`--netns: ${reason}`);
  const t0 = performance.now();
  const lab = NetnsLab.create(2);
  const destroy = (): void => lab.destroy();
  const onSignal = (signal: NodeJS.Signals): void => {
    destroy();
    removeHooks();
    process.kill(process.pid, signal);
  };
  const removeHooks = (): void => {
    process.off('exit', destroy);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, onSignal);
  };
  process.on('exit', destroy);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
  try {
    const [a, b] = [lab.ips[0]!, lab.ips[1]!];
    ctx.progress(`open: between namespaces: ${lab.names[0]} (${a}) serving, ${lab.names[1]} (${b}) measuring; starting`, true);
    const server = lab.spawnNode(0, [CHILD, 'serve', a, b], { stdin: 'pipe' });
    const serverEnd = ended(server);
    const target = JSON.parse((await lineMatching(server, /^(\{.*\})$/, READY_MS))[1]!) as NetnsTarget;
    if (target.ip !== a) throw new Error(`serving side reports ${target.ip}, expected ${a}`);
    const client = lab.spawnNode(1, [CHILD, 'measure', b, JSON.stringify(target), ctx.quick ? 'quick' : 'full'], { stdin: 'pipe' });
    const ms = ctx.quick ? MEASURE_MS.quick : MEASURE_MS.full;
    const done = await within(client, ended(client, (line) => ctx.progress(line)), ms);
    if (!done || done.code !== 0) {
      const why = !done ? `no result within ${ms / 1000} s` : done.signal ? `killed by ${done.signal}` : `exit status ${done.code}`;
      const err = done?.stderr.trim().split('\n').slice(-5).join(' | ') ?? '';
      throw new Error(`measuring process in ${lab.names[1]} failed (${why})${err ? `: ${err}` : ''}`);
    }
    const m = JSON.parse(done.stdout.trim().split('\n').pop()!) as NetnsMeasurement;
    if (m.iterations.n !== it.n || m.iterations.warmup !== it.warmup) throw new Error(`namespace run used ${JSON.stringify(m.iterations)}, loopback ${JSON.stringify(it)}`);
    const rows = openCloseRows(
      'open/netns',
      m.contenders.map((c) => ({ ...c, what: `${c.what}; between network namespaces (${b} to ${a} over veth and a bridge, each end its own process)` })),
    );
    setBaselines(rows, 'open/netns', ['open']);
    // Stop the serving side gracefully: its stdin ends, it closes its hosts and exits.
    server.stdin!.end();
    const stopped = await within(server, serverEnd, 5_000);
    if (stopped?.code !== 0) ctx.progress(`open: between namespaces: the serving process did not stop cleanly (${stopped ? (stopped.signal ?? `status ${stopped.code}`) : 'killed after 5 s'})`, true);
    return { rows, info: { server: a, client: b, iterations: m.iterations, tlsResumed: m.tlsResumed, seconds: Math.round((performance.now() - t0) / 100) / 10 } };
  } finally {
    destroy();
    removeHooks();
  }
}
