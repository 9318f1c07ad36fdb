/**
 * Location message codecs (STYLE rule 3; docs/PROTOCOL.md §12): IP literals in both families with
 * their canonical text; REGISTER (bare, keyed, with a 1..8-link chain and host signature),
 * REGISTER_PART, LOOKUP, LOCATION, WATCH (with padding), WATCH_ACK, LANDED, UNWATCH(_ACK), RELAY,
 * RELAYED, RELAYED_ACK, RELAY_ACK, PATH_CHALLENGE, PATH_RESPONSE, DEREGISTER(_ACK) round-trip; every truncation and every trailing byte is
 * refused with a FerryError (the chain's own codes inside REGISTER); sizes stay within one
 * datagram (a long chain is split into REGISTER_PART fragments that reassemble to the original)
 * and replies stay within 3x their requests (and a RELAY's path challenges, retransmissions
 * included, within 3x the RELAY); random input only ever raises a FerryError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DATAGRAM_HEADER_BYTES,
  LocationMessageType as T,
  MAX_DATAGRAM_BODY,
  MAX_RELAY_INNER_BODY,
  canonicalIp,
  decodeDatagram,
  decodeDeregister,
  decodeDeregisterAck,
  decodeLanded,
  decodeLocation,
  decodeLocationAnswer,
  decodeLookup,
  decodeRegister,
  decodeRegisterAck,
  decodeRegisterPart,
  decodeRegisterPartAck,
  decodeRelay,
  decodeRelayAck,
  decodeRelayed,
  decodeRelayedAck,
  decodeUnwatch,
  decodeUnwatchAck,
  decodeWatch,
  decodeWatchAck,
  encodeDatagram,
  encodeDeregister,
  encodeDeregisterAck,
  encodeLanded,
  encodeLocation,
  encodeLookup,
  encodeRegister,
  encodeRegisterAck,
  encodeRegisterPart,
  encodeRegisterPartAck,
  encodeRelay,
  encodeRelayAck,
  encodeRelayed,
  encodeRelayedAck,
  encodeUnwatch,
  encodeUnwatchAck,
  encodeWatch,
  encodeWatchAck,
  ipFromBytes,
  ipToBytes,
  locationRecordLength,
  notificationsPaidBy,
  registerLength,
  registerSigned,
  splitRegister,
  watchPaddingFor,
  MAX_LANDED_DATAGRAM,
  MAX_WATCH_ACK_DATAGRAM,
  PATH_CHALLENGE_BYTES,
  PATH_CHALLENGE_DATAGRAM,
  decodePathChallenge,
  decodePathResponse,
  encodePathChallenge,
  encodePathResponse,
  pathChallengeTries,
  RELAY_FIXED_BYTES,
  DEREGISTER_BYTES,
  REGISTRATION_DIGEST_BYTES,
  deregisterSigned,
  type LocationRecord,
  type Register,
} from '../../../src/wire/index.js';
import { idFromBytes, type AgentId } from '../../../src/identity/index.js';
import { FerryError, limit } from '../../../src/util/index.js';
import { UploadTable } from '../../../src/location/index.js';
import { agent, chainOf, ferry, host, provenRegister, registration, signed } from './fixtures.js';

const MALFORMED = ferry('FERRY_ERR_MALFORMED_DATAGRAM');
const NORMAL = { noNullPrototype: true } as const;
const isFerry = (err: unknown): boolean => err instanceof FerryError;

const id = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => idFromBytes(a));
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const ip = fc.oneof(bytes(4), bytes(16)).map((b) => ipFromBytes(b));
const port = fc.integer({ min: 1, max: 0xffff });
const u32 = fc.oneof(fc.constantFrom(0, 1, 0xffff_ffff), fc.integer({ min: 0, max: 0xffff_ffff }));
const record: fc.Arbitrary<LocationRecord> = fc.record({ agent: id, hostId: id.map((x) => x as string), ip, controlPort: port, redirectorPort: port, epoch: u32 }, NORMAL);

/** Every strict prefix of `body` is refused with a FerryError; so is one extra byte. */
function strict(body: Buffer, decode: (b: Buffer) => unknown, opts: { trailing?: boolean; minPrefix?: number } = {}): void {
  for (let n = 0; n < body.length; n++) {
    if (n >= (opts.minPrefix ?? body.length)) continue;
    assert.throws(() => decode(body.subarray(0, n)), isFerry, `prefix of ${n}/${body.length} bytes decoded`);
  }
  if (opts.trailing !== false) assert.throws(() => decode(Buffer.concat([body, Buffer.of(1)])), isFerry, 'trailing byte accepted');
}

// ---------------------------------------------------------------------------------------------
// IP addresses

test('IP literals: canonical text (RFC 5952), both families, zones and junk refused', () => {
  const cases: [string, string][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['1::', '1::'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['fe80::0001', 'fe80::1'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['::ffff:0102:0304', '::ffff:1.2.3.4'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [input, canon] of cases) assert.equal(canonicalIp(input), canon, input);
  assert.equal(ipToBytes('127.0.0.1').length, 4);
  assert.equal(ipToBytes('::1').length, 16);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'fe80::1%eth0', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', 'localhost', '1.2.3.4::', '::1.2.3.4:1', '12345::', 'g::1', '1:2:3:4:5:6:7']) {
    assert.throws(() => ipToBytes(bad), ferry('FERRY_ERR_INVALID_ARGUMENT'), bad);
  }
  assert.throws(() => ipFromBytes(Buffer.alloc(5)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  fc.assert(
    fc.property(fc.oneof(bytes(4), bytes(16)), (b) => {
      const text = ipFromBytes(b);
      assert.deepEqual(ipToBytes(text), b);
      assert.equal(canonicalIp(text), text);
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------------------------------------
// REGISTER

test('REGISTER: bare, keyed and proven forms round-trip; sizes as documented', () => {
  const bare = registration(undefined, host(0), 1);
  const b = encodeRegister(bare);
  assert.equal(b.length, 1 + 45);
  assert.deepEqual(decodeRegister(b), bare);
  const keyed = { ...bare, agentKey: Buffer.from(agent.publicRaw) };
  assert.deepEqual(decodeRegister(encodeRegister(keyed)), keyed);
  const proven = provenRegister(host(0), 1);
  const p = encodeRegister(proven);
  // flags, IPv4 record, agent key, 1-link chain (166), host signature.
  assert.equal(p.length, 1 + 45 + 32 + 166 + 64);
  assert.equal(p.length, registerLength(proven));
  assert.deepEqual(decodeRegister(p), proven);
  // The signed bytes are the label and everything before the signature.
  assert.deepEqual(registerSigned(proven), Buffer.concat([Buffer.from('ferry/1 register'), p.subarray(0, p.length - 64)]));
  const v6 = signed(registration(chainOf(1), host(0), 1, '2001:db8::1'), host(0));
  assert.equal(encodeRegister(v6).length, 1 + 57 + 32 + 166 + 64);
  assert.deepEqual(decodeRegister(encodeRegister(v6)), v6);
});

test('REGISTER: chains of 1..8 links round-trip; up to 6 fit a datagram, 7 and 8 are split and reassemble', () => {
  for (let n = 1; n <= 8; n++) {
    const reg = signed(registration(chainOf(n), host(n - 1), n, '2001:db8::1'), host(n - 1));
    const body = encodeRegister(reg);
    assert.equal(body.length, 1 + 57 + 32 + 1 + 165 * n + 64);
    assert.deepEqual(decodeRegister(body), reg);
    const parts = splitRegister(body, Buffer.alloc(8, n));
    if (n <= 6) {
      assert.ok(body.length <= MAX_DATAGRAM_BODY, `${n} links: ${body.length} bytes`);
      assert.equal(parts, undefined);
      continue;
    }
    assert.ok(parts && parts.length === 2, `${n} links split in two`);
    const uploads = new UploadTable();
    let whole: Buffer | undefined;
    for (const part of parts) {
      const enc = encodeRegisterPart(part);
      assert.ok(enc.length <= MAX_DATAGRAM_BODY);
      encodeDatagram({ type: T.REGISTER_PART, flags: 0, requestId: 1 }, enc); // fits one datagram
      whole = uploads.part(0, '127.0.0.1:1', decodeRegisterPart(enc));
    }
    assert.deepEqual(whole, body);
  }
  assert.equal(registerLength(signed(registration(chainOf(8), host(7), 8, '2001:db8::1'), host(7))), 1475);
  assert.ok(1475 <= limit('REGISTER_MAX_BYTES'));
});

test('REGISTER: every truncation and trailing byte refused, chain errors keep their codes', () => {
  strict(encodeRegister(registration(undefined, host(0), 1)), decodeRegister);
  const p = encodeRegister(provenRegister(host(0), 1));
  strict(p, decodeRegister);
  // A cut inside the chain is the chain's code; a cut in the signature is the datagram's.
  const chainStart = 1 + 45 + 32;
  assert.throws(() => decodeRegister(p.subarray(0, chainStart + 100)), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'));
  assert.throws(() => decodeRegister(p.subarray(0, p.length - 1)), MALFORMED);
  // A chain announcing too many links is refused before anything is read.
  const long = Buffer.from(p);
  long[chainStart] = 9;
  assert.throws(() => decodeRegister(long), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  const version = Buffer.from(p);
  version[chainStart + 1] = 2;
  assert.throws(() => decodeRegister(version), ferry('FERRY_ERR_UNSUPPORTED_VERSION'));
  // Unknown flag bits, a chain without a key, a bad IP length, port 0.
  for (const flags of [0x04, 0x80, 0x02]) {
    const f = Buffer.from(p);
    f[0] = flags;
    assert.throws(() => decodeRegister(f), MALFORMED, `flags ${flags}`);
  }
  const ipLen = Buffer.from(p);
  ipLen[33] = 5;
  assert.throws(() => decodeRegister(ipLen), MALFORMED);
  const port0 = Buffer.from(p);
  port0.writeUInt16BE(0, 38);
  assert.throws(() => decodeRegister(port0), MALFORMED);
  // Encoder misuse.
  const bad = ferry('FERRY_ERR_INVALID_ARGUMENT');
  const proven = provenRegister(host(0), 1);
  assert.throws(() => encodeRegister({ ...proven, signature: undefined }), bad);
  assert.throws(() => encodeRegister({ ...registration(undefined, host(0), 1), signature: Buffer.alloc(64) }), bad);
  assert.throws(() => encodeRegister({ ...proven, agentKey: undefined }), bad);
  assert.throws(() => encodeRegister({ ...proven, controlPort: 0 }), bad);
  assert.throws(() => encodeRegister({ ...proven, ip: 'fe80::1%eth0' }), bad);
  assert.throws(() => encodeRegister({ ...proven, epoch: 2 ** 32 }), bad);
  assert.throws(() => encodeRegister({ ...proven, agent: 'nothex' as AgentId }), bad);
});

test('REGISTER: random records round-trip (bare and keyed)', () => {
  fc.assert(
    fc.property(record, fc.option(bytes(32), { nil: undefined }), (rec, key) => {
      const reg: Register = key ? { ...rec, agentKey: key } : rec;
      const b = encodeRegister(reg);
      assert.equal(b.length, registerLength(reg));
      assert.deepEqual(decodeRegister(b), reg);
    }),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------------------
// REGISTER_PART

test('REGISTER_PART: round trip, bounds, header truncation', () => {
  const part = { uploadId: Buffer.alloc(8, 7), index: 1, count: 2, totalLength: 1475, fragment: Buffer.alloc(300, 9) };
  const b = encodeRegisterPart(part);
  assert.deepEqual(decodeRegisterPart(b), part);
  strict(b, decodeRegisterPart, { trailing: false, minPrefix: 13 });
  const bad = (p: Partial<typeof part>): void => {
    assert.throws(() => encodeRegisterPart({ ...part, ...p }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
    const raw = Buffer.concat([Buffer.alloc(8), Buffer.of(p.index ?? part.index, p.count ?? part.count), Buffer.alloc(2), p.fragment ?? part.fragment]);
    raw.writeUInt16BE(p.totalLength ?? part.totalLength, 10);
    assert.throws(() => decodeRegisterPart(raw), MALFORMED);
  };
  bad({ count: 1, index: 0 });
  bad({ count: limit('REGISTER_MAX_PARTS') + 1 });
  bad({ index: 2 });
  bad({ totalLength: 0 });
  bad({ totalLength: limit('REGISTER_MAX_BYTES') + 1 });
  bad({ fragment: Buffer.alloc(0) });
  bad({ fragment: Buffer.alloc(MAX_DATAGRAM_BODY - 11) });
  bad({ totalLength: 10, fragment: Buffer.alloc(11) });
  assert.equal(decodeRegisterPartAck(encodeRegisterPartAck(3)), 3);
  strict(encodeRegisterPartAck(3), decodeRegisterPartAck);
  assert.equal(decodeRegisterAck(encodeRegisterAck(0xffff_ffff)), 0xffff_ffff);
  strict(encodeRegisterAck(5), decodeRegisterAck);
});

// ---------------------------------------------------------------------------------------------
// LOOKUP, LOCATION, WATCH, WATCH_ACK, LANDED, UNWATCH

test('LOOKUP/LOCATION: round trip, strictness, LOCATION within 3x of LOOKUP', () => {
  fc.assert(
    fc.property(id, fc.option(record, { nil: undefined }), (agentId, rec) => {
      assert.equal(decodeLookup(encodeLookup(agentId)), agentId);
      const loc = encodeLocation(rec);
      assert.deepEqual(decodeLocation(loc), rec);
      if (rec) assert.equal(loc.length, 1 + locationRecordLength(rec));
      assert.ok(DATAGRAM_HEADER_BYTES + loc.length <= limit('AMPLIFICATION_FACTOR') * (DATAGRAM_HEADER_BYTES + 16));
    }),
    { numRuns: 300 },
  );
  strict(encodeLookup(agent.id), decodeLookup);
  const rec: LocationRecord = { agent: agent.id, hostId: host(0).id, ip: '2001:db8::1', controlPort: 1, redirectorPort: 2, epoch: 3 };
  strict(encodeLocation(rec), decodeLocation);
  strict(encodeLocation(undefined), decodeLocation);
  // No entry since a deregistration: found 2 and the epoch (a launch registers above it).
  for (const removed of [0, 7, 0xffff_ffff]) {
    const body = encodeLocation(undefined, removed);
    assert.deepEqual(decodeLocationAnswer(body), { record: undefined, removed });
    assert.equal(decodeLocation(body), undefined);
    strict(body, decodeLocationAnswer);
  }
  assert.deepEqual(decodeLocationAnswer(encodeLocation(rec, 9)), { record: rec, removed: undefined }, 'a record wins over a tombstone');
  assert.throws(() => decodeLocation(Buffer.of(2)), MALFORMED);
  assert.throws(() => decodeLocation(Buffer.of(3, 0, 0, 0, 0)), MALFORMED);
});

test('WATCH/WATCH_ACK/LANDED/UNWATCH: round trip, padding rules, budget arithmetic', () => {
  const watch = fc.record({ agent: id, newerThan: u32, ttlMs: u32, token: bytes(8), padding: fc.integer({ min: 0, max: 200 }) }, NORMAL);
  fc.assert(
    fc.property(watch, fc.option(record, { nil: undefined }), record, (w, cur, rec) => {
      const wb = encodeWatch(w);
      assert.deepEqual(decodeWatch(wb), w);
      const ack = { ttlMs: w.ttlMs, notifications: w.padding % 256, current: cur };
      const ab = encodeWatchAck(ack);
      assert.deepEqual(decodeWatchAck(ab), ack);
      assert.ok(DATAGRAM_HEADER_BYTES + ab.length <= MAX_WATCH_ACK_DATAGRAM);
      const lb = encodeLanded({ token: w.token, location: rec });
      assert.deepEqual(decodeLanded(lb), { token: w.token, location: rec });
      assert.ok(DATAGRAM_HEADER_BYTES + lb.length <= MAX_LANDED_DATAGRAM);
      assert.deepEqual(decodeUnwatch(encodeUnwatch({ agent: w.agent, token: w.token })), { agent: w.agent, token: w.token });
    }),
    { numRuns: 300 },
  );
  const w = { agent: agent.id, newerThan: 3, ttlMs: 1000, token: Buffer.alloc(8, 1), padding: 0 };
  strict(encodeWatch(w), decodeWatch, { trailing: false });
  // Padding must be zero; more zero bytes are more padding.
  assert.equal(decodeWatch(Buffer.concat([encodeWatch(w), Buffer.alloc(3)])).padding, 3);
  assert.throws(() => decodeWatch(Buffer.concat([encodeWatch(w), Buffer.of(0, 1)])), MALFORMED);
  assert.throws(() => encodeWatch({ ...w, padding: MAX_DATAGRAM_BODY }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  const rec: LocationRecord = { agent: agent.id, hostId: host(0).id, ip: '2001:db8::1', controlPort: 1, redirectorPort: 2, epoch: 3 };
  strict(encodeWatchAck({ ttlMs: 1, notifications: 2, current: rec }), decodeWatchAck);
  strict(encodeLanded({ token: w.token, location: rec }), decodeLanded);
  strict(encodeUnwatch({ agent: agent.id, token: w.token }), decodeUnwatch);
  assert.equal(decodeUnwatchAck(encodeUnwatchAck(true)), true);
  assert.equal(decodeUnwatchAck(encodeUnwatchAck(false)), false);
  assert.throws(() => decodeUnwatchAck(Buffer.of(2)), MALFORMED);
  // Budget: an unpadded WATCH pays for nothing; the padding for n pays for at least n, and the
  // ack plus n notifications stay within 3x of the WATCH datagram.
  assert.equal(notificationsPaidBy(DATAGRAM_HEADER_BYTES + encodeWatch(w).length), 0);
  for (let n = 0; n <= 16; n++) {
    const dgram = DATAGRAM_HEADER_BYTES + encodeWatch({ ...w, padding: watchPaddingFor(n) }).length;
    assert.ok(notificationsPaidBy(dgram) >= n, `padding for ${n}`);
    assert.ok(MAX_WATCH_ACK_DATAGRAM + n * MAX_LANDED_DATAGRAM <= limit('AMPLIFICATION_FACTOR') * dgram);
  }
});

// ---------------------------------------------------------------------------------------------
// RELAY, RELAYED, RELAYED_ACK, RELAY_ACK

test('RELAY family: round trip, bounds, header truncation', () => {
  const inner = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
  const type = fc.integer({ min: 1, max: 254 });
  fc.assert(
    fc.property(id, type, inner, ip, port, record, (to, innerType, innerBody, originIp, originPort, rec) => {
      assert.deepEqual(decodeRelay(encodeRelay({ to, innerType, innerBody })), { to, innerType, innerBody });
      const relayed = { originIp, originPort, innerType, innerBody };
      assert.deepEqual(decodeRelayed(encodeRelayed(relayed)), relayed);
      assert.deepEqual(decodeRelayedAck(encodeRelayedAck({ innerType, innerBody })), { innerType, innerBody });
      assert.deepEqual(decodeRelayAck(encodeRelayAck({ location: rec, innerType, innerBody })), { location: rec, innerType, innerBody });
    }),
    { numRuns: 200 },
  );
  const relay = encodeRelay({ to: agent.id, innerType: 1, innerBody: Buffer.alloc(10) });
  strict(relay, decodeRelay, { trailing: false, minPrefix: 17 });
  const relayed = encodeRelayed({ originIp: '::1', originPort: 9, innerType: 1, innerBody: Buffer.alloc(10) });
  strict(relayed, decodeRelayed, { trailing: false, minPrefix: 20 });
  // The largest inner body fits a RELAYED with an IPv6 origin.
  const biggest = encodeRelayed({ originIp: '2001:db8::1', originPort: 9, innerType: 1, innerBody: Buffer.alloc(MAX_RELAY_INNER_BODY) });
  assert.equal(biggest.length, MAX_DATAGRAM_BODY);
  assert.throws(() => encodeRelay({ to: agent.id, innerType: 1, innerBody: Buffer.alloc(MAX_RELAY_INNER_BODY + 1) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => encodeRelay({ to: agent.id, innerType: 255, innerBody: Buffer.alloc(1) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => decodeRelay(Buffer.concat([relay.subarray(0, 16), Buffer.of(0)])), MALFORMED);
  assert.throws(() => decodeRelayed(Buffer.concat([Buffer.of(4, 1, 2, 3, 4, 0, 0, 1)])), MALFORMED);
});

// ---------------------------------------------------------------------------------------------
// PATH_CHALLENGE, PATH_RESPONSE

test('PATH_CHALLENGE/PATH_RESPONSE: round trip, exact length, the budget a RELAY pays', () => {
  fc.assert(
    fc.property(bytes(PATH_CHALLENGE_BYTES), (c) => {
      assert.deepEqual(decodePathChallenge(encodePathChallenge(c)), c);
      assert.deepEqual(decodePathResponse(encodePathResponse(c)), c);
      assert.equal(DATAGRAM_HEADER_BYTES + encodePathChallenge(c).length, PATH_CHALLENGE_DATAGRAM);
    }),
    { numRuns: 100 },
  );
  const c = Buffer.alloc(PATH_CHALLENGE_BYTES, 3);
  strict(encodePathChallenge(c), decodePathChallenge);
  strict(encodePathResponse(c), decodePathResponse);
  assert.throws(() => encodePathChallenge(Buffer.alloc(15)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  // Every send of a challenge, retransmissions included, is paid by the RELAY that asked: within
  // 3x of it, at least one try for the smallest RELAY, never more than a whole retry schedule.
  const smallest = DATAGRAM_HEADER_BYTES + RELAY_FIXED_BYTES;
  assert.equal(pathChallengeTries(smallest), 3);
  for (let n = smallest; n <= 1200; n++) {
    const tries = pathChallengeTries(n);
    assert.ok(tries >= 1 && tries <= limit('CONTROL_MAX_TRIES'));
    assert.ok(tries * PATH_CHALLENGE_DATAGRAM <= limit('AMPLIFICATION_FACTOR') * n, `${tries} tries for ${n} bytes`);
  }
  assert.equal(pathChallengeTries(DATAGRAM_HEADER_BYTES + RELAY_FIXED_BYTES + 179), limit('CONTROL_MAX_TRIES'));
});

// ---------------------------------------------------------------------------------------------
// DEREGISTER, DEREGISTER_ACK

test('DEREGISTER/DEREGISTER_ACK: round trip, exact length, signed bytes cover every field, ack within 3x', () => {
  const d = fc.record({ agent: id, hostId: id.map((x) => x as string), epoch: u32, registration: bytes(REGISTRATION_DIGEST_BYTES), hostKey: bytes(32), signature: bytes(64) }, NORMAL);
  fc.assert(
    fc.property(d, (m) => {
      const body = encodeDeregister(m);
      assert.equal(body.length, DEREGISTER_BYTES);
      assert.deepEqual(decodeDeregister(body), m);
    }),
    { numRuns: 200 },
  );
  const h = host(0);
  const unsigned = { agent: agent.id, hostId: h.id, epoch: 7, registration: Buffer.alloc(REGISTRATION_DIGEST_BYTES, 5), hostKey: Buffer.from(h.publicRaw) };
  const body = encodeDeregister({ ...unsigned, signature: h.sign(deregisterSigned(unsigned)) });
  strict(body, decodeDeregister);
  // Every field is signed: changing any one changes the signed bytes.
  const signedBytes = deregisterSigned(unsigned).toString('hex');
  for (const changed of [{ epoch: 8 }, { hostId: host(1).id }, { agent: host(2).id }, { registration: Buffer.alloc(REGISTRATION_DIGEST_BYTES, 6) }, { hostKey: Buffer.from(host(1).publicRaw) }]) {
    assert.notEqual(deregisterSigned({ ...unsigned, ...changed }).toString('hex'), signedBytes);
  }
  // Its label is not a prefix of (or prefixed by) the REGISTER one.
  assert.ok(!deregisterSigned(unsigned).subarray(0, 16).equals(Buffer.from('ferry/1 register')));
  assert.throws(() => encodeDeregister({ ...unsigned, signature: Buffer.alloc(63) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => encodeDeregister({ ...unsigned, registration: Buffer.alloc(15), signature: Buffer.alloc(64) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  for (const removed of [true, false]) {
    const ack = encodeDeregisterAck(removed);
    assert.equal(decodeDeregisterAck(ack), removed);
    strict(ack, decodeDeregisterAck);
  }
  assert.throws(() => decodeDeregisterAck(Buffer.of(2)), MALFORMED);
});

// ---------------------------------------------------------------------------------------------
// Fuzz

test('fuzz: random and mutated bodies only ever raise a FerryError', () => {
  const decoders: [string, (b: Buffer) => unknown][] = [
    ['REGISTER', decodeRegister],
    ['REGISTER_ACK', decodeRegisterAck],
    ['REGISTER_PART', decodeRegisterPart],
    ['REGISTER_PART_ACK', decodeRegisterPartAck],
    ['LOOKUP', decodeLookup],
    ['LOCATION', decodeLocation],
    ['WATCH', decodeWatch],
    ['WATCH_ACK', decodeWatchAck],
    ['LANDED', decodeLanded],
    ['UNWATCH', decodeUnwatch],
    ['UNWATCH_ACK', decodeUnwatchAck],
    ['RELAY', decodeRelay],
    ['RELAYED', decodeRelayed],
    ['RELAYED_ACK', decodeRelayedAck],
    ['RELAY_ACK', decodeRelayAck],
    ['PATH_CHALLENGE', decodePathChallenge],
    ['PATH_RESPONSE', decodePathResponse],
    ['DEREGISTER', decodeDeregister],
    ['DEREGISTER_ACK', decodeDeregisterAck],
  ];
  const seeds = [encodeRegister(provenRegister(host(0), 1)), encodeRegister(registration(undefined, host(0), 1)), encodeWatch({ agent: agent.id, newerThan: 1, ttlMs: 1, token: Buffer.alloc(8), padding: 4 })];
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 1300 }).map((a) => Buffer.from(a)),
    fc.tuple(fc.constantFrom(...seeds), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, at, v]) => {
      const b = Buffer.from(s);
      b[at % b.length] = v;
      return b;
    }),
  );
  fc.assert(
    fc.property(input, (b) => {
      for (const [name, decode] of decoders) {
        try {
          decode(b);
        } catch (err) {
          assert.ok(err instanceof FerryError, `${name} threw ${String(err)}`);
        }
      }
    }),
    { numRuns: 1000 },
  );
  // A whole datagram round trip for good measure: header + REGISTER.
  const d = encodeDatagram({ type: T.REGISTER, flags: 0, requestId: 7 }, encodeRegister(provenRegister(host(0), 1)));
  assert.deepEqual(decodeRegister(decodeDatagram(d).body), provenRegister(host(0), 1));
});
