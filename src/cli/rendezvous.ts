/**
 * `ferry rendezvous`: parse the options, start a {@link RendezvousServer} with a {@link MemoryStore}
 * (snapshot file optional) or a {@link RedisStore} (`--store redis://…`: one node of several over
 * one directory), print one ready line, and stop gracefully on SIGINT/SIGTERM (the snapshot is
 * flushed before exit). No logic lives here.
 */
import { parseArgs } from 'node:util';
import { MemoryStore, RedisStore, RendezvousServer, type LocationStore } from '../location/index.js';
import { createLogger, isFerryError, silentLogger } from '../util/index.js';

/** Usage text of `ferry rendezvous`. */
export const RENDEZVOUS_HELP = `ferry rendezvous — the location service: AgentId -> (host, locator, epoch)

Usage:
  ferry rendezvous [options]

Options:
  --host IP                 address to bind the UDP control port on (default 127.0.0.1)
  --port N                  UDP port (default 7400; 0 picks a free one)
  --snapshot FILE           keep the directory in FILE: loaded at start, rewritten atomically
                            after changes (at most every 100 ms) and on shutdown
  --store URL               keep the directory in Redis instead: redis://[USER:PASS@]HOST:PORT[/DB]
                            (rediss:// for TLS); any number of rendezvous nodes started with the
                            same URL serve one directory (hosts list them all: --rendezvous a,b)
  --store-prefix P          key prefix in Redis (default ferry): several directories in one Redis
  --allow-unproven          development mode: accept registrations without a delegation chain
                            (ordered by epoch only) for hosts that do not send chains yet
  --verbose                 structured logs (JSON lines) on stderr
  -h, --help                this text

Prints "ferry rendezvous ready on IP:PORT ..." on stdout once it serves.
Stops on SIGINT or SIGTERM after writing the snapshot. Exit status: 0 after a clean stop,
1 when it cannot start (port in use, unreadable snapshot, Redis unreachable) or the final
snapshot write fails.`;

/** Default UDP port of `ferry rendezvous`. */
export const DEFAULT_RENDEZVOUS_PORT = 7400;

/** Run `ferry rendezvous` until a signal stops it; resolves with the exit status. */
export async function rendezvousMain(argv: string[], fail: (msg: string) => never): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        snapshot: { type: 'string' },
        store: { type: 'string' },
        'store-prefix': { type: 'string' },
        'allow-unproven': { type: 'boolean' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail(`rendezvous: ${(err as Error).message}`);
  }
  if (values.help) {
    process.stdout.write(RENDEZVOUS_HELP + '\n');
    return 0;
  }
  const port = values.port === undefined ? DEFAULT_RENDEZVOUS_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) fail(`rendezvous: --port must be an integer in 0..65535, got '${values.port}'`);
  if (values.snapshot === '') fail('rendezvous: --snapshot needs a file name');
  if (values.store !== undefined && values.snapshot !== undefined) fail('rendezvous: --snapshot is for the memory store; a Redis store (--store) keeps the directory itself');
  if (values['store-prefix'] !== undefined && values.store === undefined) fail('rendezvous: --store-prefix needs --store');

  const logger = values.verbose ? createLogger('info', { proc: 'rendezvous' }) : silentLogger;
  const startError = (err: unknown): number => {
    const inUse = (err as { cause?: { code?: string } } | undefined)?.cause?.code === 'EADDRINUSE';
    const msg = inUse
      ? `UDP port ${port} on ${values.host ?? '127.0.0.1'} is in use (another rendezvous? choose a port with --port)`
      : isFerryError(err)
        ? `${err.code}: ${err.message}`
        : String(err);
    process.stderr.write(`ferry rendezvous: cannot start: ${msg}\n`);
    return 1;
  };
  let store: LocationStore;
  let described: string;
  try {
    if (values.store !== undefined) {
      const redis = await RedisStore.open({ url: values.store, ...(values['store-prefix'] ? { prefix: values['store-prefix'] } : {}), logger });
      store = redis;
      described = `${await redis.count()} agents, store ${redis.where}`;
    } else {
      const mem = await MemoryStore.open({ ...(values.snapshot ? { snapshotFile: values.snapshot } : {}), logger });
      store = mem;
      described = `${mem.size} agents, ${values.snapshot ? `snapshot ${values.snapshot}` : 'no snapshot'}`;
    }
  } catch (err) {
    return startError(err);
  }
  let server: RendezvousServer;
  try {
    server = await RendezvousServer.start({ host: values.host ?? '127.0.0.1', port, store, requireChains: !values['allow-unproven'], logger });
  } catch (err) {
    await store.close().catch(() => {});
    return startError(err);
  }

  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stdout.write(
    `ferry rendezvous ready on ${server.address} (${described}, ${server.chainsRequired ? 'chains required' : 'development mode: unproven registrations accepted'})\n`,
  );
  const signal = await stopped;
  // A second signal while the snapshot is written means "now": exit without waiting.
  const hurry = (): void => process.exit(130);
  process.once('SIGINT', hurry);
  process.once('SIGTERM', hurry);
  try {
    await server.close();
  } catch (err) {
    process.stderr.write(`ferry rendezvous: stopped on ${signal}, but the final snapshot failed: ${(err as Error).message}\n`);
    return 1;
  }
  process.stderr.write(`ferry rendezvous: stopped on ${signal} (${store instanceof MemoryStore ? `${store.size} agents` : 'directory in Redis'}${values.snapshot ? `, snapshot ${values.snapshot} written` : ''})\n`);
  return 0;
}
