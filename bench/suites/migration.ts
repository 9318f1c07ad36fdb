/**
 * `migration`: the downtime of agent moves, as the peers see it, with security on.
 *
 * Each connection carries one marker byte before a move and one after. A round: every sender
 * writes its "before" byte and the bench waits until every receiver has read it (so the stream
 * is quiet and the last byte before is known), then the agents move (detach, checkpoint through
 * JSON as across processes, attach), each moved agent writes its "after" byte on its new
 * sockets, and the round ends when every receiver has read that. A connection's gap is the
 * receiver's time from the before byte to the after byte; a move's downtime is the largest gap
 * over its connections (the agent is back when its last connection is). Receivers check that
 * bytes alternate before/after: nothing lost, nothing twice.
 *
 * - one end moving, with 1, 10, 100 and 1000 connections (quick: 1, 10, 100) between agent A
 *   (moving between two hosts) and agent B (staying);
 * - both ends moving at once (A and B each to another host), one connection;
 * - a ring of 50 agents (quick: 10) on 5 hosts, each connected to the next, all moving at once to
 *   the next host: time from the start of the move to every connection delivering again.
 */
import type { AgentSocket } from '../../src/connection/index.js';
import type { AgentCheckpoint, Host } from '../../src/host/index.js';
import type { Identity } from '../../src/identity/index.js';
import type { BenchContext } from '../lib/context.js';
import { gc, pool, ratio, summarize, type Row, type SuiteResult } from '../lib/stats.js';
import { ferryWorld } from '../lib/systems.js';

const BEFORE = 0x01;
const AFTER = 0x02;
const ROUND_TIMEOUT_MS = 120_000;

/** Per-direction marker bookkeeping, shared by every socket object a connection end gets. */
class Markers {
  private readonly last = new Map<string, number>();
  private readonly beforeAt = new Map<string, number>();
  private readonly afterAt = new Map<string, number>();
  private readonly bytes = new Map<string, number>();
  private target = 0;
  private kind = BEFORE;
  private waiter: (() => void) | undefined;
  private count = 0;
  readonly errors: string[] = [];

  /** Record what `sock` (held by agent `owner`) receives. */
  track(sock: AgentSocket, owner: string): void {
    const key = `${sock.connectionId}>${owner}`;
    sock.on('error', () => {});
    sock.on('data', (chunk: Buffer) => {
      const now = performance.now();
      for (const b of chunk) {
        const expect = (this.last.get(key) ?? AFTER) === AFTER ? BEFORE : AFTER;
        if (b !== expect) this.errors.push(`${key}: got ${b}, expected ${expect}`);
        this.last.set(key, b);
        this.bytes.set(key, (this.bytes.get(key) ?? 0) + 1);
        (b === BEFORE ? this.beforeAt : this.afterAt).set(key, now);
        if (b === this.kind && ++this.count === this.target) this.waiter?.();
      }
    });
  }

  /** Resolves when `n` bytes of `kind` arrived (counting from this call). */
  expect(kind: number, n: number): Promise<void> {
    this.kind = kind;
    this.count = 0;
    this.target = n;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`migration: ${this.count}/${n} markers after ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Gaps (ms) from before to after byte, per direction, for the round that just ended. */
  gaps(): number[] {
    const out: number[] = [];
    for (const [k, after] of this.afterAt) out.push(after - (this.beforeAt.get(k) ?? after));
    this.afterAt.clear();
    this.beforeAt.clear();
    return out;
  }

  /** Check every direction got `rounds` before/after pairs. */
  verify(rounds: number): void {
    for (const [k, n] of this.bytes) if (n !== 2 * rounds) this.errors.push(`${k}: ${n} marker bytes, expected ${2 * rounds}`);
    if (this.errors.length > 0) throw new Error(`verification failed: ${this.errors.slice(0, 3).join('; ')} (${this.errors.length} errors)`);
  }
}

/** A mobile agent in the bench: where it is and its live sockets. */
interface Mobile {
  identity: Identity;
  host: number;
  sockets: AgentSocket[];
}

async function move(hosts: Host[], m: Mobile, to: number, markers: Markers, channel = false): Promise<void> {
  let sockets: AgentSocket[];
  if (channel) {
    // The whole protocol between hosts: authenticated channel, the five steps, registration.
    const dest = hosts[to]!;
    await hosts[m.host]!.migrateAgent(m.identity.id, { ip: dest.ip, redirectorPort: dest.redirectorPort, hostId: dest.id });
    sockets = dest.socketsOf(m.identity.id);
  } else {
    const cp = await hosts[m.host]!.detachAgent(m.identity.id);
    ({ sockets } = await hosts[to]!.attachAgent(JSON.parse(JSON.stringify(cp)) as AgentCheckpoint));
  }
  m.host = to;
  m.sockets = sockets;
  for (const s of sockets) {
    markers.track(s, m.identity.id);
    s.write(Buffer.of(AFTER));
  }
}

/** One agent with `n` connections moving back and forth `moves` times; returns per-move downtimes. */
async function oneEnd(ctx: BenchContext, n: number, moves: number, channel = false): Promise<{ downtime: number[]; medianGap: number[] }> {
  const w = await ferryWorld(3, true);
  const markers = new Markers();
  try {
    const a: Mobile = { identity: await w.hosts[0]!.addAgent(), host: 0, sockets: [] };
    const b = await w.hosts[1]!.addAgent();
    w.hosts[1]!.listen(b.id).on('connection', (s: AgentSocket) => markers.track(s, b.id));
    ctx.progress(`migration: opening ${n} connections`, true);
    a.sockets = await pool(n, 32, async () => w.hosts[0]!.connect(a.identity.id, b.id));
    for (const s of a.sockets) markers.track(s, a.identity.id);
    const downtime: number[] = [];
    const medianGap: number[] = [];
    gc();
    for (let i = 0; i < moves; i++) {
      const before = markers.expect(BEFORE, n);
      for (const s of a.sockets) s.write(Buffer.of(BEFORE));
      await before;
      const after = markers.expect(AFTER, n);
      await move(w.hosts, a, a.host === 0 ? 2 : 0, markers, channel);
      await after;
      const gaps = markers.gaps().sort((x, y) => x - y);
      downtime.push(gaps[gaps.length - 1]!);
      medianGap.push(gaps[Math.floor(gaps.length / 2)]!);
      ctx.progress(`migration: ${n} connection${n === 1 ? '' : 's'}, move ${i + 1}/${moves}`);
    }
    markers.verify(moves);
    return { downtime, medianGap };
  } finally {
    await w.close();
  }
}

/** Both ends of one connection moving at once, `moves` times. */
async function bothEnds(ctx: BenchContext, moves: number): Promise<number[]> {
  const w = await ferryWorld(4, true);
  const markers = new Markers();
  try {
    const a: Mobile = { identity: await w.hosts[0]!.addAgent(), host: 0, sockets: [] };
    const b: Mobile = { identity: await w.hosts[1]!.addAgent(), host: 1, sockets: [] };
    const accepted = w.hosts[1]!.listen(b.identity.id).accept();
    a.sockets = [await w.hosts[0]!.connect(a.identity.id, b.identity.id)];
    b.sockets = [await accepted];
    markers.track(a.sockets[0]!, a.identity.id);
    markers.track(b.sockets[0]!, b.identity.id);
    const out: number[] = [];
    gc();
    for (let i = 0; i < moves; i++) {
      const before = markers.expect(BEFORE, 2);
      for (const m of [a, b]) m.sockets[0]!.write(Buffer.of(BEFORE));
      await before;
      const after = markers.expect(AFTER, 2);
      // A alternates between hosts 0 and 2, B between 1 and 3: always two different hosts.
      await Promise.all([move(w.hosts, a, a.host === 0 ? 2 : 0, markers), move(w.hosts, b, b.host === 1 ? 3 : 1, markers)]);
      await after;
      out.push(Math.max(...markers.gaps()));
      ctx.progress(`migration: both ends moving, move ${i + 1}/${moves}`);
    }
    markers.verify(moves);
    return out;
  } finally {
    await w.close();
  }
}

/** A ring of `size` agents on `hostCount` hosts, all moving at once, `rounds` times. */
async function ring(ctx: BenchContext, size: number, hostCount: number, rounds: number): Promise<number[]> {
  const w = await ferryWorld(hostCount, true);
  const markers = new Markers();
  try {
    const agents: Mobile[] = [];
    for (let i = 0; i < size; i++) agents.push({ identity: await w.hosts[i % hostCount]!.addAgent(), host: i % hostCount, sockets: [] });
    const accepted = agents.map((m) => w.hosts[m.host]!.listen(m.identity.id));
    for (let i = 0; i < size; i++) {
      const next = (i + 1) % size;
      const acc = accepted[next]!.accept();
      const s = await w.hosts[agents[i]!.host]!.connect(agents[i]!.identity.id, agents[next]!.identity.id);
      agents[i]!.sockets.push(s);
      const peer = await acc;
      agents[next]!.sockets.push(peer);
      markers.track(s, agents[i]!.identity.id);
      markers.track(peer, agents[next]!.identity.id);
    }
    const out: number[] = [];
    gc();
    for (let r = 0; r < rounds; r++) {
      const before = markers.expect(BEFORE, 2 * size);
      for (const m of agents) for (const s of m.sockets) s.write(Buffer.of(BEFORE));
      await before;
      const after = markers.expect(AFTER, 2 * size);
      const t0 = performance.now();
      await Promise.all(agents.map((m) => move(w.hosts, m, (m.host + 1) % hostCount, markers)));
      await after;
      out.push(performance.now() - t0);
      markers.gaps();
      ctx.progress(`migration: ring of ${size}, round ${r + 1}/${rounds}`, true);
    }
    markers.verify(rounds);
    return out;
  } finally {
    await w.close();
  }
}

/** Run the suite. */
export async function runMigration(ctx: BenchContext): Promise<SuiteResult> {
  const plan: [number, number][] = ctx.quick
    ? [
        [1, 20],
        [10, 10],
        [100, 5],
      ]
    : [
        [1, 200],
        [10, 100],
        [100, 30],
        [1000, 10],
      ];
  const rows: Row[] = [];
  for (const [n, moves] of plan) {
    const { downtime, medianGap } = await oneEnd(ctx, n, moves);
    const med = summarize(medianGap);
    rows.push({
      id: `migration/ferry-secure/downtime/${n}`,
      system: 'ferry-secure',
      what: `downtime of a move, ${n} connection${n === 1 ? '' : 's'} (largest gap a peer sees)`,
      unit: 'ms',
      summary: summarize(downtime),
      connections: n,
      note: `${moves} moves; median connection's gap p50 ${med.p50} ms`,
    });
  }
  const one = rows[0]!;
  const largest = rows[rows.length - 1]!;
  rows.push({
    id: 'migration/ferry-secure/downtime-scaling',
    system: 'ferry-secure',
    what: `downtime with ${largest.connections} connections over downtime with 1`,
    unit: 'count',
    value: ratio(largest.summary!.p50, one.summary!.p50),
    connections: largest.connections,
    baseline: one.id,
    ratio: ratio(largest.summary!.p50, one.summary!.p50),
    note: largest.connections === 1000 ? 'measured with 1000 connections' : `measured with ${largest.connections} connections (--quick; 1000 only in full runs)`,
  });
  // The same move over the migration channel between hosts (what `ferry migrate` does), not the
  // in-process detach/attach: channel handshake, delegation, admission, transfer and commit.
  const viaChannel = await oneEnd(ctx, 1, ctx.quick ? 10 : 100, true);
  rows.push({
    id: 'migration/ferry-secure/channel/1',
    system: 'ferry-secure',
    what: 'downtime of a move over the host-to-host migration channel, 1 connection',
    unit: 'ms',
    summary: summarize(viaChannel.downtime),
    connections: 1,
    baseline: one.id,
    ratio: ratio(summarize(viaChannel.downtime).p50, one.summary!.p50),
    note: 'Host.migrateAgent: authenticated channel, five steps, delegation, registration; the peer resumes when the destination commits',
  });
  const both = await bothEnds(ctx, ctx.quick ? 10 : 100);
  rows.push({ id: 'migration/ferry-secure/both-ends/1', system: 'ferry-secure', what: 'downtime, both ends of one connection moving at once', unit: 'ms', summary: summarize(both), connections: 1, baseline: one.id, ratio: ratio(summarize(both).p50, one.summary!.p50) });
  const ringSize = ctx.quick ? 10 : 50;
  const rounds = ctx.quick ? 3 : 10;
  const ringTimes = await ring(ctx, ringSize, 5, rounds);
  rows.push({ id: `migration/ferry-secure/ring/${ringSize}`, system: 'ferry-secure', what: `ring of ${ringSize} agents on 5 hosts, all moving at once: time to all resumed`, unit: 'ms', summary: summarize(ringTimes), connections: ringSize, note: `${rounds} rounds; every connection has both ends moving` });
  return { rows };
}
