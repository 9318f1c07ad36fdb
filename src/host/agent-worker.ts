/**
 * The entry of an agent's worker thread: confine, then run the agent.
 *
 * Order matters. (1) Load everything the bootstrap needs while the default loader still works.
 * (2) Capture the port's `postMessage` so later changes to prototypes cannot redirect it.
 * (3) Register the loader hooks (`agent-loader.ts`): from here on the only importable modules are
 * the agent's own (by hash) and `ferry/agent`. (4) Lock the globals: `process` becomes a stand-in
 * whose every use throws FERRY_ERR_CONFINEMENT (not `undefined`, so the failure says why);
 * `fetch`, `WebSocket`, `EventSource` and `BroadcastChannel` (a channel to other workers outside
 * policy) throw the same way; `console` goes to `ctx.log`. (5) Import the agent module and call
 * `run(ctx)`. `ctx` is all it gets.
 *
 * What this does not do (docs/AGENTS.md has the full list): the worker shares the host's OS
 * process, so a V8 or Node bug that escapes a worker escapes to the host; V8 heap limits do not
 * cover ArrayBuffer memory (the heartbeat reports it and the host stops an agent over its limit,
 * after the fact); agent code can change prototypes this bootstrap uses, so nothing the worker
 * says is trusted by the host beyond what it checks.
 *
 * No export: importing this file anywhere but as a worker entry is a mistake.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'node:module';
import { getHeapStatistics } from 'node:v8';
import { FerryError, abortedError, limit } from '../util/index.js';
import { PortServer, PortSocket, type Post } from './agent-port.js';
import { knownCode, type Consumed, type HostMessage, type SocketInfo, type WorkerInit } from './agent-protocol.js';

if (!parentPort) throw new Error('agent-worker.js runs only as a worker thread');
const port = parentPort;
const post: Post = port.postMessage.bind(port) as Post;
const init = workerData as WorkerInit;
const later = setImmediate;
const LOG_LINE = limit('AGENT_LOG_LINE_BYTES');
const PENDING = limit('AGENT_PENDING_REQUESTS');

// ------------------------------------------------------------------ sockets

const sockets = new Map<number, PortSocket>();
let server: PortServer | undefined;
let pendingServer: PortServer | undefined;
let state: unknown = init.state;
let migrating = false;

function addSocket(info: SocketInfo): PortSocket {
  const s = new PortSocket(post, info, init.writeWindow);
  sockets.set(info.sid, s);
  s.once('close', () => sockets.delete(info.sid));
  return s;
}

const carried = Object.freeze(init.connections.map(addSocket));
if (init.listening) server = new PortServer(post);

// ------------------------------------------------------------------ requests to the host

let nextRequest = 1;
const pending = new Map<number, { resolve: (v: PortSocket | undefined) => void; reject: (e: Error) => void }>();

function request(msg: Record<string, unknown>, signal?: AbortSignal): Promise<PortSocket | undefined> {
  if (pending.size >= PENDING) return Promise.reject(new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `more than ${PENDING} ctx requests pending`));
  const id = nextRequest++;
  if (signal) return cancellable(id, msg, signal);
  try {
    post({ ...msg, t: 'req', id });
  } catch (cause) {
    // postMessage throws DataCloneError synchronously for functions, symbols, class instances with private state…
    return Promise.reject(new FerryError('FERRY_ERR_INVALID_ARGUMENT', `ctx.state must be structured-clone data: ${(cause as Error).message}`, { cause }));
  }
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

/**
 * A request agent code can abort: the abort rejects at once and asks the host to call it off. A
 * socket the host had already opened (its reply crossing the cancel) is destroyed on arrival, so
 * nothing is left behind.
 */
function cancellable(id: number, msg: Record<string, unknown>, signal: AbortSignal): Promise<PortSocket | undefined> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      pending.set(id, { resolve: (s) => s?.destroy(), reject: () => undefined });
      post({ t: 'cancel', id });
      reject(abortedError(String(msg.op), signal));
    };
    pending.set(id, {
      resolve: (s) => (signal.removeEventListener('abort', onAbort), resolve(s)),
      reject: (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    });
    signal.addEventListener('abort', onAbort, { once: true });
    post({ ...msg, t: 'req', id });
  });
}

// ------------------------------------------------------------------ freeze for a move

/**
 * Freeze for a move: hand the host every write made so far, then hold later ones. The caller
 * snapshots with {@link snapshot} in the same synchronous step as it posts the state, so the
 * state and the read offsets describe the same instant.
 */
async function freeze(): Promise<void> {
  const max = init.maxBufferedBytes;
  for (const s of sockets.values()) {
    if (s.unsent() > max) {
      throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `connection ${s.connectionId}: ${s.unsent()} bytes written but not yet sent exceed maxBufferedBytes (${max}); wait for 'drain' before migrating`);
    }
  }
  for (const s of sockets.values()) s.flushForFreeze();
  // Writable hands its buffer to _writev as soon as the held callback runs; allow a few turns
  // for corked or mid-callback streams.
  for (let i = 0; i < 50 && [...sockets.values()].some((s) => !s.destroyed && s.writableLength > 0); i++) await new Promise((r) => later(r));
  for (const s of sockets.values()) s.freeze();
}

function snapshot(): Consumed {
  return [...sockets.values()].map((s) => [s.sid, s.consumed()] as [number, number]);
}

/** Connections in the listen queue at the snapshot: agent code never took them, so they travel as queued, not as `ctx.connections`. */
function queuedAtSnapshot(): number[] {
  return (server ?? pendingServer)?.queuedSids() ?? [];
}

/** ctx.connect / ctx.listen calls made during a freeze wait here: they go on if the move rolls
 *  back, and never settle if it commits (run() starts again on the destination). */
let thawWaiters: (() => void)[] = [];
const untilThawed = (): Promise<void> => (migrating ? new Promise((r) => thawWaiters.push(r)) : Promise.resolve());

function thaw(): void {
  migrating = false;
  for (const s of sockets.values()) s.thaw();
  const waiters = thawWaiters;
  thawWaiters = [];
  for (const w of waiters) w();
}

async function hostFreeze(id: number): Promise<void> {
  if (migrating) {
    post({ t: 'frozen', id, ok: false, code: 'FERRY_ERR_INVALID_ARGUMENT', message: 'a migration is already in progress' });
    return;
  }
  migrating = true;
  try {
    await freeze();
    post({ t: 'frozen', id, ok: true, state, consumed: snapshot(), queued: queuedAtSnapshot() });
  } catch (err) {
    thaw();
    const e = err as { code?: unknown; message?: unknown };
    const code = e.code === 'DATA_CLONE_ERR' || (err as Error).name === 'DataCloneError' ? 'FERRY_ERR_INVALID_ARGUMENT' : knownCode(e.code);
    post({ t: 'frozen', id, ok: false, code, message: `cannot checkpoint: ${String(e.message)}`.slice(0, 1000) });
  }
}

// ------------------------------------------------------------------ messages from the host

port.on('message', (m: HostMessage) => {
  switch (m.t) {
    case 'ping':
      post({ t: 'pong', seq: m.seq, external: getHeapStatistics().external_memory });
      break;
    case 'res': {
      const p = pending.get(m.id);
      if (!p) break;
      pending.delete(m.id);
      // The proxy exists before this handler returns, so data that follows finds it.
      if (m.ok) p.resolve(m.socket ? addSocket(m.socket) : undefined);
      else p.reject(new FerryError(knownCode(m.code), m.message));
      break;
    }
    case 'data':
      sockets.get(m.sid)?.onData(m.chunk);
      break;
    case 'rend':
      sockets.get(m.sid)?.onReadEnd();
      break;
    case 'wack':
      sockets.get(m.sid)?.onWriteAck(m.n);
      break;
    case 'fack':
      sockets.get(m.sid)?.onFinalAck();
      break;
    case 'closed':
      sockets.get(m.sid)?.onClosed(m.code, m.message);
      break;
    case 'accept': {
      const s = addSocket(m.socket);
      const srv = server ?? pendingServer;
      if (srv && !srv.closed) srv.deliver(s);
      else s.destroy();
      break;
    }
    case 'freeze':
      void hostFreeze(m.id);
      break;
    case 'thaw':
      thaw();
      break;
  }
});

// ------------------------------------------------------------------ log

function show(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    if (v instanceof Error) {
      const code = (v as { code?: unknown }).code;
      return `${v.name}: ${v.message}${typeof code === 'string' ? ` [${code}]` : ''}`;
    }
    const j = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? `<${x.byteLength} bytes>` : x));
    return j ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function log(level: 'info' | 'warn' | 'error', args: unknown[]): void {
  const text = args.map(show).join(' ');
  post({ t: 'log', level, text: text.length > LOG_LINE ? `${text.slice(0, LOG_LINE)}…` : text });
}

// ------------------------------------------------------------------ ctx

const ctx = Object.freeze({
  id: init.agentId,
  hostId: init.hostId,
  owner: init.owner,
  get state(): unknown {
    return state;
  },
  set state(v: unknown) {
    state = v;
  },
  connections: carried,
  async connect(agentId: string, opts: { signal?: AbortSignal } = {}): Promise<PortSocket> {
    if (typeof agentId !== 'string') throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'ctx.connect(agentId): agentId must be a string');
    const signal = opts?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'ctx.connect(agentId, { signal }): signal must be an AbortSignal');
    if (signal?.aborted) throw abortedError('connect', signal);
    await untilThawed();
    if (signal?.aborted) throw abortedError('connect', signal);
    const sock = await request({ op: 'connect', to: agentId }, signal);
    if (!sock) throw new FerryError('FERRY_ERR_AGENT_PROTOCOL', 'connect reply without a socket');
    return sock;
  },
  async listen(): Promise<PortServer> {
    if (server && !server.closed) return server;
    await untilThawed();
    if (server && !server.closed) return server;
    pendingServer = new PortServer(post);
    try {
      await request({ op: 'listen' });
    } catch (err) {
      pendingServer = undefined;
      throw err;
    }
    server = pendingServer;
    pendingServer = undefined;
    return server;
  },
  async migrate(target: string): Promise<never> {
    if (typeof target !== 'string' || target.length === 0 || target.length > 256) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'ctx.migrate(target): target must be a host id or address');
    if (migrating) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'a migration is already in progress');
    migrating = true;
    try {
      await freeze();
      await request({ op: 'migrate', target, state, consumed: snapshot(), queued: queuedAtSnapshot() });
    } catch (err) {
      thaw();
      throw err;
    }
    // Not reached: on success the host terminates this worker before it answers.
    return new Promise<never>(() => {});
  },
  log(...args: unknown[]): void {
    log('info', args);
  },
});

// ------------------------------------------------------------------ lockdown

function lockdown(): void {
  const denied = (what: string): FerryError => new FerryError('FERRY_ERR_CONFINEMENT', `agent code may not use ${what}: an agent's only authority is its ctx (see docs/AGENTS.md)`);
  const trap = (): never => {
    throw denied('process');
  };
  const standIn: object = new Proxy(Object.freeze(Object.create(null) as object), {
    get: trap,
    set: trap,
    has: trap,
    ownKeys: trap,
    getOwnPropertyDescriptor: trap,
    defineProperty: trap,
    deleteProperty: trap,
    getPrototypeOf: trap,
    setPrototypeOf: trap,
    isExtensible: trap,
    preventExtensions: trap,
  });
  Object.defineProperty(globalThis, 'process', { value: standIn, writable: false, enumerable: false, configurable: false });
  for (const name of ['fetch', 'WebSocket', 'EventSource', 'BroadcastChannel', 'navigator', 'localStorage', 'sessionStorage']) {
    const refuse = function (): never {
      throw denied(name);
    };
    Object.defineProperty(globalThis, name, { value: refuse, writable: false, enumerable: false, configurable: false });
  }
  const to = (level: 'info' | 'warn' | 'error') => (...args: unknown[]): void => log(level, args);
  const nop = (): void => {};
  const agentConsole = {
    log: to('info'),
    info: to('info'),
    debug: to('info'),
    trace: to('info'),
    dir: to('info'),
    warn: to('warn'),
    error: to('error'),
    assert: (cond: unknown, ...args: unknown[]): void => {
      if (!cond) log('error', ['Assertion failed', ...args]);
    },
    table: to('info'),
    time: nop,
    timeEnd: nop,
    timeLog: nop,
    count: nop,
    countReset: nop,
    group: nop,
    groupEnd: nop,
  };
  Object.defineProperty(globalThis, 'console', { value: agentConsole, writable: true, enumerable: false, configurable: true });
}

// ------------------------------------------------------------------ run

function fail(err: unknown): void {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const code = e && e.code === 'FERRY_ERR_CONFINEMENT' ? 'FERRY_ERR_CONFINEMENT' : 'FERRY_ERR_AGENT_CRASHED';
  let message: string;
  try {
    message = e && typeof e === 'object' ? `${String(e.name)}: ${String(e.message)}${typeof e.code === 'string' ? ` [${e.code}]` : ''}` : `non-error thrown: ${String(err)}`;
  } catch {
    message = 'unprintable error';
  }
  post({ t: 'done', ok: false, code, message: message.slice(0, 4000) });
}

async function main(): Promise<void> {
  let mod: { default?: { run?: unknown } };
  try {
    mod = (await import(`ferry-agent:${init.codeHash}`)) as typeof mod;
  } catch (err) {
    return fail(err);
  }
  const def = mod.default;
  if (!def || typeof def.run !== 'function') {
    return fail(new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'the agent module must default-export defineAgent({ run(ctx) { … } })'));
  }
  post({ t: 'ready' });
  let result: unknown;
  try {
    result = await (def.run as (c: typeof ctx) => unknown).call(def, ctx);
  } catch (err) {
    return fail(err);
  }
  // Hand the host what was written before run() returned; it then closes the connections.
  for (const s of sockets.values()) s.flushForFreeze();
  try {
    post({ t: 'done', ok: true, result });
  } catch {
    post({ t: 'done', ok: true, result: undefined });
  }
}

register(new URL('./agent-loader.js', import.meta.url), { data: { code: init.code, codeHash: init.codeHash, sdkUrl: init.sdkUrl } });
lockdown();
// From here on heartbeats count at the normal timeout: agent code is about to run.
post({ t: 'boot' });
void main();
