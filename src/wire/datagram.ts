/**
 * The control datagram (NapletSocket paper §3.4): one UDP datagram carries one control request,
 * reply or one-way message. The header is fixed and big-endian:
 *
 * ```
 * off 0  u8   version = 1
 * off 1  u8   type        1..255 (0 is never valid; 255 is TYPE_ERROR, only in replies)
 * off 2  u8   flags       bit0 REPLY, bit1 ONEWAY, never both; other bits 0
 * off 3  u8   reserved = 0
 * off 4  u32  requestId
 * off 8  ...  body, 0..MAX_DATAGRAM_BODY bytes (the rest of the datagram)
 * ```
 *
 * UDP preserves datagram boundaries, so the body has no length field and decoding never has to
 * "need more": a datagram is whole or it is malformed. Decoding is strict, because every field we
 * tolerate now is one a future version cannot reuse.
 */
import { ERRORS, FerryError, errorFromWire, limit } from '../util/index.js';

/** The only control protocol version this code speaks. */
export const CONTROL_VERSION = 1;

/** Fixed header length in bytes. */
export const DATAGRAM_HEADER_BYTES = 8;

/**
 * Largest body in bytes: the datagram limit (1200, never fragmented, RFC 9000 §14) minus the
 * header.
 */
export const MAX_DATAGRAM_BODY = limit('MAX_DATAGRAM_BYTES') - DATAGRAM_HEADER_BYTES;

/** Flag bit: this datagram answers the request with the same requestId. */
export const FLAG_REPLY = 0x01;

/** Flag bit: a one-way message; the receiver never replies, the sender never retransmits. */
export const FLAG_ONEWAY = 0x02;

/**
 * Reserved message type of an error reply. Its body is {@link encodeErrorBody}'s. Reserved so an
 * error can answer a request of any type without the two ends agreeing on per-type error forms.
 */
export const TYPE_ERROR = 0xff;

/** Longest error detail in bytes (UTF-8), so an error reply stays small whatever was thrown. */
export const MAX_ERROR_DETAIL_BYTES = 200;

/** The decoded fixed header of a control datagram (the version is implied). */
export interface DatagramHeader {
  /** Message type, 1..255. */
  readonly type: number;
  /** {@link FLAG_REPLY}, {@link FLAG_ONEWAY} or 0 (a request). */
  readonly flags: number;
  /** u32 chosen by the requester; a reply echoes it. */
  readonly requestId: number;
}

/** A decoded datagram. */
export interface DecodedDatagram {
  readonly header: DatagramHeader;
  /** A view into the decoded bytes (no copy): copy it before the input buffer is reused. */
  readonly body: Buffer;
}

/**
 * Why `header` cannot be sent, or undefined when it is valid. Shared by the encoder (local misuse)
 * and the decoder (peer's fault) so the two can never disagree on what is valid.
 */
function headerProblem(type: number, flags: number): string | undefined {
  if (!Number.isInteger(type) || type < 1 || type > 0xff) return `type ${type} outside 1..255`;
  if (!Number.isInteger(flags) || (flags & ~(FLAG_REPLY | FLAG_ONEWAY)) !== 0) return `unknown flag bits in ${flags}`;
  if (flags === (FLAG_REPLY | FLAG_ONEWAY)) return 'REPLY and ONEWAY together';
  // An error is only ever an answer; as a request or one-way it would have no meaning.
  if (type === TYPE_ERROR && flags !== FLAG_REPLY) return 'TYPE_ERROR without REPLY';
  return undefined;
}

/**
 * Encode one control datagram.
 *
 * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when a header field is out of range or the
 *   body is longer than {@link MAX_DATAGRAM_BODY}.
 */
export function encodeDatagram(header: DatagramHeader, body: Uint8Array): Buffer {
  const problem = headerProblem(header.type, header.flags);
  if (problem) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `datagram header: ${problem}`);
  const id = header.requestId;
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `requestId ${id} is not a u32`);
  }
  if (body.length > MAX_DATAGRAM_BODY) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `datagram body of ${body.length} bytes exceeds ${MAX_DATAGRAM_BODY}`);
  }
  const out = Buffer.allocUnsafe(DATAGRAM_HEADER_BYTES + body.length);
  out[0] = CONTROL_VERSION;
  out[1] = header.type;
  out[2] = header.flags;
  out[3] = 0;
  out.writeUInt32BE(id, 4);
  out.set(body, DATAGRAM_HEADER_BYTES);
  return out;
}

/** The encoded length of a datagram with a body of `bodyLength` bytes. */
export function datagramLength(bodyLength: number): number {
  return DATAGRAM_HEADER_BYTES + bodyLength;
}

function malformed(detail: string): FerryError {
  return new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', `control datagram: ${detail}`);
}

/**
 * Decode one control datagram, strictly.
 *
 * The version is checked first, before the length: a later version may have a different header,
 * and its sender deserves UNSUPPORTED_VERSION rather than MALFORMED.
 *
 * @throws FerryError `FERRY_ERR_UNSUPPORTED_VERSION` or `FERRY_ERR_MALFORMED_DATAGRAM`; never
 *   anything else, whatever the bytes.
 */
export function decodeDatagram(bytes: Uint8Array): DecodedDatagram {
  if (bytes.length === 0) throw malformed('empty');
  if (bytes[0] !== CONTROL_VERSION) {
    throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `control datagram version ${bytes[0]}, expected ${CONTROL_VERSION}`);
  }
  if (bytes.length < DATAGRAM_HEADER_BYTES) throw malformed(`truncated header (${bytes.length} bytes)`);
  if (bytes.length > limit('MAX_DATAGRAM_BYTES')) throw malformed(`${bytes.length} bytes exceeds ${limit('MAX_DATAGRAM_BYTES')}`);
  // A Buffer view over the same memory: the body is never copied.
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const type = buf[1] as number;
  const flags = buf[2] as number;
  const problem = headerProblem(type, flags);
  if (problem) throw malformed(problem);
  if (buf[3] !== 0) throw malformed(`reserved byte is ${buf[3]}`);
  return {
    header: { type, flags, requestId: buf.readUInt32BE(4) },
    body: buf.subarray(DATAGRAM_HEADER_BYTES),
  };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Cut `s` to at most `max` UTF-8 bytes without splitting a character. */
function utf8Prefix(s: string, max: number): Buffer {
  const all = Buffer.from(s, 'utf8');
  if (all.length <= max) return all;
  let end = max;
  // Back off over continuation bytes (10xxxxxx) so the cut lands on a character start.
  while (end > 0 && ((all[end] as number) & 0xc0) === 0x80) end--;
  return all.subarray(0, end);
}

/**
 * Encode the body of a {@link TYPE_ERROR} reply: `u16 wireCode | u8 detailLength | utf8 detail`.
 * The detail is the error's message cut to {@link MAX_ERROR_DETAIL_BYTES} on a character
 * boundary. An error with no wire code (local-only, wire 0) goes out as
 * `FERRY_ERR_REFUSED`, the same code {@link errorFromWire} gives any code it does not know.
 */
export function encodeErrorBody(err: FerryError, maxDetailBytes = MAX_ERROR_DETAIL_BYTES): Buffer {
  const wire = err.wire !== 0 ? err.wire : ERRORS.FERRY_ERR_REFUSED.wire;
  const detail = utf8Prefix(err.message, Math.max(0, Math.min(maxDetailBytes, MAX_ERROR_DETAIL_BYTES)));
  const out = Buffer.allocUnsafe(3 + detail.length);
  out.writeUInt16BE(wire, 0);
  out[2] = detail.length;
  out.set(detail, 3);
  return out;
}

/**
 * Decode the body of a {@link TYPE_ERROR} reply into the error the peer reported (unknown wire
 * codes become `FERRY_ERR_REFUSED`, see {@link errorFromWire}).
 *
 * @throws FerryError `FERRY_ERR_MALFORMED_DATAGRAM` when the body is truncated, has trailing
 *   bytes, a detail over {@link MAX_ERROR_DETAIL_BYTES}, invalid UTF-8, or wire code 0 (which
 *   {@link encodeErrorBody} never sends).
 */
export function decodeErrorBody(body: Uint8Array): FerryError {
  if (body.length < 3) throw malformed(`error body of ${body.length} bytes`);
  const wire = ((body[0] as number) << 8) | (body[1] as number);
  const len = body[2] as number;
  if (wire === 0) throw malformed('error body with wire code 0');
  if (len > MAX_ERROR_DETAIL_BYTES) throw malformed(`error detail of ${len} bytes exceeds ${MAX_ERROR_DETAIL_BYTES}`);
  if (body.length !== 3 + len) throw malformed(`error body is ${body.length} bytes, header says ${3 + len}`);
  let detail: string;
  try {
    detail = strictUtf8.decode(body.subarray(3));
  } catch {
    throw malformed('error detail is not valid UTF-8');
  }
  return errorFromWire(wire, detail);
}
