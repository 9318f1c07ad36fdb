/**
 * `open`: open and close latency of one byte stream on loopback (the paper's Table 2), for raw
 * TCP, TLS 1.3 (full handshake and resumed session), js-libp2p, and Ferry without and with
 * security. "Open" ends where the API hands the client its stream: TCP 'connect', TLS
 * 'secureConnect', libp2p `dial()` + `newStream()` (the dial alone is reported too), Ferry
 * `host.connect()` resolved (ESTABLISHED). "Close" is the graceful close until the client saw it
 * finish: TCP/TLS end() to 'close' (both FINs), libp2p `connection.close()`, Ferry
 * `socket.close()` (FIN acknowledged, CLS, CLS_ACK).
 *
 * "First byte" (open, write one byte at once, until the server application reads it) is
 * stricter for systems whose open resolves before their data path is ready. Ferry's in-band open
 * resolves on its data socket (the CONNECT_ACK came back on it), so its byte goes in the next
 * flight, as TCP's and TLS's do.
 *
 * Systems are measured in rounds: each round runs a block of 10 iterations of every system in
 * turn (the first 2 of a block unkept), so that drift in the machine's speed during the run
 * touches every system alike, while each operation still runs back to back with itself.
 */
import type { AgentSocket } from '../../src/connection/index.js';
import type { BenchContext } from '../lib/context.js';
import { iterations } from '../lib/context.js';
import { BLOCK, BLOCK_WARMUP, measureRounds, netnsSummary, openClose, openCloseRows, setBaselines, type Contender, type OpenResult } from '../lib/latency.js';
import { summarize, type Row } from '../lib/stats.js';
import { ferryPair, libp2pOpen, libp2pPair, sink, streamClose, tcpOpen, tcpServer, tlsOpen, tlsServer } from '../lib/systems.js';
import { runOpenNetns } from './open-netns.js';


/** Resolves `next()` when the server side reports a first byte. */
class Arrivals {
  private resolve: (() => void) | undefined;
  next(): Promise<void> {
    return new Promise((r) => (this.resolve = r));
  }
  arrived = (): void => {
    const r = this.resolve;
    this.resolve = undefined;
    r?.();
  };
}

const ONE = Buffer.from([0x2a]);


/** Time open + write one byte until the server reads it; then close (untimed). */
async function firstByte<T>(arrivals: Arrivals, open: () => Promise<T>, write: (c: T) => void, close: (c: T) => Promise<void>): Promise<number[]> {
  const got = arrivals.next();
  const t0 = performance.now();
  const c = await open();
  write(c);
  await got;
  const t = performance.now() - t0;
  await close(c);
  return [t];
}

/** Run the suite. */
export async function runOpen(ctx: BenchContext): Promise<OpenResult> {
  const { warmup, n } = iterations(ctx);
  const cleanups: (() => Promise<void>)[] = [];
  const contenders: Contender[] = [];
  const firstBytes: Contender[] = [];
  let tlsReused = 0;
  let tlsResumes = 0;
  try {
    const tcp = await tcpServer();
    cleanups.push(tcp.close);
    const tcpArrivals = new Arrivals();
    const tcpFb = await tcpServer((x) => x.once('data', tcpArrivals.arrived).resume());
    cleanups.push(tcpFb.close);
    contenders.push({ system: 'tcp', what: 'node:net connect', once: () => openClose(() => tcpOpen(tcp.port), streamClose) });
    firstBytes.push({ system: 'tcp', what: 'node:net', once: () => firstByte(tcpArrivals, () => tcpOpen(tcpFb.port), (s) => s.write(ONE), streamClose) });

    const tls = await tlsServer();
    cleanups.push(tls.close);
    const tlsArrivals = new Arrivals();
    const tlsFb = await tlsServer((x) => x.once('data', tlsArrivals.arrived).resume());
    cleanups.push(tlsFb.close);
    let session: Buffer | undefined;
    const keep = (t: Buffer): void => {
      session = t;
    };
    // A first connection gets a ticket; after that each resumed connection offers the newest.
    await streamClose(await tlsOpen(tls.port, tls.context, undefined, keep));
    contenders.push({ system: 'tls', what: 'node:tls TLS 1.3, full handshake (ECDSA P-256, X25519)', once: () => openClose(() => tlsOpen(tls.port, tls.context), streamClose) });
    contenders.push({
      system: 'tls-resumed',
      what: 'node:tls TLS 1.3, resumed session (PSK + ECDHE)',
      once: () =>
        openClose(
          () => tlsOpen(tls.port, tls.context, session, keep),
          async (s) => {
            tlsResumes++;
            if (s.isSessionReused()) tlsReused++;
            await streamClose(s);
          },
        ),
    });
    firstBytes.push({ system: 'tls', what: 'node:tls TLS 1.3, full handshake', once: () => firstByte(tlsArrivals, () => tlsOpen(tlsFb.port, tlsFb.context), (s) => s.write(ONE), streamClose) });
    // Ferry's open authenticates both agents; TLS's usual open authenticates only the server.
    // Mutual TLS (client certificate) is the like-for-like comparison, reported beside the goal's.
    const tlsMutual = await tlsServer(undefined, undefined, true);
    cleanups.push(tlsMutual.close);
    contenders.push({ system: 'tls-mutual', what: 'node:tls TLS 1.3, full handshake with a client certificate (both ends authenticated)', once: () => openClose(() => tlsOpen(tlsMutual.port, tlsMutual.context), streamClose) });

    const lp = await libp2pPair();
    cleanups.push(lp.close);
    const lpArrivals = new Arrivals();
    let counting = false;
    lp.onStream.fn = (st) => {
      void (async () => {
        for await (const _ of st.source) if (counting) lpArrivals.arrived();
      })().catch(() => {});
    };
    contenders.push({ system: 'libp2p', what: 'js-libp2p TCP + Noise + Yamux: dial + newStream', once: () => openClose(() => libp2pOpen(lp.dialer, lp.addr, true), (c) => c.conn.close()) });
    contenders.push({ system: 'libp2p-dial', what: 'js-libp2p TCP + Noise + Yamux: dial only (no stream yet)', once: () => openClose(() => libp2pOpen(lp.dialer, lp.addr, false), (c) => c.conn.close()) });
    firstBytes.push({
      system: 'libp2p',
      what: 'js-libp2p dial + newStream',
      once: async () => {
        counting = true;
        return firstByte(
          lpArrivals,
          () => libp2pOpen(lp.dialer, lp.addr, true),
          (c) => void c.stream!.sink([ONE]).catch(() => {}),
          (c) => c.conn.close(),
        );
      },
    });

    for (const security of [false, true]) {
      const system = security ? 'ferry-secure' : 'ferry-plain';
      const p = await ferryPair(security);
      cleanups.push(p.close);
      const arrivals = new Arrivals();
      p.server.on('connection', (s: AgentSocket) => {
        s.on('error', () => {});
        s.once('data', arrivals.arrived);
        s.resume();
      });
      const connect = async (): Promise<AgentSocket> => sink(await p.hosts[0]!.connect(p.a.id, p.b.id));
      contenders.push({ system, what: security ? 'Ferry, security on (signed X25519 handshake, sealed frames)' : 'Ferry, security off', once: () => openClose(connect, (s) => s.close()) });
      firstBytes.push({ system, what: security ? 'Ferry, security on' : 'Ferry, security off', once: () => firstByte(arrivals, connect, (s) => s.write(ONE), (s) => s.close()) });
    }

    const samples = new Map<Contender, number[][]>();
    await measureRounds(contenders, warmup, n, samples, (r, rounds) => ctx.progress(`open: open/close, round ${r}/${rounds} (${contenders.length} systems, ${BLOCK} iterations each)`));
    await measureRounds(firstBytes, warmup, n, samples, (r, rounds) => ctx.progress(`open: first byte, round ${r}/${rounds} (${firstBytes.length} systems, ${BLOCK} iterations each)`));
    if (tlsReused < tlsResumes) throw new Error(`TLS resumption failed on ${tlsResumes - tlsReused} of ${tlsResumes} connections`);

    const rows: Row[] = [...openCloseRows('open', contenders.map((c) => ({ system: c.system, what: c.what, samples: samples.get(c)! })))];
    for (const c of firstBytes) {
      rows.push({ id: `open/${c.system}/first-byte`, system: c.system, what: `first byte: open, write 1 byte, until the server application reads it: ${c.what}`, unit: 'ms', summary: summarize(samples.get(c)![0]!) });
    }
    setBaselines(rows, 'open', ['open', 'close', 'first-byte']);
    const result: OpenResult = { rows, info: { iterations: { warmup, n }, order: `rounds of ${BLOCK} (+${BLOCK_WARMUP} unkept) per system`, tlsResumed: `${tlsReused}/${tlsResumes}` } };
    // Free the loopback systems before the namespaces run.
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
    if (ctx.netns) {
      try {
        const ns = await runOpenNetns(ctx, { warmup, n });
        result.rows.push(...ns.rows);
        result.netns = netnsSummary(result.rows, ns.info);
      } catch (err) {
        result.netns = { error: err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err) };
      }
    }
    return result;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}
