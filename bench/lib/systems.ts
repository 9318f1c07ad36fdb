/**
 * The systems under test, each set up the way a user of it would on loopback: `node:net` raw
 * TCP, `node:tls` TLS 1.3 (ECDSA P-256 certificate, one client SecureContext reused, session
 * tickets for the resumed handshake), js-libp2p 2.10 with TCP + Noise + Yamux, and Ferry hosts
 * with security on and off. Every system gets the same three operations: open a byte stream,
 * close it, and push bytes through it.
 */
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer, type SecureContext, type TLSSocket } from 'node:tls';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { AgentServerSocket, AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import type { Identity } from '../../src/identity/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';

const LOOPBACK = '127.0.0.1';
/** A libp2p address, as `getMultiaddrs()` returns it (its package is libp2p's, not ours). */
type Multiaddr = ReturnType<Libp2p['getMultiaddrs']>[number];
/** A libp2p connection and stream (types derived from libp2p's own API). */
export type Connection = Awaited<ReturnType<Libp2p['dial']>>;
export type Stream = Awaited<ReturnType<Connection['newStream']>>;

// ------------------------------------------------------------------ raw TCP

/** A `node:net` server that reads and discards, and ends when the client ends. */
export async function tcpServer(onSocket?: (s: Socket) => void, host: string = LOOPBACK): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const server = createServer({ noDelay: true }, (s) => {
    s.on('error', () => {});
    if (onSocket) onSocket(s);
    else s.resume();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as { port: number }).port;
  return { port, server, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Open a TCP connection: resolves on 'connect' (SYN, SYN-ACK: one round trip). */
export function tcpOpen(port: number, host: string = LOOPBACK): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Graceful close of a TCP or TLS socket: our FIN, the peer's FIN, then 'close'. */
export function streamClose(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.once('close', () => resolve());
    s.resume();
    s.end();
  });
}

// ------------------------------------------------------------------ TLS 1.3

/** The certificate of bench/fixtures, or one made with `openssl` if the fixtures are missing. */
export function tlsCredentials(): { key: Buffer; cert: Buffer } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const f = join(dir, 'bench', 'fixtures');
    if (existsSync(join(f, 'cert.pem'))) return { key: readFileSync(join(f, 'key.pem')), cert: readFileSync(join(f, 'cert.pem')) };
    dir = dirname(dir);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return { key: readFileSync(join(tmp, 'key.pem')), cert: readFileSync(join(tmp, 'cert.pem')) };
}

/**
 * A TLS 1.3 server (session tickets on, Node's default) and the client context that trusts it.
 * With `mutual`, the server also asks for and checks a client certificate (the same bench
 * certificate), and the client context presents it: both ends authenticated, as in Ferry's open.
 */
export async function tlsServer(onSocket?: (s: TLSSocket) => void, host: string = LOOPBACK, mutual = false): Promise<{ port: number; context: SecureContext; close(): Promise<void> }> {
  const { key, cert } = tlsCredentials();
  const clientAuth = mutual ? { requestCert: true, rejectUnauthorized: true, ca: cert } : {};
  const server = createTlsServer({ key, cert, minVersion: 'TLSv1.3', ...clientAuth }, (s) => {
    s.on('error', () => {});
    if (onSocket) onSocket(s);
    else s.resume();
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as { port: number }).port;
  return { port, context: tlsClientContext(cert, mutual ? key : undefined), close: () => new Promise<void>((r) => server.close(() => r())) };
}

/**
 * The client context that trusts the bench certificate (TLS 1.3 only); made once per use and
 * reused for every connection. With `key`, it also presents `cert` as its client certificate.
 */
export function tlsClientContext(cert: Buffer = tlsCredentials().cert, key?: Buffer): SecureContext {
  return createSecureContext({ ca: cert, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ...(key ? { key, cert } : {}) });
}

/**
 * Open a TLS 1.3 connection: resolves on 'secureConnect' (the client has the server's Finished).
 * With `session`, the client offers that ticket (PSK with (EC)DHE: still one key agreement, no
 * certificate). `onSession` receives every new ticket the server sends. The server name is
 * always `localhost` (the certificate's), whatever address `host` is.
 */
export function tlsOpen(port: number, context: SecureContext, session?: Buffer, onSession?: (s: Buffer) => void, host: string = LOOPBACK): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, servername: 'localhost', secureContext: context, ...(session ? { session } : {}) });
    s.setNoDelay(true);
    if (onSession) s.on('session', onSession);
    s.once('secureConnect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

// ------------------------------------------------------------------ js-libp2p

/** The protocol both libp2p nodes speak in the bench. */
export const LIBP2P_PROTOCOL = '/ferry-bench/1.0.0';

/**
 * A js-libp2p node as the bench needs it: TCP + Noise + Yamux, no discovery, listening on `ip`
 * (default loopback), and allow-listing the addresses that dial it (`allow`, default `ip`).
 */
export async function libp2pNode(ip: string = LOOPBACK, allow: string[] = [ip]): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: [`/ip4/${ip}/tcp/0`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // The default inbound rate limit (5 connections a second per host) refuses back-to-back
      // dials from one address; allow-listing the dialer lifts it, as an operator would for a test.
      allow: allow.map((a) => `/ip4/${a}`),
      inboundConnectionThreshold: 1_000_000,
      maxIncomingPendingConnections: 10_000,
      maxConnections: 100_000,
    },
  });
}

/**
 * A listening node whose protocol handler hands each inbound stream to `onStream` (by default:
 * read it to its end and discard).
 */
export async function libp2pListener(ip: string = LOOPBACK, allow: string[] = [ip]): Promise<{ listener: Libp2p; addr: Multiaddr; onStream: { fn: (s: Stream) => void } }> {
  const listener = await libp2pNode(ip, allow);
  const onStream = {
    fn: (s: Stream): void => {
      void (async () => {
        for await (const _ of s.source);
      })().catch(() => {});
    },
  };
  await listener.handle(LIBP2P_PROTOCOL, ({ stream }) => onStream.fn(stream), { maxInboundStreams: 4096, runOnLimitedConnection: false });
  return { listener, addr: listener.getMultiaddrs()[0]!, onStream };
}

/**
 * A listener's address given as text (from another process), as the `Multiaddr` `dial()` takes.
 * Built from one of `node`'s own addresses, so the bench needs no multiaddr package of its own.
 */
export function libp2pAddr(node: Libp2p, text: string): Multiaddr {
  return node.getMultiaddrs()[0]!.decapsulate('/ip4').encapsulate(text);
}

/** A dialer and a listener whose protocol handler hands each inbound stream to `onStream`. */
export async function libp2pPair(): Promise<{ dialer: Libp2p; listener: Libp2p; addr: Multiaddr; onStream: { fn: (s: Stream) => void }; close(): Promise<void> }> {
  const dialer = await libp2pNode();
  const { listener, addr, onStream } = await libp2pListener();
  return {
    dialer,
    listener,
    addr,
    onStream,
    close: async () => {
      await dialer.stop();
      await listener.stop();
    },
  };
}

/** Dial (TCP, multistream-select, Noise XX, multistream-select, Yamux) and open a stream. */
export async function libp2pOpen(dialer: Libp2p, addr: Multiaddr, withStream: boolean): Promise<{ conn: Connection; stream: Stream | undefined }> {
  const conn = await dialer.dial(addr);
  const stream = withStream ? await conn.newStream(LIBP2P_PROTOCOL, { maxOutboundStreams: 4096 }) : undefined;
  return { conn, stream };
}

// ------------------------------------------------------------------ Ferry

/** Hosts on loopback sharing one in-process location table, with agents to connect. */
export interface FerryWorld {
  location: MemoryLocationTable;
  hosts: Host[];
  close(): Promise<void>;
}

/** Start `n` hosts (security on or off) on 127.0.0.1. */
export async function ferryWorld(n: number, security: boolean): Promise<FerryWorld> {
  const location = new MemoryLocationTable();
  const hosts: Host[] = [];
  for (let i = 0; i < n; i++) hosts.push(await Host.start({ location, security, name: `bench${i}` }));
  return { location, hosts, close: async () => void (await Promise.all(hosts.map((h) => h.close()))) };
}

/** Two hosts, agent A on the first and agent B listening on the second. */
export async function ferryPair(security: boolean): Promise<FerryWorld & { a: Identity; b: Identity; server: AgentServerSocket }> {
  const w = await ferryWorld(2, security);
  const a = await w.hosts[0]!.addAgent();
  const b = await w.hosts[1]!.addAgent();
  const server = w.hosts[1]!.listen(b.id);
  return { ...w, a, b, server };
}

/** Ignore errors and read nothing but keep the socket flowing. */
export function sink(s: AgentSocket): AgentSocket {
  s.on('error', () => {});
  s.resume();
  return s;
}

// ------------------------------------------------------------------ bulk transfer

/** A bulk transfer's outcome. */
export interface Transfer {
  bytes: number;
  seconds: number;
  mibps: number;
}

/**
 * TTCP's transmitter over any `Duplex`: write `msg` until `maxBytes` or the deadline, waiting
 * for 'drain' whenever `write()` says so, then end. Returns the bytes written.
 */
export async function pushDuplex(w: Duplex, msg: Buffer, maxBytes: number, deadline: number): Promise<number> {
  let sent = 0;
  while (sent < maxBytes && performance.now() < deadline) {
    sent += msg.length;
    if (!w.write(msg)) await once(w, 'drain');
  }
  w.end();
  return sent;
}

/** TTCP's receiver over any `Duplex`: count bytes until the stream ends; resolves with (bytes, end time). */
export function drainDuplex(r: Duplex): Promise<{ bytes: number; end: number }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    r.on('data', (c: Buffer) => (bytes += c.length));
    r.once('end', () => resolve({ bytes, end: performance.now() }));
    r.once('error', reject);
  });
}

/** Throughput of bytes moved between `start` and `end` (ms), in MiB/s. */
export function transfer(bytes: number, start: number, end: number): Transfer {
  const seconds = (end - start) / 1000;
  return { bytes, seconds, mibps: Math.round((bytes / 1048576 / seconds) * 10) / 10 };
}
