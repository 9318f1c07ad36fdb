/**
 * The tunnel preamble: the first bytes a `ferry tunnel` end writes on each Ferry connection it
 * opens, before any tunnelled byte (docs/PROTOCOL.md §13, docs/TUNNEL.md). It says what the
 * connection is for:
 *
 *   STREAM     opener -> peer   u8 version | u8 kind=1                     one TCP stream follows
 *   LISTEN     opener -> peer   u8 version | u8 kind=2 | u16 port | u8 n | host (n bytes, ASCII)
 *                               ask the peer to listen on host:port and tunnel back (as `ssh -R`)
 *   LISTENING  peer -> opener   u8 version | u8 kind=3 | u16 port          the port it bound
 *   REFUSED    peer -> opener   u8 version | u8 kind=4 | u8 reason         1 not allowed, 2 cannot bind
 *   ACCEPTED   peer -> opener   u8 version | u8 kind=5                     the STREAM is taken: the
 *                               peer holds the connection, the opener may send the client's bytes
 *
 * The whole message is at most {@link TUNNEL_PREAMBLE_MAX} bytes, checked before anything is
 * buffered beyond it; the bytes after it belong to the tunnelled stream.
 */
import { FerryError } from '../util/index.js';
import { Reader, Writer } from './bytes.js';

/** Version of the tunnel preamble. */
export const TUNNEL_VERSION = 1;

/** Kinds of tunnel preamble. */
export const TunnelKind = {
  STREAM: 1,
  LISTEN: 2,
  LISTENING: 3,
  REFUSED: 4,
  ACCEPTED: 5,
} as const;

/** Why a LISTEN was refused. */
export const TunnelRefusal = {
  NOT_ALLOWED: 1,
  CANNOT_BIND: 2,
} as const;

/** Longest preamble: LISTEN with a 255-byte host. */
export const TUNNEL_PREAMBLE_MAX = 2 + 2 + 1 + 255;

/** A decoded tunnel preamble. */
export type TunnelPreamble =
  | { kind: typeof TunnelKind.STREAM }
  | { kind: typeof TunnelKind.ACCEPTED }
  | { kind: typeof TunnelKind.LISTEN; host: string; port: number }
  | { kind: typeof TunnelKind.LISTENING; port: number }
  | { kind: typeof TunnelKind.REFUSED; reason: number };

const M = 'FERRY_ERR_MALFORMED_FRAME' as const;
/** Host names and addresses: letters, digits, '.', '-', ':' (IPv6), '%' (zone), '_' . */
const HOST_CHARS = /^[A-Za-z0-9.\-:%_]+$/;

/** Encode a tunnel preamble. */
export function encodeTunnelPreamble(p: TunnelPreamble): Buffer {
  const w = new Writer().u8(TUNNEL_VERSION).u8(p.kind);
  switch (p.kind) {
    case TunnelKind.STREAM:
    case TunnelKind.ACCEPTED:
      return w.finish();
    case TunnelKind.LISTEN: {
      const host = Buffer.from(p.host, 'ascii');
      if (host.length === 0 || host.length > 255 || !HOST_CHARS.test(p.host)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `tunnel listen host must be 1-255 host-name characters, got ${JSON.stringify(p.host)}`);
      return w.u16(p.port).u8(host.length).bytes(host).finish();
    }
    case TunnelKind.LISTENING:
      return w.u16(p.port).finish();
    case TunnelKind.REFUSED:
      return w.u8(p.reason).finish();
  }
}

/** The encoded length of a preamble. */
export function tunnelPreambleLength(p: TunnelPreamble): number {
  return encodeTunnelPreamble(p).length;
}

/**
 * Decode the preamble at the start of `buf`, strictly: the message and the bytes it took, or
 * undefined when more bytes are needed. A bad version, kind, host or reason is
 * FERRY_ERR_MALFORMED_FRAME (FERRY_ERR_UNSUPPORTED_VERSION for another version).
 */
export function decodeTunnelPreamble(buf: Buffer): { preamble: TunnelPreamble; consumed: number } | undefined {
  if (buf.length < 2) return undefined;
  const r = new Reader(buf, M);
  const version = r.u8('version');
  if (version !== TUNNEL_VERSION) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `tunnel preamble version ${version}`);
  const kind = r.u8('kind');
  switch (kind) {
    case TunnelKind.STREAM:
    case TunnelKind.ACCEPTED:
      return { preamble: { kind }, consumed: 2 };
    case TunnelKind.LISTEN: {
      if (buf.length < 5) return undefined;
      const port = r.u16('port');
      const n = r.u8('host length');
      if (n === 0) throw new FerryError(M, 'tunnel listen host is empty');
      if (buf.length < 5 + n) return undefined;
      const host = r.bytes(n, 'host').toString('latin1');
      if (!HOST_CHARS.test(host)) throw new FerryError(M, 'tunnel listen host has characters no host name has');
      return { preamble: { kind, host, port }, consumed: 5 + n };
    }
    case TunnelKind.LISTENING:
      if (buf.length < 4) return undefined;
      return { preamble: { kind, port: r.u16('port') }, consumed: 4 };
    case TunnelKind.REFUSED: {
      if (buf.length < 3) return undefined;
      const reason = r.u8('reason');
      if (reason !== TunnelRefusal.NOT_ALLOWED && reason !== TunnelRefusal.CANNOT_BIND) throw new FerryError(M, `tunnel refusal reason ${reason}`);
      return { preamble: { kind, reason }, consumed: 3 };
    }
    default:
      throw new FerryError(M, `tunnel preamble kind ${kind}`);
  }
}
