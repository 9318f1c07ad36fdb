/**
 * Frame AEAD (AES-256-GCM, nonce = 4 zero bytes || u64 BE frame counter): round trips with the
 * two counters in step, refusal of any tampering or of a frame out of step, deterministic output
 * per key, and a nonce layout proven by decrypting with a plain `node:crypto` Decipheriv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { AEAD_KEY_BYTES, AEAD_MAX_BLOCKS, AEAD_MAX_FRAMES, AEAD_TAG_BYTES, FrameOpener, FrameSealer } from '../../../src/identity/index.js';
import { isFerryError, type ErrorCode } from '../../../src/util/index.js';

const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);
const KEY = Buffer.alloc(AEAD_KEY_BYTES, 0x42);
const OTHER_KEY = Buffer.alloc(AEAD_KEY_BYTES, 0x43);

/** Frame `i` of a test stream: lengths 0..~1 KiB, AAD standing in for a frame header. */
function frame(i: number): { aad: Buffer; plaintext: Buffer } {
  const aad = Buffer.alloc(8);
  aad.writeUInt32BE(i, 0);
  aad.writeUInt32BE(0xf0f0f0f0, 4);
  return { aad, plaintext: Buffer.alloc((i * 37) % 1100, i & 0xff) };
}

/** The nonce the protocol promises for frame `counter`: 4 zero bytes || u64 big endian. */
function expectedNonce(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(counter), 4);
  return n;
}

/** Decrypt with Node directly, independent of FrameOpener; throws if authentication fails. */
function openWith(key: Uint8Array, nonce: Buffer, aad: Uint8Array, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - AEAD_TAG_BYTES));
  const body = d.update(sealed.subarray(0, sealed.length - AEAD_TAG_BYTES));
  d.final();
  return body;
}

test('seal/open round-trips 500 frames of varied length with the counters in step', () => {
  const sealer = new FrameSealer(KEY);
  const opener = new FrameOpener(KEY);
  for (let i = 0; i < 500; i++) {
    const { aad, plaintext } = frame(i);
    const sealed = sealer.seal(aad, plaintext);
    assert.equal(sealed.length, plaintext.length + AEAD_TAG_BYTES);
    if (plaintext.length > 0) assert.notDeepEqual(sealed.subarray(0, plaintext.length), plaintext);
    assert.deepEqual(opener.open(aad, sealed), plaintext);
  }
});

test('sealParts over split plaintext equals seal over the whole, and shares the counter', () => {
  const a = new FrameSealer(KEY);
  const b = new FrameSealer(KEY);
  const opener = new FrameOpener(KEY);
  for (let i = 0; i < 40; i++) {
    const { aad, plaintext } = frame(i);
    const whole = a.seal(aad, plaintext);
    let sealed: Buffer;
    if (i % 2 === 0) {
      // Header-and-payload style splits, including empty pieces and no pieces at all.
      const cut = Math.min(plaintext.length, (i * 7) % 29);
      const parts = plaintext.length === 0 && i % 4 === 0 ? [] : [plaintext.subarray(0, cut), Buffer.alloc(0), plaintext.subarray(cut)];
      const out = b.sealParts(aad, parts);
      assert.equal(out.length, parts.length + 1);
      assert.equal(out[out.length - 1]!.length, AEAD_TAG_BYTES);
      sealed = Buffer.concat(out);
    } else {
      sealed = b.seal(aad, plaintext);
    }
    assert.deepEqual(sealed, whole);
    assert.deepEqual(opener.open(aad, sealed), plaintext);
  }
});

test('property: any sequence of frames round-trips in order', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 2048 })), { maxLength: 30 }), (frames) => {
      const key = randomBytes(AEAD_KEY_BYTES);
      const sealer = new FrameSealer(key);
      const opener = new FrameOpener(key);
      for (const [aad, plaintext] of frames) {
        assert.deepEqual(new Uint8Array(opener.open(aad, sealer.seal(aad, plaintext))), plaintext);
      }
    }),
    { numRuns: 200 },
  );
});

/** Seal three frames and return them, so tampering can target the middle one. */
function threeFrames(): { aad: Buffer; plaintext: Buffer; sealed: Buffer }[] {
  const sealer = new FrameSealer(KEY);
  return [0, 1, 2].map((i) => {
    const aad = Buffer.from(`header-${i}`);
    const plaintext = Buffer.from(`frame ${i}: some application bytes`);
    return { aad, plaintext, sealed: sealer.seal(aad, plaintext) };
  });
}

test('every flipped bit in the ciphertext or the tag fails with FERRY_ERR_DECRYPT_FAILED', () => {
  const f = threeFrames();
  const target = f[1]!;
  for (let bit = 0; bit < target.sealed.length * 8; bit++) {
    const opener = new FrameOpener(KEY);
    opener.open(f[0]!.aad, f[0]!.sealed);
    const bad = Buffer.from(target.sealed);
    bad[bit >> 3]! ^= 1 << (bit & 7);
    const where = (bit >> 3) < target.plaintext.length ? 'ciphertext' : 'tag';
    assert.throws(() => opener.open(target.aad, bad), ferry('FERRY_ERR_DECRYPT_FAILED'), `${where} bit ${bit}`);
  }
});

test('a flipped bit in the AAD, or a different AAD length, fails', () => {
  const f = threeFrames();
  const target = f[1]!;
  const aads: Buffer[] = [];
  for (let bit = 0; bit < target.aad.length * 8; bit++) {
    const bad = Buffer.from(target.aad);
    bad[bit >> 3]! ^= 1 << (bit & 7);
    aads.push(bad);
  }
  aads.push(target.aad.subarray(1), Buffer.concat([target.aad, Buffer.of(0)]), Buffer.alloc(0));
  for (const aad of aads) {
    const opener = new FrameOpener(KEY);
    opener.open(f[0]!.aad, f[0]!.sealed);
    assert.throws(() => opener.open(aad, target.sealed), ferry('FERRY_ERR_DECRYPT_FAILED'), aad.toString('hex'));
  }
});

test('a truncated frame fails, including one shorter than its tag', () => {
  const f = threeFrames();
  for (const n of [0, 1, AEAD_TAG_BYTES - 1, AEAD_TAG_BYTES, f[0]!.sealed.length - 1]) {
    assert.throws(() => new FrameOpener(KEY).open(f[0]!.aad, f[0]!.sealed.subarray(0, n)), ferry('FERRY_ERR_DECRYPT_FAILED'), `length ${n}`);
  }
});

test('an opener out of step fails: a skipped, replayed or reordered frame', () => {
  const f = threeFrames();
  // Skipped: frame 1 never arrives, so frame 2 is opened at counter 1.
  const skip = new FrameOpener(KEY);
  skip.open(f[0]!.aad, f[0]!.sealed);
  assert.throws(() => skip.open(f[2]!.aad, f[2]!.sealed), ferry('FERRY_ERR_DECRYPT_FAILED'));
  // Replayed: frame 0 again at counter 1.
  const replay = new FrameOpener(KEY);
  replay.open(f[0]!.aad, f[0]!.sealed);
  assert.throws(() => replay.open(f[0]!.aad, f[0]!.sealed), ferry('FERRY_ERR_DECRYPT_FAILED'));
  // Reordered: frame 1 first.
  assert.throws(() => new FrameOpener(KEY).open(f[1]!.aad, f[1]!.sealed), ferry('FERRY_ERR_DECRYPT_FAILED'));
});

test('a frame sealed under another key fails', () => {
  const { aad, plaintext } = frame(3);
  const sealed = new FrameSealer(OTHER_KEY).seal(aad, plaintext);
  assert.throws(() => new FrameOpener(KEY).open(aad, sealed), ferry('FERRY_ERR_DECRYPT_FAILED'));
});

test('sealers with the same key give identical output; different keys differ', () => {
  const a = new FrameSealer(KEY);
  const b = new FrameSealer(KEY);
  const c = new FrameSealer(OTHER_KEY);
  for (let i = 0; i < 50; i++) {
    const { aad, plaintext } = frame(i);
    const sa = a.seal(aad, plaintext);
    assert.deepEqual(b.seal(aad, plaintext), sa);
    assert.notDeepEqual(c.seal(aad, plaintext), sa);
  }
});

test('the same plaintext sealed twice under one key gives different ciphertexts (the counter moves)', () => {
  const s = new FrameSealer(KEY);
  const aad = Buffer.from('h');
  const p = Buffer.alloc(64, 1);
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(s.seal(aad, p).toString('hex'));
  assert.equal(seen.size, 100);
});

test('nonce layout: frame i decrypts with a fresh Decipheriv at nonce 0^4 || u64be(i), and at no other', () => {
  const sealer = new FrameSealer(KEY);
  const nonces = new Set<string>();
  const frames: { aad: Buffer; plaintext: Buffer; sealed: Buffer }[] = [];
  for (let i = 0; i < 1000; i++) {
    const { aad, plaintext } = frame(i);
    const sealed = sealer.seal(aad, plaintext);
    const nonce = expectedNonce(i);
    assert.deepEqual(openWith(KEY, nonce, aad, sealed), plaintext, `frame ${i}`);
    nonces.add(nonce.toString('hex'));
    frames.push({ aad, plaintext, sealed });
  }
  assert.equal(nonces.size, 1000);
  // And the neighbouring counters do not open it: each frame has exactly one nonce.
  for (const i of [0, 1, 255, 256, 999]) {
    const f = frames[i]!;
    for (const j of [i - 1, i + 1, i + 256].filter((j) => j >= 0)) {
      assert.throws(() => openWith(KEY, expectedNonce(j), f.aad, f.sealed), /unable to authenticate/, `frame ${i} at nonce ${j}`);
    }
  }
});

/** Reach into a sealer's private budget counters: 2^32 real frames would take hours. */
function spend(sealer: FrameSealer, frames: number, blocks: number): void {
  const s = sealer as unknown as { counter: number; blocks: number };
  assert.equal(typeof s.counter, 'number');
  assert.equal(typeof s.blocks, 'number');
  s.counter = frames;
  s.blocks = blocks;
}

test('the last frame of a key uses nonce 0^4 || u64be(2^32 - 1); the next seal is refused', () => {
  const sealer = new FrameSealer(KEY);
  spend(sealer, AEAD_MAX_FRAMES - 1, 0);
  const aad = Buffer.from('last');
  const plaintext = Buffer.from('the last frame under this key');
  const sealed = sealer.seal(aad, plaintext);
  assert.deepEqual(expectedNonce(AEAD_MAX_FRAMES - 1), Buffer.from('00000000' + '00000000ffffffff', 'hex'));
  assert.deepEqual(openWith(KEY, expectedNonce(AEAD_MAX_FRAMES - 1), aad, sealed), plaintext);
  assert.throws(() => sealer.seal(aad, plaintext), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
  assert.throws(() => sealer.sealParts(aad, [plaintext]), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
});

test('a key is refused once it has sealed AEAD_MAX_BLOCKS blocks, before any frame goes over', () => {
  const sealer = new FrameSealer(KEY);
  // 64 bytes cost 4 blocks plus 1 for the tag.
  spend(sealer, 0, AEAD_MAX_BLOCKS - 5);
  sealer.seal(Buffer.alloc(0), Buffer.alloc(64));
  assert.throws(() => sealer.seal(Buffer.alloc(0), Buffer.alloc(0)), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
  const other = new FrameSealer(KEY);
  spend(other, 0, AEAD_MAX_BLOCKS - 4);
  assert.throws(() => other.seal(Buffer.alloc(0), Buffer.alloc(64)), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
  // The refused frame spent nothing: a smaller one still fits.
  other.seal(Buffer.alloc(0), Buffer.alloc(48));
});

test('keys of the wrong length are refused', () => {
  for (const n of [0, 16, 31, 33]) {
    assert.throws(() => new FrameSealer(Buffer.alloc(n)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
    assert.throws(() => new FrameOpener(Buffer.alloc(n)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  }
});
