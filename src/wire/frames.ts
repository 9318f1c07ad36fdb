/**
 * Data-socket frames (TCP, after the redirector's handoff).
 *
 *   frame = u32 length | body            (length counts the body only; 1 ≤ length ≤ MAX_FRAME_BYTES)
 *   body  = u8 type | fields             (plaintext, or AEAD-sealed after HELLO/HELLO_ACK when secure)
 *
 * HELLO and HELLO_ACK (and REJECT) are always plaintext: they carry the nonces the session keys
 * are derived from, authenticated by an HMAC under the connection's control key. Everything after
 * them is sealed when the connection is secure. Byte layouts are in docs/PROTOCOL.md.
 */
import { FerryError, LIMITS } from '../util/index.js';

import { Reader, Writer, writeU64 } from './bytes.js';

/** Frame type codes. */
export const FrameType = {
  HELLO: 1,
  HELLO_ACK: 2,
  DATA: 3,
  ACK: 4,
  FIN: 5,
  DRAIN: 6,
  REJECT: 7,
  SUSPEND: 11,
  RESUME: 12,
  RESUME_ACK: 13,
} as const;

/**
 * Frame types of the in-band open (codecs in messages.ts: their bodies wrap the CONNECT and
 * CONNECT_ACK bodies). Always plaintext; read only before a socket is attached to a connection:
 * CONNECT as a socket's first frame, CONNECT_ACK (or REJECT) as the server's answer, and
 * CONNECT_CONFIRM as the client's first frame after it. `decodeFrameBody` refuses them.
 */
export const OpenFrameType = {
  CONNECT: 8,
  CONNECT_ACK: 9,
  CONNECT_CONFIRM: 10,
} as const;

/** Version of the data-socket protocol carried in HELLO. */
export const FRAME_VERSION = 1;
/** Bytes of the length prefix. */
export const FRAME_LENGTH_BYTES = 4;
/** DATA frame header inside the body: type (1) + offset (8). */
export const DATA_HEADER_BYTES = 9;
/** Largest body accepted: a full DATA frame plus AEAD tag, with slack for future fields. */
export const MAX_FRAME_BYTES = LIMITS.MAX_FRAME_PAYLOAD.value + DATA_HEADER_BYTES + 16 + 32;
/** HMAC-SHA256 length in HELLO / HELLO_ACK. */
const MAC = 32;
/** Random nonce length (session key derivation and path challenges). */
export const NONCE_BYTES = 16;
/** Connection id length: client half (8) || server half (8). */
export const CONNECTION_ID_BYTES = 16;

/** Which end of a connection: the one that opened it, or the one that accepted it. */
export type Role = 'client' | 'server';
/** Role on the wire. */
export const roleToByte = (r: Role): number => (r === 'client' ? 0 : 1);
/** Role from the wire; anything but 0/1 is malformed. */
export function roleFromByte(b: number, code: 'FERRY_ERR_MALFORMED_FRAME' | 'FERRY_ERR_MALFORMED_DATAGRAM'): Role {
  if (b === 0) return 'client';
  if (b === 1) return 'server';
  throw new FerryError(code, `bad role byte ${b}`);
}

/** HELLO: the dialer names the connection and proves it holds the key (and answers a challenge). */
export interface Hello {
  type: typeof FrameType.HELLO;
  /** 0 = the data socket of a fresh open, 1 = a resume. */
  kind: 'open' | 'resume';
  connectionId: Buffer;
  dialerRole: Role;
  /** Dialer's fresh random nonce: half the session-key salt, and a challenge to the acceptor. */
  dialerNonce: Buffer;
  /** The acceptor's path challenge being answered (resume); zeros on open. */
  challenge: Buffer;
  /** Bytes the dialer has received from the acceptor: retransmission starts there. */
  received: number;
  /** Highest offset the dialer will accept (its receive window edge). */
  limit: number;
  mac: Buffer;
}

/** HELLO_ACK: the acceptor's half of the session nonce, its received offset and its MAC. */
export interface HelloAck {
  type: typeof FrameType.HELLO_ACK;
  acceptorNonce: Buffer;
  received: number;
  limit: number;
  mac: Buffer;
}

/** DATA: payload bytes at a stream offset. */
export interface Data {
  type: typeof FrameType.DATA;
  offset: number;
  payload: Buffer;
}

/** ACK: cumulative bytes received, and the window edge (highest offset the sender may send). */
export interface Ack {
  type: typeof FrameType.ACK;
  received: number;
  limit: number;
}

/** FIN: the sender's stream ends at `offset` (half close; survives moves like any byte). */
export interface Fin {
  type: typeof FrameType.FIN;
  offset: number;
}

/** DRAIN: the sender will send nothing more on this socket (suspend); `received` is its final ack. */
export interface Drain {
  type: typeof FrameType.DRAIN;
  received: number;
}

/**
 * SUSPEND: the sender suspends the connection in-band (a user suspend on a live socket, instead of
 * the SUS datagram), and this is also its DRAIN: `received` is its final ack on this socket.
 */
export interface Suspend {
  type: typeof FrameType.SUSPEND;
  received: number;
}

/**
 * RESUME: on the socket both ends kept after a suspend, the sender resumes on it (in-band, instead
 * of a RES datagram). RESUME_ACK: the receiver accepted, and carries the stream on on it.
 */
export interface Resume {
  type: typeof FrameType.RESUME | typeof FrameType.RESUME_ACK;
}

/** REJECT: the acceptor refuses a HELLO; the wire error code says why, then the socket closes. */
export interface Reject {
  type: typeof FrameType.REJECT;
  wireCode: number;
  detail: string;
}

/** Any decoded frame body. */
export type Frame = Hello | HelloAck | Data | Ack | Fin | Drain | Suspend | Resume | Reject;

/** The part of a HELLO covered by its MAC (everything before the MAC). */
export function helloMacInput(h: Omit<Hello, 'mac' | 'type'>): Buffer {
  return new Writer()
    .u8(FrameType.HELLO)
    .u8(FRAME_VERSION)
    .u8(h.kind === 'open' ? 0 : 1)
    .fixed(h.connectionId, CONNECTION_ID_BYTES, 'connectionId')
    .u8(roleToByte(h.dialerRole))
    .fixed(h.dialerNonce, NONCE_BYTES, 'dialerNonce')
    .fixed(h.challenge, NONCE_BYTES, 'challenge')
    .u64(h.received)
    .u64(h.limit)
    .finish();
}

/** The part of a HELLO_ACK covered by its MAC. */
export function helloAckMacInput(a: Omit<HelloAck, 'mac' | 'type'>): Buffer {
  return new Writer().u8(FrameType.HELLO_ACK).fixed(a.acceptorNonce, NONCE_BYTES, 'acceptorNonce').u64(a.received).u64(a.limit).finish();
}

/** Encode a frame body (without the length prefix). DATA is better sent with {@link dataHeader}. */
export function encodeFrameBody(f: Frame): Buffer {
  switch (f.type) {
    case FrameType.HELLO:
      return Buffer.concat([helloMacInput(f), fixedMac(f.mac)]);
    case FrameType.HELLO_ACK:
      return Buffer.concat([helloAckMacInput(f), fixedMac(f.mac)]);
    case FrameType.DATA:
      return Buffer.concat([dataHeader(f.offset), f.payload]);
    case FrameType.ACK:
      return new Writer().u8(f.type).u64(f.received).u64(f.limit).finish();
    case FrameType.FIN:
      return new Writer().u8(f.type).u64(f.offset).finish();
    case FrameType.DRAIN:
    case FrameType.SUSPEND:
      return new Writer().u8(f.type).u64(f.received).finish();
    case FrameType.RESUME:
    case FrameType.RESUME_ACK:
      return Buffer.from([f.type]);
    case FrameType.REJECT: {
      const detail = utf8Prefix(f.detail, 200);
      return new Writer().u8(f.type).u16(f.wireCode).u8(detail.length).bytes(detail).finish();
    }
  }
}

/** At most `max` UTF-8 bytes of `s`, cut on a character boundary. */
function utf8Prefix(s: string, max: number): Buffer {
  let b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  b = b.subarray(0, end);
  return b;
}

function fixedMac(mac: Buffer): Buffer {
  if (mac.length !== MAC) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'MAC must be 32 bytes');
  return mac;
}

/** The 9-byte body header of a DATA frame at `offset` (type + u64 offset). */
export function dataHeader(offset: number): Buffer {
  const b = Buffer.allocUnsafe(DATA_HEADER_BYTES);
  b[0] = FrameType.DATA;
  writeU64(b, 1, offset);
  return b;
}

/** The 4-byte length prefix for a body of `n` bytes. */
export function lengthPrefix(n: number): Buffer {
  if (n < 1 || n > MAX_FRAME_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `frame body length ${n} out of range`);
  const b = Buffer.allocUnsafe(FRAME_LENGTH_BYTES);
  b.writeUInt32BE(n);
  return b;
}

/** Encode a whole frame (length prefix + plaintext body). */
export function encodeFrame(f: Frame): Buffer {
  const body = encodeFrameBody(f);
  return Buffer.concat([lengthPrefix(body.length), body]);
}

/** Decode a plaintext frame body, strictly: exact lengths, known type, no trailing bytes. */
export function decodeFrameBody(body: Buffer): Frame {
  const r = new Reader(body, 'FERRY_ERR_MALFORMED_FRAME');
  const type = r.u8('type');
  switch (type) {
    case FrameType.HELLO: {
      const version = r.u8('version');
      if (version !== FRAME_VERSION) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `data-socket version ${version}`);
      const kindByte = r.u8('kind');
      if (kindByte > 1) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `bad HELLO kind ${kindByte}`);
      const f: Hello = {
        type,
        kind: kindByte === 0 ? 'open' : 'resume',
        connectionId: r.bytes(CONNECTION_ID_BYTES, 'connectionId'),
        dialerRole: roleFromByte(r.u8('role'), 'FERRY_ERR_MALFORMED_FRAME'),
        dialerNonce: r.bytes(NONCE_BYTES, 'dialerNonce'),
        challenge: r.bytes(NONCE_BYTES, 'challenge'),
        received: r.u64('received'),
        limit: r.u64('limit'),
        mac: r.bytes(MAC, 'mac'),
      };
      r.end('HELLO');
      return f;
    }
    case FrameType.HELLO_ACK: {
      const f: HelloAck = { type, acceptorNonce: r.bytes(NONCE_BYTES, 'acceptorNonce'), received: r.u64('received'), limit: r.u64('limit'), mac: r.bytes(MAC, 'mac') };
      r.end('HELLO_ACK');
      return f;
    }
    case FrameType.DATA: {
      const offset = r.u64('offset');
      const payload = r.rest();
      if (payload.length === 0) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'empty DATA frame');
      if (payload.length > LIMITS.MAX_FRAME_PAYLOAD.value) throw new FerryError('FERRY_ERR_FRAME_TOO_LARGE', `DATA payload ${payload.length} bytes`);
      return { type, offset, payload };
    }
    case FrameType.ACK: {
      const f: Ack = { type, received: r.u64('received'), limit: r.u64('limit') };
      r.end('ACK');
      if (f.limit < f.received) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'ACK limit below received');
      return f;
    }
    case FrameType.FIN: {
      const f: Fin = { type, offset: r.u64('offset') };
      r.end('FIN');
      return f;
    }
    case FrameType.DRAIN: {
      const f: Drain = { type, received: r.u64('received') };
      r.end('DRAIN');
      return f;
    }
    case FrameType.SUSPEND: {
      const f: Suspend = { type, received: r.u64('received') };
      r.end('SUSPEND');
      return f;
    }
    case FrameType.RESUME:
    case FrameType.RESUME_ACK:
      r.end(type === FrameType.RESUME ? 'RESUME' : 'RESUME_ACK');
      return { type };
    case FrameType.REJECT: {
      const wireCode = r.u16('code');
      const n = r.u8('detail length');
      if (n > 200) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'REJECT detail too long');
      const detail = r.bytes(n, 'detail').toString('utf8');
      r.end('REJECT');
      return { type, wireCode, detail };
    }
    default:
      throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `frame type ${type}`);
  }
}

/**
 * Splits a TCP byte stream into frame bodies. The length prefix is checked against the
 * decoder's maximum (MAX_FRAME_BYTES unless told) before any byte of the body is kept, so a
 * peer cannot make us hold more than one maximum frame.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /**
   * @param maxFrameBytes the longest length prefix accepted (default {@link MAX_FRAME_BYTES}); the
   *   redirector reads an unauthenticated first frame with the smaller `HANDOFF_FRAME_BYTES`.
   */
  constructor(public maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Add bytes read from the socket. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes held and not yet returned as frames. */
  get pending(): number {
    return this.buffered;
  }

  /** The next complete frame body, or `undefined` when more bytes are needed. */
  next(): Buffer | undefined {
    const parts = this.nextParts();
    if (!parts) return undefined;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /**
   * The next complete frame body as the slices it arrived in (no copy): a 64 KiB frame almost
   * always spans two TCP reads, and copying it whole was a tenth of the receive path's CPU.
   */
  nextParts(): Buffer[] | undefined {
    if (this.buffered < FRAME_LENGTH_BYTES) return undefined;
    const len = this.peekLength();
    if (len === 0) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', 'zero-length frame');
    if (len > this.maxFrameBytes) throw new FerryError('FERRY_ERR_FRAME_TOO_LARGE', `frame of ${len} bytes (max ${this.maxFrameBytes})`);
    if (this.buffered < FRAME_LENGTH_BYTES + len) return undefined;
    this.consumeParts(FRAME_LENGTH_BYTES);
    return this.consumeParts(len);
  }

  private consumeParts(n: number): Buffer[] {
    this.buffered -= n;
    const out: Buffer[] = [];
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        out.push(c);
        this.chunks.shift();
        n -= c.length;
      } else {
        out.push(c.subarray(0, n));
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
    return out;
  }

  /** Take whatever is buffered (for handing a socket over with bytes already read). */
  takeRest(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return all;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_LENGTH_BYTES) return first.readUInt32BE(0);
    // The prefix spans chunks: read its bytes where they are. Nothing is joined, so a stream of
    // tiny segments costs no copying (joining the list at every read was quadratic), and the body
    // stays slices of what was pushed (joining the prefix's chunks copied the body bytes in them).
    let v = 0;
    let got = 0;
    for (let k = 0; got < FRAME_LENGTH_BYTES; k++) {
      const c = this.chunks[k]!;
      for (let i = 0; i < c.length && got < FRAME_LENGTH_BYTES; i++, got++) v = v * 256 + c[i]!;
    }
    return v;
  }


}
