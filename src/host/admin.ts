/**
 * The operator's endpoint of a host process: HTTP on 127.0.0.1 only, every request carrying the
 * bearer token that the host wrote to its data directory (mode 0600). `ferry ls`, `ferry migrate`
 * and `ferry launch` talk to it. Bodies are JSON and bounded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { parseId, type AgentId, type HostId } from '../identity/index.js';
import { FerryError, isFerryError, type Logger } from '../util/index.js';
import type { Host } from './host.js';

/** Largest admin request body (launch carries an agent module and its credential). */
const MAX_ADMIN_BODY = 1024 * 1024;

/** What the admin endpoint can do beyond the host's own methods (the runtime, when present). */
export interface AdminExtensions {
  /** Launch an agent module with a credential; resolves with the agent's id. */
  launch?(body: Record<string, unknown>): Promise<{ agent: AgentId }>;
  /** Extra per-agent facts for `ferry ls` (e.g. the runtime's state). */
  describe?(agent: AgentId): Record<string, unknown>;
  /** Agents that ended here lately (finished, failed, stopped), newest last, with their results. */
  ended?(): unknown[];
  /** Stop an agent: gracefully (its writes delivered, connections ended), or `kill`ed. */
  stop?(agent: AgentId, kill: boolean): Promise<Record<string, unknown>>;
}

/** An error and its causes as the admin endpoint sends them: `[{ code, message }, …]`, outermost first. */
export function causeChain(err: unknown): { code: string; message: string }[] {
  const out: { code: string; message: string }[] = [];
  let e: unknown = err;
  while (e !== undefined && e !== null && out.length < 8) {
    const x = e as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown };
    out.push({ code: typeof x.code === 'string' ? x.code : typeof x.name === 'string' ? x.name : 'Error', message: typeof x.message === 'string' ? x.message : String(e) });
    e = typeof e === 'object' ? x.cause : undefined;
  }
  return out;
}

/** The admin HTTP endpoint of a host. */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    /** The bearer token (hex). */
    readonly token: string,
    /** `http://127.0.0.1:port`. */
    readonly url: string,
  ) {}

  /** Serve `host` on 127.0.0.1:`port` (0 = any free port). */
  static async start(host: Host, port: number, log: Logger, ext: AdminExtensions = {}): Promise<AdminServer> {
    const token = randomBytes(24).toString('hex');
    const want = Buffer.from(`Bearer ${token}`);
    const server = createServer((req, res) => {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== want.length || !timingSafeEqual(got, want)) return send(res, 401, { error: 'FERRY_ERR_REFUSED', message: 'bad or missing admin token' });
      handle(host, ext, req, res)
        .then((body) => send(res, 200, body))
        .catch((err: unknown) => {
          const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_INTERNAL', String(err));
          log.warn('admin_refused', { code: e.code, detail: e.message, path: req.url });
          send(res, e.code === 'FERRY_ERR_INTERNAL' ? 500 : 400, { error: e.code, message: e.message, cause: isFerryError(e.cause) ? e.cause.code : undefined, causes: causeChain(e.cause) });
        });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port }, () => resolve());
    });
    const addr = server.address() as { port: number };
    return new AdminServer(server, token, `http://127.0.0.1:${addr.port}`);
  }

  /** Stop serving. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_ADMIN_BODY) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `admin request over ${MAX_ADMIN_BODY} bytes`);
    parts.push(chunk as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'admin request body must be a JSON object');
  }
}

async function handle(host: Host, ext: AdminExtensions, req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  if (req.method === 'GET' && req.url === '/status') {
    return {
      host: host.id,
      control: host.controlAddress,
      redirector: `${host.ip}:${host.redirectorPort}`,
      security: host.security,
      agents: host.agentIds().map((id) => ({
        id,
        connections: host.socketsOf(id).map((s) => ({
          id: s.connectionId,
          peer: s.remoteAgent,
          state: s.state,
          role: s.endpoint.role,
          // Stream offsets, cumulative over the connection's life (they move with it).
          written: s.endpoint.send.written,
          acked: s.endpoint.send.acked,
          delivered: s.endpoint.recv.delivered,
        })),
        ...(ext.describe?.(id) ?? {}),
      })),
      ended: ext.ended?.() ?? [],
    };
  }
  if (req.method === 'POST' && req.url === '/migrate') {
    const b = await readJson(req);
    // One agent ("agent"), or co-located agents moving as one group ("agents").
    const group = Array.isArray(b.agents) ? (b.agents as unknown[]).map((x) => parseId(String(x))) : undefined;
    const agent = group ? undefined : parseId(String(b.agent ?? ''));
    const ip = typeof b.ip === 'string' ? b.ip : '';
    const redirectorPort = Number(b.redirectorPort);
    // A host id alone: where that host registered itself at the rendezvous.
    const byId = !ip && b.redirectorPort === undefined && typeof b.hostId === 'string';
    if (!byId && (!ip || !Number.isInteger(redirectorPort) || redirectorPort <= 0 || redirectorPort > 65535)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'migrate needs ip and redirectorPort, or a host id');
    const started = performance.now();
    const t = byId ? await host.resolveTarget(parseId(String(b.hostId))) : { ip, redirectorPort, ...(typeof b.hostId === 'string' ? { hostId: parseId(b.hostId) as unknown as HostId } : {}) };
    // An operator who gives up (Ctrl-C on `ferry migrate`) closes the request before the answer:
    // that aborts the move, which rolls back unless its checkpoint has already left.
    const ac = new AbortController();
    const gone = (): void => {
      if (!res.writableFinished) ac.abort(new FerryError('FERRY_ERR_ABORTED', 'the admin client closed the request'));
    };
    res.once('close', gone);
    try {
      const report = group ? await host.migrateGroup(group, t, { signal: ac.signal }) : await host.migrateAgent(agent!, t, { signal: ac.signal });
      return { migrated: group ?? agent, ms: Math.round((performance.now() - started) * 100) / 100, ...(report ?? {}) };
    } finally {
      res.off('close', gone);
    }
  }
  if (req.method === 'POST' && req.url === '/stop') {
    if (!ext.stop) throw new FerryError('FERRY_ERR_REFUSED', 'this host runs no agent runtime');
    const b = await readJson(req);
    return ext.stop(parseId(String(b.agent ?? '')), b.kill === true);
  }
  if (req.method === 'POST' && req.url === '/launch') {
    if (!ext.launch) throw new FerryError('FERRY_ERR_REFUSED', "this host runs no agent runtime: restart it with --policy FILE (make one with 'ferry policy init --owner-key owner.key')");
    return ext.launch(await readJson(req));
  }
  throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `no admin route ${req.method} ${req.url}`);
}
