/**
 * Long-term identities: Ed25519 key pairs whose id is a hash of the public key (the HIP paper's
 * HIT idea: the identifier is bound to the key, so whoever proves the key owns the id).
 *
 * Turning key bytes into a `KeyObject` is costly in `node:crypto` (as DER: ~100 µs for a public
 * key, ~450 µs for a private one; as JWK, which maps straight onto the raw key: 10-45 µs), so
 * keys go in and out as JWK, and every public key is imported once and cached
 * ({@link publicKeyFromRaw}).
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { FerryError, setBounded } from '../util/index.js';

/** Length of an agent or host id on the wire: 128 bits, like a HIP HIT. */
export const ID_BYTES = 16;
/** Raw Ed25519 public key length (RFC 8032). */
export const ED25519_PUBLIC_BYTES = 32;
/** Ed25519 signature length (RFC 8032). */
export const ED25519_SIGNATURE_BYTES = 64;

/** An agent id: 32 lowercase hex chars, the first 128 bits of SHA-256(raw public key). */
export type AgentId = string & { readonly __brand: 'AgentId' };
/** A host id, computed the same way from the host key. */
export type HostId = string & { readonly __brand: 'HostId' };

/** The id of a raw Ed25519 public key. */
export function idOfPublicKey(raw: Uint8Array): AgentId {
  if (raw.length !== ED25519_PUBLIC_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'Ed25519 public key must be 32 bytes');
  return createHash('sha256').update(raw).digest().subarray(0, ID_BYTES).toString('hex') as AgentId;
}

/**
 * Whether `text` is exactly `n` lower-case hex digits. A loop, not a regular expression: in a
 * running host such a test measured about 0.8 µs a call against a few ns here, and every open
 * parses ids.
 */
function isLowerHex(text: string, n: number): boolean {
  if (typeof text !== 'string' || text.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/** Parse and check an id in its text form. */
export function parseId(text: string): AgentId {
  if (!isLowerHex(text, 2 * ID_BYTES)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `not an agent id: ${JSON.stringify(text)}`);
  return text as AgentId;
}

/**
 * The 16 wire bytes of an id. Checks the text first: `Buffer.from(_, 'hex')` silently stops at
 * the first non-hex character, which would put a short id into a datagram.
 */
export function idToBytes(id: string): Buffer {
  return Buffer.from(parseId(id), 'hex');
}

/** An id from its 16 wire bytes. */
export function idFromBytes(bytes: Uint8Array): AgentId {
  if (bytes.length !== ID_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'id must be 16 bytes');
  return Buffer.from(bytes).toString('hex') as AgentId;
}

const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_MAX = 65_536;

/** Import a raw Ed25519 public key once; later calls return the cached `KeyObject`. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_PUBLIC_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'Ed25519 public key must be 32 bytes');
  const k = Buffer.from(raw).toString('base64');
  let key = publicKeyCache.get(k);
  if (!key) {
    // JWK, not SPKI DER: ~10 µs against ~100 µs per import on this machine.
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
    setBounded(publicKeyCache, k, key, PUBLIC_KEY_CACHE_MAX);
  }
  return key;
}

/** An Ed25519 identity: the key pair, the raw public key and the id derived from it. */
export class Identity {
  /** The id (hash of the public key). */
  readonly id: AgentId;
  private constructor(
    readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    /** Raw 32-byte public key, as sent on the wire. */
    readonly publicRaw: Buffer,
  ) {
    this.id = idOfPublicKey(publicRaw);
  }

  /** A fresh random identity. */
  static generate(): Identity {
    // From a random seed, not generateKeyPairSync: exporting a generated key (rawPublic, seed())
    // can deadlock Node 20 when a GC finalizes the generation job meanwhile (see generateEphemeral
    // in primitives.ts). Imported keys have no such job.
    return Identity.fromSeed(randomBytes(32));
  }

  /** The identity whose RFC 8032 private key (seed) is `seed` (32 bytes). */
  static fromSeed(seed: Uint8Array): Identity {
    if (seed.length !== 32) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'Ed25519 seed must be 32 bytes');
    // Imported as a JWK, not as PKCS#8 DER: ~55 µs against ~550 µs for the import and the public
    // key's export, and an agent's identity is imported at every landing. For a private OKP key
    // Node reads `d` alone and derives the public key (`x` need only be a string); the public key
    // used is the derived one, never the placeholder.
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64url'), x: '' }, format: 'jwk' });
    const publicKey = createPublicKey(privateKey);
    return new Identity(privateKey, publicKey, rawPublic(publicKey));
  }

  /** The 32-byte seed, for checkpoints and key files. Handle as a secret. */
  seed(): Buffer {
    return Buffer.from((this.privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
  }

  /** Sign `data` (Ed25519, pure, RFC 8032). */
  sign(data: Uint8Array): Buffer {
    return edSign(null, data, this.privateKey);
  }
}

function rawPublic(key: KeyObject): Buffer {
  // JWK export: ~3 µs against ~100 µs for SPKI DER.
  return Buffer.from((key.export({ format: 'jwk' }) as { x: string }).x, 'base64url');
}

/** Verify an Ed25519 signature by a raw public key. Never throws for a bad signature. */
export function verifySignature(publicRaw: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return edVerify(null, data, publicKeyFromRaw(publicRaw), signature);
  } catch {
    return false;
  }
}
