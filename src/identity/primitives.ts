/**
 * Thin wrappers over `node:crypto` for the primitives Ferry uses: X25519 (RFC 7748),
 * HKDF-SHA256 (RFC 5869), HMAC-SHA256, constant-time comparison and public random values. No
 * primitive is invented here.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { FerryError } from '../util/index.js';

/** Raw X25519 public key length (RFC 7748). */
export const X25519_PUBLIC_BYTES = 32;
/** HMAC-SHA256 output length, used for every MAC in the protocol. */
export const MAC_BYTES = 32;

const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** An ephemeral X25519 key pair: used for one handshake, then dropped. */
export interface EphemeralKey {
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key, as sent on the wire. */
  readonly publicRaw: Buffer;
}

/** A fresh ephemeral X25519 key pair. */
export function generateEphemeral(): EphemeralKey {
  // The public key comes out of the key-generation job itself (JWK: ~15x cheaper than DER, and
  // this is on every open). Never call export() on a freshly generated KeyObject: Node 20 locks
  // the key's mutex during export() and allocates while holding it; a GC there that finalizes the
  // (already unreferenced) generation job runs ~KeyPairGenConfig, which takes the same mutex, and
  // the process freezes for good (twice in 78 runs of the exactly-once property test: main thread in
  // futex_wait under ExportJWKEdKey -> GC -> ~KeyGenJob -> uv_mutex_lock).
  const { privateKey, publicKey } = generateKeyPairSync('x25519', { publicKeyEncoding: { format: 'jwk' } });
  return { privateKey, publicRaw: Buffer.from((publicKey as unknown as { x: string }).x, 'base64url') };
}

/** The X25519 key pair whose private scalar is `raw` (for RFC 7748 vectors). */
export function ephemeralFromRaw(raw: Uint8Array): EphemeralKey {
  if (raw.length !== X25519_PUBLIC_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'X25519 private key must be 32 bytes');
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicRaw: Buffer.from(der.subarray(der.length - X25519_PUBLIC_BYTES)) };
}

/**
 * X25519 agreement with a peer's raw public key. Throws FERRY_ERR_MALFORMED_DATAGRAM on a bad
 * key; an all-zero shared secret (a low-order peer key, RFC 7748 §6.1) is refused, since it would
 * make the session key public.
 */
export function x25519(own: KeyObject, peerRaw: Uint8Array): Buffer {
  if (peerRaw.length !== X25519_PUBLIC_BYTES) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'X25519 public key must be 32 bytes');
  let shared: Buffer;
  try {
    // JWK import avoids the DER parser: ~20 µs instead of ~200 µs per handshake.
    const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerRaw).toString('base64url') }, format: 'jwk' });
    shared = diffieHellman({ privateKey: own, publicKey: peer });
  } catch (cause) {
    throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'X25519 agreement failed', { cause });
  }
  if (allZero(shared)) throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'X25519 shared secret is all zero (low-order key)');
  return shared;
}

/** Whether every byte of `b` is zero: ORs them all, with no early exit. */
function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

/** HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes. */
export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, typeof info === 'string' ? Buffer.from(info) : info, length));
}

/** HMAC-SHA256 over the concatenation of `parts`. */
export function hmac(key: Uint8Array | KeyObject, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Constant-time equality of two byte strings (false on length mismatch). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** CSPRNG output drawn per call into OpenSSL by {@link freshBytes}. */
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomPoolAt = 0;

/**
 * `n` bytes from the CSPRNG (`randomFillSync`) for values that go on the wire: nonces, path
 * challenges, connection id halves; never key material. They are drawn RANDOM_POOL_BYTES at a
 * time and each byte is handed out once, as Node's own `randomUUID` batches its entropy: one call
 * into OpenSSL cost about ten times what a slice of the pool does here (12 to 25 µs against
 * 1.4 µs for 16 bytes, on a loaded machine), and an open, a resume or a move takes several.
 */
export function freshBytes(n: number): Buffer {
  if (n > RANDOM_POOL_BYTES / 8) return randomBytes(n);
  if (randomPoolAt + n > randomPool.length) {
    randomPool = randomFillSync(Buffer.allocUnsafeSlow(RANDOM_POOL_BYTES));
    randomPoolAt = 0;
  }
  const out = Buffer.from(randomPool.subarray(randomPoolAt, randomPoolAt + n));
  randomPoolAt += n;
  return out;
}
