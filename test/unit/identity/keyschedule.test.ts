/**
 * The connection key schedule: deterministic, every derived key distinct, bound to the
 * transcript hash and connection id, rebuildable from the master secret alone (checkpoints), and
 * fresh per data-socket session. Also pinned to the formulas documented in keyschedule.ts by
 * recomputing them with HKDF written out here from RFC 5869 §2 over `createHmac`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { connectionKeysFromMaster, deriveConnectionKeys, deriveOpenKeys, deriveSessionKeys, type ConnectionKeys } from '../../../src/identity/index.js';

const SHARED = Buffer.from('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742', 'hex');
const CONNECTION_ID = Buffer.from('0011223344556677', 'hex');
const TH = createHash('sha256').update('a handshake transcript').digest();
const DIALER_NONCE = Buffer.alloc(16, 0xd1);
const ACCEPTOR_NONCE = Buffer.alloc(16, 0xa2);

/** HKDF-SHA256 from RFC 5869 §2.2-2.3, independent of the code under test. */
function referenceHkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  const prk = createHmac('sha256', salt.length > 0 ? salt : Buffer.alloc(32)).update(ikm).digest();
  const blocks: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    t = createHmac('sha256', prk).update(Buffer.concat([t, info, Buffer.of(i)])).digest();
    blocks.push(t);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

const allKeys = (k: ConnectionKeys, s: { c2s: Buffer; s2c: Buffer }): Buffer[] => {
  const o = deriveOpenKeys(SHARED, CONNECTION_ID, TH).open;
  return [k.master, k.confirmClient, k.confirmServer, k.control, s.c2s, s.s2c, o.c2s, o.s2c];
};

test('derivation is deterministic', () => {
  const a = deriveConnectionKeys(SHARED, CONNECTION_ID, TH);
  const b = deriveConnectionKeys(Buffer.from(SHARED), Buffer.from(CONNECTION_ID), Buffer.from(TH));
  assert.deepEqual(a, b);
  assert.deepEqual(deriveSessionKeys(a.master, DIALER_NONCE, ACCEPTOR_NONCE), deriveSessionKeys(b.master, DIALER_NONCE, ACCEPTOR_NONCE));
});

test('every derived key is 32 bytes and distinct from every other and from the shared secret', () => {
  const k = deriveConnectionKeys(SHARED, CONNECTION_ID, TH);
  const keys = allKeys(k, deriveSessionKeys(k.master, DIALER_NONCE, ACCEPTOR_NONCE));
  for (const key of keys) assert.equal(key.length, 32);
  const distinct = new Set([...keys, SHARED].map((x) => x.toString('hex')));
  assert.equal(distinct.size, keys.length + 1);
});

test('the keys follow the documented schedule (HKDF-SHA256 labels, salts and inputs)', () => {
  const k = deriveConnectionKeys(SHARED, CONNECTION_ID, TH);
  const master = referenceHkdf(SHARED, CONNECTION_ID, Buffer.concat([Buffer.from('ferry/1 master'), TH]), 32);
  assert.deepEqual(k.master, master);
  const none = Buffer.alloc(0);
  const expanded = referenceHkdf(master, none, Buffer.from('ferry/1 keys'), 160);
  assert.deepEqual(k.confirmClient, expanded.subarray(0, 32));
  assert.deepEqual(k.confirmServer, expanded.subarray(32, 64));
  assert.deepEqual(k.control, expanded.subarray(64, 96));
  const o = deriveOpenKeys(SHARED, CONNECTION_ID, TH);
  assert.deepEqual(o.keys, k, 'the in-band open derives the same connection keys');
  assert.deepEqual(o.open.c2s, expanded.subarray(96, 128));
  assert.deepEqual(o.open.s2c, expanded.subarray(128, 160));
  const s = deriveSessionKeys(master, DIALER_NONCE, ACCEPTOR_NONCE);
  const salt = Buffer.concat([DIALER_NONCE, ACCEPTOR_NONCE]);
  const data = referenceHkdf(master, salt, Buffer.from('ferry/1 data'), 64);
  assert.deepEqual(s.c2s, data.subarray(0, 32));
  assert.deepEqual(s.s2c, data.subarray(32, 64));
});

test('a different transcript hash gives a different master (keys are bound to what was signed)', () => {
  const base = deriveConnectionKeys(SHARED, CONNECTION_ID, TH).master;
  for (let byte = 0; byte < TH.length; byte++) {
    const th = Buffer.from(TH);
    th[byte]! ^= 0x01;
    assert.notDeepEqual(deriveConnectionKeys(SHARED, CONNECTION_ID, th).master, base, `byte ${byte}`);
  }
  assert.notDeepEqual(deriveConnectionKeys(SHARED, CONNECTION_ID, Buffer.alloc(32)).master, base);
});

test('a different connection id or shared secret gives a different master', () => {
  const base = deriveConnectionKeys(SHARED, CONNECTION_ID, TH).master;
  const otherId = Buffer.from(CONNECTION_ID);
  otherId[otherId.length - 1]! ^= 0x80;
  assert.notDeepEqual(deriveConnectionKeys(SHARED, otherId, TH).master, base);
  const otherShared = Buffer.from(SHARED);
  otherShared[0]! ^= 0x01;
  assert.notDeepEqual(deriveConnectionKeys(otherShared, CONNECTION_ID, TH).master, base);
});

test('connectionKeysFromMaster(master) rebuilds exactly the derived set', () => {
  const k = deriveConnectionKeys(SHARED, CONNECTION_ID, TH);
  assert.deepEqual(connectionKeysFromMaster(Buffer.from(k.master)), k);
});

test('session keys: c2s differs from s2c, and fresh nonces give fresh keys', () => {
  const { master } = deriveConnectionKeys(SHARED, CONNECTION_ID, TH);
  const s = deriveSessionKeys(master, DIALER_NONCE, ACCEPTOR_NONCE);
  assert.notDeepEqual(s.c2s, s.s2c);
  const seen = new Set([s.c2s.toString('hex'), s.s2c.toString('hex')]);
  const variants: [Buffer, Buffer][] = [
    [Buffer.alloc(16, 0xd2), ACCEPTOR_NONCE],
    [DIALER_NONCE, Buffer.alloc(16, 0xa3)],
    [ACCEPTOR_NONCE, DIALER_NONCE], // swapped roles
  ];
  for (const [d, a] of variants) {
    const v = deriveSessionKeys(master, d, a);
    assert.notDeepEqual(v.c2s, v.s2c);
    for (const key of [v.c2s, v.s2c]) {
      assert.equal(seen.has(key.toString('hex')), false);
      seen.add(key.toString('hex'));
    }
  }
});

test('session keys under another master differ even with the same nonces', () => {
  const a = deriveConnectionKeys(SHARED, CONNECTION_ID, TH).master;
  const b = deriveConnectionKeys(SHARED, Buffer.from('8899aabbccddeeff', 'hex'), TH).master;
  const sa = deriveSessionKeys(a, DIALER_NONCE, ACCEPTOR_NONCE);
  const sb = deriveSessionKeys(b, DIALER_NONCE, ACCEPTOR_NONCE);
  assert.notDeepEqual(sa.c2s, sb.c2s);
  assert.notDeepEqual(sa.s2c, sb.s2c);
});
