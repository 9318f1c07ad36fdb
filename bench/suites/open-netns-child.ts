/**
 * The two sides of `ferry bench --suite open --netns`, each run by `open-netns.ts` as a process
 * inside its own network namespace (`ip netns exec NS node open-netns-child.js …`):
 *
 *   serve IP PEER_IP         listen on IP for raw TCP, TLS 1.3 (the bench certificate) and
 *                            js-libp2p (PEER_IP allow-listed); start an embedded rendezvous, as
 *                            `ferry host` does without --rendezvous, and two Ferry hosts (security
 *                            off, on) each with one listening agent. Print one JSON line
 *                            ({@link NetnsTarget}), then run until stdin ends or SIGTERM/SIGINT.
 *   measure IP TARGET MODE   from IP, open and close against TARGET (the JSON line) with the same
 *                            contenders and method as the loopback `open` suite (MODE `quick` or
 *                            `full` sets the iterations); Ferry's two client hosts use the
 *                            server's rendezvous. Progress lines on stderr start with
 *                            "progress: "; the result is one JSON line on stdout
 *                            ({@link NetnsMeasurement}).
 *
 * Both sides exit when their stdin ends, so neither outlives the bench process however it ends.
 */
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { MemoryStore, RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { iterations } from '../lib/context.js';
import { BLOCK, measureRounds, openClose, type Contender, type OpenCloseSamples } from '../lib/latency.js';
import { libp2pAddr, libp2pListener, libp2pNode, libp2pOpen, sink, streamClose, tcpOpen, tcpServer, tlsClientContext, tlsOpen, tlsServer } from '../lib/systems.js';

/** Where the serving side listens (printed as one JSON line). */
export interface NetnsTarget {
  ip: string;
  tcp: number;
  tls: number;
  /** The js-libp2p listener's multiaddr, with its peer id. */
  libp2p: string;
  /** The embedded rendezvous, `ip:port`. */
  rendezvous: string;
  /** The listening agent on each Ferry host. */
  ferry: { plain: AgentId; secure: AgentId };
}

/** What the measuring side prints. */
export interface NetnsMeasurement {
  contenders: OpenCloseSamples[];
  iterations: { warmup: number; n: number };
  tlsResumed: string;
}

type Closer = () => Promise<unknown>;

/** A Ferry host on `ip` whose location service is the rendezvous at `server` (as `ferry host --rendezvous`). */
async function ferryHost(ip: string, server: string, security: boolean, name: string, closers: Closer[]): Promise<Host> {
  const identity = Identity.generate();
  const location = await RendezvousClient.connect({ server, host: ip, signer: identity });
  closers.push(async () => location.close());
  const host = await Host.start({ location, identity, ip, security, name });
  closers.push(() => host.close());
  return host;
}

async function closeAll(closers: Closer[]): Promise<void> {
  for (const c of closers.reverse()) await c().catch(() => {});
}

async function serve(ip: string, peer: string): Promise<void> {
  const closers: Closer[] = [];
  const tcp = await tcpServer(undefined, ip);
  closers.push(tcp.close);
  const tls = await tlsServer(undefined, ip);
  closers.push(tls.close);
  const lp = await libp2pListener(ip, [peer]);
  closers.push(async () => lp.listener.stop());
  const store = await MemoryStore.open({});
  const rv = await RendezvousServer.start({ host: ip, port: 0, store });
  closers.push(() => rv.close());
  const agents: AgentId[] = [];
  for (const security of [false, true]) {
    const host = await ferryHost(ip, rv.address, security, security ? 'netns-secure' : 'netns-plain', closers);
    const agent = await host.addAgent();
    host.listen(agent.id).on('connection', (s: AgentSocket) => sink(s));
    agents.push(agent.id);
  }
  const target: NetnsTarget = { ip, tcp: tcp.port, tls: tls.port, libp2p: lp.addr.toString(), rendezvous: rv.address, ferry: { plain: agents[0]!, secure: agents[1]! } };
  const stop = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
    process.stdin.once('end', () => resolve());
    process.stdin.once('error', () => resolve());
    process.stdin.resume();
  });
  process.stdout.write(JSON.stringify(target) + '\n');
  await stop;
  await closeAll(closers);
}

async function measure(ip: string, t: NetnsTarget, quick: boolean): Promise<NetnsMeasurement> {
  // A bench process that dies takes this one with it.
  process.stdin.once('end', () => process.exit(1));
  process.stdin.resume();
  const closers: Closer[] = [];
  try {
    const { warmup, n } = iterations({ quick });
    const contenders: Contender[] = [];
    contenders.push({ system: 'tcp', what: 'node:net connect', once: () => openClose(() => tcpOpen(t.tcp, t.ip), streamClose) });

    const context = tlsClientContext();
    let session: Buffer | undefined;
    let reused = 0;
    let resumes = 0;
    const keep = (s: Buffer): void => {
      session = s;
    };
    await streamClose(await tlsOpen(t.tls, context, undefined, keep, t.ip));
    contenders.push({ system: 'tls', what: 'node:tls TLS 1.3, full handshake (ECDSA P-256, X25519)', once: () => openClose(() => tlsOpen(t.tls, context, undefined, undefined, t.ip), streamClose) });
    contenders.push({
      system: 'tls-resumed',
      what: 'node:tls TLS 1.3, resumed session (PSK + ECDHE)',
      once: () =>
        openClose(
          () => tlsOpen(t.tls, context, session, keep, t.ip),
          async (s) => {
            resumes++;
            if (s.isSessionReused()) reused++;
            await streamClose(s);
          },
        ),
    });

    const dialer = await libp2pNode(ip, [t.ip]);
    closers.push(async () => dialer.stop());
    const addr = libp2pAddr(dialer, t.libp2p);
    contenders.push({ system: 'libp2p', what: 'js-libp2p TCP + Noise + Yamux: dial + newStream', once: () => openClose(() => libp2pOpen(dialer, addr, true), (c) => c.conn.close()) });
    contenders.push({ system: 'libp2p-dial', what: 'js-libp2p TCP + Noise + Yamux: dial only (no stream yet)', once: () => openClose(() => libp2pOpen(dialer, addr, false), (c) => c.conn.close()) });

    for (const security of [false, true]) {
      const host = await ferryHost(ip, t.rendezvous, security, security ? 'netns-client-secure' : 'netns-client-plain', closers);
      const me = await host.addAgent();
      const peer = security ? t.ferry.secure : t.ferry.plain;
      const connect = async (): Promise<AgentSocket> => sink(await host.connect(me.id, peer));
      contenders.push({ system: security ? 'ferry-secure' : 'ferry-plain', what: security ? 'Ferry, security on (signed X25519 handshake, sealed frames)' : 'Ferry, security off', once: () => openClose(connect, (s) => s.close()) });
    }

    const samples = new Map<Contender, number[][]>();
    await measureRounds(contenders, warmup, n, samples, (r, rounds) => process.stderr.write(`progress: open: between namespaces, round ${r}/${rounds} (${contenders.length} systems, ${BLOCK} iterations each)\n`));
    if (reused < resumes) throw new Error(`TLS resumption failed on ${resumes - reused} of ${resumes} connections`);
    return { contenders: contenders.map((c) => ({ system: c.system, what: c.what, samples: samples.get(c)! })), iterations: { warmup, n }, tlsResumed: `${reused}/${resumes}` };
  } finally {
    await closeAll(closers);
  }
}

async function main(argv: string[]): Promise<void> {
  const [role, ip, arg, mode] = argv;
  if (role === 'serve' && ip && arg) {
    await serve(ip, arg);
    process.exit(0);
  }
  if (role === 'measure' && ip && arg && (mode === 'quick' || mode === 'full')) {
    const out = await measure(ip, JSON.parse(arg) as NetnsTarget, mode === 'quick');
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
    return;
  }
  throw new Error(`usage: open-netns-child.js serve IP PEER_IP | measure IP TARGET_JSON quick|full (got ${argv.join(' ')})`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`open-netns-child: ${err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err)}\n`);
  process.exit(1);
});
