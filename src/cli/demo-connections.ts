/**
 * `ferry demo`: a location table and three hosts on loopback in one process; two agents stream
 * checksummed data both ways while their connection endpoints hop between hosts — one end alone,
 * then both at once — and the verdict compares SHA-256 digests and byte counts of each direction.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AgentSocket } from '../connection/index.js';
import { Host } from '../host/index.js';
import type { Identity } from '../identity/index.js';
import { MemoryLocationTable } from '../location/index.js';
import { createLogger, silentLogger } from '../util/index.js';
import { Progress, formatBytes, percentiles } from './progress.js';

/** Demo options (see `ferry demo --help`). */
export interface DemoOptions {
  bytes: number;
  moves: number;
  security: boolean;
  json: boolean;
  verbose: boolean;
}

/** One direction of one connection, as its two ends saw it. */
export interface DemoDirection {
  from: string;
  to: string;
  sent: number;
  delivered: number;
  /** The writer's digest equals the reader's, and the reader found no byte out of place. */
  digestsEqual: boolean;
}

/** The verdict; the `--json` line is exactly this object. */
export interface DemoResult {
  ok: boolean;
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  moves: number;
  simultaneousMoves: number;
  suspendMs: { p50: number; p90: number; max: number };
  resumeMs: { p50: number; p90: number; max: number };
  security: boolean;
  seconds: number;
  directions: DemoDirection[];
}

/** One agent's end: its current host and socket, and the two running digests. */
class End {
  host: number;
  sock!: AgentSocket;
  sent = 0;
  received = 0;
  readonly sentHash = createHash('sha256');
  readonly recvHash = createHash('sha256');
  /** Resolves while the end is not moving; the writer waits on it. */
  gate: Promise<void> = Promise.resolve();
  private open: (() => void) | undefined;
  constructor(readonly name: string, readonly agent: Identity, host: number) {
    this.host = host;
  }
  adopt(sock: AgentSocket): void {
    this.sock = sock;
    sock.on('data', (c: Buffer) => {
      this.received += c.length;
      this.recvHash.update(c);
    });
    sock.on('error', () => {});
  }
  close(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
  }
}

const CHUNK = 16 * 1024;

async function writer(end: End, total: number): Promise<void> {
  while (end.sent < total) {
    await end.gate;
    const n = Math.min(CHUNK, total - end.sent);
    const chunk = randomBytes(n);
    end.sentHash.update(chunk);
    end.sent += n;
    if (!end.sock.write(chunk)) {
      const s = end.sock;
      await new Promise<void>((r) => {
        const done = (): void => {
          s.off('drain', done);
          s.off('moved', done);
          r();
        };
        s.once('drain', done);
        s.once('moved', done);
      });
    }
  }
}

/** Run the demo and return its verdict. */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const progress = new Progress(process.stderr, opts.json && !process.stderr.isTTY);
  const logger = opts.verbose ? createLogger('info') : silentLogger;
  const location = new MemoryLocationTable();
  const hosts: Host[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < 3; i++) hosts.push(await Host.start({ location, name: `host${i}`, security: opts.security, logger }));
    const a = new End('A', await hosts[0]!.addAgent(), 0);
    const b = new End('B', await hosts[1]!.addAgent(), 1);
    const server = hosts[1]!.listen(b.agent.id);
    const accepted = server.accept();
    a.adopt(await hosts[0]!.connect(a.agent.id, b.agent.id));
    b.adopt(await accepted);

    const suspendMs: number[] = [];
    const resumeMs: number[] = [];
    let moves = 0;
    let simultaneous = 0;
    const move = async (end: End): Promise<void> => {
      const to = [0, 1, 2].filter((h) => h !== end.host)[Math.floor(Math.random() * 2)]!;
      end.close();
      const t0 = performance.now();
      const cp = await hosts[end.host]!.detachAgent(end.agent.id);
      const t1 = performance.now();
      const { sockets } = await hosts[to]!.attachAgent(JSON.parse(JSON.stringify(cp)));
      end.host = to;
      end.adopt(sockets[0]!);
      end.release();
      await new Promise<void>((resolve) => {
        if (end.sock.state === 'ESTABLISHED') return resolve();
        end.sock.on('state', function on(this: AgentSocket, s: string) {
          if (s === 'ESTABLISHED') {
            end.sock.off('state', on);
            resolve();
          }
        });
      });
      suspendMs.push(t1 - t0);
      resumeMs.push(performance.now() - t1);
      moves++;
    };

    const total = opts.bytes;
    const writers = Promise.all([writer(a, total), writer(b, total)]);
    const show = (phase: string, force = false): void => {
      const pct = Math.floor(((a.received + b.received) / (2 * total)) * 100);
      progress.update(`[${String(pct).padStart(3)}%] A→B ${formatBytes(b.received)} · B→A ${formatBytes(a.received)} · moves ${moves} (${simultaneous} simultaneous) · ${phase}`, force);
    };
    const ticker = setInterval(() => show('streaming'), 100);
    // The schedule: A alone, B alone, then both at once; repeated. Each move starts when the
    // delivered bytes cross the next equal share of the total, so every move happens mid-stream.
    for (let i = 0; i < opts.moves; i++) {
      const mark = ((i + 1) / (opts.moves + 1)) * 2 * total;
      while (a.received + b.received < mark) await new Promise((r) => setTimeout(r, 2));
      const kind = i % 3;
      if (kind === 0) {
        show(`moving A alone`, true);
        await move(a);
      } else if (kind === 1) {
        show(`moving B alone`, true);
        await move(b);
      } else {
        show(`moving A and B at once`, true);
        await Promise.all([move(a), move(b)]);
        simultaneous++;
      }
    }
    await writers;
    a.sock.end();
    b.sock.end();
    const deadline = Date.now() + 60_000;
    while ((a.received < total || b.received < total) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(ticker);
    show('done', true);
    progress.done();

    const dirs = [
      { from: a, to: b },
      { from: b, to: a },
    ].map(({ from, to }) => ({
      from: from.name,
      to: to.name,
      sent: from.sent,
      delivered: to.received,
      digestsEqual: from.sentHash.copy().digest('hex') === to.recvHash.copy().digest('hex'),
    }));
    const sent = dirs.reduce((s, d) => s + d.sent, 0);
    const delivered = dirs.reduce((s, d) => s + d.delivered, 0);
    const result: DemoResult = {
      ok: dirs.every((d) => d.digestsEqual && d.sent === d.delivered),
      sent,
      delivered,
      lost: dirs.reduce((s, d) => s + Math.max(0, d.sent - d.delivered), 0),
      duplicated: dirs.reduce((s, d) => s + Math.max(0, d.delivered - d.sent), 0),
      moves,
      simultaneousMoves: simultaneous,
      suspendMs: percentiles(suspendMs),
      resumeMs: percentiles(resumeMs),
      security: opts.security,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      directions: dirs,
    };
    await Promise.all([a.sock.close(5000).catch(() => {}), b.sock.close(5000).catch(() => {})]);
    return result;
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
  }
}

/** The human verdict. */
export function formatVerdict(r: DemoResult): string {
  const lines = [
    `${r.ok ? 'PASS' : 'FAIL'}: ${r.ok ? 'both byte streams arrived exactly once, in order' : 'the byte streams differ'} (security ${r.security ? 'on' : 'off'}, ${r.seconds} s)`,
    ...r.directions.map((d) => `  ${d.from} → ${d.to}: sent ${formatBytes(d.sent)}, delivered ${formatBytes(d.delivered)}, SHA-256 ${d.digestsEqual ? 'equal' : 'DIFFERENT'}`),
    `  moves: ${r.moves} (${r.simultaneousMoves} with both ends at once), lost ${r.lost} B, duplicated ${r.duplicated} B`,
    `  suspend (detach + drain): p50 ${r.suspendMs.p50} ms, p90 ${r.suspendMs.p90} ms · resume (attach → ESTABLISHED): p50 ${r.resumeMs.p50} ms, p90 ${r.resumeMs.p90} ms`,
  ];
  return lines.join('\n');
}
