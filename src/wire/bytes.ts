/**
 * A strict, bounded byte reader and a writer for the codecs. Every read checks the remaining
 * length first, so no decoder can read past its input or allocate on a peer's say-so.
 */
import { FerryError, type ErrorCode } from '../util/index.js';

/** Reads big-endian fields from a buffer; throws `code` on a short read. */
export class Reader {
  private off = 0;
  constructor(private readonly buf: Buffer, private readonly code: ErrorCode) {}

  /** Bytes not yet read. */
  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number, what: string): void {
    if (this.remaining < n) throw new FerryError(this.code, `truncated: ${what} needs ${n} bytes, ${this.remaining} left`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.off++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  /** A u64 that must fit in a JS safe integer (2^53 bytes is 8 PiB: no real offset exceeds it). */
  u64(what = 'u64'): number {
    this.need(8, what);
    const hi = this.buf.readUInt32BE(this.off);
    const lo = this.buf.readUInt32BE(this.off + 4);
    this.off += 8;
    if (hi > 0x1fffff) throw new FerryError(this.code, `${what} exceeds 2^53`);
    return hi * 2 ** 32 + lo;
  }

  /** `n` bytes as a subarray (no copy). */
  bytes(n: number, what = 'bytes'): Buffer {
    if (!Number.isInteger(n) || n < 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `bad length ${n}`);
    this.need(n, what);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  /** Everything left, as a subarray. */
  rest(): Buffer {
    const v = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return v;
  }

  /** Throws unless the input was consumed exactly: trailing bytes are malformed, not ignored. */
  end(what: string): void {
    if (this.remaining !== 0) throw new FerryError(this.code, `${what}: ${this.remaining} trailing bytes`);
  }
}

/** Room a writer starts with: every control message and frame head fits (the pool serves it). */
const WRITER_START_BYTES = 128;
/** A finished buffer that leaves more room than this unused is copied out, so it pins no spare room. */
const WRITER_SPARE_BYTES = 1024;

/**
 * Builds a buffer of known fields, written in place into one buffer that grows by doubling: a
 * field costs no allocation of its own (a Buffer per field and a concat at the end cost about as
 * much as the rest of encoding a control message).
 */
export class Writer {
  private buf: Buffer = Buffer.allocUnsafe(WRITER_START_BYTES);
  private len = 0;

  u8(v: number): this {
    checkRange(v, 0xff);
    this.room(1);
    this.buf[this.len++] = v;
    return this;
  }

  u16(v: number): this {
    checkRange(v, 0xffff);
    this.room(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    checkRange(v, 0xffffffff);
    this.room(4);
    this.buf.writeUInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  u64(v: number): this {
    this.room(8);
    writeU64(this.buf, this.len, v);
    this.len += 8;
    return this;
  }

  /** Append bytes that must be exactly `n` long (fixed-size fields). */
  fixed(v: Uint8Array, n: number, what: string): this {
    if (v.length !== n) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${what} must be ${n} bytes, got ${v.length}`);
    return this.bytes(v);
  }

  bytes(v: Uint8Array): this {
    this.room(v.length);
    this.buf.set(v, this.len);
    this.len += v.length;
    return this;
  }

  /** Make room for `n` more bytes. */
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.len + n));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }

  get length(): number {
    return this.len;
  }

  /** The bytes written (the writer is done with). */
  finish(): Buffer {
    const out = this.buf.subarray(0, this.len);
    return this.buf.length - this.len > WRITER_SPARE_BYTES ? Buffer.from(out) : out;
  }
}

function checkRange(v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `field value ${v} out of range 0..${max}`);
}

/** Write a safe-integer u64 big-endian at `off`. */
export function writeU64(b: Buffer, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `u64 out of range: ${v}`);
  b.writeUInt32BE(Math.floor(v / 2 ** 32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

/** Read a u64 big-endian at `off`, which the caller has bounds-checked. */
export function readU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 2 ** 32 + b.readUInt32BE(off + 4);
}
