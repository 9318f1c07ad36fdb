/**
 * Test support for `ferry tunnel`: start a serving and a connecting tunnel end as processes, cut
 * the data path between them again and again, and push checksummed bytes through TCP clients
 * and a TCP target that run in the test process.
 *
 * A cut is what a middlebox that resets connections does: every TCP connection to either tunnel
 * host's redirector port (the Ferry data sockets, and only those) is destroyed with `ss -K` (the
 * kernel's SOCK_DESTROY: the local end gets ECONNABORTED, the peer a RST). The tunnel's own TCP
 * sockets (client to listener, serving end to target) are never touched: they must not notice.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host, readPreamble } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import type { FerryError } from '../../src/util/index.js';
import { encodeTunnelPreamble, TunnelKind } from '../../src/wire/index.js';
import { RendezvousClient } from '../../src/location/index.js';
import { Processes, stop, type Proc } from './processes.js';

/** Two tunnel ends and where they are. */
export interface TunnelPair {
  serve: Proc;
  connect: Proc;
  /** The connecting end's local listener (127.0.0.1). */
  listenPort: number;
  serveAgent: string;
  connectAgent: string;
  /** The two hosts' redirector ports: the data path runs between them. */
  redirectorPorts: number[];
  rendezvous: string;
  dir: string;
  close(): Promise<void>;
}

const READY = /^ferry tunnel ready: agent=([0-9a-f]{32}) .*redirector=[0-9.]+:(\d+) rendezvous=([0-9.]+:\d+)/m;

/** `ferry tunnel serve --to TO --allow <the connect end>` and `ferry tunnel connect --listen 127.0.0.1:0`. */
export async function startTunnelPair(procs: Processes, to: string, opts: { plain?: boolean; serveArgs?: string[]; connectArgs?: string[] } = {}): Promise<TunnelPair> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tunnel-'));
  const plain = opts.plain ? ['--no-security'] : [];
  const id = await procs.run(['tunnel', 'id', '--key', join(dir, 'connect.key')]);
  if (id.code !== 0) throw new Error(`tunnel id: ${id.err}`);
  const connectAgent = id.out.trim();
  const serve = await procs.start(['tunnel', 'serve', '--key', join(dir, 'serve.key'), '--to', to, '--allow', connectAgent, ...plain, ...(opts.serveArgs ?? [])], READY);
  const serveAgent = serve.ready[1]!;
  const rendezvous = serve.ready[3]!;
  const connect = await procs.start(['tunnel', 'connect', serveAgent, '--key', join(dir, 'connect.key'), '--rendezvous', rendezvous, '--listen', '127.0.0.1:0', ...plain, ...(opts.connectArgs ?? [])], READY);
  const listenPort = Number(/listen=127\.0\.0\.1:(\d+)/.exec(connect.ready[0])![1]);
  return {
    serve,
    connect,
    listenPort,
    serveAgent,
    connectAgent,
    redirectorPorts: [Number(serve.ready[2]), Number(connect.ready[2])],
    rendezvous,
    dir,
    close: async () => {
      await stop(connect);
      await stop(serve);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Kill every TCP connection to or from `ports` once; resolves with how many were destroyed. */
export function cutOnce(ports: number[]): Promise<number> {
  const filter = ports.flatMap((p, i) => [...(i > 0 ? ['or'] : []), 'sport', '=', `:${p}`, 'or', 'dport', '=', `:${p}`]);
  return new Promise((resolve, reject) => {
    execFile('ss', ['-K', '-t', '-n', '-H', '(', ...filter, ')'], (err, stdout) => {
      if (err) return reject(err);
      resolve(stdout.split('\n').filter((l) => l.trim().length > 0).length);
    });
  });
}

/** Cuts the data path every `everyMs` until stopped; counts the sockets destroyed. */
export class Cutter {
  cuts = 0;
  killed = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  constructor(private readonly ports: number[], private readonly everyMs = 250) {}

  start(): this {
    this.timer = setInterval(() => {
      this.running = this.running.then(async () => {
        try {
          this.killed += await cutOnce(this.ports);
          this.cuts++;
        } catch (err) {
          this.failure = err as Error;
        }
      });
    }, this.everyMs);
    return this;
  }

  /** Stop cutting at once, for a test's clean-up (stop() is the check). */
  halt(): void {
    clearInterval(this.timer);
  }

  /** Stop cutting; throws if `ss -K` ever failed (a test that cannot cut must fail). */
  async stop(): Promise<{ cuts: number; killed: number }> {
    clearInterval(this.timer);
    await this.running;
    if (this.failure) throw this.failure;
    return { cuts: this.cuts, killed: this.killed };
  }
}

/** Where an exchange stands, for the message of a test that stops waiting for it. */
export interface ExchangeProgress {
  toSend?: number;
  left?: number;
  received?: number;
  peerEnded?: boolean;
  wroteAll?: boolean;
}

/** What one side of a checksummed exchange sent and received. */
export interface Exchange {
  sentSha: string;
  receivedSha: string;
  received: number;
}

/** What a {@link ShaTarget} does on the connection tagged `tag`: bytes it sends, and whether it sends its FIN before the client's. */
export type TargetPlan = (tag: number) => { bytes: number; endFirst: boolean };

/**
 * A TCP target: each client first sends a 4-byte tag (which connection it is, so that a
 * connection the tunnel opened and dropped does not shift anything); then the target sends
 * `plan(tag).bytes` random bytes while reading everything to the client's FIN. `results` holds
 * each tagged connection's checksums; `errors` the errors of tagged connections.
 */
export class ShaTarget {
  readonly results = new Map<number, Promise<Exchange>>();
  readonly progress = new Map<number, ExchangeProgress>();
  readonly errors: Error[] = [];
  private constructor(readonly server: Server) {}

  static async start(plan: TargetPlan): Promise<ShaTarget> {
    const server = createServer({ allowHalfOpen: true });
    const t = new ShaTarget(server);
    server.on('connection', (s) => {
      s.on('error', () => {});
      const onReadable = (): void => {
        const head = s.read(4) as Buffer | null;
        if (!head) return;
        s.off('readable', onReadable);
        const tag = head.readUInt32BE(0);
        const p = plan(tag);
        const track: ExchangeProgress = {};
        t.progress.set(tag, track);
        t.results.set(tag, exchange(s, p.bytes, p.endFirst, t.errors, track));
      };
      s.on('readable', onReadable);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return t;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** Connect to 127.0.0.1:`port` and send the 4-byte `tag` a {@link ShaTarget} expects. */
export function taggedClient(port: number, tag: number, errors: Error[]): Socket {
  const s = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
  s.on('error', (e) => errors.push(e));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(tag);
  s.write(head);
  return s;
}

/**
 * Send `bytes` random bytes on `s` (respecting backpressure) and end, while reading to its end.
 * With `endFirst` false, the FIN is sent only after the peer's FIN arrived (the other side closes
 * its direction first). Resolves with both checksums; an error on `s` is recorded in `errors`.
 */
export function exchange(s: Socket, bytes: number, endFirst: boolean, errors: Error[], track?: ExchangeProgress): Promise<Exchange> {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let received = 0;
  let left = bytes;
  let peerEnded = false;
  let wroteAll = false;
  let done = false;
  return new Promise((resolve) => {
    const finish = (): void => {
      if (done || !peerEnded || !wroteAll) return;
      done = true;
      resolve({ sentSha: sent.digest('hex'), receivedSha: got.digest('hex'), received });
    };
    const endIfReady = (): void => {
      if (left === 0 && !wroteAll && (endFirst || peerEnded)) {
        wroteAll = true;
        if (track) track.wroteAll = true;
        s.end();
        finish();
      }
    };
    const pump = (): void => {
      while (left > 0) {
        const chunk = randomBytes(Math.min(left, 64 * 1024));
        left -= chunk.length;
        sent.update(chunk);
        if (track) track.left = left;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      endIfReady();
    };
    // The peer's FIN may have come before this exchange began (a side that sends nothing and
    // ends first): with nothing buffered, Node emits 'end' on a socket nobody reads yet, and an
    // 'end' listener added later never fires. Nothing was lost then: there was nothing to read.
    if (s.readableEnded) peerEnded = true;
    if (track) Object.assign(track, { toSend: bytes, left: bytes, received: 0, peerEnded, wroteAll: false });
    s.on('data', (c: Buffer) => {
      received += c.length;
      got.update(c);
      if (track) track.received = received;
    });
    s.on('end', () => {
      peerEnded = true;
      if (track) track.peerEnded = true;
      endIfReady();
      finish();
    });
    s.on('error', (err) => {
      errors.push(err);
      done = true;
      resolve({ sentSha: 'error', receivedSha: 'error', received });
    });
    pump();
  });
}


/** What a program run to its end printed, and how it ended. */
/**
 * A TCP target that writes to each client without end, as fast as `write()` and 'drain' let it,
 * counting what it wrote per connection: the first byte a client sends says which it is, 's' for
 * one that never reads (the target writes to it), 'h' for the honest one (kept, paused, as
 * `honest.socket`). For the tests of what readers that never read cost a tunnel end.
 */
export class EndlessWriter {
  readonly written = new Map<Socket, number>();
  readonly honest: { socket?: Socket } = {};
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<EndlessWriter> {
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    const w = new EndlessWriter(
      createServer({ allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        s.once('data', (first: Buffer) => {
          if (first[0] === 0x68) {
            s.pause();
            w.honest.socket = s;
            return;
          }
          w.written.set(s, 0);
          const pump = (): void => {
            while (!s.destroyed) {
              w.written.set(s, w.written.get(s)! + chunk.length);
              if (!s.write(chunk)) return void s.once('drain', pump);
            }
          };
          pump();
        });
      }),
    );
    await new Promise<void>((r) => w.server.listen(0, '127.0.0.1', r));
    return w;
  }

  /** "127.0.0.1:PORT", for `--to`. */
  get address(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** What it wrote to all connections together. */
  get total(): number {
    return [...this.written.values()].reduce((a, b) => a + b, 0);
  }

  /** `n` clients of the local listeners `ports` (in turn) that say 's' and never read. */
  static silentClients(ports: number[], n: number): Socket[] {
    const silent: Socket[] = [];
    for (let i = 0; i < n; i++) {
      const c = netConnect({ host: '127.0.0.1', port: ports[i % ports.length]! });
      c.pause();
      c.on('error', () => {});
      c.write('s');
      silent.push(c);
    }
    return silent;
  }

  /** Until `n` connections arrived and none made progress for a whole second (at most a minute); returns the total. */
  async untilStopped(n: number): Promise<number> {
    let last = -1;
    for (let t = 0; t < 60 && (this.written.size < n || this.total !== last); t++) {
      last = this.total;
      await new Promise((r) => setTimeout(r, 1000));
    }
    return last;
  }

  close(): Promise<void> {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `cmd args…` to its end (killed after `timeoutMs`, which then shows as its signal); `input`
 * is written to its stdin, which is then closed.
 */
export function runProgram(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A peer of a tunnel end written against the Ferry library in the test process: one host on the
 * rendezvous at `rendezvous`, with `agents` (identities a serving end may name in --allow) on it.
 * It speaks the tunnel preamble itself, so it can send what a `ferry tunnel connect` never would.
 * `plain` is `--no-security` (cheap handshakes, for tests that open many connections).
 */
export async function startPeerHost(rendezvous: string, agents: Identity[], opts: { plain?: boolean; ip?: string } = {}): Promise<{ host: Host; close(): Promise<void> }> {
  const hostKey = Identity.generate();
  // Another loopback address (127.0.0.2…) is another source to the tunnel end: the host binds and dials from it.
  const ip = opts.ip ?? '127.0.0.1';
  const location = await RendezvousClient.connect({ server: rendezvous, host: ip, signer: hostKey });
  const host = await Host.start({ location, identity: hostKey, ip, security: !opts.plain });
  for (const a of agents) await host.addAgent(a);
  return {
    host,
    close: async () => {
      await host.close();
      location.close();
    },
  };
}

/** Open a Ferry connection from `agent` to the serving agent and ask for a stream; the answer's kind, or the error code. */
export async function askStream(host: { connect(from: AgentId, to: AgentId): Promise<AgentSocket> }, agent: AgentId, serveAgent: AgentId, held: AgentSocket[]): Promise<string> {
  try {
    const fs = await host.connect(agent, serveAgent);
    held.push(fs);
    fs.on('error', () => {});
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.STREAM }));
    return `kind ${(await readPreamble(fs, 30_000)).preamble.kind}`;
  } catch (err) {
    return (err as FerryError).code ?? String(err);
  }
}
