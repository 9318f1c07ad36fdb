/**
 * A throwaway `redis-server` for tests, `ferry bench` and `ferry demo --redis-server`: its own
 * free port on loopback, its own temporary directory, no system service touched. It can be
 * stopped and started again on the same port and directory (an outage), with or without AOF.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /** The `redis-server` binary (default: `redis-server` on PATH, else /usr/bin/redis-server). */
  readonly binary?: string;
  /** Append-only file on (`--appendonly yes`, fsync every write), so a restart keeps the data. Default false. */
  readonly appendonly?: boolean;
  /** How long to wait for it to accept connections, ms (default 10 000). */
  readonly readyMs?: number;
}

/** A running (or stopped, restartable) `redis-server`. */
export interface RedisServerHandle {
  readonly port: number;
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** Its working directory (AOF files live here). */
  readonly dir: string;
  /** The process id while it runs. */
  readonly pid: number | undefined;
  /** SIGTERM (Redis writes its AOF and exits) and wait. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Start it again on the same port and directory (after stop or kill). */
  restart(): Promise<void>;
  /** Stop it and remove its directory. */
  destroy(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `ms`. */
async function waitListening(port: number, ms: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}) before listening on ${port}: ${stderr().slice(-1000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`redis-server did not listen on ${port} within ${ms} ms: ${stderr().slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Start a `redis-server` on a free loopback port in a new temporary directory (`--save ''`: no
 * RDB snapshots; AOF only if asked). Rejects (never resolves with a stand-in) when the binary is
 * missing or the server does not come up: a caller that needs Redis must fail, not skip.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const binary = options.binary ?? 'redis-server';
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-'));
  const readyMs = options.readyMs ?? 10_000;
  let port = 0;
  let child: ChildProcess | undefined;
  let err = '';
  const args = (): string[] => [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', options.appendonly ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    '--loglevel', 'warning',
  ];
  const launch = async (): Promise<void> => {
    err = '';
    const c = spawn(binary, args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout!.on('data', (d: Buffer) => (err += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const spawnError = new Promise<never>((_, reject) => c.once('error', (e) => reject(new Error(`cannot run ${binary}: ${e.message} (install the redis-server package)`))));
    await Promise.race([waitListening(port, readyMs, c, () => err), spawnError]);
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill(signal);
    await exited;
  };
  try {
    // The port is free when chosen and bound by redis a moment later; a rare collision retries.
    for (let attempt = 0; ; attempt++) {
      port = await freeTcpPort();
      try {
        await launch();
        break;
      } catch (e) {
        await halt('SIGKILL');
        if (attempt >= 2 || !/Address already in use/.test(err)) throw e;
      }
    }
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    get port() {
      return port;
    },
    url: `redis://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    destroy: async () => {
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
