/**
 * A TCP proxy that resets every connection through it on demand or every few hundred
 * milliseconds: a middlebox that keeps cutting the path (a NAT that forgets, a flaky load
 * balancer). Both sides of a cut connection get a RST; nothing else is touched. Bytes and FINs
 * are forwarded unchanged both ways. Used by the tunnel tests in front of a host's redirector
 * (which then advertises the proxy's port).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/** Counters of a {@link CuttingProxy}. */
export interface CuttingProxyStats {
  /** Connections accepted. */
  accepted: number;
  /** Cut rounds that ran. */
  cuts: number;
  /** Connections reset by a cut. */
  reset: number;
  /** Bytes forwarded, both directions. */
  bytes: number;
}

/** A TCP proxy on 127.0.0.1 to one upstream, that resets its connections when told. */
export class CuttingProxy {
  readonly stats: CuttingProxyStats = { accepted: 0, cuts: 0, reset: 0, bytes: 0 };
  private upstream: { host: string; port: number } | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly server: Server) {}

  /** Listen on 127.0.0.1 (any free port). Connections before {@link setUpstream} are reset. */
  static async start(): Promise<CuttingProxy> {
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const p = new CuttingProxy(server);
    server.on('connection', (s) => p.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return p;
  }

  /** The port it listens on. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Where accepted connections are forwarded. */
  setUpstream(host: string, port: number): void {
    this.upstream = { host, port };
  }

  /** Reset every connection through the proxy now; returns how many. */
  cutAll(): number {
    let n = 0;
    for (const pair of this.pairs) {
      for (const s of pair) s.resetAndDestroy();
      this.pairs.delete(pair);
      n++;
    }
    this.stats.cuts++;
    this.stats.reset += n;
    return n;
  }

  /** Cut every `everyMs` until {@link stopCutting}. */
  startCutting(everyMs: number): void {
    this.stopCutting();
    this.timer = setInterval(() => this.cutAll(), everyMs);
  }

  stopCutting(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stop cutting, reset what is left, stop listening. */
  async close(): Promise<void> {
    this.stopCutting();
    for (const pair of this.pairs) for (const s of pair) s.destroy();
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(down: Socket): void {
    this.stats.accepted++;
    if (!this.upstream) return void down.resetAndDestroy();
    const up = connect({ host: this.upstream.host, port: this.upstream.port, allowHalfOpen: true, noDelay: true });
    const pair: [Socket, Socket] = [down, up];
    this.pairs.add(pair);
    // A reset or error on one side is a reset of the other: the proxy hides nothing.
    const fail = (other: Socket) => (): void => {
      this.pairs.delete(pair);
      if (!other.destroyed) other.resetAndDestroy();
    };
    down.on('error', fail(up));
    up.on('error', fail(down));
    const count = (c: Buffer): void => {
      this.stats.bytes += c.length;
    };
    down.on('data', count);
    up.on('data', count);
    down.pipe(up);
    up.pipe(down);
    const closed = (): void => {
      if (down.destroyed && up.destroyed) this.pairs.delete(pair);
    };
    // FINs travel through the pipes (allowHalfOpen): each side closes once both directions ended.
    down.once('close', closed);
    up.once('close', closed);
  }
}
