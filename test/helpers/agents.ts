/**
 * Test support for confined agents: in-process hosts on loopback, each with an AgentRuntime
 * bound through `inProcessHost`, one owner key, a policy that grants that owner everything unless
 * told otherwise, and fixture agent modules from test/fixtures/agents/.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { issueCredential, type IssueOptions } from '../../src/agent/index.js';
import { AgentRuntime, channelHost, inProcessHost, parsePolicy, type AgentHandle, type Host, type HostOptions, type HostPolicy, type OwnerId, type RuntimeHost, type RuntimeOptions } from '../../src/host/index.js';
import type { MemoryLocationTable } from '../../src/location/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import type { AgentServerSocket, AgentSocket } from '../../src/connection/index.js';
import { isFerryError } from '../../src/util/index.js';
import { pattern, startHosts } from './harness.js';

/** test/fixtures/agents/, from dist/test/helpers/. */
const FIXTURES = new URL('../../../test/fixtures/agents/', import.meta.url);

/** The source of a fixture agent module. */
export function fixture(name: string): string {
  return readFileSync(fileURLToPath(new URL(name, FIXTURES)), 'utf8');
}

/** A policy JSON object granting `owner` everything. */
export function allowAll(owner: Identity, limits: Record<string, number> = {}): unknown {
  return { version: 1, owners: { [owner.id]: { name: 'test owner', land: true, listen: true, connect: '*', limits } } };
}

export interface AgentNet {
  hosts: Host[];
  runtimes: AgentRuntime[];
  /** The location table the hosts share (a test's own extra hosts can join it). */
  location: MemoryLocationTable;
  owner: Identity;
  log: MemoryLogger;
  /** Launch `code` on runtime `i` with a fresh agent key and a credential from `owner` (default: full rights). */
  launch(i: number, code: string, o?: { state?: unknown; rights?: IssueOptions['rights']; identity?: Identity; owner?: Identity }): Promise<AgentHandle>;
  close(): Promise<void>;
}

/** Start `n` hosts, each with a runtime; `policies[i]` (JSON) overrides the allow-all policy of host i. */
export async function startAgentNet(
  n: number,
  o: { owner?: Identity; policies?: (unknown | undefined)[]; runtime?: Partial<RuntimeOptions>; host?: Partial<HostOptions>; wrapHost?: (i: number, binding: RuntimeHost, host: Host) => RuntimeHost } = {},
): Promise<AgentNet> {
  const net = await startHosts(n, o.host);
  const owner = o.owner ?? Identity.generate();
  const log = new MemoryLogger();
  const byTarget = new Map<string, { host: Host; runtime: AgentRuntime }>();
  const runtimes: AgentRuntime[] = [];
  const ownerOf = (id: AgentId): OwnerId | undefined => {
    for (const r of runtimes) {
      const w = r.ownerOf(id);
      if (w) return w;
    }
    return undefined;
  };
  net.hosts.forEach((host, i) => {
    const policy: HostPolicy = parsePolicy(o.policies?.[i] ?? allowAll(owner));
    const binding = inProcessHost(host, (t) => byTarget.get(t), ownerOf);
    const runtime = new AgentRuntime({
      host: o.wrapHost ? o.wrapHost(i, binding, host) : binding,
      policy,
      logger: log.child({ h: i }),
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 1000,
      ...o.runtime,
    });
    runtimes.push(runtime);
    byTarget.set(host.id, { host, runtime });
    byTarget.set(host.controlAddress, { host, runtime });
  });
  return {
    hosts: net.hosts,
    runtimes,
    location: net.location,
    owner,
    log,
    async launch(i, code, lo = {}) {
      const identity = lo.identity ?? Identity.generate();
      const credential = issueCredential(lo.owner ?? owner, { agent: identity, code, rights: lo.rights ?? { listen: true, connect: '*' } });
      return runtimes[i]!.launch(code, credential, identity, lo.state === undefined ? {} : { state: lo.state });
    },
    async close() {
      await Promise.all(runtimes.map((r) => r.close()));
      await net.close();
    },
  };
}

/** {@link startAgentNet}, with every runtime bound to its host through the real migration channel. */
export async function startChannelNet(n: number, o: Parameters<typeof startAgentNet>[1] = {}): Promise<AgentNet> {
  const net = await startAgentNet(n, { ...o, wrapHost: (_i, _binding, host) => channelHost(host) });
  net.hosts.forEach((h, i) => h.useRuntime(net.runtimes[i]));
  return net;
}

/** Log lines with this event. */
export function linesOf(log: MemoryLogger, event: string): MemoryLogger['lines'] {
  return log.lines.filter((l) => l.event === event);
}

/** Connect a plain host-level agent to `to`, retrying while the target agent has not listened yet. */
export async function connectWhenListening(host: Host, to: AgentId, ms = 10_000): Promise<AgentSocket> {
  const me = await host.addAgent();
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await host.connect(me.id, to);
    } catch (err) {
      if (!isFerryError(err, 'FERRY_ERR_NOT_LISTENING') || Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Send `n` pattern bytes through an echo and check that exactly they come back. */
export async function echoRoundTrip(sock: AgentSocket, seed: number, n: number): Promise<void> {
  const want = pattern(seed, 0, n);
  const got: Buffer[] = [];
  let len = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      got.push(c);
      len += c.length;
      if (len >= n) {
        sock.off('data', onData);
        resolve();
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
  sock.write(want);
  await done;
  const all = Buffer.concat(got);
  if (!all.equals(want)) throw new Error(`echo returned ${all.length} bytes that differ from the ${n} sent`);
}

/** Resolve after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The agents' ctx.log texts found in hosts' `--verbose` stderr (one JSON object per line). */
export function agentLogTexts(stderrs: readonly string[]): string[] {
  const texts: string[] = [];
  for (const err of stderrs) {
    for (const line of err.split('\n')) {
      if (!line.includes('"agent_log"')) continue;
      try {
        const o = JSON.parse(line) as { event?: string; text?: string };
        if (o.event === 'agent_log' && typeof o.text === 'string') texts.push(o.text);
      } catch {
        // a partial last line
      }
    }
  }
  return texts;
}

/**
 * Agent `a` on host `ha` takes opens and begins them: it connects to `b` on `hb` (accepted on
 * `bServer`, which `b` listens with), then listens and accepts a connection from `b`.
 */
export async function opensBothWays(ha: Host, a: AgentId, hb: Host, b: AgentId, bServer: AgentServerSocket): Promise<void> {
  const bAccepted = bServer.accept();
  const out = await ha.connect(a, b);
  (await bAccepted).destroy();
  out.destroy();
  const server = ha.listen(a);
  const accepted = server.accept();
  const into = await hb.connect(b, a);
  (await accepted).destroy();
  into.destroy();
  server.close();
}
