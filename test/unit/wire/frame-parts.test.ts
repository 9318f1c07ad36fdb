// Zero-copy receive path: a frame body handed out as slices (FrameDecoder.nextParts) and opened
// slice by slice (FrameOpener.openParts) gives exactly the bytes of the whole-buffer path, for
// every way TCP may have split it; a flipped bit anywhere, tag included, is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { FrameOpener, FrameSealer } from '../../../src/identity/index.js';
import { FrameDecoder, lengthPrefix } from '../../../src/wire/index.js';
import { FerryError } from '../../../src/util/index.js';

function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    if (c > prev) out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

test('nextParts returns the body slices without copying, for any chunking', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const body = Buffer.from(bytes);
      const wire = Buffer.concat([lengthPrefix(body.length), body]);
      const d = new FrameDecoder();
      for (const c of split(wire, cuts)) d.push(c);
      const parts = d.nextParts()!;
      assert.ok(Buffer.concat(parts).equals(body));
      assert.ok(parts.every((p) => p.buffer === wire.buffer || split(wire, cuts).some((c) => c.buffer === p.buffer)), 'slices of the input, not copies');
      assert.equal(d.pending, 0);
    }),
    { numRuns: 200 },
  );
});

test('openParts equals open for any split, and refuses a flipped bit in any slice', () => {
  const key = randomBytes(32);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 6 }), fc.nat(), (bytes, cuts, flip) => {
      const sealer = new FrameSealer(key);
      const sealed = Buffer.concat(sealer.sealParts(Buffer.from('aad'), [Buffer.from(bytes)]));
      const opened = new FrameOpener(key).openParts(Buffer.from('aad'), split(sealed, cuts));
      assert.ok(Buffer.concat(opened).equals(Buffer.from(bytes)));
      const bad = Buffer.from(sealed);
      bad[flip % bad.length]! ^= 1;
      assert.throws(() => new FrameOpener(key).openParts(Buffer.from('aad'), split(bad, cuts)), (e: FerryError) => e.code === 'FERRY_ERR_DECRYPT_FAILED');
    }),
    { numRuns: 200 },
  );
});

// The counterexample the property above once found: a length prefix split over several reads,
// the last of which also holds the body's first byte. The body must still be that read's slice.
test('a length prefix split over reads: the body is still a slice of the read that holds it', () => {
  const body = Buffer.from([0]);
  // Its own ArrayBuffer: small Buffers share Node's pool, where a copy could look like a slice.
  const wire = Buffer.from(new ArrayBuffer(4 + body.length));
  Buffer.concat([lengthPrefix(body.length), body]).copy(wire);
  const d = new FrameDecoder();
  const reads = [wire.subarray(0, 1), wire.subarray(1, 2), wire.subarray(2, wire.length)];
  for (const r of reads) d.push(r);
  const parts = d.nextParts()!;
  assert.ok(Buffer.concat(parts).equals(body));
  assert.ok(parts.every((p) => p.buffer === wire.buffer), 'slices of the input, not copies');
  assert.equal(d.pending, 0);
});
