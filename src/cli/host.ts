/**
 * `ferry host`: run one host as a process. Wires a Host, its location service (a rendezvous
 * client, or an embedded rendezvous), its key, policy and admin endpoint; no logic of its own.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeSync } from 'node:fs';
import { MigrationStep } from '../wire/index.js';
import { AdminServer, AgentRuntime, type AgentExit, CodeStore, Host, channelHost, readPolicyFile, type AdminExtensions, type HostPolicy } from '../host/index.js';
import { Identity, parseId } from '../identity/index.js';
import { MemoryStore, RendezvousClient, RendezvousServer } from '../location/index.js';
import { FerryError, limit, type Logger } from '../util/index.js';
import { hostAddress } from './host-address.js';
import { LogFile, hostLogger } from './host-log.js';

export const HOST_HELP = `ferry host — run a host: one UDP control port, one TCP redirector port, agents

Usage: ferry host [options]

  --config FILE           JSON object with any of the options below as keys (flags win;
                          an unknown key or a wrong type is an error)
  --name NAME             name in logs (default: first 8 hex digits of the host id)
  --data-dir DIR          where the key, admin token and host.json live (default ./ferry-host)
  --key FILE              host key (32-byte Ed25519 seed, hex); created if missing
                          (default DATA-DIR/host.key)
  --ip IP                 address to bind both ports (default 127.0.0.1)
  --ip auto               a roaming host (a laptop): bind every address, register the host's
                          external IPv4 address, and when it changes (polled every 200 ms,
                          ADDRESS_POLL_MS) re-register its agents there and resume every
                          connection from the new one (use an external --rendezvous)
  --control-port N        UDP control port (default 0: any free port)
  --redirector-port N     TCP redirector port (default 0)
  --rendezvous IP:PORT[,IP:PORT…]
                          the rendezvous to use, or several nodes over one directory (tried in
                          turn: a node that does not answer within 1 s is failed over);
                          without it the host embeds one
  --rendezvous-port N     port of the embedded rendezvous (default 0)
  --policy FILE           host policy (JSON, see docs/AGENTS.md): runs the agent runtime, so
                          agents with code can be launched here ('ferry launch') and migrate
                          here; without it, no agents with code (deny all). Agents
                          without code never land here by migration
  --no-security           plain handshakes and frames (to measure the cost of security)
  --admin-port N          operator endpoint on 127.0.0.1 (default 0)
  --verbose               also the full structured log (JSON lines) on stderr
  -h, --help              this text

When ready it prints one line "ferry host ready …" and writes DATA-DIR/host.json (ids, ports,
admin URL); the admin token is in DATA-DIR/admin.token (mode 0600). Then it prints one line per
agent event (launched, started, landed, moved, finished with its result, failed with its reason,
stopped), every agent log line (ctx.log, console.*), and its own warnings, on stdout and in
DATA-DIR/host.log ('ferry logs' shows them). SIGINT/SIGTERM stop it: its agents are stopped and
deregistered at the rendezvous, so they can be launched on another host (a killed host leaves
them registered: then 'ferry launch --replace'). A rendezvous that lost its directory (restarted
without its snapshot) is told again what this host runs within 5 s (FENCE_CHECK_MS).

Environment, FOR TESTS ONLY (fault injection; never set it anywhere else):
  FERRY_TEST_FAULT=freeze-destination-before-commit
                          as a migration's destination, freeze once the whole checkpoint has
                          arrived, before committing (registering the agent)
  FERRY_TEST_FAULT=freeze-source-after-commit
                          as a migration's source, freeze once the destination's COMMITTED
                          has arrived, before acting on it
  The host warns on stderr at start, then at that point prints "ferry host fault: frozen at
  NAME" on stdout and stops dead (the whole process), so that a test can SIGKILL it exactly
  there; if nothing kills it within 30 s it exits with status 70. Any other value is refused.`;

/**
 * Test-only fault points (FERRY_TEST_FAULT): at one point of a migration the host process stops
 * dead (a synchronous wait: no timer, socket or agent message is served any more, as if it had
 * crashed at that instant) after printing a line, so a process-level test can SIGKILL it exactly
 * there instead of racing the protocol (test/integration/processes-kill-migration.test.ts).
 */
const TEST_FAULTS: Record<string, { side: 'source' | 'destination'; step: number; after: boolean }> = {
  'freeze-destination-before-commit': { side: 'destination', step: MigrationStep.CHECKPOINT_END, after: false },
  'freeze-source-after-commit': { side: 'source', step: MigrationStep.COMMITTED, after: true },
};
const TEST_FAULT_FREEZE_MS = 30_000;

function freezeForTest(name: string): never {
  writeSync(1, `ferry host fault: frozen at ${name} (pid ${process.pid})\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TEST_FAULT_FREEZE_MS);
  writeSync(2, `ferry host fault: not killed within ${TEST_FAULT_FREEZE_MS} ms; exiting\n`);
  process.exit(70);
}

type Fail = (msg: string) => never;

/** How many ended agents `ferry ls` shows. */
const ENDED_KEPT = 32;

/** The options of `ferry host`, as flags and as --config keys. */
const HOST_OPTIONS = {
  config: { type: 'string' },
  name: { type: 'string' },
  'data-dir': { type: 'string' },
  key: { type: 'string' },
  ip: { type: 'string' },
  'control-port': { type: 'string' },
  'redirector-port': { type: 'string' },
  rendezvous: { type: 'string' },
  'rendezvous-port': { type: 'string' },
  policy: { type: 'string' },
  'no-security': { type: 'boolean' },
  'admin-port': { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Run `ferry host`; resolves with the exit status after a signal. */
export async function hostMain(argv: string[], fail: Fail): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: HOST_OPTIONS,
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(HOST_HELP + '\n');
    return 0;
  }
  if (typeof values.config === 'string') {
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(await readFile(values.config, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      fail(`cannot read config ${values.config}: ${(err as Error).message}`);
    }
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) fail(`config ${values.config}: expected a JSON object of options`);
    // The same options as the flags, checked as strictly: a misspelt key is an error, not ignored.
    const known = Object.keys(HOST_OPTIONS).filter((k) => k !== 'config' && k !== 'help');
    for (const [k, v] of Object.entries(cfg)) {
      if (!known.includes(k)) fail(`config ${values.config}: unknown key ${JSON.stringify(k)} (known: ${known.join(', ')})`);
      const boolean = HOST_OPTIONS[k as keyof typeof HOST_OPTIONS].type === 'boolean';
      if (boolean ? typeof v !== 'boolean' : typeof v !== 'string' && typeof v !== 'number') fail(`config ${values.config}: ${k} must be ${boolean ? 'true or false' : 'a string or a number'}, got ${JSON.stringify(v)}`);
      if (values[k] === undefined) values[k] = typeof v === 'number' ? String(v) : (v as string | boolean);
    }
  }
  const port = (name: string): number => {
    const v = values[name];
    if (v === undefined) return 0;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`--${name} must be a port number, got '${String(v)}'`);
    return n;
  };
  const faultName = process.env.FERRY_TEST_FAULT;
  const fault = faultName !== undefined && Object.hasOwn(TEST_FAULTS, faultName) ? TEST_FAULTS[faultName] : undefined;
  if (faultName !== undefined && !fault) fail(`FERRY_TEST_FAULT=${JSON.stringify(faultName)} is not a test fault (${Object.keys(TEST_FAULTS).join(', ')}); unset it`);
  if (faultName !== undefined) process.stderr.write(`ferry host: TEST FAULT INJECTION ON (FERRY_TEST_FAULT=${faultName}): this host freezes during migrations; for tests only\n`);
  const dataDir = resolve(String(values['data-dir'] ?? 'ferry-host'));
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    fail(`cannot use data directory ${dataDir}: ${(err as Error).message}`);
  }
  // A host.json left by an earlier run would send operator commands to a dead port while this one
  // starts; without it they wait for the new one (HOST_START_WAIT_MS).
  await rm(join(dataDir, 'host.json'), { force: true });
  const identity = await loadOrCreateKey(String(values.key ?? join(dataDir, 'host.key')), fail);
  // Agent lines and lifecycle events always; the full structured log with --verbose.
  const log: Logger = hostLogger({ verbose: Boolean(values.verbose), file: new LogFile(join(dataDir, 'host.log')) });
  // A roaming host (--ip auto) binds the wildcard and follows its address once it runs.
  const address = hostAddress(typeof values.ip === 'string' ? values.ip : undefined, '127.0.0.1', log, fail);
  const { ip } = address;
  let policy: HostPolicy | undefined;
  if (typeof values.policy === 'string') {
    try {
      policy = await readPolicyFile(values.policy);
    } catch (err) {
      fail(`cannot load policy ${values.policy}: ${(err as Error).message}`);
    }
  }

  let embedded: RendezvousServer | undefined;
  let rendezvous = typeof values.rendezvous === 'string' ? values.rendezvous : undefined;
  if (!rendezvous) {
    const store = await MemoryStore.open({ snapshotFile: join(dataDir, 'rendezvous.json') });
    embedded = await RendezvousServer.start({ host: address.bind, port: port('rendezvous-port'), store, logger: log });
    // A roaming host's embedded rendezvous is bound to the wildcard: name it by the address now.
    rendezvous = address.roaming ? `${ip}:${embedded.address.slice(embedded.address.lastIndexOf(':') + 1)}` : embedded.address;
  }
  const [first, ...alternates] = rendezvous.split(',').map((a) => a.trim());
  if (!first || alternates.some((a) => a === '')) fail(`--rendezvous takes IP:PORT[,IP:PORT…], got '${rendezvous}'`);
  const location = await RendezvousClient.connect({ server: first, alternates, ...(address.roaming ? {} : { host: ip }), signer: identity, logger: log });
  let host: Host;
  try {
    host = await Host.start({
      location,
      identity,
      ip: address.bind,
      advertise: ip,
      controlPort: port('control-port'),
      redirectorPort: port('redirector-port'),
      security: !values['no-security'],
      // Only agents with code run here: one without, arriving from any host key, is refused
      // (nothing else would vouch for it or for the connections its checkpoint names).
      landOnlyAgentsWithCode: true,
      logger: log,
      ...(fault && faultName ? { migrationFault: (side: 'source' | 'destination', step: number, after?: boolean) => (side === fault.side && step === fault.step && !!after === fault.after ? freezeForTest(faultName) : undefined) } : {}),
      ...(typeof values.name === 'string' ? { name: values.name } : {}),
    });
  } catch (err) {
    location.close();
    await embedded?.close();
    fail(`cannot start host: ${(err as Error).message}`);
  }
  let runtime: AgentRuntime | undefined;
  const ext: AdminExtensions = {};
  if (policy) {
    const rt = new AgentRuntime({ host: channelHost(host), policy, logger: log, codeStore: new CodeStore(join(dataDir, 'code')) });
    host.useRuntime(rt);
    runtime = rt;
    ext.launch = async (b) => {
      if (typeof b.code !== 'string') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'launch needs code (the module source text)');
      if (typeof b.credential !== 'string' || b.credential.length === 0) throw new FerryError('FERRY_ERR_NO_CREDENTIAL', 'launch needs credential (text form)');
      if (b.seed !== undefined && (typeof b.seed !== 'string' || !/^[0-9a-f]{64}$/i.test(b.seed))) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'seed must be a 32-byte Ed25519 seed in hex');
      const identity = typeof b.seed === 'string' ? Identity.fromSeed(Buffer.from(b.seed, 'hex')) : Identity.generate();
      const h = await rt.launch(b.code, b.credential, identity, { ...(b.state === undefined ? {} : { state: b.state }), replace: b.replace === true });
      // Answer once the module loaded and run() began, or with the agent's own error.
      await h.started;
      return { agent: h.id };
    };
    ext.describe = (id) => {
      const h = rt.handleOf(id);
      return h ? { owner: h.owner, code: h.codeHash } : {};
    };
    // The last agents that ended here (not the ones that moved away), for `ferry ls` and the demo.
    const ended: unknown[] = [];
    rt.on('exit', (exit: AgentExit) => {
      if (exit.reason === 'migrated') return;
      ended.push({ id: exit.agentId, reason: exit.reason, at: new Date().toISOString(), ...(exit.error ? { code: exit.error.code, message: exit.error.message } : {}), ...(exit.result === undefined ? {} : { result: exit.result }) });
      if (ended.length > ENDED_KEPT) ended.shift();
    });
    ext.ended = () => ended;
    ext.stop = async (id, kill) => {
      const exit = await rt.stop(id, { graceful: !kill });
      return { stopped: exit.agentId, reason: exit.reason };
    };
  }
  const admin = await AdminServer.start(host, port('admin-port'), log, ext);
  // As peers are told at start (a roaming host is bound to the wildcard).
  const factsAt = (at: string): { host: string; control: string; redirector: string; rendezvous: string; admin: string; pid: number } => {
    const control = address.roaming ? `${at}:${host.controlAddress.slice(host.controlAddress.lastIndexOf(':') + 1)}` : host.controlAddress;
    return { host: host.id, control, redirector: `${at}:${host.redirectorPort}`, rendezvous, admin: admin.url, pid: process.pid };
  };
  // Written whole, then renamed: a reader never sees half a file.
  const publish = async (f: ReturnType<typeof factsAt>): Promise<void> => {
    await writeFile(join(dataDir, 'host.json.tmp'), JSON.stringify(f, null, 2));
    await rename(join(dataDir, 'host.json.tmp'), join(dataDir, 'host.json'));
  };
  const facts = factsAt(ip);
  await writeFile(join(dataDir, 'admin.token'), admin.token, { mode: 0o600 });
  await chmod(join(dataDir, 'admin.token'), 0o600);
  await publish(facts);
  // Listen for the stop signals before announcing readiness: until a listener exists, SIGTERM
  // keeps its default action and would kill the process without the graceful shutdown.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  // A roaming host's new address goes into host.json too, or 'ferry migrate --to-dir' would send
  // agents to the address it left.
  address.follow(host, (next) => {
    publish(factsAt(next)).catch((err: unknown) => log.warn('host_json_not_written', { detail: (err as Error).message }));
  });
  process.stdout.write(`ferry host ready: id=${host.id} control=${facts.control} redirector=${facts.redirector} rendezvous=${rendezvous}${embedded ? ' (embedded)' : ''} admin=${admin.url}${address.roaming ? ' roaming' : ''}\n`);
  let stopping = false;
  void probeRendezvous(location, rendezvous, log, () => stopping).then(() => registerSelf(host, log, () => stopping));
  await stopped;
  stopping = true;
  address.stop();

  await admin.close();
  await runtime?.close();
  await host.close();
  location.close();
  await embedded?.close();
  return 0;
}

/**
 * Ask the rendezvous once at start (a LOOKUP); if it does not answer, say so once and keep asking
 * every RENDEZVOUS_PROBE_MS until it does, then say that too. Agents cannot be launched or land
 * here meanwhile (their registration would fail, and is rolled back).
 */
async function probeRendezvous(location: RendezvousClient, address: string, log: Logger, stopped: () => boolean): Promise<void> {
  let down = false;
  while (!stopped()) {
    try {
      await location.lookup(parseId('0'.repeat(32)));
      if (down) log.info('rendezvous_answers', { rendezvous: address });
      return;
    } catch (err) {
      if (stopped()) return;
      if (!down) log.warn('rendezvous_unreachable', { rendezvous: address, code: (err as FerryError).code, detail: (err as Error).message, retryMs: limit('RENDEZVOUS_PROBE_MS') });
      down = true;
      await new Promise((r) => setTimeout(r, limit('RENDEZVOUS_PROBE_MS')));
    }
  }
}

/**
 * Once the rendezvous answers, register this host's own locator under its id, so agents and
 * `ferry migrate` can name it by id alone; a refusal is logged (moves by address still work).
 */
async function registerSelf(host: Host, log: Logger, stopped: () => boolean): Promise<void> {
  if (stopped()) return;
  try {
    await host.registerSelf();
    log.info('host_registered', { host: host.id });
  } catch (err) {
    log.warn('host_registration_failed', { host: host.id, code: (err as FerryError).code, detail: (err as Error).message });
  }
}

/** Read a 32-byte Ed25519 seed (hex) from `file`, or create one there (mode 0600). */
export async function loadOrCreateKey(file: string, fail: Fail): Promise<Identity> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') fail(`cannot read key file ${file}: ${(err as Error).message}`);
    const id = Identity.generate();
    await writeFile(file, id.seed().toString('hex') + '\n', { mode: 0o600 });
    return id;
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) fail(`key file ${file} must hold a 32-byte Ed25519 seed in hex`);
  return Identity.fromSeed(Buffer.from(text, 'hex'));
}
