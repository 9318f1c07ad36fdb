/**
 * The connection key schedule. One X25519 agreement per connection open; everything after
 * (key confirmation, control MACs, every data-socket session across resumes and moves) is
 * HKDF-SHA256 from the master secret, so resume needs no asymmetric crypto.
 *
 *   master   = HKDF(ikm = X25519 shared, salt = connection id, info = "ferry/1 master" || TH, 32)
 *   confirmC || confirmS || control [|| openC2S || openS2C]
 *            = HKDF(master, salt = "", info = "ferry/1 keys", 96 [160])
 *   c2s || s2c = HKDF(master, salt = dialerNonce || acceptorNonce, info = "ferry/1 data", 64)
 *
 * confirmC / confirmS: key confirmation client -> server / server -> client; control: MAC of
 * SUS/RES/CLS, their replies and HELLO / HELLO_ACK; openC2S / openS2C: AEAD keys of the in-band
 * open's socket (the master is fresh per open, so they are too); c2s / s2c: AEAD keys of every
 * later data socket (fresh nonces from both ends). HKDF-Expand's first blocks do not depend on
 * the output length, so the 96- and 160-byte forms agree on the first three keys. Two HKDF calls
 * per side per open (was six).
 *
 * TH is the SHA-256 transcript hash of the handshake, so the keys are bound to every field
 * both sides signed (SIGMA: identities, ephemeral keys, connection id halves).
 */
import { hkdf } from './primitives.js';

/** Per-connection secrets, derived once at open and carried by checkpoints across moves. */
export interface ConnectionKeys {
  readonly master: Buffer;
  readonly confirmClient: Buffer;
  readonly confirmServer: Buffer;
  readonly control: Buffer;
}

/** AEAD keys of one data-socket session, per direction. */
export interface SessionKeys {
  readonly c2s: Buffer;
  readonly s2c: Buffer;
}

const EMPTY = Buffer.alloc(0);
const MASTER = Buffer.from('ferry/1 master');
const KEYS = Buffer.from('ferry/1 keys');
const DATA = Buffer.from('ferry/1 data');

function master(shared: Uint8Array, connectionId: Uint8Array, transcriptHash: Uint8Array): Buffer {
  return hkdf(shared, connectionId, Buffer.concat([MASTER, transcriptHash]), 32);
}

function expand(m: Buffer, withOpen: boolean): { keys: ConnectionKeys; open: SessionKeys | undefined } {
  const out = hkdf(m, EMPTY, KEYS, withOpen ? 160 : 96);
  const keys = { master: m, confirmClient: out.subarray(0, 32), confirmServer: out.subarray(32, 64), control: out.subarray(64, 96) };
  return { keys, open: withOpen ? { c2s: out.subarray(96, 128), s2c: out.subarray(128, 160) } : undefined };
}

/** Derive the connection keys from the X25519 shared secret, connection id and transcript hash. */
export function deriveConnectionKeys(shared: Uint8Array, connectionId: Uint8Array, transcriptHash: Uint8Array): ConnectionKeys {
  return expand(master(shared, connectionId, transcriptHash), false).keys;
}

/** The connection keys and the in-band open socket's session keys, in two HKDF calls. */
export function deriveOpenKeys(shared: Uint8Array, connectionId: Uint8Array, transcriptHash: Uint8Array): { keys: ConnectionKeys; open: SessionKeys } {
  const r = expand(master(shared, connectionId, transcriptHash), true);
  return { keys: r.keys, open: r.open! };
}

/** Rebuild the derived keys from a master secret (used when a checkpoint is attached). */
export function connectionKeysFromMaster(m: Buffer): ConnectionKeys {
  return expand(m, false).keys;
}

/** Fresh per-direction AEAD keys for one data-socket session (a resume's HELLO / HELLO_ACK). */
export function deriveSessionKeys(m: Uint8Array, dialerNonce: Uint8Array, acceptorNonce: Uint8Array): SessionKeys {
  const out = hkdf(m, Buffer.concat([dialerNonce, acceptorNonce]), DATA, 64);
  return { c2s: out.subarray(0, 32), s2c: out.subarray(32, 64) };
}
