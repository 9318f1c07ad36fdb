/**
 * `ferry demo`: a `ferry rendezvous` process and three `ferry host` processes on loopback, and a
 * ring of five confined agents (examples/agents/ring.mjs) launched on them. Each agent streams
 * checksummed data both ways with its two neighbours while the demo moves agents through the
 * hosts' admin endpoints: one alone, both ends of a connection at once, the whole ring at once,
 * and once to a host that is down (the move rolls back and the agent runs on). At the end every
 * agent reports, per link, what it sent and received with CRC-32s and per-byte checks; the
 * verdict compares each direction's two ends.
 *
 * With a Redis store (`--store redis://…`, or `--redis-server` for a throwaway one) the demo runs
 * two rendezvous nodes over that one directory, and the hosts list both, in alternating order, so
 * watches and registrations cross nodes.
 *
 * With `--attack`, an attacker (`demo-attack.ts`) runs against the hosts, the rendezvous nodes and
 * the agents the whole time, and the verdict must be the same.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueCredential } from '../agent/index.js';
import { credentialToText } from '../host/index.js';
import { Identity, type AgentId } from '../identity/index.js';
import { isFerryError } from '../util/index.js';
import { startRedisServer, type RedisServerHandle } from '../testing/index.js';
import { AdminClient } from './admin.js';
import { Attack, formatAttack, type AttackReport } from './demo-attack.js';
import { Progress, formatBytes, percentiles } from './progress.js';
import type { DemoDirection, DemoResult as ConnectionsDemoResult } from './demo-connections.js';

/** Demo options (see `ferry demo --help`). */
export interface DemoOptions {
  /** Bytes over all ten directions of the ring together. */
  bytes: number;
  /** Rounds of moves: one alone, two at once, the ring at once (the first round adds a rollback). */
  rounds: number;
  /** Target duration of the stream; agents pace themselves to it. */
  seconds: number;
  security: boolean;
  json: boolean;
  verbose: boolean;
  /** Keep the directory in this Redis (`redis://…`), served by two rendezvous nodes. */
  store?: string;
  /** Start a throwaway redis-server for the directory (implies two rendezvous nodes over it). */
  redisServer?: boolean;
  /** Run an attacker against the demo while it streams (see demo-attack.ts). */
  attack: boolean;
}

/**
 * The verdict: the in-process demo's fields (there `moves` and `simultaneousMoves` count
 * connection moves, here agent moves that committed and phases with several agents moving at
 * once; `suspendMs` is the source's detach per move, `resumeMs` the detach to the destination's
 * commit), and the agents'. The `--json` line is this object without `directions` and `seconds`.
 */
export interface DemoResult extends ConnectionsDemoResult {
  /** Moves of two co-located agents as one group (one channel, all or nothing). */
  groupMoves: number;
  agents: number;
  migrations: number;
  rollbacks: number;
  /** Why the verdict is FAIL (empty when ok). */
  problems: string[];
  /** With --attack: what the attacker sent and how it was refused, and the unexpected connections the ring agents closed (their own count). */
  attack?: AttackReport & { closedByRingAgents: number };
}

const RING = 5;
const HOSTS = 3;
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
/** examples/agents/ring.mjs, from dist/src/cli/. */
const RING_AGENT = new URL('../../../examples/agents/ring.mjs', import.meta.url);

/** What one ring agent's run() resolved with. */
interface RingResult {
  index: number;
  id: AgentId;
  runs: number;
  links: Record<string, { dir: 'in' | 'out'; peer: AgentId; sent: number; sentCrc: number; recv: number; recvCrc: number; mismatches: number; firstMismatch: number }>;
  /** Connections it closed because it did not expect them. */
  strangers?: number;
}

/** A child `ferry` process; `tail` keeps its last stderr lines for a failure report. */
class Child {
  private readonly tail: string[] = [];
  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {}

  /** Spawn `ferry ARGS` and wait (bounded) for a stdout line matching `ready`. */
  static async start(name: string, args: string[], ready: RegExp, verbose: boolean, all: Child[]): Promise<{ child: Child; match: RegExpExecArray }> {
    const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = new Child(name, proc);
    // Known to the caller at once, so a failed start of this or another child still stops it.
    all.push(child);
    let partial = '';
    proc.stderr!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) {
        if (verbose) process.stderr.write(`[${name}] ${l}\n`);
        child.tail.push(l);
        if (child.tail.length > 20) child.tail.shift();
      }
    });
    let out = '';
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within 15 s: ${child.lastLines()}`)), 15_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = ready.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready: ${child.lastLines()}`));
      });
    });
    return { child, match };
  }

  lastLines(): string {
    return this.tail.join('\n');
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** A TCP port on 127.0.0.1 with nothing listening on it: the redirector of a host that is down. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Phase = { kind: 'alone' | 'together' | 'group' | 'ring' | 'rollback'; agents: number[] };

/**
 * The move schedule: per round one agent alone, two neighbours at once, two co-located agents as
 * one group, the whole ring at once.
 */
function schedule(rounds: number): Phase[] {
  const phases: Phase[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = (2 * r) % RING;
    phases.push({ kind: 'alone', agents: [a] });
    if (r === 0) phases.push({ kind: 'rollback', agents: [(a + 2) % RING] });
    const b = (2 * r + 1) % RING;
    phases.push({ kind: 'together', agents: [b, (b + 1) % RING] });
    // Two agents that share a host move as one group (chosen when the phase starts).
    phases.push({ kind: 'group', agents: [] });
    phases.push({ kind: 'ring', agents: [...Array(RING).keys()] });
  }
  return phases;
}

/** Run the demo and return its verdict. */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const progress = new Progress(process.stderr, opts.json && !process.stderr.isTTY);
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
  const children: Child[] = [];
  let redis: RedisServerHandle | undefined;
  // Killed by SIGINT or SIGTERM (Ctrl-C, or `kill PID`): stop the rendezvous, the hosts and any
  // redis-server, remove the temp folder, then exit as the signal would have (128 + its number).
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled = true;
    progress.done();
    process.stderr.write(`ferry demo: ${signal}: stopping the rendezvous and hosts, removing ${dir}\n`);
    void Promise.all(children.map((c) => c.stop()))
      .then(() => redis?.destroy())
      .then(() => rm(dir, { recursive: true, force: true }))
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // The owner of the agents, and a policy on every host that admits that owner.
    const owner = Identity.generate();
    const policyFile = join(dir, 'policy.json');
    await writeFile(policyFile, JSON.stringify({ version: 1, owners: { [owner.id]: { name: 'demo owner', land: true, listen: true, connect: '*' } } }));

    if (opts.redisServer) {
      progress.update('starting a throwaway redis-server…', true);
      redis = await startRedisServer();
    }
    const store = redis?.url ?? opts.store;
    const rendezvousList: string[] = [];
    if (store) {
      progress.update('starting two rendezvous nodes over one Redis and three hosts…', true);
      for (const n of ['rendezvous-a', 'rendezvous-b']) {
        const rv = await Child.start(n, ['rendezvous', '--port', '0', '--store', store, '--store-prefix', `ferry-demo-${process.pid}-${started}`], /ferry rendezvous ready on (\S+):(\d+)/, opts.verbose, children);
        rendezvousList.push(`${rv.match[1]}:${rv.match[2]}`);
      }
    } else {
      progress.update('starting a rendezvous and three hosts…', true);
      const rv = await Child.start('rendezvous', ['rendezvous', '--port', '0', '--snapshot', join(dir, 'rendezvous.json')], /ferry rendezvous ready on (\S+):(\d+)/, opts.verbose, children);
      rendezvousList.push(`${rv.match[1]}:${rv.match[2]}`);
    }
    // Over Redis every other host prefers the other node, so watches and commits cross nodes.
    const rendezvousFor = (i: number): string => (i % 2 === 0 ? rendezvousList : [...rendezvousList].reverse()).join(',');
    const hostsReady = await Promise.all(
      [...Array(HOSTS).keys()].map((i) =>
        Child.start(
          `host${i}`,
          ['host', '--name', `host${i}`, '--data-dir', join(dir, `host${i}`), '--policy', policyFile, '--rendezvous', rendezvousFor(i), ...(opts.security ? [] : ['--no-security']), ...(opts.verbose ? ['--verbose'] : [])],
          /^ferry host ready: id=\S+ control=(\S+) redirector=(\S+)/m,
          opts.verbose,
          children,
        ),
      ),
    );
    const hosts = await Promise.all([...Array(HOSTS).keys()].map((i) => AdminClient.open(join(dir, `host${i}`))));

    // The ring: agent i on host i mod 3, connected to agent i+1.
    const code = await readFile(RING_AGENT, 'utf8');
    const agents = [...Array(RING).keys()].map(() => Identity.generate());
    const ring = agents.map((a) => a.id);
    const name = (id: AgentId): string => `R${ring.indexOf(id)}`;
    const perDirection = Math.max(1, Math.floor(opts.bytes / (2 * RING)));
    const total = perDirection * 2 * RING;
    const at = agents.map((_, i) => i % HOSTS);
    progress.update(`launching a ring of ${RING} agents…`, true);
    await Promise.all(
      agents.map((agent, i) =>
        hosts[at[i]!]!.request('POST', '/launch', {
          code,
          credential: credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })),
          seed: agent.seed().toString('hex'),
          state: { ring, index: i, total: perDirection, chunk: 16 * 1024, bytesPerSecond: Math.ceil(perDirection / opts.seconds) },
        }),
      ),
    );

    const attack = opts.attack
      ? await Attack.start({ rendezvous: rendezvousList, hosts: hostsReady.map((h) => ({ control: h.match[1]!, redirector: h.match[2]! })), agents: ring, security: opts.security })
      : undefined;
    if (attack) progress.update('an attacker runs against the hosts, the rendezvous and the agents…', true);

    // Progress: the connections' own offsets, summed over the ring, from the hosts' status.
    const ended = new Map<AgentId, { reason: string; code?: string; result?: RingResult; hosts: Set<number> }>();
    let delivered = 0;
    let phaseText = 'streaming';
    let migrations = 0;
    let rollbacks = 0;
    const problems: string[] = [];
    const poll = async (): Promise<void> => {
      const all = await Promise.all(hosts.map((h) => h.request('GET', '/status')));
      let d = 0;
      for (const [h, st] of all.entries()) {
        for (const a of st.agents as { id: AgentId; connections: { delivered: number }[] }[]) if (ring.includes(a.id)) for (const c of a.connections) d += c.delivered;
        for (const e of st.ended as { id: AgentId; reason: string; code?: string; result?: RingResult }[]) {
          if (!ring.includes(e.id)) continue;
          const seen = ended.get(e.id) ?? { ...e, hosts: new Set<number>() };
          seen.hosts.add(h);
          ended.set(e.id, seen);
        }
      }
      // Finished agents no longer list their connections; count what they reported.
      for (const e of ended.values()) for (const l of Object.values(e.result?.links ?? {})) d += l.recv;
      delivered = Math.max(delivered, d);
    };
    const show = (force = false): void => {
      const pct = Math.min(100, Math.floor((delivered / total) * 100));
      progress.update(`[${String(pct).padStart(3)}%] ${formatBytes(delivered)} of ${formatBytes(total)} delivered · ${migrations} migrations, ${rollbacks} rolled back · ${phaseText}`, force);
    };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await poll().catch(() => {});
        show();
        await sleep(150);
      }
    })();

    const suspendMs: number[] = [];
    const resumeMs: number[] = [];
    const down = { ip: '127.0.0.1', redirectorPort: await deadPort() };
    /** Move agents `ids` (one, or co-located ones as a group) to `target`, host `to` (undefined: a host that is down). */
    const move = async (ids: number[], target: { ip: string; redirectorPort: number; hostId?: string }, to: number | undefined): Promise<'committed' | 'rolled back' | 'late'> => {
      const names = ids.map((i) => `R${i}`).join(' and ');
      try {
        const r = await hosts[at[ids[0]!]!]!.request('POST', '/migrate', { ...(ids.length === 1 ? { agent: ring[ids[0]!] } : { agents: ids.map((i) => ring[i]) }), ...target });
        migrations += ids.length;
        for (const i of ids) at[i] = to!;
        if (typeof r.detachMs === 'number') suspendMs.push(r.detachMs);
        if (typeof r.commitMs === 'number') resumeMs.push(r.commitMs);
        if (to === undefined) problems.push(`${names} moved to a host that is down`);
        return 'committed';
      } catch (err) {
        if (isFerryError(err, 'FERRY_ERR_UNKNOWN_AGENT') || isFerryError(err, 'FERRY_ERR_INVALID_ARGUMENT')) {
          problems.push(`${names} finished before the move could start (use more --bytes or --seconds)`);
          return 'late';
        }
        if (!isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK')) throw err;
        rollbacks += ids.length;
        if (to !== undefined) problems.push(`moving ${names} to host${to} rolled back: ${isFerryError(err.cause) ? err.cause.code : err.message}`);
        return 'rolled back';
      }
    };

    // Each phase starts when the delivered bytes cross the next equal share of the first 60 % of
    // the total, so every move happens mid-stream, with room left for a slow machine.
    const phases = schedule(opts.rounds);
    const mark = (k: number): number => Math.floor((0.6 * (k + 1) * total) / phases.length);
    let simultaneous = 0;
    let groups = 0;
    const deadline = Date.now() + (opts.seconds * 6 + 60) * 1000;
    for (const [k, ph] of phases.entries()) {
      while (delivered < mark(k)) {
        if (Date.now() > deadline) throw new Error(`the stream stalled at ${delivered} of ${total} bytes`);
        await sleep(20);
      }
      await poll();
      if (ph.kind === 'group') {
        const h = [...Array(HOSTS).keys()].find((x) => at.filter((y) => y === x).length >= 2)!;
        ph.agents = [...at.keys()].filter((i) => at[i] === h).slice(0, 2);
      }
      const late = ph.agents.filter((i) => ended.has(ring[i]!));
      if (late.length > 0) {
        problems.push(`${late.map((i) => `R${i}`).join(', ')} finished before the move planned at ${Math.round((mark(k) / total) * 100)}% (use more --bytes or --seconds)`);
        continue;
      }
      phaseText =
        ph.kind === 'alone'
          ? `moving R${ph.agents[0]} alone`
          : ph.kind === 'together'
            ? `moving R${ph.agents[0]} and R${ph.agents[1]} at once (both ends of a connection)`
            : ph.kind === 'group'
              ? `moving R${ph.agents[0]} and R${ph.agents[1]} from host${at[ph.agents[0]!]} as one group`
              : ph.kind === 'ring'
                ? `moving the whole ring at once`
                : `moving R${ph.agents[0]} to a host that is down (it must roll back)`;
      show(true);
      if (ph.kind === 'group') {
        const to = (at[ph.agents[0]!]! + 1) % HOSTS;
        const outcome = await move(ph.agents, hosts[to]!.target, to);
        if (outcome === 'late') continue;
        if (outcome === 'committed') groups++;
        simultaneous++;
      } else if (ph.kind === 'rollback') {
        await move([ph.agents[0]!], down, undefined);
        const listed = ((await hosts[at[ph.agents[0]!]!]!.request('GET', '/status')).agents as { id: AgentId }[]).some((a) => a.id === ring[ph.agents[0]!]);
        if (!listed) problems.push(`R${ph.agents[0]} is not at its source after the rollback`);
      } else {
        await Promise.all(ph.agents.map((i) => ((to) => move([i], hosts[to]!.target, to))((at[i]! + 1) % HOSTS)));
        if (ph.agents.length > 1) simultaneous++;
      }
      phaseText = 'streaming';
    }

    // Wait for every agent to finish and report.
    while (ended.size < RING) {
      if (Date.now() > deadline) throw new Error(`only ${ended.size} of ${RING} agents finished in time`);
      await sleep(50);
    }
    polling = false;
    await poller;
    const attacked = await attack?.stop();
    phaseText = 'done';
    show(true);
    progress.done();

    // Each direction: the writer's figures against the reader's, matched by connection id.
    const results = new Map<AgentId, RingResult>();
    await poll();
    for (const [id, e] of ended) {
      // Never on both hosts, never on none: each agent ended once, where its last move took it.
      const where = [...e.hosts].map((h) => `host${h}`).join(' and ');
      if (e.hosts.size !== 1 || !e.hosts.has(at[ring.indexOf(id)]!)) problems.push(`${name(id)} ended on ${where}, expected host${at[ring.indexOf(id)]}`);
      if (e.reason !== 'finished' || !e.result) problems.push(`${name(id)} ${e.reason}${e.code ? ` (${e.code})` : ''}`);
      else results.set(id, e.result);
    }
    const directions: DemoDirection[] = [];
    for (const [id, r] of results) {
      for (const [conn, l] of Object.entries(r.links)) {
        const back = results.get(l.peer)?.links[conn];
        const ok = !!back && back.recvCrc === l.sentCrc && back.mismatches === 0 && back.recv === l.sent;
        if (back && back.mismatches > 0) problems.push(`${name(l.peer)} found ${back.mismatches} bytes out of place from ${name(id)}, the first at ${back.firstMismatch}`);
        directions.push({ from: name(id), to: name(l.peer), sent: l.sent, delivered: back?.recv ?? 0, digestsEqual: ok });
      }
    }
    directions.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
    const sent = directions.reduce((s, d) => s + d.sent, 0);
    const got = directions.reduce((s, d) => s + d.delivered, 0);
    if (directions.length !== 2 * RING) problems.push(`${directions.length} directions reported, expected ${2 * RING}`);
    if (sent !== total) problems.push(`sent ${sent} bytes, expected ${total}`);
    // The verdict must not pass for want of an attack: it reached the agents and the ports.
    if (attacked && (attacked.strangers.connected === 0 || attacked.datagrams.sent === 0 || attacked.redirector.sockets === 0)) problems.push('the attack did not get through to the agents and the ports');
    return {
      ok: problems.length === 0 && directions.every((d) => d.digestsEqual && d.sent === d.delivered),
      sent,
      delivered: got,
      lost: directions.reduce((s, d) => s + Math.max(0, d.sent - d.delivered), 0),
      duplicated: directions.reduce((s, d) => s + Math.max(0, d.delivered - d.sent), 0),
      moves: migrations,
      simultaneousMoves: simultaneous,
      groupMoves: groups,
      suspendMs: percentiles(suspendMs),
      resumeMs: percentiles(resumeMs),
      security: opts.security,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      agents: RING,
      migrations,
      rollbacks,
      directions,
      problems,
      ...(attacked ? { attack: { ...attacked, closedByRingAgents: [...results.values()].reduce((n, r) => n + (r.strangers ?? 0), 0) } } : {}),
    };
  } catch (err) {
    // Stopped by a signal: what failed is the signal's doing; the handler cleans up and exits.
    if (signalled) await new Promise<never>(() => {});
    progress.done();
    for (const c of children) process.stderr.write(`--- last log lines of ${c.name}:\n${c.lastLines()}\n`);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all(children.map((c) => c.stop()));
    await redis?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The human verdict. */
export function formatVerdict(r: DemoResult): string {
  return [
    `${r.ok ? 'PASS' : 'FAIL'}: ${r.ok ? `every byte of the ring's ${r.directions.length} streams arrived exactly once, in order` : 'the streams differ'} (security ${r.security ? 'on' : 'off'}, ${r.seconds} s)`,
    ...r.directions.map((d) => `  ${d.from} → ${d.to}: sent ${formatBytes(d.sent)}, delivered ${formatBytes(d.delivered)}, CRC-32 and per-byte check ${d.digestsEqual ? 'equal' : 'DIFFERENT'}`),
    `  ${r.agents} agents in 3 host processes: ${r.migrations} migrations (${r.simultaneousMoves} phases with several agents moving at once, ${r.groupMoves} of them as one group), ${r.rollbacks} rolled back; lost ${r.lost} B, duplicated ${r.duplicated} B`,
    `  per move: detach (suspend + drain + checkpoint) p50 ${r.suspendMs.p50} ms, p90 ${r.suspendMs.p90} ms · transfer to commit p50 ${r.resumeMs.p50} ms, p90 ${r.resumeMs.p90} ms`,
    ...(r.attack ? formatAttack(r.attack) : []),
    ...r.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}
