/**
 * Data-socket frames (STYLE rule 3): every frame type round-trips with arbitrary valid fields;
 * a stream of frames split at every byte (and at random) decodes to the same bodies; every
 * truncation, trailing byte, unknown type, bad version, bad enum byte, u64 at or above 2^53 and
 * ACK with limit below received is refused with its typed error; an oversized length prefix is
 * refused from the 4 prefix bytes alone, before any body is buffered or allocated; and random
 * input never makes the codec throw anything but a FerryError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CONNECTION_ID_BYTES,
  DATA_HEADER_BYTES,
  FRAME_LENGTH_BYTES,
  FRAME_VERSION,
  FrameDecoder,
  FrameType,
  MAX_FRAME_BYTES,
  NONCE_BYTES,
  dataHeader,
  decodeFrameBody,
  encodeFrame,
  encodeFrameBody,
  helloAckMacInput,
  helloMacInput,
  lengthPrefix,
  roleFromByte,
  roleToByte,
  type Ack,
  type Data,
  type Drain,
  type Fin,
  type Frame,
  type Hello,
  type HelloAck,
  type Reject,
} from '../../../src/wire/frames.js';
import { readU64 } from '../../../src/wire/bytes.js';
import { FerryError, isFerryError, type ErrorCode } from '../../../src/util/errors.js';
import { LIMITS } from '../../../src/util/limits.js';

const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);
const MAX_PAYLOAD = LIMITS.MAX_FRAME_PAYLOAD.value;
const MAX_U64 = Number.MAX_SAFE_INTEGER;
const MAC_BYTES = 32;

// ---------------------------------------------------------------------------------------------
// Arbitraries: every valid value of every field.

const u64 = fc.oneof(
  fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 52, MAX_U64),
  fc.integer({ min: 0, max: 2 ** 32 + 5 }),
  fc.maxSafeNat(),
);
/** Plain objects, like the decoder returns (fc.record defaults to a null prototype). */
const NORMAL = { noNullPrototype: true } as const;
const fixedBytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));

const helloArb: fc.Arbitrary<Hello> = fc.record({
  type: fc.constant(FrameType.HELLO),
  kind: fc.constantFrom('open' as const, 'resume' as const),
  connectionId: fixedBytes(CONNECTION_ID_BYTES),
  dialerRole: fc.constantFrom('client' as const, 'server' as const),
  dialerNonce: fixedBytes(NONCE_BYTES),
  challenge: fixedBytes(NONCE_BYTES),
  received: u64,
  limit: u64,
  mac: fixedBytes(MAC_BYTES),
}, NORMAL);

const helloAckArb: fc.Arbitrary<HelloAck> = fc.record({
  type: fc.constant(FrameType.HELLO_ACK),
  acceptorNonce: fixedBytes(NONCE_BYTES),
  received: u64,
  limit: u64,
  mac: fixedBytes(MAC_BYTES),
}, NORMAL);

const dataArb: fc.Arbitrary<Data> = fc.record({
  type: fc.constant(FrameType.DATA),
  offset: u64,
  payload: fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((a) => Buffer.from(a)),
}, NORMAL);

const ackArb: fc.Arbitrary<Ack> = fc
  .tuple(u64, u64)
  .map(([a, b]): Ack => ({ type: FrameType.ACK, received: Math.min(a, b), limit: Math.max(a, b) }));

const finArb: fc.Arbitrary<Fin> = u64.map((offset): Fin => ({ type: FrameType.FIN, offset }));
const drainArb: fc.Arbitrary<Drain> = u64.map((received): Drain => ({ type: FrameType.DRAIN, received }));
const suspendArb: fc.Arbitrary<Frame> = u64.map((received): Frame => ({ type: FrameType.SUSPEND, received }));

/** Details whose UTF-8 form fits the u8 length and the 200-byte cap: these round-trip exactly. */
const detailArb = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 200),
);
const rejectArb: fc.Arbitrary<Reject> = fc.record({
  type: fc.constant(FrameType.REJECT),
  wireCode: fc.integer({ min: 0, max: 0xffff }),
  detail: detailArb,
}, NORMAL);

const ARBS = {
  HELLO: helloArb as fc.Arbitrary<Frame>,
  HELLO_ACK: helloAckArb as fc.Arbitrary<Frame>,
  DATA: dataArb as fc.Arbitrary<Frame>,
  ACK: ackArb as fc.Arbitrary<Frame>,
  FIN: finArb as fc.Arbitrary<Frame>,
  DRAIN: drainArb as fc.Arbitrary<Frame>,
  SUSPEND: suspendArb,
  RESUME: fc.constant<Frame>({ type: FrameType.RESUME }),
  RESUME_ACK: fc.constant<Frame>({ type: FrameType.RESUME_ACK }),
  REJECT: rejectArb as fc.Arbitrary<Frame>,
} as const;
const frameArb: fc.Arbitrary<Frame> = fc.oneof(...Object.values(ARBS));

// ---------------------------------------------------------------------------------------------
// Fixed samples, one per type, with distinct recognisable field values.

const fill = (n: number, b: number): Buffer => Buffer.alloc(n, b);
const SAMPLE: Record<keyof typeof FrameType, Frame> = {
  HELLO: {
    type: FrameType.HELLO,
    kind: 'resume',
    connectionId: fill(16, 0x11),
    dialerRole: 'server',
    dialerNonce: fill(16, 0x22),
    challenge: fill(16, 0x33),
    received: 0x0102030405,
    limit: 0x0a0b0c0d0e,
    mac: fill(32, 0x44),
  },
  HELLO_ACK: { type: FrameType.HELLO_ACK, acceptorNonce: fill(16, 0x55), received: 77, limit: 2 ** 40, mac: fill(32, 0x66) },
  DATA: { type: FrameType.DATA, offset: 2 ** 33 + 7, payload: Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff)) },
  ACK: { type: FrameType.ACK, received: 1000, limit: 1000 + 2 ** 20 },
  FIN: { type: FrameType.FIN, offset: 123456789 },
  DRAIN: { type: FrameType.DRAIN, received: MAX_U64 },
  SUSPEND: { type: FrameType.SUSPEND, received: 2 ** 42 + 3 },
  RESUME: { type: FrameType.RESUME },
  RESUME_ACK: { type: FrameType.RESUME_ACK },
  REJECT: { type: FrameType.REJECT, wireCode: 20, detail: 'no such connection' },
};
const SAMPLES: Frame[] = Object.values(SAMPLE);

/** Exact body sizes of the fixed-size frames (docs/PROTOCOL.md). */
const BODY_BYTES = { HELLO: 100, HELLO_ACK: 65, ACK: 17, FIN: 9, DRAIN: 9, SUSPEND: 9, RESUME: 1, RESUME_ACK: 1 } as const;

/** Byte offsets of every u64 field, per type (checked against the samples below). */
const U64_FIELDS: Record<string, { frame: Frame; at: number; value: number }[]> = {
  HELLO: [
    { frame: SAMPLE.HELLO, at: 52, value: (SAMPLE.HELLO as Hello).received },
    { frame: SAMPLE.HELLO, at: 60, value: (SAMPLE.HELLO as Hello).limit },
  ],
  HELLO_ACK: [
    { frame: SAMPLE.HELLO_ACK, at: 17, value: (SAMPLE.HELLO_ACK as HelloAck).received },
    { frame: SAMPLE.HELLO_ACK, at: 25, value: (SAMPLE.HELLO_ACK as HelloAck).limit },
  ],
  DATA: [{ frame: SAMPLE.DATA, at: 1, value: (SAMPLE.DATA as Data).offset }],
  ACK: [
    { frame: SAMPLE.ACK, at: 1, value: (SAMPLE.ACK as Ack).received },
    { frame: SAMPLE.ACK, at: 9, value: (SAMPLE.ACK as Ack).limit },
  ],
  FIN: [{ frame: SAMPLE.FIN, at: 1, value: (SAMPLE.FIN as Fin).offset }],
  DRAIN: [{ frame: SAMPLE.DRAIN, at: 1, value: (SAMPLE.DRAIN as Drain).received }],
  SUSPEND: [{ frame: SAMPLE.SUSPEND, at: 1, value: 2 ** 42 + 3 }],
};

/** Every complete body a decoder yields after the bytes pushed so far. */
function drain(d: FrameDecoder): Buffer[] {
  const out: Buffer[] = [];
  for (let b = d.next(); b !== undefined; b = d.next()) out.push(Buffer.from(b));
  return out;
}

function roundTrip(f: Frame): void {
  const body = encodeFrameBody(f);
  const whole = encodeFrame(f);
  assert.equal(whole.readUInt32BE(0), body.length, 'length prefix counts the body only');
  assert.deepEqual(whole.subarray(FRAME_LENGTH_BYTES), body);
  assert.equal(body[0], f.type);
  assert.deepEqual(decodeFrameBody(body), f);
  const d = new FrameDecoder();
  d.push(whole);
  assert.deepEqual(drain(d), [body]);
  assert.equal(d.pending, 0);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

for (const [name, arb] of Object.entries(ARBS)) {
  test(`round trip: ${name} with arbitrary valid fields`, () => {
    fc.assert(fc.property(arb, roundTrip), { numRuns: name === 'DATA' ? 100 : 200 });
  });
}

test('fixed-size frame bodies have their documented length', () => {
  for (const [name, n] of Object.entries(BODY_BYTES)) {
    assert.equal(encodeFrameBody(SAMPLE[name as keyof typeof BODY_BYTES]).length, n, name);
  }
  assert.equal(encodeFrameBody(SAMPLE.DATA).length, DATA_HEADER_BYTES + 300);
  assert.equal(encodeFrameBody(SAMPLE.REJECT).length, 4 + 'no such connection'.length);
});

test('DATA with exactly MAX_FRAME_PAYLOAD bytes round-trips through the decoder', () => {
  const payload = Buffer.alloc(MAX_PAYLOAD);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const f: Data = { type: FrameType.DATA, offset: MAX_U64 - MAX_PAYLOAD, payload };
  const whole = encodeFrame(f);
  assert.equal(whole.length, FRAME_LENGTH_BYTES + DATA_HEADER_BYTES + MAX_PAYLOAD);
  assert.ok(DATA_HEADER_BYTES + MAX_PAYLOAD <= MAX_FRAME_BYTES);
  roundTrip(f);
  // Split in the middle of the payload too.
  const d = new FrameDecoder();
  d.push(whole.subarray(0, 30_000));
  assert.equal(d.next(), undefined);
  d.push(whole.subarray(30_000));
  const [body] = drain(d);
  assert.deepEqual(decodeFrameBody(body!), f);
});

test('dataHeader + payload behind lengthPrefix is byte-identical to encodeFrame(DATA)', () => {
  fc.assert(
    fc.property(dataArb, (f) => {
      const header = dataHeader(f.offset);
      assert.equal(header.length, DATA_HEADER_BYTES);
      const manual = Buffer.concat([lengthPrefix(DATA_HEADER_BYTES + f.payload.length), header, f.payload]);
      assert.deepEqual(manual, encodeFrame(f));
    }),
    { numRuns: 100 },
  );
});

test('lengthPrefix is a big-endian u32 over 1..MAX_FRAME_BYTES and refuses anything else', () => {
  assert.deepEqual(lengthPrefix(1), Buffer.from([0, 0, 0, 1]));
  assert.equal(lengthPrefix(MAX_FRAME_BYTES).readUInt32BE(0), MAX_FRAME_BYTES);
  assert.equal(lengthPrefix(0x0102).toString('hex'), '00000102');
  for (const bad of [0, -1, MAX_FRAME_BYTES + 1, 2 ** 32]) {
    assert.throws(() => lengthPrefix(bad), ferry('FERRY_ERR_INVALID_ARGUMENT'), String(bad));
  }
});

test('MAX_FRAME_BYTES leaves room for a full DATA frame plus the AEAD tag', () => {
  assert.ok(MAX_FRAME_BYTES >= MAX_PAYLOAD + DATA_HEADER_BYTES + 16);
  assert.ok(MAX_FRAME_BYTES < 2 ** 32);
});

test('helloMacInput / helloAckMacInput are the body minus the MAC, so the MAC binds every field', () => {
  fc.assert(
    fc.property(helloArb, helloAckArb, (h, a) => {
      const hb = encodeFrameBody(h);
      assert.deepEqual(Buffer.concat([helloMacInput(h), h.mac]), hb);
      assert.equal(helloMacInput(h).length, hb.length - MAC_BYTES);
      const ab = encodeFrameBody(a);
      assert.deepEqual(Buffer.concat([helloAckMacInput(a), a.mac]), ab);
    }),
    { numRuns: 200 },
  );
});

test('helloMacInput changes when any HELLO field changes', () => {
  const base = SAMPLE.HELLO as Hello;
  const flip = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b[0]! ^ 1]), b.subarray(1)]);
  const variants: Partial<Hello>[] = [
    { kind: 'open' },
    { connectionId: flip(base.connectionId) },
    { dialerRole: 'client' },
    { dialerNonce: flip(base.dialerNonce) },
    { challenge: flip(base.challenge) },
    { received: base.received + 1 },
    { limit: base.limit - 1 },
  ];
  const ref = helloMacInput(base);
  for (const v of variants) {
    assert.notDeepEqual(helloMacInput({ ...base, ...v }), ref, JSON.stringify(Object.keys(v)));
  }
  assert.equal(ref[1], FRAME_VERSION, 'the version is covered');
});

test('role bytes: client 0, server 1, anything else malformed with the caller\'s code', () => {
  assert.equal(roleToByte('client'), 0);
  assert.equal(roleToByte('server'), 1);
  assert.equal(roleFromByte(0, 'FERRY_ERR_MALFORMED_FRAME'), 'client');
  assert.equal(roleFromByte(1, 'FERRY_ERR_MALFORMED_FRAME'), 'server');
  for (let b = 2; b < 256; b++) {
    assert.throws(() => roleFromByte(b, 'FERRY_ERR_MALFORMED_FRAME'), ferry('FERRY_ERR_MALFORMED_FRAME'));
    assert.throws(() => roleFromByte(b, 'FERRY_ERR_MALFORMED_DATAGRAM'), ferry('FERRY_ERR_MALFORMED_DATAGRAM'));
  }
});

test('REJECT: an ASCII detail longer than 200 characters is cut to 200 on encode', () => {
  const f: Reject = { type: FrameType.REJECT, wireCode: 0xffff, detail: 'x'.repeat(300) };
  const back = decodeFrameBody(encodeFrameBody(f)) as Reject;
  assert.equal(back.wireCode, 0xffff);
  assert.equal(back.detail, 'x'.repeat(200));
});

test('encoders refuse wrong-size fixed fields and unsafe u64s with INVALID_ARGUMENT', () => {
  const h = SAMPLE.HELLO as Hello;
  const a = SAMPLE.HELLO_ACK as HelloAck;
  const bad: Frame[] = [
    { ...h, mac: Buffer.alloc(31) },
    { ...h, mac: Buffer.alloc(33) },
    { ...h, connectionId: Buffer.alloc(15) },
    { ...h, dialerNonce: Buffer.alloc(17) },
    { ...h, challenge: Buffer.alloc(0) },
    { ...h, received: -1 },
    { ...h, limit: 2 ** 53 },
    { ...a, acceptorNonce: Buffer.alloc(8) },
    { ...a, mac: Buffer.alloc(0) },
    { type: FrameType.DATA, offset: 2 ** 53, payload: Buffer.from([1]) },
    { type: FrameType.ACK, received: 1.5, limit: 2 },
    { type: FrameType.FIN, offset: -1 },
    { type: FrameType.DRAIN, received: Number.NaN },
  ];
  for (const f of bad) assert.throws(() => encodeFrameBody(f), ferry('FERRY_ERR_INVALID_ARGUMENT'), JSON.stringify(f));
  for (const bad of [-1, 2 ** 53, 0.5]) assert.throws(() => dataHeader(bad), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

// ---------------------------------------------------------------------------------------------
// Streams split anywhere.

const STREAM_FRAMES = [...SAMPLES, SAMPLE.ACK, SAMPLE.FIN];
const STREAM = Buffer.concat(STREAM_FRAMES.map(encodeFrame));
const STREAM_BODIES = STREAM_FRAMES.map(encodeFrameBody);

test('a stream split at every byte boundary decodes to the same bodies', () => {
  for (let i = 0; i <= STREAM.length; i++) {
    const d = new FrameDecoder();
    d.push(STREAM.subarray(0, i));
    const got = drain(d);
    d.push(STREAM.subarray(i));
    got.push(...drain(d));
    assert.deepEqual(got, STREAM_BODIES, `split at ${i}`);
    assert.equal(d.pending, 0);
  }
  assert.deepEqual(
    STREAM_BODIES.map(decodeFrameBody),
    STREAM_FRAMES,
  );
});

test('a stream split at every pair of byte boundaries decodes to the same bodies', () => {
  // The small frames only (the 300-byte DATA would make this ~200k decodes for no new case).
  const frames = STREAM_FRAMES.filter((f) => f.type !== FrameType.DATA);
  const stream = Buffer.concat(frames.map(encodeFrame));
  const bodies = frames.map(encodeFrameBody);
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const d = new FrameDecoder();
      d.push(stream.subarray(0, i));
      const got = drain(d);
      d.push(stream.subarray(i, j));
      got.push(...drain(d));
      d.push(stream.subarray(j));
      got.push(...drain(d));
      if (got.length !== bodies.length) assert.fail(`split at ${i}, ${j}: ${got.length} frames`);
      for (let k = 0; k < bodies.length; k++) if (!got[k]!.equals(bodies[k]!)) assert.fail(`split at ${i}, ${j}: frame ${k} differs`);
    }
  }
});

test('fed one byte at a time, each frame comes out exactly when its last byte arrives', () => {
  const d = new FrameDecoder();
  const ends: number[] = [];
  let at = 0;
  for (const f of STREAM_FRAMES) ends.push((at += encodeFrame(f).length));
  const seen: { at: number; body: Buffer }[] = [];
  for (let i = 0; i < STREAM.length; i++) {
    d.push(STREAM.subarray(i, i + 1));
    for (const body of drain(d)) seen.push({ at: i + 1, body });
  }
  assert.deepEqual(seen.map((s) => s.at), ends);
  assert.deepEqual(seen.map((s) => s.body), STREAM_BODIES);
});

test('random frames in random chunks, with next() called at random, decode to the same bodies', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.array(fc.boolean(), { maxLength: 20 }),
      (frames, rawCuts, pollAfter) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const cuts = [...new Set(rawCuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const bounds = [0, ...cuts, stream.length];
        const d = new FrameDecoder();
        const got: Buffer[] = [];
        for (let k = 0; k + 1 < bounds.length; k++) {
          d.push(stream.subarray(bounds[k]!, bounds[k + 1]!));
          if (pollAfter[k] ?? true) got.push(...drain(d));
        }
        got.push(...drain(d));
        assert.deepEqual(got, frames.map(encodeFrameBody));
        assert.deepEqual(got.map(decodeFrameBody), frames);
        assert.equal(d.pending, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('pending counts buffered bytes; empty pushes are ignored; takeRest hands over the rest', () => {
  const a = encodeFrame(SAMPLE.ACK);
  const b = encodeFrame(SAMPLE.FIN);
  const d = new FrameDecoder();
  d.push(Buffer.alloc(0));
  assert.equal(d.pending, 0);
  assert.equal(d.next(), undefined);
  d.push(Buffer.concat([a, b.subarray(0, 5)]));
  assert.equal(d.pending, a.length + 5);
  assert.deepEqual(d.next(), encodeFrameBody(SAMPLE.ACK));
  assert.equal(d.next(), undefined);
  assert.equal(d.pending, 5);
  d.push(b.subarray(5, 7));
  assert.deepEqual(d.takeRest(), b.subarray(0, 7));
  assert.equal(d.pending, 0);
  assert.equal(d.next(), undefined);
  // The decoder is reusable after takeRest.
  d.push(b);
  assert.deepEqual(d.next(), encodeFrameBody(SAMPLE.FIN));
});

// ---------------------------------------------------------------------------------------------
// Oversized and zero length prefixes.

/** The largest single allocation requested through Buffer's static allocators while `fn` runs. */
function largestAllocationDuring(fn: () => void): number {
  const B = Buffer as unknown as Record<'alloc' | 'allocUnsafe' | 'allocUnsafeSlow' | 'concat', (...args: unknown[]) => Buffer>;
  const saved = { alloc: B.alloc, allocUnsafe: B.allocUnsafe, allocUnsafeSlow: B.allocUnsafeSlow, concat: B.concat };
  let largest = 0;
  const note = (n: unknown): void => {
    if (typeof n === 'number') largest = Math.max(largest, n);
  };
  B.alloc = (...args) => (note(args[0]), saved.alloc.apply(Buffer, args));
  B.allocUnsafe = (...args) => (note(args[0]), saved.allocUnsafe.apply(Buffer, args));
  B.allocUnsafeSlow = (...args) => (note(args[0]), saved.allocUnsafeSlow.apply(Buffer, args));
  B.concat = (...args) => {
    const list = args[0] as Buffer[];
    note(args[1] ?? list.reduce((n, b) => n + b.length, 0));
    return saved.concat.apply(Buffer, args);
  };
  try {
    fn();
  } finally {
    Object.assign(B, saved);
  }
  return largest;
}

test('a length prefix above MAX_FRAME_BYTES is refused from the 4 prefix bytes alone, without allocating', () => {
  for (const len of [MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES * 2, 2 ** 31, 0xffffffff]) {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(len);
    const d = new FrameDecoder();
    const largest = largestAllocationDuring(() => {
      d.push(prefix);
      assert.throws(() => d.next(), ferry('FERRY_ERR_FRAME_TOO_LARGE'), `length ${len}`);
    });
    assert.ok(largest <= 16, `allocated ${largest} bytes for a refused ${len}-byte frame`);
    assert.equal(d.pending, 4, 'nothing but the prefix is held');
  }
});

test('the oversized prefix is refused as soon as its 4th byte arrives, however it is split', () => {
  const prefix = Buffer.from([0xff, 0xff, 0xff, 0xff]);
  for (const split of [[1, 1, 1, 1], [1, 3], [2, 2], [3, 1]]) {
    const d = new FrameDecoder();
    let at = 0;
    for (let k = 0; k < split.length; k++) {
      d.push(prefix.subarray(at, (at += split[k]!)));
      if (k < split.length - 1) assert.equal(d.next(), undefined, `after ${at} bytes`);
    }
    const largest = largestAllocationDuring(() => assert.throws(() => d.next(), ferry('FERRY_ERR_FRAME_TOO_LARGE')));
    assert.ok(largest <= 16, `allocated ${largest} bytes`);
  }
});

test('exactly MAX_FRAME_BYTES is accepted: the decoder waits for the body', () => {
  const d = new FrameDecoder();
  d.push(lengthPrefix(MAX_FRAME_BYTES));
  assert.equal(d.next(), undefined);
  d.push(Buffer.alloc(MAX_FRAME_BYTES - 1, 7));
  assert.equal(d.next(), undefined);
  d.push(Buffer.from([7]));
  assert.equal(d.next()?.length, MAX_FRAME_BYTES);
});

test('a decoder built with a smaller maximum (the redirector\'s HANDOFF_FRAME_BYTES) refuses past it from the prefix alone', () => {
  const max = LIMITS.HANDOFF_FRAME_BYTES.value;
  assert.ok(max < MAX_FRAME_BYTES && max >= 1024, 'a HELLO or MIG_HELLO fits, a DATA frame does not');
  const d = new FrameDecoder(max);
  const largest = largestAllocationDuring(() => {
    d.push(lengthPrefix(max + 1));
    assert.throws(() => d.next(), ferry('FERRY_ERR_FRAME_TOO_LARGE'));
  });
  assert.ok(largest <= 16, `allocated ${largest} bytes`);
  const ok = new FrameDecoder(max);
  ok.push(lengthPrefix(max));
  ok.push(Buffer.alloc(max, 1));
  assert.equal(ok.next()?.length, max);
});

test('frames before an oversized or zero prefix are still delivered, then the bad prefix throws', () => {
  for (const [prefix, code] of [
    [Buffer.from([0, 0, 0, 0]), 'FERRY_ERR_MALFORMED_FRAME'],
    [Buffer.from([0x7f, 0, 0, 0]), 'FERRY_ERR_FRAME_TOO_LARGE'],
  ] as const) {
    const d = new FrameDecoder();
    d.push(Buffer.concat([encodeFrame(SAMPLE.ACK), prefix, encodeFrame(SAMPLE.FIN)]));
    assert.deepEqual(d.next(), encodeFrameBody(SAMPLE.ACK));
    assert.throws(() => d.next(), ferry(code));
  }
});

test('a zero length prefix is malformed', () => {
  const d = new FrameDecoder();
  d.push(Buffer.from([0, 0, 0, 0]));
  assert.throws(() => d.next(), ferry('FERRY_ERR_MALFORMED_FRAME'));
});

// ---------------------------------------------------------------------------------------------
// Strict decoding: truncations, trailing bytes, bad fields.

test('every truncation of every frame body is MALFORMED_FRAME', () => {
  const check = (f: Frame): void => {
    const body = encodeFrameBody(f);
    // DATA has no length field: its payload is the rest of the frame, so only a cut into the
    // header (or to an empty payload) is a truncation; a shorter payload is a shorter frame.
    const upTo = f.type === FrameType.DATA ? DATA_HEADER_BYTES + 1 : body.length;
    for (let k = 0; k < upTo; k++) {
      assert.throws(() => decodeFrameBody(body.subarray(0, k)), ferry('FERRY_ERR_MALFORMED_FRAME'), `type ${f.type} cut to ${k}`);
    }
  };
  SAMPLES.forEach(check);
  fc.assert(fc.property(frameArb, check), { numRuns: 150 });
});

test('a DATA body cut after the header decodes as DATA with the shorter payload', () => {
  const f = SAMPLE.DATA as Data;
  const body = encodeFrameBody(f);
  for (let k = DATA_HEADER_BYTES + 1; k <= body.length; k++) {
    assert.deepEqual(decodeFrameBody(body.subarray(0, k)), { ...f, payload: f.payload.subarray(0, k - DATA_HEADER_BYTES) });
  }
});

test('trailing bytes after any frame but DATA are MALFORMED_FRAME', () => {
  fc.assert(
    fc.property(
      frameArb.filter((f) => f.type !== FrameType.DATA),
      fc.uint8Array({ minLength: 1, maxLength: 16 }),
      (f, extra) => {
        const body = Buffer.concat([encodeFrameBody(f), extra]);
        assert.throws(() => decodeFrameBody(body), ferry('FERRY_ERR_MALFORMED_FRAME'));
      },
    ),
    { numRuns: 300 },
  );
});

test('every type byte outside 1..7 and 11..13 is UNKNOWN_TYPE, whatever follows', () => {
  const known = new Set<number>(Object.values(FrameType));
  assert.deepEqual([...known].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 11, 12, 13]);
  const tail = encodeFrameBody(SAMPLE.HELLO).subarray(1);
  for (let t = 0; t < 256; t++) {
    if (known.has(t)) continue;
    assert.throws(() => decodeFrameBody(Buffer.from([t])), ferry('FERRY_ERR_UNKNOWN_TYPE'), `type ${t}`);
    assert.throws(() => decodeFrameBody(Buffer.concat([Buffer.from([t]), tail])), ferry('FERRY_ERR_UNKNOWN_TYPE'), `type ${t}`);
  }
});

test('a HELLO with any version but FRAME_VERSION is UNSUPPORTED_VERSION', () => {
  assert.equal(FRAME_VERSION, 1);
  const body = encodeFrameBody(SAMPLE.HELLO);
  for (let v = 0; v < 256; v++) {
    if (v === FRAME_VERSION) continue;
    const bad = Buffer.from(body);
    bad[1] = v;
    assert.throws(() => decodeFrameBody(bad), ferry('FERRY_ERR_UNSUPPORTED_VERSION'), `version ${v}`);
  }
});

test('HELLO kind and role bytes other than 0/1 are MALFORMED_FRAME; 0/1 decode to their names', () => {
  const body = encodeFrameBody(SAMPLE.HELLO);
  const KIND = 2;
  const ROLE = 3 + CONNECTION_ID_BYTES;
  for (let b = 0; b < 256; b++) {
    const k = Buffer.from(body);
    k[KIND] = b;
    const r = Buffer.from(body);
    r[ROLE] = b;
    if (b <= 1) {
      assert.equal((decodeFrameBody(k) as Hello).kind, b === 0 ? 'open' : 'resume');
      assert.equal((decodeFrameBody(r) as Hello).dialerRole, b === 0 ? 'client' : 'server');
    } else {
      assert.throws(() => decodeFrameBody(k), ferry('FERRY_ERR_MALFORMED_FRAME'), `kind ${b}`);
      assert.throws(() => decodeFrameBody(r), ferry('FERRY_ERR_MALFORMED_FRAME'), `role ${b}`);
    }
  }
});

test('ACK with limit below received is MALFORMED_FRAME; limit equal to received is fine', () => {
  fc.assert(
    fc.property(u64, u64, (a, b) => {
      fc.pre(a !== b);
      const body = Buffer.from(encodeFrameBody({ type: FrameType.ACK, received: 0, limit: 0 }));
      const received = Math.max(a, b);
      const limit = Math.min(a, b);
      body.writeBigUInt64BE(BigInt(received), 1);
      body.writeBigUInt64BE(BigInt(limit), 9);
      assert.throws(() => decodeFrameBody(body), ferry('FERRY_ERR_MALFORMED_FRAME'));
      assert.deepEqual(decodeFrameBody(encodeFrameBody({ type: FrameType.ACK, received, limit: received })), {
        type: FrameType.ACK,
        received,
        limit: received,
      });
    }),
    { numRuns: 200 },
  );
});

test('a u64 field at or above 2^53 is MALFORMED_FRAME, in every frame that has one', () => {
  const sites = Object.values(U64_FIELDS).flat();
  for (const s of sites) assert.equal(readU64(encodeFrameBody(s.frame), s.at), s.value, `offset ${s.at} of type ${s.frame.type}`);
  fc.assert(
    fc.property(fc.constantFrom(...sites), fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }), (s, v) => {
      const body = Buffer.from(encodeFrameBody(s.frame));
      body.writeBigUInt64BE(v, s.at);
      assert.throws(() => decodeFrameBody(body), ferry('FERRY_ERR_MALFORMED_FRAME'), `type ${s.frame.type} at ${s.at} = ${v}`);
    }),
    { numRuns: 300 },
  );
  for (const s of sites) {
    const body = Buffer.from(encodeFrameBody(s.frame));
    body.writeBigUInt64BE(2n ** 53n, s.at);
    assert.throws(() => decodeFrameBody(body), ferry('FERRY_ERR_MALFORMED_FRAME'));
    body.writeBigUInt64BE(2n ** 53n - 1n, s.at);
    if (s.frame.type !== FrameType.ACK || s.at === 9) decodeFrameBody(body); // 2^53 - 1 is valid
  }
});

test('DATA with an empty payload is MALFORMED_FRAME; one byte over MAX_FRAME_PAYLOAD is FRAME_TOO_LARGE', () => {
  assert.throws(() => decodeFrameBody(dataHeader(0)), ferry('FERRY_ERR_MALFORMED_FRAME'));
  assert.throws(() => decodeFrameBody(dataHeader(MAX_U64)), ferry('FERRY_ERR_MALFORMED_FRAME'));
  const over = Buffer.concat([dataHeader(0), Buffer.alloc(MAX_PAYLOAD + 1)]);
  assert.ok(over.length <= MAX_FRAME_BYTES, 'fits the frame limit, so only the payload check can catch it');
  assert.throws(() => decodeFrameBody(over), ferry('FERRY_ERR_FRAME_TOO_LARGE'));
});

test('REJECT with a detail length above 200 is MALFORMED_FRAME even when the bytes are there', () => {
  for (let n = 201; n < 256; n++) {
    const body = Buffer.concat([Buffer.from([FrameType.REJECT, 0, 20, n]), Buffer.alloc(n, 0x61)]);
    assert.throws(() => decodeFrameBody(body), ferry('FERRY_ERR_MALFORMED_FRAME'), `n=${n}`);
  }
  const ok = Buffer.concat([Buffer.from([FrameType.REJECT, 0, 20, 200]), Buffer.alloc(200, 0x61)]);
  assert.equal((decodeFrameBody(ok) as Reject).detail, 'a'.repeat(200));
});

// ---------------------------------------------------------------------------------------------
// Fuzzing: nothing but FerryError, ever.

function onlyFerryErrors(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError, `non-FerryError thrown: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

/** Valid bodies with random edits: random bytes overwritten, cut short or extended. */
const mutatedBodyArb = fc
  .tuple(
    frameArb.map(encodeFrameBody),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.option(fc.nat()),
    fc.uint8Array({ maxLength: 8 }),
  )
  .map(([body, edits, cut, extra]) => {
    const b = Buffer.from(body);
    for (const [at, v] of edits) b[at % b.length] = v;
    const cutAt = cut === null ? b.length : cut % (b.length + 1);
    return Buffer.concat([b.subarray(0, cutAt), extra]);
  });

test('fuzz: decodeFrameBody on random bytes throws only FerryError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 160 }), (a) => onlyFerryErrors(() => decodeFrameBody(Buffer.from(a)))),
    { numRuns: 2000 },
  );
  // Every type byte with short random tails, so each branch sees garbage.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 120 }), (t, a) =>
      onlyFerryErrors(() => decodeFrameBody(Buffer.concat([Buffer.from([t]), a]))),
    ),
    { numRuns: 2000 },
  );
});

test('fuzz: decodeFrameBody on mutated valid bodies throws only FerryError', () => {
  fc.assert(
    fc.property(mutatedBodyArb, (b) => onlyFerryErrors(() => decodeFrameBody(b))),
    { numRuns: 1000 },
  );
});

test('fuzz: FrameDecoder (and decoding what it yields) on random chunked streams throws only FerryError', () => {
  /** A stream segment: plain garbage, a small plausible frame of garbage, or a mutated frame. */
  const segment = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.concat([rawPrefix(a.length), a])),
    mutatedBodyArb.map((b) => Buffer.concat([rawPrefix(b.length), b])),
    fc.integer({ min: 0, max: 0xffffffff }).map(rawPrefix),
  );
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 30 }), (segs, sizes) => {
      const stream = Buffer.concat(segs);
      const d = new FrameDecoder();
      onlyFerryErrors(() => {
        let at = 0;
        let k = 0;
        while (at < stream.length) {
          const n = sizes[k++ % Math.max(sizes.length, 1)] ?? stream.length;
          d.push(stream.subarray(at, (at += n)));
          for (let body = d.next(); body !== undefined; body = d.next()) {
            assert.ok(body.length >= 1 && body.length <= MAX_FRAME_BYTES);
            onlyFerryErrors(() => decodeFrameBody(body));
          }
        }
        assert.ok(d.pending <= stream.length);
      });
    }),
    { numRuns: 1000 },
  );
});

/** A u32 length prefix with no range check (lengthPrefix refuses the values the fuzz wants). */
function rawPrefix(n: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(n);
  return p;
}
