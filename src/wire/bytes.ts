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

/** Builds a buffer of known fields. */
export class Writer {
  private readonly parts: Buffer[] = [];
  private len = 0;

  u8(v: number): this {
    checkRange(v, 0xff);
    return this.push(Buffer.of(v));
  }

  u16(v: number): this {
    checkRange(v, 0xffff);
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    return this.push(b);
  }

  u32(v: number): this {
    checkRange(v, 0xffffffff);
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    return this.push(b);
  }

  u64(v: number): this {
    const b = Buffer.allocUnsafe(8);
    writeU64(b, 0, v);
    return this.push(b);
  }

  /** Append bytes that must be exactly `n` long (fixed-size fields). */
  fixed(v: Uint8Array, n: number, what: string): this {
    if (v.length !== n) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${what} must be ${n} bytes, got ${v.length}`);
    return this.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  bytes(v: Uint8Array): this {
    return this.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.len += b.length;
    return this;
  }

  get length(): number {
    return this.len;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.len);
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
