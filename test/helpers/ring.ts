/**
 * A ring of real confined agents (examples/agents/ring.mjs, the agent `ferry demo` runs) on an
 * {@link AgentNet}, for the integration tests: launch, move members, wait for the streams by what
 * the agents and their connections report, and check every direction of every link exactly once.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AgentExit } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { waitFor } from './harness.js';
import { linesOf, type AgentNet } from './agents.js';

/** examples/agents/ring.mjs, from dist/test/helpers/. */
export const RING = readFileSync(fileURLToPath(new URL('../../../examples/agents/ring.mjs', import.meta.url)), 'utf8');

export interface Link {
  dir: 'in' | 'out';
  peer: string;
  sent: number;
  sentCrc: number;
  wroteEnd: boolean;
  recv: number;
  recvCrc: number;
  mismatches: number;
  firstMismatch: number;
  ended: boolean;
}
export interface RingResult {
  index: number;
  id: string;
  runs: number;
  links: Record<string, Link>;
  /** Connections the member closed because it did not expect them. */
  strangers: number;
}

/** A ring running on `net`: where each member is, every exit, and how far its connections got. */
export class Ring {
  readonly ids: AgentId[] = [];
  /** Host index of each member now. */
  readonly at: number[] = [];
  readonly moves: number[] = [];
  /** Every exit of each member, with the index of the host whose runtime reported it. */
  readonly exits = new Map<AgentId, (AgentExit & { host: number })[]>();

  constructor(
    readonly net: AgentNet,
    readonly total: number,
  ) {
    net.runtimes.forEach((r, host) => r.on('exit', (e: AgentExit) => this.exits.set(e.agentId, [...(this.exits.get(e.agentId) ?? []), { ...e, host }])));
  }

  /** Launch member i of an `n`-ring on host `hostOf(i)`: every key first, since each state names the whole ring. */
  static async launch(net: AgentNet, n: number, hostOf: (i: number) => number, state: { total: number; chunk: number; bytesPerSecond: number }): Promise<Ring> {
    const keys = Array.from({ length: n }, () => Identity.generate());
    const ring = new Ring(net, state.total);
    for (let i = 0; i < n; i++) {
      await net.launch(hostOf(i), RING, { identity: keys[i]!, state: { ring: keys.map((k) => k.id), index: i, ...state } });
      ring.ids.push(keys[i]!.id);
      ring.at.push(hostOf(i));
      ring.moves.push(0);
    }
    return ring;
  }

  /**
   * Bytes member i has written so far, as its connections count them (offset after the last byte
   * handed to them), wherever it is now; 0 while it is between hosts.
   */
  written(i: number): number {
    let n = 0;
    for (const h of this.net.hosts) for (const s of h.socketsOf(this.ids[i]!)) n += s.endpoint.send.written;
    return n;
  }

  /**
   * Resolve once every member runs its current run() (its own log line says so) and has written
   * `bytes` more since (or, when `orDone`, all it had to write): the streams go on after a move.
   */
  async flowing(bytes: number, what: string, o: { orDone?: boolean } = {}): Promise<void> {
    await this.waitFor(() => this.ids.every((_, i) => this.sentAtRuns(i).length === this.moves[i]! + 1), 10_000, `${what}: run() started`);
    const from = this.ids.map((_, i) => this.written(i));
    const want = from.map((f) => (o.orDone ? Math.min(f + bytes, 2 * this.total) : f + bytes));
    const ahead = (i: number): boolean => {
      if (!o.orDone && this.written(i) >= 2 * this.total) throw new Error(`${what}: member ${i} wrote all it had before the move (the stream is too short for this machine)`);
      return this.written(i) >= want[i]! || (!!o.orDone && this.done(i));
    };
    await this.waitFor(() => this.ids.every((_, i) => ahead(i)), 10_000, `${what}: ${bytes} more bytes written (from ${from.join(', ')})`);
  }

  /** Member i finished here (its sockets may be gone, so written() says 0). */
  done(i: number): boolean {
    return (this.exits.get(this.ids[i]!) ?? []).some((e) => e.reason !== 'migrated');
  }

  /** {@link waitFor}, failing with where every member is and how far it got. */
  async waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    try {
      await waitFor(pred, ms, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.describe()}`);
    }
  }

  describe(): string {
    return this.ids
      .map((id, i) => {
        const socks = this.net.hosts.flatMap((h) => h.socketsOf(id)).map((s) => `${s.connectionId.slice(0, 8)} ${s.state} written=${s.endpoint.send.written} acked=${s.endpoint.send.acked} delivered=${s.endpoint.recv.delivered}`);
        const exits = (this.exits.get(id) ?? []).map((e) => `${e.reason}${e.error ? ` ${e.error.code}: ${e.error.message}` : ''}`);
        return `member ${i} on host ${this.at[i]} moves=${this.moves[i]} runs at sent=[${this.sentAtRuns(i).join(', ')}] exits=[${exits.join('; ')}] sockets: ${socks.join(' | ')}`;
      })
      .join('\n');
  }

  /** Move the members `who` at the same moment, member i to host `to(i)`; resolves when all landed. */
  async moveAtOnce(who: number[], to: (i: number) => number): Promise<void> {
    const moves = who.map((i) => {
      const target = to(i);
      assert.notEqual(target, this.at[i], 'a move goes to another host');
      return this.net.runtimes[this.at[i]!]!.migrate(this.ids[i]!, this.net.hosts[target]!.id).then(() => {
        this.at[i] = target;
        this.moves[i]!++;
      });
    });
    const settled = await Promise.allSettled(moves);
    const failed = settled.flatMap((s, k) => (s.status === 'rejected' ? [`member ${who[k]}: ${String((s.reason as Error)?.stack ?? s.reason)}`] : []));
    assert.deepEqual(failed, [], 'every simultaneous move succeeds');
    for (const i of who) assert.ok(this.net.runtimes[this.at[i]!]!.handleOf(this.ids[i]!), `member ${i} runs on host ${this.at[i]} after its move`);
  }

  /** Wait for every member to finish (bounded) and return its result, checking how it ended. */
  async results(ms: number): Promise<RingResult[]> {
    await this.waitFor(() => this.ids.every((_, i) => this.done(i)), ms, 'every ring member finished');
    return this.ids.map((id, i) => {
      const exits = this.exits.get(id)!;
      assert.deepEqual(
        exits.map((e) => e.reason),
        [...Array<string>(this.moves[i]!).fill('migrated'), 'finished'],
        `member ${i}: migrated at each move, then finished once: ${exits.map((e) => e.error?.message ?? '').join(' | ')}`,
      );
      const last = exits[exits.length - 1]!;
      assert.equal(last.host, this.at[i], `member ${i} finished on the host it last moved to`);
      return last.result as RingResult;
    });
  }

  /** Every direction of every link: exactly `total` bytes, each the right one, equal CRCs both ends. */
  checkExactlyOnce(results: RingResult[]): number {
    const n = this.ids.length;
    let directions = 0;
    results.forEach((r, i) => {
      assert.equal(r.index, i);
      assert.equal(r.id, this.ids[i]);
      assert.equal(r.runs, this.moves[i]! + 1, `member ${i}: run() once per host it ran on`);
      const links = Object.entries(r.links);
      assert.equal(links.length, 2, `member ${i} has two links: ${JSON.stringify(r.links)}`);
      assert.deepEqual(links.map(([, l]) => l.dir).sort(), ['in', 'out']);
      for (const [cid, l] of links) {
        const j = this.ids.indexOf(l.peer as AgentId);
        assert.equal(j, l.dir === 'out' ? (i + 1) % n : (i - 1 + n) % n, `member ${i}: ${l.dir} link peer`);
        const other = results[j]!.links[cid];
        assert.ok(other, `member ${j} knows connection ${cid} too`);
        assert.equal(other.peer, this.ids[i]);
        assert.equal(other.dir, l.dir === 'out' ? 'in' : 'out');
        const where = `member ${i} -> member ${j} on ${cid.slice(0, 8)}`;
        assert.equal(l.sent, this.total, `${where}: sent`);
        assert.equal(other.recv, this.total, `${where}: received`);
        assert.equal(other.mismatches, 0, `${where}: wrong bytes, first at offset ${other.firstMismatch}`);
        assert.equal(other.firstMismatch, -1);
        assert.equal(other.recvCrc, l.sentCrc, `${where}: CRC-32 of what was read equals that of what was written`);
        assert.ok(l.wroteEnd && other.ended, `${where}: the end of stream arrived`);
        directions++;
      }
    });
    return directions;
  }

  /** Bytes the member had sent when each run() began (its own log line), run 1 first. */
  sentAtRuns(i: number): number[] {
    const re = new RegExp(`^ring member ${i} run=(\\d+) links=2 sent=(\\d+)$`);
    const runs: number[] = [];
    for (const l of linesOf(this.net.log, 'agent_log')) {
      const m = re.exec(String(l.fields.text));
      if (m) runs[Number(m[1]) - 1] = Number(m[2]);
    }
    return runs;
  }

  /** Each move was mid-stream by the agent's own account: every run after the first began with bytes sent and bytes left. */
  checkMidStream(): void {
    this.ids.forEach((_, i) => {
      const sent = this.sentAtRuns(i);
      assert.equal(sent.length, this.moves[i]! + 1, `member ${i}: one log line per run`);
      assert.equal(sent[0], 0);
      for (let k = 1; k < sent.length; k++) {
        assert.ok(sent[k]! > sent[k - 1]!, `member ${i}: bytes flowed before move ${k} (${sent.join(', ')})`);
        assert.ok(sent[k]! < 2 * this.total, `member ${i}: bytes were left after move ${k} (${sent.join(', ')})`);
      }
    });
  }

  /**
   * The end of a moving ring: `directions` streams exactly once, each member moved as many times
   * as `moves` says, every move mid-stream by the agents' account and by the bytes written at each
   * move (`atMove`), and no member left running anywhere.
   */
  async checkEnd(directions: number, moves: number[], atMove: number[][]): Promise<void> {
    const results = await this.results(15_000);
    assert.equal(this.checkExactlyOnce(results), directions);
    assert.deepEqual(this.moves, moves);
    this.checkMidStream();
    for (const p of atMove) for (const x of p) assert.ok(x > 0 && x < 2 * this.total, `mid-stream at the move: ${x}`);
    assert.deepEqual(
      this.net.runtimes.map((r) => r.agentIds()),
      this.net.runtimes.map(() => []),
    );
  }
}

// Many workers start at once at each round of moves; on a loaded machine a worker may miss a 1 s
// heartbeat, and the watchdog is not what these tests are about.
export const RING_RUNTIME = { heartbeatTimeoutMs: 5000 };
