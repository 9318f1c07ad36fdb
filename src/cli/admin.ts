/**
 * `ferry ls`, `ferry migrate`, `ferry launch`, `ferry stop` and `ferry logs`: operator commands that talk to a running host's admin endpoint,
 * found through its data directory (host.json and admin.token).
 */
import { open, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseMigrationTarget, type MigrationTarget } from '../host/index.js';
import { ERRORS, FerryError, isFerryError, limit, type ErrorCode } from '../util/index.js';

type Fail = (msg: string) => never;

export const LS_HELP = `ferry ls — list a host's agents and their connections

Usage: ferry ls [--data-dir DIR] [--json]
  --data-dir DIR   the host's data directory (default ./ferry-host)
  --json           print the raw status object`;

export const MIGRATE_HELP = `ferry migrate — move an agent to another host (transparent migration)

Usage: ferry migrate AGENT[,AGENT…] TARGET [--data-dir DIR]
  AGENT            the agent id (32 hex digits); several, comma-separated, move as one group
                   (one channel, admitted together, all or nothing before the commit)
  TARGET           the destination host's id (32 hex digits, as \`ferry host\` prints it: found
                   through the rendezvous, where every host registers itself), its data
                   directory, or [HOST_ID@]IP:REDIRECTOR_PORT
  --data-dir DIR   the source host's data directory (default ./ferry-host)

The agent, its state and its open connections move over the hosts' authenticated migration
channel; if anything fails before the destination commits, it runs on at the source.`;

/** What a running host wrote to its data directory (host.json). */
export interface HostFacts {
  host: string;
  redirector: string;
  admin: string;
}

/**
 * A client of one host's admin endpoint, found through the host's data directory. Requests
 * resolve with the JSON answer; a refusal rejects with a FerryError carrying the host's code
 * (and its cause's code as `cause`).
 */
export class AdminClient {
  private constructor(
    readonly dir: string,
    readonly facts: HostFacts,
    private readonly token: string,
  ) {}

  /**
   * Read host.json and admin.token from `dir`. A host that is still starting (no host.json yet)
   * is waited for up to HOST_START_WAIT_MS, so `ferry host … &` followed by `ferry launch` works;
   * rejects if none starts there.
   */
  static async open(dir: string, waitMs = limit('HOST_START_WAIT_MS')): Promise<AdminClient> {
    const deadline = Date.now() + waitMs;
    let told = false;
    for (;;) {
      try {
        const facts = JSON.parse(await readFile(join(dir, 'host.json'), 'utf8')) as HostFacts;
        const token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
        return new AdminClient(dir, facts, token);
      } catch (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        if (!missing || Date.now() >= deadline) {
          throw new Error(`no running host in ${dir} (${(err as Error).message}${missing && waitMs > 0 ? `, waited ${waitMs / 1000} s` : ''}); start one with 'ferry host --data-dir ${dir}'`);
        }
        if (!told && Date.now() > deadline - waitMs + 1000) {
          told = true;
          process.stderr.write(`ferry: waiting for a host to start in ${dir}…\n`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** The destination form of this host for /migrate. */
  get target(): { ip: string; redirectorPort: number; hostId: string } {
    const i = this.facts.redirector.lastIndexOf(':');
    return { ip: this.facts.redirector.slice(0, i), redirectorPort: Number(this.facts.redirector.slice(i + 1)), hostId: this.facts.host };
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(this.facts.admin + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new Error(`host at ${this.facts.admin} does not answer: ${(err as Error).message}`);
    }
    const out = (await res.json()) as Record<string, unknown>;
    if (!res.ok) {
      const code = (typeof out.error === 'string' && out.error in ERRORS ? out.error : 'FERRY_ERR_INTERNAL') as ErrorCode;
      // The host's cause chain, innermost last; codes that are not Ferry's (ECONNREFUSED…) kept.
      const causes = Array.isArray(out.causes) ? (out.causes as unknown[]).slice(0, 8) : [];
      let cause: Error | undefined;
      for (const c of causes.reverse()) {
        const { code: cc, message } = (c ?? {}) as { code?: unknown; message?: unknown };
        const e: Error & { code?: string } = typeof cc === 'string' && cc in ERRORS ? new FerryError(cc as ErrorCode, String(message), cause ? { cause } : undefined) : new Error(String(message), cause ? { cause } : undefined);
        if (!(e instanceof FerryError) && typeof cc === 'string') e.code = cc;
        cause = e;
      }
      throw new FerryError(code, String(out.message), cause ? { cause } : undefined);
    }
    return out;
  }
}

/**
 * An error and every cause under it, one per line with its code and message:
 * `CODE: message` then `  cause: CODE: message`…
 */
export function formatErrorChain(err: unknown): string {
  const lines: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const x = e as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    const code = typeof x.code === 'string' ? x.code : typeof x.name === 'string' ? x.name : 'Error';
    const message = typeof x.message === 'string' ? x.message : String(e);
    // Node's system errors start their message with the code already (ENOTDIR: not a directory).
    lines.push(`${depth === 0 ? '' : '  cause: '}${message.startsWith(`${code}:`) ? message : `${code}: ${message}`}`);
    e = typeof e === 'object' ? x.cause : undefined;
  }
  return lines.join('\n');
}

/** One admin request for a CLI command: a refusal is printed with its whole cause chain. */
async function call(dir: string, method: 'GET' | 'POST', path: string, body: unknown, fail: Fail): Promise<Record<string, unknown>> {
  let client: AdminClient;
  try {
    client = await AdminClient.open(dir);
  } catch (err) {
    fail((err as Error).message);
  }
  try {
    return await client.request(method, path, body);
  } catch (err) {
    if (!isFerryError(err)) fail((err as Error).message);
    process.stderr.write(`ferry: ${formatErrorChain(err)}\n`);
    return { failed: true };
  }
}

/** `ferry ls`. */
export async function lsMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(LS_HELP + '\n');
    return 0;
  }
  const status = await call(resolve(String(values['data-dir'] ?? 'ferry-host')), 'GET', '/status', undefined, fail);
  if (status.failed) return 1;
  if (values.json) {
    process.stdout.write(JSON.stringify(status) + '\n');
    return 0;
  }
  const agents = status.agents as { id: string; connections: { id: string; peer: string; state: string; role: string; written?: number; delivered?: number }[] }[];
  const ended = (status.ended ?? []) as { id: string; reason: string; at: string; code?: string; message?: string; result?: unknown }[];
  process.stdout.write(`host ${String(status.host)}  control ${String(status.control)}  redirector ${String(status.redirector)}  security ${status.security ? 'on' : 'off'}\n`);
  if (agents.length === 0) process.stdout.write('  (no agents)\n');
  for (const a of agents) {
    process.stdout.write(`  agent ${a.id}  ${a.connections.length} connection(s)\n`);
    for (const c of a.connections) process.stdout.write(`    ${c.id}  ${c.role.padEnd(6)}  peer ${c.peer}  ${c.state}  sent ${c.written ?? 0} B  received ${c.delivered ?? 0} B\n`);
  }
  if (ended.length > 0) process.stdout.write(`  ended here lately:\n`);
  for (const e of ended) {
    const why = e.reason === 'finished' ? (e.result === undefined ? '' : `: ${JSON.stringify(e.result)}`) : e.code ? `: ${e.code}${e.message ? `: ${e.message}` : ''}` : '';
    process.stdout.write(`    agent ${e.id}  ${e.reason}  at ${e.at}${why}\n`);
  }
  return 0;
}

/** `ferry migrate AGENT TARGET`. */
export async function migrateMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(MIGRATE_HELP + '\n');
    return 0;
  }
  const [agent, target] = positionals;
  if (!agent || !target || positionals.length !== 2) fail('usage: ferry migrate AGENT[,AGENT…] TARGET [--data-dir DIR]');
  let ip: string | undefined;
  let redirectorPort: number | undefined;
  let hostId: string | undefined;
  // TARGET is a host id, a data directory, or [HOST_ID@]IP:PORT (the forms ctx.migrate takes), or the older
  // IP:PORT@HOST_ID.
  const legacy = /^(.+):(\d+)@([0-9a-f]{32})$/.exec(target);
  if (/^[0-9a-f]{32}$/.test(target)) {
    // A host id alone: the host looks it up at its rendezvous (where hosts register themselves).
    hostId = target;
  } else if (legacy) {
    ip = legacy[1]!;
    redirectorPort = Number(legacy[2]);
    hostId = legacy[3];
  } else if (/:\d+$/.test(target)) {
    let t: MigrationTarget;
    try {
      t = parseMigrationTarget(target);
    } catch (err) {
      fail((err as Error).message);
    }
    ip = t.ip;
    redirectorPort = t.redirectorPort;
    hostId = t.hostId;
  } else {
    let dest: AdminClient;
    try {
      dest = await AdminClient.open(resolve(target));
    } catch (err) {
      fail((err as Error).message);
    }
    ({ ip, redirectorPort, hostId } = dest.target);
  }
  const group = agent.includes(',') ? agent.split(',').filter((x) => x.length > 0) : undefined;
  const out = await call(resolve(String(values['data-dir'] ?? 'ferry-host')), 'POST', '/migrate', { ...(group ? { agents: group } : { agent }), ...(ip === undefined ? {} : { ip, redirectorPort }), ...(hostId ? { hostId } : {}) }, fail);
  if (out.failed) return 1;
  process.stdout.write(`migrated ${agent} to ${ip === undefined ? `host ${hostId}` : `${ip}:${redirectorPort}${hostId ? ` (host ${hostId})` : ''}`} in ${String(out.ms)} ms\n`);
  return 0;
}

export const LAUNCH_HELP = `ferry launch — launch an agent module on a host that runs an agent runtime

Usage: ferry launch MODULE.mjs --credential FILE --agent-key FILE [--state JSON] [--replace] [--data-dir DIR]
  MODULE.mjs        the agent module (imports 'ferry/agent', default-exports defineAgent({...}))
  --credential FILE the owner-signed credential for this code and agent key (text form;
                    'ferry credential' makes one)
  --agent-key FILE  the agent's key (32-byte Ed25519 seed, hex; 'ferry keygen') the credential names
  --state JSON      the agent's initial ctx.state
  --replace         the agent is registered on another host: register it here all the same; the
                    copy there is fenced (stopped, its connections ended) when that host sees it
  --data-dir DIR    the host's data directory (default ./ferry-host)

The host must run with --policy FILE granting the credential's owner 'land'. Answers once the
agent's module loaded and run() began, printing "launched AGENT_ID"; if the agent fails before
(a syntax error, no default export, a denied import) it prints the agent's error and exits 1.
An agent registered on another host is refused (FERRY_ERR_AGENT_ELSEWHERE) without --replace:
an agent never runs on two hosts. An agent that ended or was stopped there, or whose host stopped
gracefully, was deregistered and launches anywhere; only a killed host leaves its agents
registered (then --replace).`;

/** `ferry launch MODULE.mjs --credential FILE`. */
export async function launchMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        credential: { type: 'string' },
        'agent-key': { type: 'string' },
        state: { type: 'string' },
        replace: { type: 'boolean' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(LAUNCH_HELP + '\n');
    return 0;
  }
  const [module] = positionals;
  if (!module || positionals.length !== 1) fail('usage: ferry launch MODULE.mjs --credential FILE --agent-key FILE [--data-dir DIR]');
  if (typeof values.credential !== 'string') fail("launch needs --credential FILE: the owner-signed credential for this module and agent key (make one with 'ferry credential')");
  if (typeof values['agent-key'] !== 'string') fail("launch needs --agent-key FILE: the key of the agent the credential names (the file 'ferry keygen' wrote)");
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      fail(`cannot read ${what} ${file}: ${(err as Error).message}`);
    }
  };
  const code = await read(module, 'module');
  const credential = (await read(values.credential, 'credential')).trim();
  const seed = (await read(values['agent-key'], 'agent key')).trim();
  let state: unknown;
  if (typeof values.state === 'string') {
    try {
      state = JSON.parse(values.state) as unknown;
    } catch {
      fail('--state must be JSON');
    }
  }
  const out = await call(resolve(String(values['data-dir'] ?? 'ferry-host')), 'POST', '/launch', { code, credential, seed, ...(state === undefined ? {} : { state }), ...(values.replace ? { replace: true } : {}) }, fail);
  if (out.failed) return 1;
  process.stdout.write(`launched ${String(out.agent)}\n`);
  return 0;
}

export const STOP_HELP = `ferry stop — stop an agent on a host

Usage: ferry stop AGENT [--kill] [--data-dir DIR]
  AGENT            the agent id (32 hex digits)
  --kill           terminate it at once: its connections are aborted (peers see
                   FERRY_ERR_PEER_ABORTED)
  --data-dir DIR   the host's data directory (default ./ferry-host)

Without --kill the stop is graceful: the agent is frozen as for a move, every write it made is
delivered, and its connections end as after a finished run (peers read to the end of stream).
Either way the agent ends here ('ferry ls' lists it as stopped) and the host deregisters it at the
rendezvous, so it can be launched on another host at once.`;

/** `ferry stop AGENT [--kill]`. */
export async function stopMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: { kill: { type: 'boolean' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(STOP_HELP + '\n');
    return 0;
  }
  const [agent] = positionals;
  if (!agent || positionals.length !== 1) fail('usage: ferry stop AGENT [--kill] [--data-dir DIR]');
  const out = await call(resolve(String(values['data-dir'] ?? 'ferry-host')), 'POST', '/stop', { agent, kill: Boolean(values.kill) }, fail);
  if (out.failed) return 1;
  process.stdout.write(`stopped ${agent}${values.kill ? ' (killed)' : ''}\n`);
  return 0;
}

export const LOGS_HELP = `ferry logs — a host's agent and lifecycle lines

Usage: ferry logs [--follow] [--data-dir DIR]
  --follow         keep printing new lines as the host writes them (until Ctrl-C)
  --data-dir DIR   the host's data directory (default ./ferry-host)

Prints DATA-DIR/host.log: what the host printed at its default level (agent log lines, and each
agent's launch, start, landing, move, end with its result or reason), newest last. Works while
the host runs and after it stopped.`;

/** `ferry logs [--follow]`. */
export async function logsMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: { follow: { type: 'boolean', short: 'f' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(LOGS_HELP + '\n');
    return 0;
  }
  const dir = resolve(String(values['data-dir'] ?? 'ferry-host'));
  const file = join(dir, 'host.log');
  let offset = 0;
  const drain = async (): Promise<void> => {
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && values.follow) return;
      fail(`no host log in ${dir} (${(err as Error).message}); is it a host's data directory?`);
    }
    try {
      const { size } = await fh.stat();
      if (size < offset) offset = 0; // the host started the file over
      const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      offset += bytesRead;
      if (bytesRead > 0) process.stdout.write(buf.subarray(0, bytesRead));
    } finally {
      await fh.close();
    }
  };
  await drain();
  if (!values.follow) return 0;
  await new Promise<void>((stop) => {
    const timer = setInterval(() => void drain(), 200);
    const end = (): void => {
      clearInterval(timer);
      stop();
    };
    process.once('SIGINT', end);
    process.once('SIGTERM', end);
  });
  return 0;
}
