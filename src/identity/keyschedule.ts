/**
 * The connection key schedule. One X25519 agreement per connection open; everything after
 * (key confirmation, control MACs, every data-socket session across resumes and moves) is
 * HKDF-SHA256 from the master secret, so resume needs no asymmetric crypto.
 *
 *   master   = HKDF(ikm = X25519 shared, salt = connection id, info = "ferry/1 master" || TH)
 *   confirmC = HKDF(master, "", "ferry/1 confirm client")   key confirmation, client -> server
 *   confirmS = HKDF(master, "", "ferry/1 confirm server")   key confirmation, server -> client
 *   control  = HKDF(master, "", "ferry/1 control")          MAC of SUS/RES/CLS and their replies
 *   c2s, s2c = HKDF(master, dialerNonce || acceptorNonce, "ferry/1 data c2s" | "... s2c")
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

const EMPTY = Buffer.alloc(0);

/** Derive the connection keys from the X25519 shared secret, connection id and transcript hash. */
export function deriveConnectionKeys(shared: Uint8Array, connectionId: Uint8Array, transcriptHash: Uint8Array): ConnectionKeys {
  const master = hkdf(shared, connectionId, Buffer.concat([Buffer.from('ferry/1 master'), transcriptHash]), 32);
  return connectionKeysFromMaster(master);
}

/** Rebuild the derived keys from a master secret (used when a checkpoint is attached). */
export function connectionKeysFromMaster(master: Buffer): ConnectionKeys {
  return {
    master,
    confirmClient: hkdf(master, EMPTY, 'ferry/1 confirm client', 32),
    confirmServer: hkdf(master, EMPTY, 'ferry/1 confirm server', 32),
    control: hkdf(master, EMPTY, 'ferry/1 control', 32),
  };
}

/** Fresh per-direction AEAD keys for one data-socket session. */
export function deriveSessionKeys(master: Uint8Array, dialerNonce: Uint8Array, acceptorNonce: Uint8Array): { c2s: Buffer; s2c: Buffer } {
  const salt = Buffer.concat([dialerNonce, acceptorNonce]);
  return { c2s: hkdf(master, salt, 'ferry/1 data c2s', 32), s2c: hkdf(master, salt, 'ferry/1 data s2c', 32) };
}
