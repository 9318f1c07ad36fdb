// The control datagram codec: round trips, every header violation with its code, truncation at
// every length, oversize, and arbitrary bytes never escaping as anything but a FerryError.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FerryError, isFerryError, type ErrorCode } from '../../../src/util/index.js';
import {
  CONTROL_VERSION,
  DATAGRAM_HEADER_BYTES,
  FLAG_ONEWAY,
  FLAG_REPLY,
  MAX_DATAGRAM_BODY,
  MAX_ERROR_DETAIL_BYTES,
  TYPE_ERROR,
  datagramLength,
  decodeDatagram,
  decodeErrorBody,
  encodeDatagram,
  encodeErrorBody,
  type DatagramHeader,
} from '../../../src/wire/index.js';

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFerryError(err), `expected FerryError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

const validHeader: fc.Arbitrary<DatagramHeader> = fc.oneof(
  fc.record({
    type: fc.integer({ min: 1, max: 254 }),
    flags: fc.constantFrom(0, FLAG_REPLY, FLAG_ONEWAY),
    requestId: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({ type: fc.constant(TYPE_ERROR), flags: fc.constant(FLAG_REPLY), requestId: fc.integer({ min: 0, max: 0xffffffff }) }),
);

function sample(): Buffer {
  return encodeDatagram({ type: 7, flags: 0, requestId: 0x01020304 }, Buffer.from('hello'));
}

describe('datagram codec', () => {
  it('has the documented sizes', () => {
    assert.equal(CONTROL_VERSION, 1);
    assert.equal(DATAGRAM_HEADER_BYTES, 8);
    assert.equal(MAX_DATAGRAM_BODY, 1192);
    assert.equal(datagramLength(5), 13);
  });

  it('lays the header out big-endian as specified', () => {
    const b = encodeDatagram({ type: 0x42, flags: FLAG_REPLY, requestId: 0xdeadbeef }, Buffer.from([9, 8]));
    assert.deepEqual([...b], [1, 0x42, 1, 0, 0xde, 0xad, 0xbe, 0xef, 9, 8]);
  });

  it('round-trips every valid header and body', () => {
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: MAX_DATAGRAM_BODY }), (h, body) => {
        const bytes = encodeDatagram(h, body);
        assert.equal(bytes.length, datagramLength(body.length));
        const d = decodeDatagram(bytes);
        assert.deepEqual(d.header, { type: h.type, flags: h.flags, requestId: h.requestId });
        assert.deepEqual(new Uint8Array(d.body), body);
      }),
    );
  });

  it('returns the body as a view, not a copy (also for a plain Uint8Array)', () => {
    const bytes = sample();
    const d = decodeDatagram(bytes);
    assert.equal(d.body.buffer, bytes.buffer);
    assert.equal(d.body.byteOffset, bytes.byteOffset + DATAGRAM_HEADER_BYTES);
    const u8 = new Uint8Array(bytes);
    const d2 = decodeDatagram(u8);
    assert.equal(d2.body.buffer, u8.buffer);
    assert.equal(d2.body.toString(), 'hello');
  });

  it('refuses every other version with UNSUPPORTED_VERSION', () => {
    for (let v = 0; v < 256; v++) {
      if (v === CONTROL_VERSION) continue;
      const b = sample();
      b[0] = v;
      throwsCode(() => decodeDatagram(b), 'FERRY_ERR_UNSUPPORTED_VERSION');
      // Even a lone byte: the version decides before the length does.
      throwsCode(() => decodeDatagram(Buffer.from([v])), 'FERRY_ERR_UNSUPPORTED_VERSION');
    }
  });

  it('refuses type 0', () => {
    const b = sample();
    b[1] = 0;
    throwsCode(() => decodeDatagram(b), 'FERRY_ERR_MALFORMED_DATAGRAM');
  });

  it('refuses each unknown flag bit, and REPLY with ONEWAY', () => {
    for (let bit = 2; bit < 8; bit++) {
      for (const base of [0, FLAG_REPLY, FLAG_ONEWAY]) {
        const b = sample();
        b[2] = base | (1 << bit);
        throwsCode(() => decodeDatagram(b), 'FERRY_ERR_MALFORMED_DATAGRAM');
      }
    }
    const b = sample();
    b[2] = FLAG_REPLY | FLAG_ONEWAY;
    throwsCode(() => decodeDatagram(b), 'FERRY_ERR_MALFORMED_DATAGRAM');
  });

  it('refuses a non-zero reserved byte', () => {
    for (let r = 1; r < 256; r++) {
      const b = sample();
      b[3] = r;
      throwsCode(() => decodeDatagram(b), 'FERRY_ERR_MALFORMED_DATAGRAM');
    }
  });

  it('refuses TYPE_ERROR except as a reply', () => {
    for (const flags of [0, FLAG_ONEWAY]) {
      const b = sample();
      b[1] = TYPE_ERROR;
      b[2] = flags;
      throwsCode(() => decodeDatagram(b), 'FERRY_ERR_MALFORMED_DATAGRAM');
      throwsCode(() => encodeDatagram({ type: TYPE_ERROR, flags, requestId: 1 }, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    }
  });

  it('refuses a header truncated at every length', () => {
    const b = sample();
    for (let n = 0; n < DATAGRAM_HEADER_BYTES; n++) {
      throwsCode(() => decodeDatagram(b.subarray(0, n)), 'FERRY_ERR_MALFORMED_DATAGRAM');
    }
    // UDP keeps boundaries, so a shorter body is simply a shorter body: every cut from the header
    // on decodes to exactly the bytes present.
    for (let n = DATAGRAM_HEADER_BYTES; n <= b.length; n++) {
      assert.equal(decodeDatagram(b.subarray(0, n)).body.length, n - DATAGRAM_HEADER_BYTES);
    }
  });

  it('refuses datagrams over MAX_DATAGRAM_BYTES', () => {
    const ok = encodeDatagram({ type: 1, flags: 0, requestId: 0 }, Buffer.alloc(MAX_DATAGRAM_BODY));
    assert.equal(ok.length, 1200);
    decodeDatagram(ok);
    const big = Buffer.concat([ok, Buffer.alloc(1)]);
    throwsCode(() => decodeDatagram(big), 'FERRY_ERR_MALFORMED_DATAGRAM');
  });

  it('refuses to encode an oversize body or out-of-range header', () => {
    throwsCode(() => encodeDatagram({ type: 1, flags: 0, requestId: 0 }, Buffer.alloc(MAX_DATAGRAM_BODY + 1)), 'FERRY_ERR_INVALID_ARGUMENT');
    for (const h of [
      { type: 0, flags: 0, requestId: 0 },
      { type: 256, flags: 0, requestId: 0 },
      { type: 1.5, flags: 0, requestId: 0 },
      { type: 1, flags: 4, requestId: 0 },
      { type: 1, flags: 3, requestId: 0 },
      { type: 1, flags: 0, requestId: -1 },
      { type: 1, flags: 0, requestId: 2 ** 32 },
      { type: 1, flags: 0, requestId: 0.5 },
    ]) {
      throwsCode(() => encodeDatagram(h, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    }
  });

  it('throws nothing but MALFORMED_DATAGRAM / UNSUPPORTED_VERSION on arbitrary bytes', () => {
    const anyBytes = fc.oneof(
      fc.uint8Array({ maxLength: 1300 }),
      // Mostly-valid headers reach the deeper checks more often than uniform bytes do.
      fc.tuple(fc.constant(1), fc.uint8Array({ minLength: 0, maxLength: 40 })).map(([v, r]) => Uint8Array.from([v, ...r])),
    );
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        try {
          const d = decodeDatagram(bytes);
          // Whatever decodes must re-encode to the same bytes: the decoder accepts nothing the
          // encoder could not have produced.
          assert.deepEqual(new Uint8Array(encodeDatagram(d.header, d.body)), bytes);
        } catch (err) {
          assert.ok(err instanceof FerryError, `non-Ferry error ${String(err)}`);
          assert.ok(err.code === 'FERRY_ERR_MALFORMED_DATAGRAM' || err.code === 'FERRY_ERR_UNSUPPORTED_VERSION', err.code);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('error reply body', () => {
  it('round-trips code and detail', () => {
    const e = decodeErrorBody(encodeErrorBody(new FerryError('FERRY_ERR_UNKNOWN_AGENT', 'no agent 42 here')));
    assert.equal(e.code, 'FERRY_ERR_UNKNOWN_AGENT');
    assert.match(e.message, /no agent 42 here/);
  });

  it('round-trips every code that has a wire value', () => {
    for (const code of ['FERRY_ERR_MALFORMED_DATAGRAM', 'FERRY_ERR_REFUSED', 'FERRY_ERR_LIMIT_EXCEEDED', 'FERRY_ERR_INTERNAL', 'FERRY_ERR_PEER_MOVING'] as const) {
      assert.equal(decodeErrorBody(encodeErrorBody(new FerryError(code))).code, code);
    }
  });

  it('sends a local-only error (wire 0) as REFUSED', () => {
    const body = encodeErrorBody(new FerryError('FERRY_ERR_CONTROL_TIMEOUT'));
    assert.notEqual(body.readUInt16BE(0), 0);
    assert.equal(decodeErrorBody(body).code, 'FERRY_ERR_REFUSED');
  });

  it('cuts a long detail to 200 bytes on a character boundary', () => {
    // 'é' is two bytes in UTF-8 and '€' three: 1 + 66*3 = 199, so the next '€' must be dropped whole.
    const msg = 'x' + '€'.repeat(100);
    const body = encodeErrorBody(new FerryError('FERRY_ERR_REFUSED', msg));
    assert.ok(body.length - 3 <= MAX_ERROR_DETAIL_BYTES);
    assert.equal(body[2], 199);
    const e = decodeErrorBody(body);
    assert.match(e.message, new RegExp(`x${'€'.repeat(66)}$`));
  });

  it('refuses malformed bodies', () => {
    const good = encodeErrorBody(new FerryError('FERRY_ERR_REFUSED', 'abc'));
    for (let n = 0; n < good.length; n++) throwsCode(() => decodeErrorBody(good.subarray(0, n)), 'FERRY_ERR_MALFORMED_DATAGRAM');
    throwsCode(() => decodeErrorBody(Buffer.concat([good, Buffer.from([0])])), 'FERRY_ERR_MALFORMED_DATAGRAM');
    throwsCode(() => decodeErrorBody(Buffer.from([0, 0, 0])), 'FERRY_ERR_MALFORMED_DATAGRAM');
    throwsCode(() => decodeErrorBody(Buffer.concat([Buffer.from([0, 25, 201]), Buffer.alloc(201, 0x61)])), 'FERRY_ERR_MALFORMED_DATAGRAM');
    throwsCode(() => decodeErrorBody(Buffer.from([0, 25, 2, 0xc3, 0x28])), 'FERRY_ERR_MALFORMED_DATAGRAM');
  });

  it('maps an unknown wire code to REFUSED', () => {
    assert.equal(decodeErrorBody(Buffer.from([0xbe, 0xef, 0])).code, 'FERRY_ERR_REFUSED');
  });

  it('throws nothing but MALFORMED_DATAGRAM on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 260 }), (bytes) => {
        try {
          decodeErrorBody(bytes);
        } catch (err) {
          assert.ok(isFerryError(err, 'FERRY_ERR_MALFORMED_DATAGRAM'), String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
