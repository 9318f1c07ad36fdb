/**
 * `scale`: 10 000 concurrent established connections (quick: 500) on one host pair, Ferry with
 * security on against raw TCP. Each side runs in its own child process (`scale-child.ts`), so
 * memory is read per side, after a full gc, before and after the connections are opened:
 * resident set (RSS) and JS heap + external buffers, per connection (the first 100 connections
 * are opened before the first reading, so that warm-up is not charged to connections). The idle-connection figure
 * is the larger of the two sides (a host holds one end of each connection, whichever side
 * opened it). Then 1 000 of the connections (quick: 100) push 64 KiB messages at once until each
 * has sent 512 KiB (quick: 256 KiB) or 3 s (quick: 0.5 s) passed; aggregate throughput is bytes
 * over first write to the last end of stream, verified byte for byte.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.js';
import { ratio, type Row, type SuiteResult } from '../lib/stats.js';
import type { ScaleMemory, ScaleTarget } from './scale-child.js';

/** A child process driven by request/response over IPC. */
class Child {
  private readonly proc: ChildProcess;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(name: string) {
    this.proc = fork(fileURLToPath(new URL('./scale-child.js', import.meta.url)), [name], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(`${name}: ${m.error}`));
      else w?.resolve(m.result);
    });
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`${name} exited with ${code}`));
      this.waiting.clear();
    });
  }
  call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd, ...args });
    });
  }
  async exit(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    await this.call('exit').catch(() => {});
    await Promise.race([gone, new Promise<void>((r) => setTimeout(r, 2000))]);
    if (this.proc.exitCode === null) this.proc.kill();
  }
}

interface SideFigures {
  openMs: number;
  opened: number;
  rssKiB: number;
  heapKiB: number;
  serverRssKiB: number;
  clientRssKiB: number;
  mibps: number;
  bytes: number;
  seconds: number;
}

/** Connections opened before the first memory reading (and counted in the total). */
const WARMUP_CONNECTIONS = 100;
/** Opens in flight at once. */
const OPEN_CONCURRENCY = Number(process.env.FERRY_BENCH_OPEN_CONCURRENCY ?? 64);

const kib = (b: number): number => Math.round((b / 1024) * 100) / 100;

async function measure(ctx: BenchContext, system: 'tcp' | 'ferry', n: number, active: number, bytesEach: number, ms: number): Promise<SideFigures> {
  const server = new Child(`scale-${system}-server`);
  const client = new Child(`scale-${system}-client`);
  try {
    const target = await server.call<ScaleTarget>('serve', { system });
    await client.call('prepare', { system, target });
    // A first batch warms up code, caches and pools, so the memory delta is the steady cost.
    await client.call('dial', { system, target, n: WARMUP_CONNECTIONS, concurrency: 64 });
    const s0 = await server.call<ScaleMemory>('mem');
    const c0 = await client.call<ScaleMemory>('mem');
    ctx.progress(`scale: ${system} opening ${n} connections`, true);
    const ticker = setInterval(() => {
      void server.call<{ count: number }>('count').then((c) => ctx.progress(`scale: ${system} ${c.count}/${n} connections established`), () => {});
    }, 1000);
    let dial: { ms: number; opened: number };
    try {
      dial = await client.call<{ ms: number; opened: number }>('dial', { system, target, n: n - WARMUP_CONNECTIONS, concurrency: OPEN_CONCURRENCY });
      const deadline = Date.now() + 30_000;
      while ((await server.call<{ count: number }>('count')).count < n) {
        if (Date.now() > deadline) throw new Error(`scale: server side saw fewer than ${n} ${system} connections`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      clearInterval(ticker);
    }
    ctx.progress(`scale: ${system} ${n} connections open in ${(dial.ms / 1000).toFixed(1)} s; reading memory`, true);
    const s1 = await server.call<ScaleMemory>('mem');
    const c1 = await client.call<ScaleMemory>('mem');
    const per = (a: number, b: number): number => kib((b - a) / (n - WARMUP_CONNECTIONS));
    const serverRss = per(s0.rss, s1.rss);
    const clientRss = per(c0.rss, c1.rss);
    const heap = Math.max(per(s0.heapUsed + s0.external, s1.heapUsed + s1.external), per(c0.heapUsed + c0.external, c1.heapUsed + c1.external));
    ctx.progress(`scale: ${system} ${active} connections pushing at once`, true);
    const ends = server.call<{ bytes: number; end: number }>('expect', { k: active });
    const push = await client.call<{ sent: number; start: number }>('push', { k: active, messageBytes: 64 * 1024, bytesEach, ms });
    const got = await ends;
    if (got.bytes !== push.sent) throw new Error(`verification failed: scale ${system} sent ${push.sent} bytes, server got ${got.bytes}`);
    const seconds = (got.end - push.start) / 1000;
    return {
      openMs: dial.ms,
      opened: dial.opened,
      rssKiB: Math.max(serverRss, clientRss),
      heapKiB: heap,
      serverRssKiB: serverRss,
      clientRssKiB: clientRss,
      mibps: Math.round((got.bytes / 1048576 / seconds) * 10) / 10,
      bytes: got.bytes,
      seconds,
    };
  } finally {
    await Promise.all([server.exit(), client.exit()]);
  }
}

/** Run the suite. */
export async function runScale(ctx: BenchContext): Promise<SuiteResult> {
  const n = ctx.quick ? 500 : 10_000;
  const active = ctx.quick ? 100 : 1000;
  const bytesEach = ctx.quick ? 256 * 1024 : 512 * 1024;
  const ms = ctx.quick ? 500 : 3000;
  const tcp = await measure(ctx, 'tcp', n, active, bytesEach, ms);
  const ferry = await measure(ctx, 'ferry', n, active, bytesEach, ms);
  const rows: Row[] = [];
  for (const [system, f] of [
    ['tcp', tcp],
    ['ferry-secure', ferry],
  ] as const) {
    const b = system === 'tcp' ? undefined : tcp;
    const withBase = (id: string, value: number, baseValue: number | undefined): Pick<Row, 'baseline' | 'ratio'> => (b ? { baseline: id.replace(system, 'tcp'), ratio: ratio(value, baseValue) } : {});
    const openId = `scale/${system}/open-all`;
    const memId = `scale/${system}/idle-connection-rss`;
    const heapId = `scale/${system}/idle-connection-heap`;
    const thrId = `scale/${system}/throughput-active`;
    rows.push(
      { id: `scale/${system}/connections`, system, what: 'connections established', unit: 'count', value: f.opened, connections: n },
      { id: openId, system, what: `time to open ${n - WARMUP_CONNECTIONS} connections (${OPEN_CONCURRENCY} at a time) after ${WARMUP_CONNECTIONS}`, unit: 's', value: Math.round(f.openMs) / 1000, connections: n, ...withBase(openId, f.openMs, b?.openMs) },
      { id: memId, system, what: 'resident memory per idle connection (larger side)', unit: 'KiB', value: f.rssKiB, connections: n, note: `server side ${f.serverRssKiB} KiB, client side ${f.clientRssKiB} KiB`, ...withBase(memId, f.rssKiB, b?.rssKiB) },
      { id: heapId, system, what: 'JS heap + external buffers per idle connection (larger side)', unit: 'KiB', value: f.heapKiB, connections: n, ...withBase(heapId, f.heapKiB, b?.heapKiB) },
      { id: thrId, system, what: `throughput of ${active} connections active at once, 64 KiB messages`, unit: 'MiB/s', value: f.mibps, connections: active, note: `${(f.bytes / 1048576).toFixed(0)} MiB in ${f.seconds.toFixed(2)} s`, ...withBase(thrId, f.mibps, b?.mibps) },
    );
  }
  return { rows, info: { connections: n, active, bytesEach, boundMs: ms } };
}
