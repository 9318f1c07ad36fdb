/**
 * One side of the `scale` suite, in its own process so that each side's memory can be read
 * alone and 10 000 connections stay within one process's file descriptor limit. Driven by the
 * parent over IPC: `{ id, cmd, ...args }` in, `{ id, result }` or `{ id, error }` out.
 *
 * Commands: `serve` (start a TCP server or a Ferry host with a listening agent), `prepare`
 * (client: start a Ferry host that knows where the server agent is), `dial` (open n
 * connections, at most `concurrency` at once), `count` (connections accepted), `mem` (after a
 * full gc), `expect` (resolve when k connections have ended, with bytes and the time of the last
 * end), `push` (write on the first k connections at once, then end them), `exit`.
 */
import { createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import type { AgentId, Identity } from '../../src/identity/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { gc, pool, sleep } from '../lib/stats.js';
import { pushDuplex, tcpOpen } from '../lib/systems.js';

/** Where the server side can be reached. */
export interface ScaleTarget {
  port?: number;
  agent?: string;
  controlPort?: number;
  redirectorPort?: number;
}

/** Memory as the parent needs it, bytes. */
export interface ScaleMemory {
  rss: number;
  heapUsed: number;
  external: number;
}

const now = (): number => performance.timeOrigin + performance.now();

let host: Host | undefined;
let agent: Identity | undefined;
let target: AgentId | undefined;
const conns: Duplex[] = [];
let ended = 0;
let endBytes = 0;
let lastEnd = 0;
let endWaiter: { k: number; resolve: () => void } | undefined;

function adopt(s: Duplex): void {
  s.on('error', () => {});
  conns.push(s);
  s.on('data', (c: Buffer) => (endBytes += c.length));
  s.on('end', () => {
    ended++;
    lastEnd = now();
    if (endWaiter && ended >= endWaiter.k) endWaiter.resolve();
  });
}

async function handle(m: Record<string, unknown>): Promise<unknown> {
  switch (m.cmd) {
    case 'serve': {
      if (m.system === 'tcp') {
        const server = createServer({ noDelay: true }, (s: Socket) => adopt(s));
        server.maxConnections = 100_000;
        await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => r()));
        return { port: (server.address() as { port: number }).port } satisfies ScaleTarget;
      }
      host = await Host.start({ location: new MemoryLocationTable(), security: true, name: 'scale-server' });
      agent = await host.addAgent();
      host.listen(agent.id).on('connection', (s: AgentSocket) => adopt(s));
      const [, port] = host.controlAddress.split(':');
      return { agent: agent.id, controlPort: Number(port), redirectorPort: host.redirectorPort } satisfies ScaleTarget;
    }
    case 'prepare': {
      if (m.system !== 'ferry') return {};
      const t = m.target as ScaleTarget;
      const location = new MemoryLocationTable();
      host = await Host.start({ location, security: true, name: 'scale-client' });
      agent = await host.addAgent();
      target = t.agent as AgentId;
      await location.register({ agent: target, hostId: 'scale-server', ip: '127.0.0.1', controlPort: t.controlPort!, redirectorPort: t.redirectorPort!, epoch: 1 });
      return {};
    }
    case 'dial': {
      const n = m.n as number;
      const t = m.target as ScaleTarget;
      const t0 = performance.now();
      await pool(n, m.concurrency as number, async () => {
        const s = m.system === 'tcp' ? await tcpOpen(t.port!) : await host!.connect(agent!.id, target!);
        s.on('error', () => {});
        conns.push(s);
      });
      return { ms: performance.now() - t0, opened: conns.length };
    }
    case 'count':
      return { count: conns.length };
    case 'mem': {
      await sleep(200);
      gc();
      gc();
      const u = process.memoryUsage();
      return { rss: u.rss, heapUsed: u.heapUsed, external: u.external } satisfies ScaleMemory;
    }
    case 'expect': {
      const k = m.k as number;
      ended = 0;
      endBytes = 0;
      await new Promise<void>((resolve) => {
        endWaiter = { k, resolve };
        if (ended >= k) resolve();
      });
      return { bytes: endBytes, end: lastEnd };
    }
    case 'push': {
      const k = m.k as number;
      const msg = randomBytes(m.messageBytes as number);
      const start = now();
      const deadline = performance.now() + (m.ms as number);
      const sent = await Promise.all(conns.slice(0, k).map((s) => pushDuplex(s, msg, m.bytesEach as number, deadline)));
      return { sent: sent.reduce((a, b) => a + b, 0), start };
    }
    case 'exit':
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown command ${String(m.cmd)}`);
  }
}

process.on('message', (m: Record<string, unknown>) => {
  handle(m).then(
    (result) => process.send!({ id: m.id, result }),
    (err: unknown) => process.send!({ id: m.id, error: err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
