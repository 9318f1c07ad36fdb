/**
 * The tunnel preamble (STYLE rule 3): every kind round-trips with arbitrary valid fields and says
 * how many bytes it took (the tunnelled bytes after it are left alone); a preamble split at every
 * byte asks for more until it is whole; a bad version, unknown kind, empty or non-host-name
 * host and unknown refusal reason are typed errors; random input never throws anything but a
 * FerryError and never consumes more than TUNNEL_PREAMBLE_MAX bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TUNNEL_PREAMBLE_MAX, TunnelKind, TunnelRefusal, decodeTunnelPreamble, encodeTunnelPreamble, tunnelPreambleLength, type TunnelPreamble } from '../../../src/wire/index.js';
import { FerryError } from '../../../src/util/index.js';

const hostArb = fc.stringMatching(/^[A-Za-z0-9.\-:%_]{1,255}$/);
const preambleArb: fc.Arbitrary<TunnelPreamble> = fc.oneof(
  fc.constant({ kind: TunnelKind.STREAM }),
  fc.constant({ kind: TunnelKind.ACCEPTED }),
  fc.record({ kind: fc.constant(TunnelKind.LISTEN), host: hostArb, port: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({ kind: fc.constant(TunnelKind.LISTENING), port: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({ kind: fc.constant(TunnelKind.REFUSED), reason: fc.constantFrom(TunnelRefusal.NOT_ALLOWED, TunnelRefusal.CANNOT_BIND) }),
);

test('tunnel preamble: round trip, consumed length, trailing stream bytes untouched', () => {
  fc.assert(
    fc.property(preambleArb, fc.uint8Array({ maxLength: 16 }), (p, tail) => {
      const enc = encodeTunnelPreamble(p);
      assert.equal(enc.length, tunnelPreambleLength(p));
      assert.ok(enc.length <= TUNNEL_PREAMBLE_MAX);
      const d = decodeTunnelPreamble(Buffer.concat([enc, tail]));
      assert.deepEqual(d, { preamble: { ...p }, consumed: enc.length });
    }),
  );
});

test('tunnel preamble: split at every byte, each prefix asks for more', () => {
  fc.assert(
    fc.property(preambleArb, (p) => {
      const enc = encodeTunnelPreamble(p);
      for (let i = 0; i < enc.length; i++) assert.equal(decodeTunnelPreamble(enc.subarray(0, i)), undefined, `prefix of ${i}`);
    }),
  );
});

test('tunnel preamble: bad version, kind, host and reason are typed errors', () => {
  const code = (b: number[]): string => {
    try {
      decodeTunnelPreamble(Buffer.from(b));
    } catch (err) {
      assert.ok(err instanceof FerryError);
      return err.code;
    }
    return 'accepted';
  };
  assert.equal(code([2, 1]), 'FERRY_ERR_UNSUPPORTED_VERSION');
  assert.equal(code([1, 0]), 'FERRY_ERR_MALFORMED_FRAME');
  assert.equal(code([1, 6]), 'FERRY_ERR_MALFORMED_FRAME');
  assert.equal(code([1, 2, 0, 80, 0]), 'FERRY_ERR_MALFORMED_FRAME');
  assert.equal(code([1, 2, 0, 80, 1, 0x2f]), 'FERRY_ERR_MALFORMED_FRAME');
  assert.equal(code([1, 4, 3]), 'FERRY_ERR_MALFORMED_FRAME');
  assert.throws(() => encodeTunnelPreamble({ kind: TunnelKind.LISTEN, host: 'a b', port: 1 }), { code: 'FERRY_ERR_INVALID_ARGUMENT' });
  assert.throws(() => encodeTunnelPreamble({ kind: TunnelKind.LISTEN, host: 'x'.repeat(256), port: 1 }), { code: 'FERRY_ERR_INVALID_ARGUMENT' });
});

test('tunnel preamble: random input is a preamble, a request for more, or a FerryError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        const d = decodeTunnelPreamble(Buffer.from(bytes));
        if (d) assert.ok(d.consumed <= Math.min(bytes.length, TUNNEL_PREAMBLE_MAX));
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});
