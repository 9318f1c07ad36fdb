/**
 * AEAD for data-socket frames: AES-256-GCM (hardware accelerated on x86 and ARM) with a 96-bit
 * nonce of four zero bytes and a 64-bit per-direction frame counter (RFC 8446 §5.3 style, without
 * the XOR since every key here is used for one data-socket session only).
 *
 * Nonce uniqueness: each data-socket session derives fresh per-direction keys from the connection
 * master secret and two random session nonces (see keyschedule.ts), so a counter that restarts
 * at 0 after a resume or a move is under a new key. Frames on TCP arrive in order, so the receiver
 * keeps its own counter and the nonce is never sent.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { FerryError } from '../util/index.js';

/** GCM tag length in bytes. */
export const AEAD_TAG_BYTES = 16;
/** AES-256 key length. */
export const AEAD_KEY_BYTES = 32;
/**
 * Frames per key: the frame counter's budget (the nonce has room for 2^64, this keeps the counter
 * an exact integer with margin). For large frames {@link AEAD_MAX_BLOCKS} ends a key first.
 * Exceeding either is an error, never a nonce reuse.
 */
export const AEAD_MAX_FRAMES = 2 ** 32;
/**
 * AES blocks (16 bytes) one key may seal before the session must be renewed: 2^34, under the
 * 2^34.5 blocks RFC 8446 §5.5 allows (2^24.5 records of 16 KiB), which keeps an attacker's
 * confidentiality advantage near 2^-60 (draft-irtf-cfrg-aead-limits, AES-GCM). A frame costs
 * ceil(plaintext / 16) + 1 blocks, so full 256 KiB frames reach it after about 2^20 frames
 * (256 GiB); a frame count alone would let such frames run ~4000x past that limit.
 */
export const AEAD_MAX_BLOCKS = 2 ** 34;

function nonceFor(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(Math.floor(counter / 2 ** 32), 4);
  n.writeUInt32BE(counter >>> 0, 8);
  return n;
}

/**
 * The key as a Buffer of its own (a copy: the caller's may be a view into a longer derivation).
 * Not a KeyObject: a cipher takes raw key bytes as cheaply, and a KeyObject costs a native handle
 * and its finalizer per data-socket session, two per direction and end on every open.
 */
function ownKey(key: Uint8Array): Buffer {
  return Buffer.from(key);
}

/** Seals frames in one direction of one data-socket session. */
export class FrameSealer {
  private counter = 0;
  private blocks = 0;
  private readonly key: Buffer;
  constructor(key: Uint8Array) {
    if (key.length !== AEAD_KEY_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'AEAD key must be 32 bytes');
    this.key = ownKey(key);
  }

  /** Seal `plaintext` bound to `aad`; returns ciphertext || tag. */
  seal(aad: Uint8Array, plaintext: Uint8Array): Buffer {
    const c = createCipheriv('aes-256-gcm', this.key, this.nextNonce(plaintext.length), { authTagLength: AEAD_TAG_BYTES });
    c.setAAD(aad);
    const out = Buffer.allocUnsafe(plaintext.length + AEAD_TAG_BYTES);
    const n = c.update(plaintext).copy(out, 0);
    c.final();
    c.getAuthTag().copy(out, n);
    return out;
  }

  /**
   * Like {@link seal} over the concatenation of `parts`, without concatenating them (GCM
   * streams): returns the ciphertext pieces then the tag, ready for a vectored write, so a DATA
   * frame's header and payload are never copied together.
   */
  sealParts(aad: Uint8Array, parts: readonly Uint8Array[]): Buffer[] {
    let total = 0;
    for (const p of parts) total += p.length;
    const c = createCipheriv('aes-256-gcm', this.key, this.nextNonce(total), { authTagLength: AEAD_TAG_BYTES });
    c.setAAD(aad);
    const out: Buffer[] = [];
    for (const p of parts) out.push(c.update(p));
    c.final();
    out.push(c.getAuthTag());
    return out;
  }

  /** Charge one frame against the key's budgets and return its nonce; refuse once either is spent. */
  private nextNonce(plaintextBytes: number): Buffer {
    const cost = Math.ceil(plaintextBytes / 16) + 1;
    if (this.counter >= AEAD_MAX_FRAMES || this.blocks + cost > AEAD_MAX_BLOCKS) {
      throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', 'AEAD key usage limit reached; resume to rekey');
    }
    this.blocks += cost;
    return nonceFor(this.counter++);
  }
}

/** Opens frames in one direction of one data-socket session. */
export class FrameOpener {
  private counter = 0;
  private readonly key: Buffer;
  constructor(key: Uint8Array) {
    if (key.length !== AEAD_KEY_BYTES) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', 'AEAD key must be 32 bytes');
    this.key = ownKey(key);
  }

  /**
   * Open ciphertext || tag given as slices (as a frame decoder hands them out), without joining
   * them. The tag is verified before anything is returned: no unauthenticated plaintext escapes.
   */
  openParts(aad: Uint8Array, parts: readonly Buffer[]): Buffer[] {
    let total = 0;
    for (const p of parts) total += p.length;
    if (total < AEAD_TAG_BYTES) throw new FerryError('FERRY_ERR_DECRYPT_FAILED', 'sealed frame shorter than its tag');
    const bodyLen = total - AEAD_TAG_BYTES;
    const d = createDecipheriv('aes-256-gcm', this.key, nonceFor(this.counter++), { authTagLength: AEAD_TAG_BYTES });
    d.setAAD(aad);
    const out: Buffer[] = [];
    const tagPieces: Buffer[] = [];
    let at = 0;
    for (const p of parts) {
      const end = at + p.length;
      if (at < bodyLen) {
        const body = end <= bodyLen ? p : p.subarray(0, bodyLen - at);
        if (body.length > 0) out.push(d.update(body));
      }
      if (end > bodyLen) tagPieces.push(at >= bodyLen ? p : p.subarray(bodyLen - at));
      at = end;
    }
    d.setAuthTag(tagPieces.length === 1 ? tagPieces[0]! : Buffer.concat(tagPieces));
    try {
      d.final();
    } catch (cause) {
      throw new FerryError('FERRY_ERR_DECRYPT_FAILED', 'frame failed AEAD authentication', { cause });
    }
    return out;
  }

  /** Open ciphertext || tag bound to `aad`. Throws FERRY_ERR_DECRYPT_FAILED on any tampering. */
  open(aad: Uint8Array, sealed: Uint8Array): Buffer {
    if (sealed.length < AEAD_TAG_BYTES) throw new FerryError('FERRY_ERR_DECRYPT_FAILED', 'sealed frame shorter than its tag');
    const d = createDecipheriv('aes-256-gcm', this.key, nonceFor(this.counter++), { authTagLength: AEAD_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - AEAD_TAG_BYTES));
    const body = d.update(sealed.subarray(0, sealed.length - AEAD_TAG_BYTES));
    try {
      d.final();
    } catch (cause) {
      throw new FerryError('FERRY_ERR_DECRYPT_FAILED', 'frame failed AEAD authentication', { cause });
    }
    return body;
  }
}
