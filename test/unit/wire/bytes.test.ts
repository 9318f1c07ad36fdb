/**
 * The bounded Reader and the Writer every codec is built on: big-endian layout against fixed
 * vectors, round trips of random field sequences, the 2^53 ceiling of u64 (offsets are JS safe
 * integers), and the promise the decoders rely on: a short read, an oversized u64 or trailing
 * bytes throw a FerryError carrying the caller's code, never a RangeError from Buffer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Reader, Writer, readU64, writeU64 } from '../../../src/wire/bytes.js';
import { FerryError, isFerryError, type ErrorCode } from '../../../src/util/errors.js';

const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const MAX_U64 = Number.MAX_SAFE_INTEGER; // 2^53 - 1: the largest u64 the codecs accept

/** One field written then read back. */
type Op =
  | { kind: 'u8'; v: number }
  | { kind: 'u16'; v: number }
  | { kind: 'u32'; v: number }
  | { kind: 'u64'; v: number }
  | { kind: 'fixed'; v: Buffer }
  | { kind: 'bytes'; v: Buffer };

const u64Arb = fc.oneof(
  fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 52, MAX_U64),
  fc.integer({ min: 0, max: 2 ** 32 + 5 }),
  fc.maxSafeNat(),
);
const bufArb = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).map((v): Op => ({ kind: 'u8', v })),
  fc.integer({ min: 0, max: 0xffff }).map((v): Op => ({ kind: 'u16', v })),
  fc.integer({ min: 0, max: 0xffffffff }).map((v): Op => ({ kind: 'u32', v })),
  u64Arb.map((v): Op => ({ kind: 'u64', v })),
  bufArb(40).map((v): Op => ({ kind: 'fixed', v })),
  bufArb(40).map((v): Op => ({ kind: 'bytes', v })),
);

function write(ops: readonly Op[], w = new Writer()): Buffer {
  for (const op of ops) {
    switch (op.kind) {
      case 'u8': w.u8(op.v); break;
      case 'u16': w.u16(op.v); break;
      case 'u32': w.u32(op.v); break;
      case 'u64': w.u64(op.v); break;
      case 'fixed': w.fixed(op.v, op.v.length, 'field'); break;
      case 'bytes': w.bytes(op.v); break;
    }
  }
  return w.finish();
}

/** Read `ops` back; the byte fields know their length from the op (as fixed-size fields do). */
function read(r: Reader, ops: readonly Op[]): unknown[] {
  return ops.map((op) => {
    switch (op.kind) {
      case 'u8': return r.u8();
      case 'u16': return r.u16();
      case 'u32': return r.u32();
      case 'u64': return r.u64();
      case 'fixed':
      case 'bytes': return r.bytes(op.v.length);
    }
  });
}

const opSize = (op: Op): number =>
  op.kind === 'u8' ? 1 : op.kind === 'u16' ? 2 : op.kind === 'u32' ? 4 : op.kind === 'u64' ? 8 : op.v.length;

test('Writer lays fields out big-endian, back to back', () => {
  const b = new Writer()
    .u8(0xab)
    .u16(0x0102)
    .u32(0x03040506)
    .u64(0x0708090a0b0c0d)
    .u64(MAX_U64)
    .fixed(hex('eeff'), 2, 'two')
    .bytes(hex('99'))
    .finish();
  assert.deepEqual(b, hex('ab 0102 03040506 00070809 0a0b0c0d 001fffff ffffffff eeff 99'));
});

test('Writer.length counts every byte appended, and finish() is exactly that long', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 20 }), (ops) => {
      const w = new Writer();
      assert.equal(w.length, 0);
      const b = write(ops, w);
      assert.equal(w.length, ops.reduce((n, op) => n + opSize(op), 0));
      assert.equal(b.length, w.length);
    }),
    { numRuns: 200 },
  );
});

test('round trip: any sequence of fields reads back equal and consumes the input exactly', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 24 }), (ops) => {
      const b = write(ops);
      const r = new Reader(b, 'FERRY_ERR_MALFORMED_FRAME');
      assert.equal(r.remaining, b.length);
      const got = read(r, ops);
      assert.deepEqual(got, ops.map((op) => op.v));
      assert.equal(r.remaining, 0);
      r.end('sequence');
    }),
    { numRuns: 300 },
  );
});

test('every truncation of a field sequence throws the reader\'s code, never a RangeError', () => {
  fc.assert(
    fc.property(
      fc.array(opArb, { minLength: 1, maxLength: 12 }).filter((ops) => ops.some((op) => opSize(op) > 0)),
      fc.constantFrom<ErrorCode>('FERRY_ERR_MALFORMED_FRAME', 'FERRY_ERR_MALFORMED_DATAGRAM'),
      (ops, code) => {
        const b = write(ops);
        for (let k = 0; k < b.length; k++) {
          const r = new Reader(b.subarray(0, k), code);
          assert.throws(() => read(r, ops), ferry(code), `truncated to ${k} of ${b.length}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('a short read reports the field and leaves the offset where it was', () => {
  const r = new Reader(hex('010203'), 'FERRY_ERR_MALFORMED_DATAGRAM');
  assert.equal(r.u8(), 1);
  assert.throws(() => r.u32('counter'), (err: unknown) => isFerryError(err, 'FERRY_ERR_MALFORMED_DATAGRAM') && /counter/.test(err.message));
  assert.equal(r.remaining, 2);
  assert.equal(r.u16(), 0x0203);
});

test('u64: 2^53 - 1 is the largest value read; anything from 2^53 up throws the reader\'s code', () => {
  assert.equal(new Reader(hex('001fffff ffffffff'), 'FERRY_ERR_MALFORMED_FRAME').u64(), MAX_U64);
  for (const high of ['00200000 00000000', '00200000 00000001', '7fffffff ffffffff', 'ffffffff ffffffff', '80000000 00000000']) {
    for (const code of ['FERRY_ERR_MALFORMED_FRAME', 'FERRY_ERR_MALFORMED_DATAGRAM'] as const) {
      assert.throws(() => new Reader(hex(high), code).u64('offset'), ferry(code), high);
    }
  }
  fc.assert(
    fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }), (v) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(v);
      assert.throws(() => new Reader(b, 'FERRY_ERR_MALFORMED_FRAME').u64(), ferry('FERRY_ERR_MALFORMED_FRAME'));
    }),
    { numRuns: 200 },
  );
});

test('u64 agrees with Buffer.readBigUInt64BE over the whole safe range', () => {
  fc.assert(
    fc.property(u64Arb, (v) => {
      const b = new Writer().u64(v).finish();
      assert.equal(b.readBigUInt64BE(0), BigInt(v));
      assert.equal(new Reader(b, 'FERRY_ERR_MALFORMED_FRAME').u64(), v);
      assert.equal(readU64(b, 0), v);
    }),
    { numRuns: 300 },
  );
});

test('writeU64 / readU64 round trip at an offset and refuse unsafe or negative values', () => {
  fc.assert(
    fc.property(u64Arb, fc.nat({ max: 16 }), (v, off) => {
      const b = Buffer.alloc(off + 8 + 3, 0xee);
      writeU64(b, off, v);
      assert.equal(readU64(b, off), v);
      // Neighbouring bytes untouched.
      assert.ok(b.subarray(0, off).every((x) => x === 0xee));
      assert.ok(b.subarray(off + 8).every((x) => x === 0xee));
    }),
    { numRuns: 200 },
  );
  for (const bad of [-1, 2 ** 53, 2 ** 64, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -0.5]) {
    assert.throws(() => writeU64(Buffer.alloc(8), 0, bad), ferry('FERRY_ERR_INVALID_ARGUMENT'), String(bad));
    assert.throws(() => new Writer().u64(bad), ferry('FERRY_ERR_INVALID_ARGUMENT'), String(bad));
  }
});

test('Writer.fixed refuses a field of the wrong length with INVALID_ARGUMENT naming it', () => {
  fc.assert(
    fc.property(bufArb(40), fc.nat({ max: 40 }), (v, n) => {
      fc.pre(v.length !== n);
      assert.throws(
        () => new Writer().fixed(v, n, 'dialerNonce'),
        (err: unknown) => isFerryError(err, 'FERRY_ERR_INVALID_ARGUMENT') && /dialerNonce/.test(err.message),
      );
    }),
    { numRuns: 100 },
  );
});

test('Writer accepts any Uint8Array view (respecting byteOffset), not only Buffers', () => {
  const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
  const view = backing.subarray(2, 5);
  assert.deepEqual(new Writer().fixed(view, 3, 'v').bytes(view).finish(), hex('010203 010203'));
});

test('Reader.bytes and rest return views (no copy) and rest consumes everything', () => {
  const src = hex('0a0b0c0d0e');
  const r = new Reader(src, 'FERRY_ERR_MALFORMED_FRAME');
  const two = r.bytes(2);
  const rest = r.rest();
  assert.deepEqual(two, hex('0a0b'));
  assert.deepEqual(rest, hex('0c0d0e'));
  assert.equal(r.remaining, 0);
  src[0] = 0xff;
  src[4] = 0xff;
  assert.equal(two[0], 0xff);
  assert.equal(rest[2], 0xff);
  assert.deepEqual(r.rest(), Buffer.alloc(0));
  assert.deepEqual(r.bytes(0), Buffer.alloc(0));
  r.end('done');
});

test('Reader.end: trailing bytes are malformed, with the reader\'s code', () => {
  for (const code of ['FERRY_ERR_MALFORMED_FRAME', 'FERRY_ERR_MALFORMED_DATAGRAM'] as const) {
    const r = new Reader(hex('0102'), code);
    r.u8();
    assert.throws(() => r.end('HELLO'), (err: unknown) => isFerryError(err, code) && /HELLO/.test(err.message));
    r.u8();
    r.end('HELLO');
  }
});

test('fuzz: any read sequence over any bytes throws only FerryError', () => {
  fc.assert(
    fc.property(bufArb(64), fc.array(opArb, { maxLength: 16 }), fc.boolean(), (bytes, ops, endIt) => {
      const r = new Reader(bytes, 'FERRY_ERR_MALFORMED_DATAGRAM');
      try {
        read(r, ops);
        if (endIt) r.end('fuzz');
        else r.rest();
        assert.ok(r.remaining === 0);
      } catch (err) {
        assert.ok(err instanceof FerryError, `non-FerryError thrown: ${String(err)}`);
        assert.equal(err.code, 'FERRY_ERR_MALFORMED_DATAGRAM');
      }
    }),
    { numRuns: 500 },
  );
});
