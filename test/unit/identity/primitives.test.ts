/**
 * The primitives under the handshake and key schedule, checked against their RFCs: X25519
 * (RFC 7748 §5.2 and §6.1), HKDF-SHA256 (RFC 5869 Appendix A.1-A.3), HMAC-SHA256 (RFC 4231), and
 * the refusal of low-order X25519 keys that would make a shared secret public.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey } from 'node:crypto';
import { MAC_BYTES, X25519_PUBLIC_BYTES, ephemeralFromRaw, equalBytes, generateEphemeral, hkdf, hmac, x25519 } from '../../../src/identity/index.js';
import { isFerryError, type ErrorCode } from '../../../src/util/index.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const range = (from: number, to: number): Buffer => Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i));
const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);

// --- X25519, RFC 7748 -------------------------------------------------------------------------

/** RFC 7748 §5.2: scalar, input u-coordinate, output u-coordinate. */
const SCALAR_MULT = [
  {
    scalar: 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
    u: 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
    out: 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  },
  {
    // u has its top bit set; RFC 7748 §5 says to mask it, so this also checks the masking.
    scalar: '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
    u: 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
    out: '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  },
];

SCALAR_MULT.forEach((v, i) => {
  test(`RFC 7748 §5.2 X25519 vector ${i + 1}`, () => {
    const own = ephemeralFromRaw(hex(v.scalar));
    assert.equal(x25519(own.privateKey, hex(v.u)).toString('hex'), v.out);
  });
});

test('RFC 7748 §5.2 iterated X25519: after 1 and 1000 iterations', () => {
  let k: Buffer = Buffer.alloc(32);
  k[0] = 9;
  let u: Buffer = Buffer.from(k);
  const after: Record<number, string> = {};
  for (let i = 1; i <= 1000; i++) {
    const next = x25519(ephemeralFromRaw(k).privateKey, u);
    u = k;
    k = next;
    if (i === 1 || i === 1000) after[i] = k.toString('hex');
  }
  assert.equal(after[1], '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
  assert.equal(after[1000], '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
});

test('RFC 7748 §6.1 Diffie-Hellman: public keys and the shared secret', () => {
  const alice = ephemeralFromRaw(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  const bob = ephemeralFromRaw(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
  assert.equal(alice.publicRaw.toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(bob.publicRaw.toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.equal(x25519(alice.privateKey, bob.publicRaw).toString('hex'), shared);
  assert.equal(x25519(bob.privateKey, alice.publicRaw).toString('hex'), shared);
});

test('generated ephemeral keys agree on one shared secret', () => {
  const a = generateEphemeral();
  const b = generateEphemeral();
  assert.equal(a.publicRaw.length, X25519_PUBLIC_BYTES);
  const s1 = x25519(a.privateKey, b.publicRaw);
  assert.deepEqual(x25519(b.privateKey, a.publicRaw), s1);
  assert.notDeepEqual(x25519(a.privateKey, generateEphemeral().publicRaw), s1);
});

/**
 * Peer keys whose shared secret is all zero for every scalar: the points of small order on
 * Curve25519 and their non-canonical encodings (libsodium's blocklist). A peer that sends one
 * would make the "shared" secret, and so every session key, public (RFC 7748 §6.1, §7).
 */
const LOW_ORDER = {
  'u = 0 (order 1 and 2)': '0000000000000000000000000000000000000000000000000000000000000000',
  'u = 1 (order 4)': '0100000000000000000000000000000000000000000000000000000000000000',
  'order 8, first': 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  'order 8, second': '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'u = p - 1 (order 4)': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'u = p (non-canonical 0)': 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'u = p + 1 (non-canonical 1)': 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'u = 0 with the top bit set (masked to 0)': '0000000000000000000000000000000000000000000000000000000000000080',
};

for (const [name, u] of Object.entries(LOW_ORDER)) {
  test(`a low-order peer key is refused: ${name}`, () => {
    for (const own of [ephemeralFromRaw(hex(SCALAR_MULT[0]!.scalar)), generateEphemeral()]) {
      assert.throws(() => x25519(own.privateKey, hex(u)), ferry('FERRY_ERR_MALFORMED_DATAGRAM'));
    }
  });
}

test('a peer key of the wrong length is refused as a malformed datagram', () => {
  const own = generateEphemeral();
  for (const n of [0, 31, 33, 64]) {
    assert.throws(() => x25519(own.privateKey, Buffer.alloc(n, 9)), ferry('FERRY_ERR_MALFORMED_DATAGRAM'), `length ${n}`);
  }
});

test('ephemeralFromRaw refuses a private scalar that is not 32 bytes', () => {
  assert.throws(() => ephemeralFromRaw(Buffer.alloc(31)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => ephemeralFromRaw(Buffer.alloc(33)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

// --- HKDF-SHA256, RFC 5869 Appendix A ----------------------------------------------------------

const HKDF_CASES = [
  {
    name: 'A.1 basic test case',
    ikm: Buffer.alloc(22, 0x0b),
    salt: range(0x00, 0x0c),
    info: range(0xf0, 0xf9),
    okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  },
  {
    name: 'A.2 longer inputs and outputs',
    ikm: range(0x00, 0x4f),
    salt: range(0x60, 0xaf),
    info: range(0xb0, 0xff),
    okm:
      'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c' +
      '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71' +
      'cc30c58179ec3e87c14c01d5c1f3434f1d87',
  },
  {
    name: 'A.3 zero-length salt and info',
    ikm: Buffer.alloc(22, 0x0b),
    salt: Buffer.alloc(0),
    info: Buffer.alloc(0),
    okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  },
];

for (const c of HKDF_CASES) {
  test(`RFC 5869 ${c.name}`, () => {
    assert.equal(c.okm.length % 2, 0);
    const okm = hkdf(c.ikm, c.salt, c.info, c.okm.length / 2);
    assert.equal(okm.toString('hex'), c.okm);
  });
}

test('hkdf takes info as text or bytes alike, and a shorter output is a prefix', () => {
  const ikm = Buffer.alloc(32, 7);
  const salt = Buffer.from('salt');
  assert.deepEqual(hkdf(ikm, salt, 'ferry/1 control', 32), hkdf(ikm, salt, Buffer.from('ferry/1 control'), 32));
  assert.deepEqual(hkdf(ikm, salt, 'x', 16), hkdf(ikm, salt, 'x', 32).subarray(0, 16));
  assert.notDeepEqual(hkdf(ikm, salt, 'x', 32), hkdf(ikm, salt, 'y', 32));
});

// --- HMAC-SHA256, RFC 4231 ---------------------------------------------------------------------

test('RFC 4231 test case 1: HMAC-SHA256', () => {
  const mac = hmac(Buffer.alloc(20, 0x0b), Buffer.from('Hi There'));
  assert.equal(mac.toString('hex'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
});

test('RFC 4231 test case 2: HMAC-SHA256 with a key shorter than the output', () => {
  const expected = '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843';
  const key = Buffer.from('Jefe');
  const data = Buffer.from('what do ya want for nothing?');
  const mac = hmac(key, data);
  assert.equal(mac.length, MAC_BYTES);
  assert.equal(mac.toString('hex'), expected);
  // Parts are MACed as their concatenation, and a KeyObject key gives the same MAC.
  assert.equal(hmac(key, data.subarray(0, 7), data.subarray(7, 20), data.subarray(20)).toString('hex'), expected);
  assert.equal(hmac(createSecretKey(key), data).toString('hex'), expected);
});

// --- constant-time comparison ------------------------------------------------------------------

test('equalBytes: equal, different, different length, empty', () => {
  const a = Buffer.from('0123456789abcdef');
  assert.equal(equalBytes(a, Buffer.from(a)), true);
  assert.equal(equalBytes(a, Uint8Array.from(a)), true);
  for (let i = 0; i < a.length; i++) {
    const b = Buffer.from(a);
    b[i]! ^= 0x80;
    assert.equal(equalBytes(a, b), false, `byte ${i}`);
  }
  assert.equal(equalBytes(a, a.subarray(0, 15)), false);
  assert.equal(equalBytes(a.subarray(0, 15), a), false);
  assert.equal(equalBytes(Buffer.alloc(0), Buffer.alloc(0)), true);
  assert.equal(equalBytes(Buffer.alloc(0), Buffer.alloc(1)), false);
});
