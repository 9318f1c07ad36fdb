/**
 * `directory`: the rendezvous directory on Redis against the memory store, in one run, with a
 * redis-server of its own (free port, temporary directory, no persistence: the figures are the
 * directory's, not the disk's).
 *
 * - Lookup: LOOKUP round trips (client cache off) to an in-process rendezvous over the memory
 *   store (baseline), over Redis with the node cache (the default), and over Redis with the node
 *   cache off (every lookup a GET).
 * - Registrations per second: proven REGISTERs (1-link chain, host signature; signed before the
 *   clock starts) for new agents, sent at once (64 in flight per node) to 1, 2 and 3 `ferry
 *   rendezvous --store` processes over the one Redis, split evenly; and to one `ferry rendezvous`
 *   over the memory store, for reference. Each node verifies chain and signature, then runs the
 *   compare-and-set script. Where Redis saturates: 10^6 / its measured µs per script call
 *   (INFO commandstats).
 * - Memory per agent: Redis `INFO memory` used_memory before and after writing 100 000 entries
 *   (quick: 10 000) with the same 1-link chain bytes and distinct agent ids, through the same
 *   script; the memory store's JS heap and external memory before and after 10 000 entries with
 *   chains decoded from bytes (as a registration leaves them), after a full gc each time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { ControlChannel } from '../../src/control/index.js';
import { Identity, decodeChain, encodeChain, freshChain, type AgentId } from '../../src/identity/index.js';
import { MemoryStore, RedisStore, RendezvousClient, RendezvousServer, type LocationEntry } from '../../src/location/index.js';
import { startRedisServer, type RedisServerHandle } from '../../src/testing/index.js';
import { LocationMessageType as T, encodeRegister, registerSigned } from '../../src/wire/index.js';
import type { BenchContext } from '../lib/context.js';
import { iterations } from '../lib/context.js';
import { gc, pool, ratio, summarize, type Row, type SuiteResult } from '../lib/stats.js';

const FERRY_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A `ferry rendezvous` child process and its control address. */
async function startNode(args: string[]): Promise<{ proc: ChildProcess; address: string }> {
  const proc = spawn(process.execPath, [FERRY_MAIN, 'rendezvous', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const end = Date.now() + 15_000;
  for (;;) {
    const m = /ready on (\S+):(\d+) /.exec(out);
    if (m) return { proc, address: `${m[1]}:${m[2]}` };
    if (proc.exitCode !== null || Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`ferry rendezvous did not start: ${err.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopNode(n: { proc: ChildProcess }): Promise<void> {
  if (n.proc.exitCode !== null) return;
  const gone = new Promise<void>((r) => n.proc.once('exit', () => r()));
  n.proc.kill('SIGTERM');
  await Promise.race([gone, new Promise<void>((r) => setTimeout(r, 3000))]);
  if (n.proc.exitCode === null) n.proc.kill('SIGKILL');
}

/** `n` proven REGISTER bodies for new agents, signed now (before any clock starts). */
function registrations(n: number): Buffer[] {
  const host = Identity.generate();
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const agent = Identity.generate();
    const reg = { agent: agent.id, hostId: host.id, ip: '127.0.0.1', controlPort: 4000, redirectorPort: 5000, epoch: 1, agentKey: Buffer.from(agent.publicRaw), chain: freshChain(agent, host.publicRaw, 1, Date.now()) };
    out.push(encodeRegister({ ...reg, signature: host.sign(registerSigned(reg)) }));
  }
  return out;
}

/** Send every body once, split over `nodes`, 64 in flight per node; registrations per second. */
async function blast(channel: ControlChannel, nodes: string[], bodies: Buffer[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    nodes.map((to, k) => {
      const mine = bodies.filter((_, i) => i % nodes.length === k);
      return pool(mine.length, 64, async (i) => {
        const reply = await channel.request(to, T.REGISTER, mine[i]!);
        if (reply.type !== T.REGISTER_ACK) throw new Error(`registration answered with type ${reply.type}`);
      });
    }),
  );
  return Math.round(bodies.length / ((performance.now() - t0) / 1000));
}

async function redisInfo(url: string, section: string): Promise<string> {
  const c = createClient({ url });
  await c.connect();
  try {
    return String(await c.sendCommand(['INFO', section]));
  } finally {
    await c.close();
  }
}

const infoField = (info: string, name: string): number | undefined => {
  const m = new RegExp(`^${name}:(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : undefined;
};

/** LOOKUP round trips of one agent, `n` measured after `warmup`. */
async function lookupSample(client: RendezvousClient, agent: AgentId, warmup: number, n: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await client.lookup(agent);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const e = await client.lookup(agent);
    out.push(performance.now() - t);
    if (!e) throw new Error('lookup found nothing');
  }
  return out;
}

/** Entries with distinct agent ids and the same (real) chain bytes: what memory is measured on. */
function entries(n: number, chainBytes: Buffer, template: LocationEntry, decode: boolean): LocationEntry[] {
  const shared = decodeChain(chainBytes, 0).value;
  const out: LocationEntry[] = [];
  for (let i = 0; i < n; i++) {
    const agent = createHash('sha256').update(`agent ${i}`).digest().subarray(0, 16).toString('hex') as AgentId;
    // Decoded from bytes per entry, as a registration leaves it (no sharing between entries).
    const chain = decode ? decodeChain(Buffer.from(chainBytes), 0).value : shared;
    out.push({ ...template, agent, agentKey: Buffer.from(template.agentKey!), chain });
  }
  return out;
}

/** Run the suite. */
export async function runDirectory(ctx: BenchContext): Promise<SuiteResult> {
  const rows: Row[] = [];
  const info: Record<string, unknown> = {};
  const redis: RedisServerHandle = await startRedisServer();
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  try {
    // --- lookup p50 ---------------------------------------------------------------------------
    const { warmup, n } = iterations(ctx);
    const host = Identity.generate();
    const agent = Identity.generate();
    const entry: LocationEntry = { agent: agent.id, hostId: host.id, ip: '127.0.0.1', controlPort: 4000, redirectorPort: 5000, epoch: 1, agentKey: agent.publicRaw, chain: freshChain(agent, host.publicRaw, 1, Date.now()) };
    const servers: Record<string, RendezvousServer> = {
      'ferry-memory': await RendezvousServer.start({ store: await MemoryStore.open() }),
      'ferry-redis': await RendezvousServer.start({ store: await RedisStore.open({ url: redis.url, prefix: 'bench-lookup' }) }),
      'ferry-redis-uncached': await RendezvousServer.start({ store: await RedisStore.open({ url: redis.url, prefix: 'bench-lookup', cacheEntries: 0 }) }),
    };
    for (const s of Object.values(servers)) cleanups.push(() => s.close());
    await servers['ferry-memory']!.store.put(entry);
    await servers['ferry-redis']!.store.put(entry);
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
    ctx.progress('directory: lookups', true);
    const clients = await Promise.all(Object.values(servers).map((s) => RendezvousClient.connect({ server: s.address, cacheTtlMs: 0 })));
    for (const c of clients) cleanups.push(() => c.close());
    // Interleaved in three rounds, so load on the machine falls on every system alike.
    for (let round = 0; round < 3; round++) {
      for (const [k, system] of Object.keys(servers).entries()) samples[system]!.push(...(await lookupSample(clients[k]!, agent.id, round === 0 ? warmup : 2, Math.ceil(n / 3))));
    }
    const mem = summarize(samples['ferry-memory']!);
    rows.push({ id: 'directory/ferry-memory/lookup', system: 'ferry-memory', what: 'LOOKUP round trip, rendezvous over the memory store', unit: 'ms', summary: mem });
    for (const system of ['ferry-redis', 'ferry-redis-uncached']) {
      const s = summarize(samples[system]!);
      rows.push({
        id: `directory/${system}/lookup`,
        system,
        what: system === 'ferry-redis' ? 'LOOKUP round trip, rendezvous over Redis (node cache on, the default)' : 'LOOKUP round trip, rendezvous over Redis, node cache off (one GET each)',
        unit: 'ms',
        summary: s,
        baseline: 'directory/ferry-memory/lookup',
        ...(ratio(s.p50, mem.p50) !== undefined ? { ratio: ratio(s.p50, mem.p50)! } : {}),
      });
    }

    // --- registrations per second ----------------------------------------------------------
    const perConfig = ctx.quick ? 300 : 3000;
    ctx.progress(`directory: signing ${perConfig * 4} registrations`, true);
    const channel = await ControlChannel.bind({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => channel.close());
    const rates: Record<string, number> = {};
    for (const k of ['memory', 1, 2, 3] as const) {
      const bodies = registrations(perConfig);
      const nodes = [];
      try {
        for (let i = 0; i < (k === 'memory' ? 1 : k); i++) nodes.push(await startNode(k === 'memory' ? [] : ['--store', redis.url, '--store-prefix', `bench-reg-${k}`]));
        ctx.progress(`directory: ${perConfig} registrations through ${k === 'memory' ? 'one node over the memory store' : `${k} node(s) over Redis`}`, true);
        // A few first, so every node has its script loaded and its socket buffers grown.
        await blast(channel, nodes.map((x) => x.address), registrations(nodes.length * 8));
        rates[String(k)] = await blast(channel, nodes.map((x) => x.address), bodies);
      } finally {
        await Promise.all(nodes.map(stopNode));
      }
    }
    rows.push({ id: 'directory/ferry-memory/registrations', system: 'ferry-memory', what: 'proven registrations per second, one node over the memory store', unit: 'count', value: rates.memory!, note: 'per second' });
    for (const k of [1, 2, 3]) {
      rows.push({
        id: `directory/ferry-redis/registrations-${k}`,
        system: 'ferry-redis',
        what: `proven registrations per second, ${k} rendezvous node${k > 1 ? 's' : ''} over one Redis`,
        unit: 'count',
        value: rates[String(k)]!,
        note: 'per second',
        ...(k > 1 ? { baseline: 'directory/ferry-redis/registrations-1', ratio: ratio(rates[String(k)], rates['1'])! } : { baseline: 'directory/ferry-memory/registrations', ratio: ratio(rates['1'], rates.memory)! }),
      });
    }
    const stats = await redisInfo(redis.url, 'commandstats');
    const m = /^cmdstat_evalsha:calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/m.exec(stats);
    if (m) {
      const usPerCall = Number(m[3]);
      info.redisUsecPerScript = usPerCall;
      rows.push({ id: 'directory/redis/cas-capacity', system: 'redis', what: 'compare-and-set scripts per second one Redis core can run (10^6 / measured µs per EVALSHA)', unit: 'count', value: Math.round(1e6 / usPerCall), note: `${usPerCall} µs per call` });
    }

    // --- memory per agent ----------------------------------------------------------------
    const agents = ctx.quick ? 10_000 : 100_000;
    const chainBytes = encodeChain(entry.chain!);
    // A bulk load, 256 scripts in flight: a longer deadline than a node's per-command one.
    const store = await RedisStore.open({ url: redis.url, prefix: 'bench-mem', cacheEntries: 0, timeoutMs: 10_000 });
    cleanups.push(() => store.close());
    const before = infoField(await redisInfo(redis.url, 'memory'), 'used_memory');
    ctx.progress(`directory: ${agents} agents into Redis`, true);
    const many = entries(agents, chainBytes, entry, false);
    await pool(many.length, 256, async (i) => {
      const out = await store.put(many[i]!);
      if (!out.stored) throw new Error('not stored');
    });
    const afterRedis = infoField(await redisInfo(redis.url, 'memory'), 'used_memory');
    if (before === undefined || afterRedis === undefined) throw new Error('INFO memory has no used_memory');
    if ((await store.count()) !== agents) throw new Error('agent count differs');
    rows.push({ id: 'directory/redis/bytes-per-agent', system: 'redis', what: `Redis used_memory per registered agent (1-link chain) at ${agents} agents`, unit: 'count', value: Math.round((afterRedis - before) / agents), note: `bytes; ${ctx.quick ? 'quick run: 10 000 agents (full: 100 000)' : '100 000 agents'}` });

    const memAgents = 10_000;
    gc();
    const m0 = process.memoryUsage();
    const ms = await MemoryStore.open({ maxEntries: memAgents });
    // Entries made here, after the first reading, and then held by the store alone.
    for (const e of entries(memAgents, chainBytes, entry, true)) await ms.put(e);
    gc();
    const m1 = process.memoryUsage();
    if (ms.size !== memAgents) throw new Error('memory store size differs');
    const memBytes = m1.heapUsed - m0.heapUsed + (m1.external - m0.external);
    rows.push({ id: 'directory/ferry-memory/bytes-per-agent', system: 'ferry-memory', what: `memory store JS heap + external per agent (1-link chain) at ${memAgents} agents`, unit: 'count', value: Math.round(memBytes / memAgents), note: 'bytes' });
    await ms.close();
    info.agents = { redis: agents, memory: memAgents };
    info.registrationsPerConfig = perConfig;
    return { rows, info };
  } finally {
    for (const c of cleanups.reverse()) await c();
    await redis.destroy();
  }
}
