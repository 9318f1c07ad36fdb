/**
 * Control-message bodies (STYLE rule 3): CONNECT, CONNECT_ACK, CONNECT_CONFIRM and the
 * SUS/RES/CLS(/_ACK) connection-control body round-trip in their secure and insecure forms;
 * every truncation, trailing byte, unknown flag bit, bad role, u64 at or above 2^53 and inner
 * type that disagrees with the datagram's type is MALFORMED_DATAGRAM; every body fits one
 * datagram; the connection-control MAC input covers every field; random input never makes a
 * decoder throw anything but a FerryError. RES / RES_ACK with a location proof (host key,
 * delegation chain, batch fields: tree size, leaf index, audit path; the host signature over the
 * batch root) and RES padding round-trip too; their flags are strict, the proof's chain is bounded
 * by RESUME_PROOF_MAX_LINKS and its batch fields by RESUME_BATCH_MAX_DEPTH before anything past
 * them is read, and the largest proof the signer makes fits one datagram.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CONN_CONTROL_BYTES,
  MessageType,
  RESUME_FLAG_PROOF,
  RESUME_FLAG_PROOF_WANTED,
  RESUME_PROOF_WANTED_MIN_DATAGRAM,
  connControlMacInput,
  resumeProofMaxDepth,
  resumeSigned,
  connectAckHead,
  connectSigned,
  decodeConnControl,
  decodeConnect,
  decodeConnectAck,
  decodeConnectConfirm,
  encodeConnControl,
  encodeConnect,
  encodeConnectAck,
  encodeConnectConfirm,
  type ConnControl,
  type Connect,
  type ConnectAck,
  type ConnectConfirm,
} from '../../../src/wire/messages.js';
import { DATAGRAM_HEADER_BYTES, MAX_DATAGRAM_BODY, decodeDatagram, encodeDatagram } from '../../../src/wire/datagram.js';
import { FerryError, isFerryError, type ErrorCode } from '../../../src/util/errors.js';
import { LIMITS } from '../../../src/util/limits.js';
import { Identity, freshChain, extendChain, type DelegationChain } from '../../../src/identity/index.js';

const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);
const MALFORMED = ferry('FERRY_ERR_MALFORMED_DATAGRAM');
const MAX_U64 = Number.MAX_SAFE_INTEGER;
/** Room for a body in one control datagram: 1200 bytes (RFC 9000 §14) minus the 8-byte header. */
const BODY_ROOM = LIMITS.MAX_DATAGRAM_BYTES.value - DATAGRAM_HEADER_BYTES;
const CTL_LABEL = Buffer.from('ferry/1 ctl');

// ---------------------------------------------------------------------------------------------
// Arbitraries.

const NORMAL = { noNullPrototype: true } as const;
const u64 = fc.oneof(
  fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, MAX_U64),
  fc.integer({ min: 0, max: 2 ** 32 + 5 }),
  fc.maxSafeNat(),
);
const port = fc.integer({ min: 0, max: 0xffff });
const fixedBytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const EMPTY = Buffer.alloc(0);

const connectArb = (secure: boolean): fc.Arbitrary<Connect> =>
  fc.record(
    {
      secure: fc.constant(secure),
      clientHalf: fixedBytes(8),
      fromAgent: fixedBytes(16),
      toAgent: fixedBytes(16),
      clientAgentKey: fixedBytes(32),
      redirectorPort: port,
      window: u64,
      ephemeral: secure ? fixedBytes(32) : fc.constant(EMPTY),
      signature: secure ? fixedBytes(64) : fc.constant(EMPTY),
    },
    NORMAL,
  );

const connectAckArb = (secure: boolean): fc.Arbitrary<ConnectAck> =>
  fc.record(
    {
      secure: fc.constant(secure),
      serverHalf: fixedBytes(8),
      serverAgentKey: fixedBytes(32),
      redirectorPort: port,
      window: u64,
      ephemeral: secure ? fixedBytes(32) : fc.constant(EMPTY),
      signature: secure ? fixedBytes(64) : fc.constant(EMPTY),
      mac: secure ? fixedBytes(32) : fc.constant(EMPTY),
    },
    NORMAL,
  );

const confirmArb: fc.Arbitrary<ConnectConfirm> = fc.record({ connectionId: fixedBytes(16), mac: fixedBytes(32) }, NORMAL);

const CTL_TYPES = [MessageType.SUS, MessageType.SUS_ACK, MessageType.RES, MessageType.RES_ACK, MessageType.CLS, MessageType.CLS_ACK] as const;
const connControlArb: fc.Arbitrary<ConnControl> = fc.record(
  {
    type: fc.constantFrom(...CTL_TYPES),
    connectionId: fixedBytes(16),
    senderRole: fc.constantFrom('client' as const, 'server' as const),
    counter: u64,
    reason: fc.integer({ min: 0, max: 255 }),
    redirectorPort: port,
    // Empty means "no challenge" and goes out as 16 zero bytes.
    challenge: fc.oneof(fixedBytes(16), fc.constant(EMPTY)),
    mac: fixedBytes(32),
  },
  NORMAL,
  // RES / RES_ACK use the reason byte as flags (a proof follows, a proof is wanted): plain here,
  // the flagged forms have their own tests below.
).map((m) => (m.type === MessageType.RES || m.type === MessageType.RES_ACK ? { ...m, reason: 0 } : m));
/** What a connection-control message decodes to: an empty challenge becomes zeros. */
const normalised = (m: ConnControl): ConnControl => ({ ...m, challenge: m.challenge.length === 0 ? Buffer.alloc(16) : m.challenge });

/** One codec under test, uniformly. */
interface Codec<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  readonly encode: (m: T) => Buffer;
  readonly decode: (b: Buffer) => T;
  readonly expected: (m: T) => T;
  readonly size: number;
}
const codec = <T>(c: Codec<T>): Codec<unknown> => c as unknown as Codec<unknown>;

const CODECS: Codec<unknown>[] = [
  codec({ name: 'CONNECT (secure)', arb: connectArb(true), encode: encodeConnect, decode: decodeConnect, expected: (m) => m, size: 179 }),
  codec({ name: 'CONNECT (insecure)', arb: connectArb(false), encode: encodeConnect, decode: decodeConnect, expected: (m) => m, size: 83 }),
  codec({ name: 'CONNECT_ACK (secure)', arb: connectAckArb(true), encode: encodeConnectAck, decode: decodeConnectAck, expected: (m) => m, size: 179 }),
  codec({ name: 'CONNECT_ACK (insecure)', arb: connectAckArb(false), encode: encodeConnectAck, decode: decodeConnectAck, expected: (m) => m, size: 51 }),
  codec({ name: 'CONNECT_CONFIRM', arb: confirmArb, encode: encodeConnectConfirm, decode: decodeConnectConfirm, expected: (m) => m, size: 48 }),
  codec({
    name: 'SUS/RES/CLS(_ACK)',
    arb: connControlArb,
    encode: encodeConnControl,
    decode: (b) => decodeConnControl(b, b[0] ?? 0),
    expected: normalised,
    size: 77,
  }),
];

// ---------------------------------------------------------------------------------------------
// Round trips and sizes.

for (const c of CODECS) {
  test(`round trip: ${c.name}`, () => {
    fc.assert(
      fc.property(c.arb, (m) => {
        const body = c.encode(m);
        assert.equal(body.length, c.size);
        assert.deepEqual(c.decode(body), c.expected(m));
        // Decoding the re-encoding of the decoded message gives the same bytes.
        assert.deepEqual(c.encode(c.decode(body)), body);
      }),
      { numRuns: 200 },
    );
  });
}

test('every body fits one control datagram (1200 bytes minus the 8-byte header)', () => {
  assert.equal(BODY_ROOM, 1192);
  assert.equal(MAX_DATAGRAM_BODY, BODY_ROOM);
  for (const c of CODECS) assert.ok(c.size <= BODY_ROOM, `${c.name}: ${c.size} bytes`);
  // And they really travel: through the datagram codec and back, at the largest request id.
  fc.assert(
    fc.property(connControlArb, connectArb(true), connectAckArb(true), (m, conn, ack) => {
      for (const [type, body] of [
        [m.type, encodeConnControl(m)],
        [MessageType.CONNECT, encodeConnect(conn)],
        [MessageType.CONNECT_ACK, encodeConnectAck(ack)],
      ] as const) {
        const dgram = encodeDatagram({ type, flags: 0, requestId: 0xffffffff }, body);
        assert.ok(dgram.length <= LIMITS.MAX_DATAGRAM_BYTES.value);
        const back = decodeDatagram(dgram);
        assert.equal(back.header.type, type);
        assert.deepEqual(back.body, body);
      }
      const back = decodeDatagram(encodeDatagram({ type: m.type, flags: 0, requestId: 1 }, encodeConnControl(m)));
      assert.deepEqual(decodeConnControl(back.body, back.header.type), normalised(m));
    }),
    { numRuns: 100 },
  );
});

test('the signed / transcript parts are the front of the body, and cover the secure flag', () => {
  fc.assert(
    fc.property(fc.boolean().chain(connectArb), fc.boolean().chain(connectAckArb), (conn, ack) => {
      const s1 = conn.secure;
      const s2 = ack.secure;
      const head = connectSigned(conn);
      const body = encodeConnect(conn);
      assert.deepEqual(body.subarray(0, head.length), head);
      assert.equal(body.length - head.length, s1 ? 64 : 0, 'only the signature is outside what it signs');
      assert.equal(head[0], s1 ? 1 : 0);
      const ahead = connectAckHead(ack);
      const abody = encodeConnectAck(ack);
      assert.deepEqual(abody.subarray(0, ahead.length), ahead);
      assert.equal(abody.length - ahead.length, s2 ? 96 : 0, 'only signature and MAC are outside the transcript head');
    }),
    { numRuns: 40 },
  );
});

// ---------------------------------------------------------------------------------------------
// Strict decoding.

test('every truncation of every body is MALFORMED_DATAGRAM', () => {
  for (const c of CODECS) {
    fc.assert(
      fc.property(c.arb, (m) => {
        const body = c.encode(m);
        for (let k = 0; k < body.length; k++) assert.throws(() => c.decode(body.subarray(0, k)), MALFORMED, `${c.name} cut to ${k}`);
      }),
      { numRuns: 30 },
    );
  }
});

test('trailing bytes after any body are MALFORMED_DATAGRAM', () => {
  for (const c of CODECS) {
    fc.assert(
      fc.property(c.arb, fc.uint8Array({ minLength: 1, maxLength: 100 }), (m, extra) => {
        assert.throws(() => c.decode(Buffer.concat([c.encode(m), extra])), MALFORMED, c.name);
      }),
      { numRuns: 50 },
    );
  }
});

test('CONNECT / CONNECT_ACK flags: only bit 0 (secure) exists, and it must match the body\'s length', () => {
  const cases = [
    { name: 'CONNECT', decode: decodeConnect as (b: Buffer) => unknown, bodies: [encodeConnect(fc.sample(connectArb(false), 1)[0]!), encodeConnect(fc.sample(connectArb(true), 1)[0]!)] },
    { name: 'CONNECT_ACK', decode: decodeConnectAck as (b: Buffer) => unknown, bodies: [encodeConnectAck(fc.sample(connectAckArb(false), 1)[0]!), encodeConnectAck(fc.sample(connectAckArb(true), 1)[0]!)] },
  ];
  for (const { name, decode, bodies } of cases) {
    for (const body of bodies) {
      const own = body[0]!;
      for (let flags = 0; flags < 256; flags++) {
        const b = Buffer.from(body);
        b[0] = flags;
        if (flags === own) {
          assert.equal((decode(b) as { secure: boolean }).secure, flags === 1);
        } else {
          // Unknown bits; or the secure bit flipped, so the body is too short or too long for it.
          assert.throws(() => decode(b), MALFORMED, `${name} flags ${flags} on a ${own ? 'secure' : 'insecure'} body`);
        }
      }
    }
  }
});

test('connection control: the role byte must be 0 or 1', () => {
  const body = encodeConnControl(fc.sample(connControlArb, 1)[0]!);
  const ROLE = 1 + 16;
  for (let b = 0; b < 256; b++) {
    const x = Buffer.from(body);
    x[ROLE] = b;
    if (b <= 1) assert.equal(decodeConnControl(x, x[0]!).senderRole, b === 0 ? 'client' : 'server');
    else assert.throws(() => decodeConnControl(x, x[0]!), MALFORMED, `role ${b}`);
  }
});

test('a u64 at or above 2^53 (CONNECT window, CONNECT_ACK window, control counter) is MALFORMED_DATAGRAM', () => {
  const sites = [
    { name: 'CONNECT window', body: encodeConnect(fc.sample(connectArb(true), 1)[0]!), at: 75, decode: decodeConnect as (b: Buffer) => unknown },
    { name: 'CONNECT_ACK window', body: encodeConnectAck(fc.sample(connectAckArb(false), 1)[0]!), at: 43, decode: decodeConnectAck as (b: Buffer) => unknown },
    { name: 'control counter', body: encodeConnControl(fc.sample(connControlArb, 1)[0]!), at: 18, decode: (b: Buffer) => decodeConnControl(b, b[0]!) },
  ];
  for (const s of sites) {
    // The offset really is the u64: 2^53 - 1 there decodes as that value.
    const ok = Buffer.from(s.body);
    ok.writeBigUInt64BE(2n ** 53n - 1n, s.at);
    const got = s.decode(ok) as { window?: number; counter?: number };
    assert.equal(got.window ?? got.counter, MAX_U64, s.name);
  }
  fc.assert(
    fc.property(fc.constantFrom(...sites), fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }), (s, v) => {
      const b = Buffer.from(s.body);
      b.writeBigUInt64BE(v, s.at);
      assert.throws(() => s.decode(b), MALFORMED, `${s.name} = ${v}`);
    }),
    { numRuns: 200 },
  );
});

test('decodeConnControl accepts exactly the six control types, and only in a datagram of the same type', () => {
  const body = encodeConnControl({ ...fc.sample(connControlArb, 1)[0]!, reason: 0 });
  const allowed = new Set<number>(CTL_TYPES);
  for (let inner = 0; inner < 256; inner++) {
    const b = Buffer.from(body);
    b[0] = inner;
    for (let outer = 0; outer < 256; outer++) {
      if (inner === outer && allowed.has(inner)) {
        assert.equal(decodeConnControl(b, outer).type, inner);
      } else {
        assert.throws(() => decodeConnControl(b, outer), MALFORMED, `inner ${inner} in datagram ${outer}`);
      }
    }
  }
  // A SUS body replayed in a CLS datagram (or any other swap) is refused.
  for (const t of CTL_TYPES) {
    const m = { ...fc.sample(connControlArb, 1)[0]!, type: t, reason: 0 };
    for (const u of CTL_TYPES) if (u !== t) assert.throws(() => decodeConnControl(encodeConnControl(m), u), MALFORMED);
  }
});

test('message type codes are distinct and the datagram never uses 0', () => {
  const codes = Object.values(MessageType);
  assert.equal(new Set(codes).size, codes.length);
  assert.ok(codes.every((c) => c >= 1 && c <= 254));
});

// ---------------------------------------------------------------------------------------------
// The connection-control MAC binds every field.

type CtlField = Exclude<keyof ConnControl, 'mac' | 'proof' | 'padding'>;
const flipByte = (b: Buffer, at: number): Buffer => {
  const c = Buffer.from(b);
  const i = at % c.length;
  c[i] = c[i]! ^ (0x01 + (at % 0xfe));
  return c;
};
/** A different valid value for `field`. */
const changedArb = (m: ConnControl, field: CtlField): fc.Arbitrary<Partial<ConnControl>> => {
  switch (field) {
    case 'type': return fc.constantFrom(...CTL_TYPES.filter((t) => t !== m.type)).map((type) => ({ type }));
    case 'connectionId': return fc.nat().map((at) => ({ connectionId: flipByte(m.connectionId, at) }));
    case 'senderRole': return fc.constant({ senderRole: m.senderRole === 'client' ? ('server' as const) : ('client' as const) });
    case 'counter': return u64.filter((v) => v !== m.counter).map((counter) => ({ counter }));
    case 'reason': return fc.integer({ min: 0, max: 255 }).filter((v) => v !== m.reason).map((reason) => ({ reason }));
    case 'redirectorPort': return port.filter((v) => v !== m.redirectorPort).map((redirectorPort) => ({ redirectorPort }));
    case 'challenge': return fc.nat().map((at) => ({ challenge: flipByte(normalised(m).challenge, at) }));
  }
};
const CTL_FIELDS: CtlField[] = ['type', 'connectionId', 'senderRole', 'counter', 'reason', 'redirectorPort', 'challenge'];

test('connControlMacInput changes when any field changes', () => {
  const arb = fc
    .tuple(connControlArb, fc.constantFrom(...CTL_FIELDS))
    .chain(([m, field]) => changedArb(m, field).map((change) => ({ m, field, change })));
  fc.assert(
    fc.property(arb, ({ m, field, change }) => {
      const changed = { ...m, ...change };
      assert.notDeepEqual(connControlMacInput(changed), connControlMacInput(m), `changing ${field} left the MAC input unchanged`);
    }),
    { numRuns: 700 },
  );
  // Every field, at least once, deterministically.
  const base = fc.sample(connControlArb, 1)[0]!;
  for (const field of CTL_FIELDS) {
    const change = fc.sample(changedArb(base, field), 1)[0]!;
    assert.notDeepEqual(connControlMacInput({ ...base, ...change }), connControlMacInput(base), field);
  }
});

test('connControlMacInput is the label and every body byte before the MAC (nothing left unbound)', () => {
  fc.assert(
    fc.property(connControlArb, fixedBytes(32), (m, otherMac) => {
      const body = encodeConnControl(m);
      const input = connControlMacInput(m);
      assert.deepEqual(input, Buffer.concat([CTL_LABEL, body.subarray(0, body.length - 32)]));
      assert.deepEqual(body.subarray(body.length - 32), m.mac);
      // The MAC itself is not an input, and "no challenge" and zeros are one value.
      const otherMacMessage: ConnControl = { ...m, mac: otherMac };
      assert.deepEqual(connControlMacInput(otherMacMessage), input);
      assert.deepEqual(connControlMacInput(normalised(m)), input);
    }),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------------------
// Local misuse.

test('encoders refuse wrong-size fixed fields and unsafe u64s with INVALID_ARGUMENT', () => {
  const conn = fc.sample(connectArb(true), 1)[0]!;
  const ack = fc.sample(connectAckArb(true), 1)[0]!;
  const ctl = fc.sample(connControlArb, 1)[0]!;
  const bad: [string, () => unknown][] = [
    ['connect clientHalf', () => encodeConnect({ ...conn, clientHalf: Buffer.alloc(7) })],
    ['connect fromAgent', () => encodeConnect({ ...conn, fromAgent: Buffer.alloc(17) })],
    ['connect key', () => encodeConnect({ ...conn, clientAgentKey: Buffer.alloc(31) })],
    ['connect ephemeral', () => encodeConnect({ ...conn, ephemeral: EMPTY })],
    ['connect signature', () => encodeConnect({ ...conn, signature: Buffer.alloc(63) })],
    ['connect window', () => encodeConnect({ ...conn, window: 2 ** 53 })],
    ['connect window <0', () => encodeConnect({ ...conn, window: -1 })],
    ['ack serverHalf', () => encodeConnectAck({ ...ack, serverHalf: EMPTY })],
    ['ack mac', () => encodeConnectAck({ ...ack, mac: Buffer.alloc(16) })],
    ['ack signature', () => encodeConnectAck({ ...ack, signature: EMPTY })],
    ['confirm id', () => encodeConnectConfirm({ connectionId: Buffer.alloc(8), mac: Buffer.alloc(32) })],
    ['confirm mac', () => encodeConnectConfirm({ connectionId: Buffer.alloc(16), mac: Buffer.alloc(31) })],
    ['ctl id', () => encodeConnControl({ ...ctl, connectionId: Buffer.alloc(8) })],
    ['ctl challenge', () => encodeConnControl({ ...ctl, challenge: Buffer.alloc(8) })],
    ['ctl mac', () => encodeConnControl({ ...ctl, mac: EMPTY })],
    ['ctl counter', () => encodeConnControl({ ...ctl, counter: 1.5 })],
  ];
  for (const [what, fn] of bad) assert.throws(fn, ferry('FERRY_ERR_INVALID_ARGUMENT'), what);
});

// ---------------------------------------------------------------------------------------------
// Fuzzing.

/** A RES / RES_ACK flagged with a proof embeds a delegation chain, which keeps its own codes. */
const CHAIN_CODES = new Set<ErrorCode>(['FERRY_ERR_MALFORMED_CERTIFICATE', 'FERRY_ERR_CHAIN_TOO_LONG', 'FERRY_ERR_UNSUPPORTED_VERSION']);

function onlyFerryErrors(fn: () => void, b?: Buffer): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FerryError, `non-FerryError thrown: ${err instanceof Error ? err.stack : String(err)}`);
    if (err.code === 'FERRY_ERR_MALFORMED_DATAGRAM') return;
    // Only where a proof is flagged: a RES or RES_ACK body (the type checks passed to get there)
    // with bit 0 of the reason byte set.
    const inner = b?.[0];
    const proofFlagged = b !== undefined && (inner === MessageType.RES || inner === MessageType.RES_ACK) && ((b[26] ?? 0) & RESUME_FLAG_PROOF) !== 0;
    assert.ok(proofFlagged && CHAIN_CODES.has(err.code), `unexpected ${err.code}`);
  }
}

const DECODERS: [string, (b: Buffer, t: number) => unknown, boolean][] = [
  ['CONNECT', (b) => decodeConnect(b), false],
  ['CONNECT_ACK', (b) => decodeConnectAck(b), false],
  ['CONNECT_CONFIRM', (b) => decodeConnectConfirm(b), false],
  ['control (random datagram type)', (b, t) => decodeConnControl(b, t), true],
  ['control (own type)', (b) => decodeConnControl(b, b[0] ?? 0), true],
];

test('fuzz: every decoder on random bytes throws only MALFORMED_DATAGRAM FerryErrors (a flagged proof: its chain\'s codes)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 260 }), fc.integer({ min: 0, max: 255 }), (a, t) => {
      const b = Buffer.from(a);
      for (const [, decode, ctl] of DECODERS) onlyFerryErrors(() => decode(b, t), ctl ? b : undefined);
    }),
    { numRuns: 1500 },
  );
});

test('fuzz: every decoder on mutated valid bodies throws only MALFORMED_DATAGRAM FerryErrors (a flagged proof: its chain\'s codes)', () => {
  const validBody = fc.oneof(...CODECS.map((c) => c.arb.map((m) => c.encode(m))));
  fc.assert(
    fc.property(
      validBody,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.option(fc.nat()),
      fc.uint8Array({ maxLength: 8 }),
      fc.integer({ min: 0, max: 255 }),
      (body, edits, cut, extra, t) => {
        const b = Buffer.from(body);
        for (const [at, v] of edits) b[at % b.length] = v;
        const m = Buffer.concat([b.subarray(0, cut === null ? b.length : cut % (b.length + 1)), extra]);
        for (const [, decode, ctl] of DECODERS) onlyFerryErrors(() => decode(m, t), ctl ? m : undefined);
      },
    ),
    { numRuns: 1500 },
  );
});

// ---------------------------------------------------------------------------------------------
// RES / RES_ACK location proofs and RES padding.

const agentKey = Identity.generate();
const hostKeys = Array.from({ length: 8 }, () => Identity.generate());
/** Real chains (structure is what the codec checks; signatures are the verifier's business). */
const chainOf = (links: number): DelegationChain => {
  let c = freshChain(agentKey, hostKeys[0]!.publicRaw, 1, 1_700_000_000_000);
  for (let i = 1; i < links; i++) c = extendChain(c, hostKeys[i - 1]!, hostKeys[i]!.publicRaw, 1 + i, 3_600_000, 1_700_000_000_000 + i);
  return c;
};
const CHAINS = [1, 2, 6].map(chainOf);
const resumeArb = (type: typeof MessageType.RES | typeof MessageType.RES_ACK): fc.Arbitrary<ConnControl> =>
  fc
    .record(
      {
        base: connControlArb,
        chain: fc.constantFrom(...CHAINS),
        hostKey: fixedBytes(32),
        treeSize: fc.integer({ min: 1, max: 2 ** 20 }),
        leafIndex: fc.nat(),
        path: fc.array(fixedBytes(32), { maxLength: 20 }),
        signature: fixedBytes(64),
        proof: fc.boolean(),
        wanted: type === MessageType.RES ? fc.boolean() : fc.constant(false),
        padding: fc.integer({ min: 0, max: 400 }),
      },
      NORMAL,
    )
    .filter((x) => x.proof || x.wanted)
    .map((x) => {
      const m: ConnControl = { ...x.base, type, reason: (x.proof ? RESUME_FLAG_PROOF : 0) | (x.wanted ? RESUME_FLAG_PROOF_WANTED : 0) };
      // The codec bounds the batch fields; whether the path fits the tree is the verifier's business.
      const path = x.path.slice(0, resumeProofMaxDepth(x.chain.length));
      if (x.proof) m.proof = { hostKey: x.hostKey, chain: x.chain, treeSize: x.treeSize, leafIndex: x.leafIndex % x.treeSize, path, signature: x.signature };
      if (x.wanted) m.padding = x.padding;
      return m;
    });

test('RES / RES_ACK with a proof (and RES padding) round-trip; the proof is host key, chain, batch fields, signature after the MAC', () => {
  for (const type of [MessageType.RES, MessageType.RES_ACK] as const) {
    fc.assert(
      fc.property(resumeArb(type), (m) => {
        const body = encodeConnControl(m);
        const links = m.proof ? m.proof.chain.length : 0;
        const depth = m.proof ? m.proof.path.length : 0;
        assert.equal(body.length, CONN_CONTROL_BYTES + (m.proof ? 32 + 1 + 165 * links + 9 + 32 * depth + 64 : 0) + (m.padding ?? 0));
        if (m.proof && !m.padding) assert.ok(DATAGRAM_HEADER_BYTES + body.length <= LIMITS.MAX_DATAGRAM_BYTES.value, `${body.length} bytes`);
        const back = decodeConnControl(body, type);
        assert.deepEqual(back, normalised(m));
        assert.deepEqual(encodeConnControl(back), body);
        // The MAC covers the flags: the reason byte is in the MAC input.
        assert.equal(connControlMacInput(m)[11 + 26], m.reason);
        if (m.proof) {
          // The leaf is every byte before the batch fields; then size, index, path length, path.
          const leaf = resumeSigned({ ...m, proof: m.proof });
          assert.deepEqual(body.subarray(0, leaf.length), leaf);
          assert.equal(body.readUInt32BE(leaf.length), m.proof.treeSize);
          assert.equal(body.readUInt32BE(leaf.length + 4), m.proof.leafIndex);
          assert.equal(body[leaf.length + 8], depth);
          const sigAt = leaf.length + 9 + 32 * depth;
          assert.deepEqual(body.subarray(leaf.length + 9, sigAt), Buffer.concat(m.proof.path));
          assert.deepEqual(body.subarray(sigAt, sigAt + 64), m.proof.signature);
          assert.equal(sigAt + 64 + (m.padding ?? 0), body.length);
        }
      }),
      { numRuns: 150 },
    );
  }
});

test('RES / RES_ACK flags are strict: unknown bits, a flag without its bytes, nonzero or unasked padding are malformed', () => {
  const plain = { ...fc.sample(connControlArb, 1)[0]!, type: MessageType.RES, reason: 0 } as ConnControl;
  const withFlags = (type: number, reason: number): Buffer => {
    const b = encodeConnControl({ ...plain, type: type as ConnControl['type'] });
    b[26] = reason;
    return b;
  };
  // Bit 2 (REUSE until the resume on the kept socket went in-band) is malformed like any other.
  for (let r = 3; r < 256; r++) assert.throws(() => decodeConnControl(withFlags(MessageType.RES, r), MessageType.RES), MALFORMED, `RES flags ${r}`);
  for (let r = 2; r < 256; r++) assert.throws(() => decodeConnControl(withFlags(MessageType.RES_ACK, r), MessageType.RES_ACK), MALFORMED, `RES_ACK flags ${r}`);
  assert.throws(() => encodeConnControl({ ...plain, reason: 0x04 }), /flags/);
  // PROOF set but nothing follows.
  assert.throws(() => decodeConnControl(withFlags(MessageType.RES, RESUME_FLAG_PROOF), MessageType.RES), MALFORMED);
  // PROOF_WANTED: zero padding of any length decodes; one nonzero byte does not.
  const wanted = withFlags(MessageType.RES, RESUME_FLAG_PROOF_WANTED);
  assert.equal(decodeConnControl(wanted, MessageType.RES).padding, 0);
  assert.equal(decodeConnControl(Buffer.concat([wanted, Buffer.alloc(300)]), MessageType.RES).padding, 300);
  const dirty = Buffer.concat([wanted, Buffer.alloc(300)]);
  dirty[dirty.length - 1] = 1;
  assert.throws(() => decodeConnControl(dirty, MessageType.RES), MALFORMED);
  // Padding without PROOF_WANTED (or on a RES_ACK, which never asks) is trailing bytes.
  assert.throws(() => decodeConnControl(Buffer.concat([withFlags(MessageType.RES, 0), Buffer.alloc(1)]), MessageType.RES), MALFORMED);
  const proved = encodeConnControl({ ...plain, type: MessageType.RES_ACK, reason: RESUME_FLAG_PROOF, proof: batchProof({ hostKey: Buffer.alloc(32, 1), chain: CHAINS[0]!, signature: Buffer.alloc(64, 2), treeSize: 3, leafIndex: 2, path: [Buffer.alloc(32, 3), Buffer.alloc(32, 4)] }) });
  assert.throws(() => decodeConnControl(Buffer.concat([proved, Buffer.alloc(1)]), MessageType.RES_ACK), MALFORMED);
  // Every truncation of a proof is refused (inside the chain with the chain's own code).
  for (let k = CONN_CONTROL_BYTES; k < proved.length; k++) {
    assert.throws(() => decodeConnControl(proved.subarray(0, k), MessageType.RES_ACK), (e: unknown) => isFerryError(e, 'FERRY_ERR_MALFORMED_DATAGRAM') || isFerryError(e, 'FERRY_ERR_MALFORMED_CERTIFICATE'), `cut to ${k}`);
  }
  // SUS and CLS never carry a proof, whatever their reason byte says.
  assert.throws(() => encodeConnControl({ ...plain, type: MessageType.SUS, proof: batchProof({ chain: CHAINS[0]! }) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  // The encoder refuses a flag that disagrees with the proof, and padding that was not asked for.
  assert.throws(() => encodeConnControl({ ...plain, reason: RESUME_FLAG_PROOF }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => encodeConnControl({ ...plain, reason: 0, padding: 5 }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

/** A proof with placeholder bytes: a batch of one unless `p` says otherwise. */
function batchProof(p: Partial<NonNullable<ConnControl['proof']>> & { chain: DelegationChain }): NonNullable<ConnControl['proof']> {
  return { hostKey: Buffer.alloc(32), treeSize: 1, leafIndex: 0, path: [], signature: Buffer.alloc(64), ...p };
}

test('a proof carries at most RESUME_PROOF_MAX_LINKS links, and the largest RES_ACK with one is within 3x of a RES that asks', () => {
  const max = LIMITS.RESUME_PROOF_MAX_LINKS.value;
  assert.equal(max, 6);
  const base = { ...fc.sample(connControlArb, 1)[0]!, type: MessageType.RES_ACK, reason: RESUME_FLAG_PROOF } as ConnControl;
  // A RES_ACK's proof is always a batch of one (no path): 9 bytes more than a bare signature.
  const largest = encodeConnControl({ ...base, proof: batchProof({ chain: chainOf(max) }) });
  assert.equal(DATAGRAM_HEADER_BYTES + largest.length, 1181);
  assert.ok(RESUME_PROOF_WANTED_MIN_DATAGRAM * LIMITS.AMPLIFICATION_FACTOR.value >= DATAGRAM_HEADER_BYTES + largest.length);
  assert.equal(RESUME_PROOF_WANTED_MIN_DATAGRAM, 394);
  // One more link does not fit a datagram: refused by the encoder, and by the decoder from the count.
  const seven = chainOf(max + 1);
  assert.throws(() => encodeConnControl({ ...base, proof: batchProof({ chain: seven }) }), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  const tooLong = Buffer.from(largest);
  tooLong[CONN_CONTROL_BYTES + 32] = max + 1;
  assert.throws(() => decodeConnControl(tooLong, MessageType.RES_ACK), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
});

test('a proof\'s audit path fits the datagram the signer sends it in: 20 levels with a 1-link chain, none with 6 links', () => {
  assert.equal(LIMITS.RESUME_BATCH_MAX_DEPTH.value, 20);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(resumeProofMaxDepth), [20, 20, 16, 10, 5, 0]);
  const base = { ...fc.sample(connControlArb, 1)[0]!, type: MessageType.RES, reason: RESUME_FLAG_PROOF } as ConnControl;
  for (let links = 1; links <= 6; links++) {
    const depth = resumeProofMaxDepth(links);
    const path = Array.from({ length: depth }, () => Buffer.alloc(32, 7));
    const body = encodeConnControl({ ...base, proof: batchProof({ chain: chainOf(links), treeSize: 2 ** depth, leafIndex: 2 ** depth - 1, path }) });
    assert.ok(DATAGRAM_HEADER_BYTES + body.length <= LIMITS.MAX_DATAGRAM_BYTES.value, `${links} links, ${depth} levels: ${body.length} bytes`);
    // One level more would not fit (unless the depth limit stopped it first).
    if (depth < 20) assert.ok(DATAGRAM_HEADER_BYTES + body.length + 32 > LIMITS.MAX_DATAGRAM_BYTES.value);
  }
  // 1-link proof with the longest path: the largest RES a host sends.
  const oneLink = encodeConnControl({ ...base, proof: batchProof({ chain: chainOf(1), treeSize: 2 ** 20, leafIndex: 5, path: Array.from({ length: 20 }, () => Buffer.alloc(32)) }) });
  assert.equal(DATAGRAM_HEADER_BYTES + oneLink.length, 996);
});

test('the batch fields are bounded before anything past them is read: size 1..2^20, index below size, at most 20 path hashes', () => {
  const base = { ...fc.sample(connControlArb, 1)[0]!, type: MessageType.RES, reason: RESUME_FLAG_PROOF } as ConnControl;
  const good = encodeConnControl({ ...base, proof: batchProof({ chain: CHAINS[0]!, treeSize: 5, leafIndex: 4, path: [Buffer.alloc(32, 1), Buffer.alloc(32, 2), Buffer.alloc(32, 3)] }) });
  const at = CONN_CONTROL_BYTES + 32 + 166; // the batch fields follow the 1-link chain
  assert.equal(decodeConnControl(good, MessageType.RES).proof!.path.length, 3);
  const edit = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  const refused: [string, Buffer, RegExp][] = [
    ['tree size 0', edit((b) => b.writeUInt32BE(0, at)), /batch of 0 leaves/],
    ['tree size 2^20 + 1', edit((b) => b.writeUInt32BE(2 ** 20 + 1, at)), /batch of 1048577 leaves/],
    ['tree size 2^32 - 1', edit((b) => b.writeUInt32BE(2 ** 32 - 1, at)), /leaves/],
    ['leaf index = tree size', edit((b) => b.writeUInt32BE(5, at + 4)), /leaf 5 of a batch of 5/],
    // 255 claimed hashes and only 3 + the signature there: refused for the count, not as truncated.
    ['path of 255', edit((b) => (b[at + 8] = 255)), /audit path of 255 hashes/],
    ['path of 21', edit((b) => (b[at + 8] = 21)), /audit path of 21 hashes/],
    ['path one longer than its bytes', edit((b) => (b[at + 8] = 4)), /truncated/],
  ];
  for (const [what, b, msg] of refused) assert.throws(() => decodeConnControl(b, MessageType.RES), (e: unknown) => isFerryError(e, 'FERRY_ERR_MALFORMED_DATAGRAM') && msg.test(e.message), what);
  // A path one shorter than its bytes leaves 32 bytes where the signature ends: trailing, malformed.
  assert.throws(() => decodeConnControl(edit((b) => (b[at + 8] = 2)), MessageType.RES), MALFORMED);
  // 2^20 itself is a legal size; the encoder refuses what the decoder would.
  assert.equal(decodeConnControl(edit((b) => b.writeUInt32BE(2 ** 20, at)), MessageType.RES).proof!.treeSize, 2 ** 20);
  for (const p of [{ treeSize: 0 }, { treeSize: 2 ** 20 + 1 }, { treeSize: 4, leafIndex: 4 }, { path: Array.from({ length: 21 }, () => Buffer.alloc(32)) }, { path: [Buffer.alloc(31)] }]) {
    assert.throws(() => encodeConnControl({ ...base, proof: batchProof({ chain: CHAINS[0]!, ...p }) }), ferry('FERRY_ERR_INVALID_ARGUMENT'), JSON.stringify(p).slice(0, 60));
  }
});
