/**
 * Delegation certificates and trust chains (docs/DELEGATION.md): the fixed 165-byte layout checked
 * byte by byte against the documented table, codec round trips and truncation at every byte,
 * fuzzing (random and mutated input only ever raises a FerryError, and a mutated chain never
 * verifies), and each refusal with its own code — expired, not yet valid, out-of-order epochs, a
 * link by a key that is not the previous subject, a flipped bit in each link, a chain that does
 * not start at the agent key or is empty, a chain for another agent, too many links — plus the
 * clock-skew boundaries and the HIP trust-chain rule (earlier links need only have been valid when
 * the next was issued). Time is always injected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as edVerify } from 'node:crypto';
import fc from 'fast-check';
import {
  CERTIFICATE_BYTES,
  DELEGATION_VERSION,
  Identity,
  chainSizeBytes,
  decodeCertificate,
  decodeChain,
  encodeCertificate,
  encodeChain,
  extendChain,
  freshChain,
  idFromBytes,
  issueDelegation,
  verifyChain,
  type AgentId,
  type DelegationCertificate,
  type DelegationChain,
} from '../../../src/identity/index.js';
import { FerryError, isFerryError, limit, type ErrorCode } from '../../../src/util/index.js';

const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);
const seed = (n: number): Buffer => Buffer.alloc(32, n);

const T0 = 1_700_000_000_000; // a fixed wall time (Unix ms); the module never reads a clock
const HOUR = 3_600_000;
const SKEW = limit('CLOCK_SKEW_MS');
const MAX = limit('MAX_CHAIN_LINKS');

// Deterministic keys: RFC 8032 seeds are arbitrary 32-byte strings.
const agent = Identity.fromSeed(seed(1));
const otherAgent = Identity.fromSeed(seed(2));
const mallory = Identity.fromSeed(seed(3));
const hosts = Array.from({ length: MAX + 2 }, (_, i) => Identity.fromSeed(seed(10 + i)));
const host = (i: number): Identity => hosts[i]!;

/**
 * A chain of `n` links, as sequential moves produce it: the agent delegates to host 0 at `t0`
 * (epoch 1), then host i-1 delegates to host i a minute later each time (epoch i+1).
 */
function chainOf(n: number, t0 = T0, who: Identity = agent, validityMs = HOUR): DelegationChain {
  let chain = freshChain(who, host(0).publicRaw, 1, t0, validityMs);
  for (let i = 1; i < n; i++) chain = extendChain(chain, host(i - 1), host(i).publicRaw, i + 1, validityMs, t0 + i * 60_000, { maxLinks: n });
  return chain;
}

/** Time of the last link's notBefore in {@link chainOf}. */
const lastStart = (n: number, t0 = T0): number => t0 + (n - 1) * 60_000;

const verifyAgent = (chain: DelegationChain, now: number, policy = {}): ReturnType<typeof verifyChain> =>
  verifyChain(agent.id, agent.publicRaw, chain, now, policy);

/** Decode then verify, the way a receiver sees a chain. */
function receive(bytes: Buffer, now: number): ReturnType<typeof verifyChain> {
  const { value, bytes: used } = decodeChain(bytes);
  assert.equal(used, bytes.length);
  return verifyAgent(value, now);
}

// ---------------------------------------------------------------------------------------------
// Layout

test('certificate layout matches the byte table in docs/DELEGATION.md', () => {
  const c = issueDelegation(agent, agent.id, host(0).publicRaw, 0x01020304, T0, T0 + HOUR);
  const b = encodeCertificate(c);
  assert.equal(b.length, 165);
  assert.equal(CERTIFICATE_BYTES, 165);
  assert.equal(b[0], DELEGATION_VERSION);
  assert.equal(b[0], 1);
  assert.equal(b.subarray(1, 17).toString('hex'), agent.id);
  assert.ok(b.subarray(17, 49).equals(agent.publicRaw));
  assert.ok(b.subarray(49, 81).equals(host(0).publicRaw));
  assert.equal(b.subarray(81, 85).toString('hex'), '01020304');
  assert.equal(b.readUInt32BE(85) * 2 ** 32 + b.readUInt32BE(89), T0);
  assert.equal(b.readUInt32BE(93) * 2 ** 32 + b.readUInt32BE(97), T0 + HOUR);
  assert.ok(b.subarray(101, 165).equals(c.signature));
  // The signature is plain Ed25519 (RFC 8032) over the label then bytes 0..100, checked here with
  // node:crypto directly so the documented message is the real one.
  const msg = Buffer.concat([Buffer.from('ferry/1 delegation'), b.subarray(0, 101)]);
  assert.ok(edVerify(null, msg, createPublicKey(agent.privateKey), b.subarray(101)));
  // Ed25519 is deterministic: the same fields give the same certificate.
  assert.ok(encodeCertificate(issueDelegation(agent, agent.id, host(0).publicRaw, 0x01020304, T0, T0 + HOUR)).equals(b));
});

test('chain layout: u8 count then the certificates; chainSizeBytes = 1 + 165 per link', () => {
  const chain = chainOf(3);
  const b = encodeChain(chain);
  assert.equal(b[0], 3);
  assert.equal(b.length, chainSizeBytes(3));
  assert.equal(chainSizeBytes(chain), 1 + 3 * 165);
  assert.equal(chainSizeBytes(0), 1);
  assert.equal(chainSizeBytes(1), 166);
  for (let i = 0; i < 3; i++) assert.ok(b.subarray(1 + i * 165, 1 + (i + 1) * 165).equals(encodeCertificate(chain[i]!)));
  assert.throws(() => chainSizeBytes(-1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

test('a signature made without the domain label is refused as a forgery', () => {
  const good = issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + HOUR);
  const body = encodeCertificate(good).subarray(0, 101);
  const unlabelled: DelegationCertificate = { ...good, signature: agent.sign(body) };
  assert.throws(() => verifyAgent([unlabelled], T0), ferry('FERRY_ERR_CHAIN_FORGED'));
});

// ---------------------------------------------------------------------------------------------
// Codec

const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));
const timeArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
/** Any well-formed certificate; the signature is random (the codec does not check it). */
const certArb: fc.Arbitrary<DelegationCertificate> = fc
  .record({
    agentId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => idFromBytes(a)),
    issuer: keyArb,
    subject: keyArb,
    epoch: fc.oneof(fc.constantFrom(0, 1, 0xffff_ffff), fc.nat({ max: 0xffff_ffff })),
    t: fc.tuple(timeArb, timeArb).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a])),
    signature: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((a) => Buffer.from(a)),
  })
  .map(({ t, ...r }) => ({ version: DELEGATION_VERSION, ...r, notBefore: t[0], notAfter: t[1] }));

test('certificate round trip (fast-check): decode(encode(c)) = c, 165 bytes consumed, at any offset', () => {
  fc.assert(
    fc.property(certArb, fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (c, pre, post) => {
      const b = encodeCertificate(c);
      assert.equal(b.length, CERTIFICATE_BYTES);
      const framed = Buffer.concat([pre, b, post]);
      const { value, bytes } = decodeCertificate(framed, pre.length);
      assert.equal(bytes, CERTIFICATE_BYTES);
      assert.deepEqual(value, c);
      assert.ok(encodeCertificate(value).equals(b));
    }),
    { numRuns: 300 },
  );
});

test('chain round trip (fast-check): 0..MAX links, trailing bytes left to the caller', () => {
  fc.assert(
    fc.property(fc.array(certArb, { maxLength: MAX }), fc.uint8Array({ maxLength: 8 }), (chain, post) => {
      const b = encodeChain(chain);
      assert.equal(b.length, chainSizeBytes(chain.length));
      const { value, bytes } = decodeChain(Buffer.concat([b, post]));
      assert.equal(bytes, b.length);
      assert.deepEqual(value, chain);
    }),
    { numRuns: 200 },
  );
});

test('a real chain survives the codec and still verifies', () => {
  for (let n = 1; n <= MAX; n++) {
    const r = receive(encodeChain(chainOf(n)), lastStart(n));
    assert.equal(r.links, n);
    assert.ok(r.subject.equals(host(n - 1).publicRaw));
  }
});

test('decoding copies: reusing the input buffer does not change a decoded certificate', () => {
  const b = encodeChain(chainOf(2));
  const { value } = decodeChain(b);
  b.fill(0xee, 1);
  assert.doesNotThrow(() => verifyAgent(value, lastStart(2)));
});

test('every truncation of a certificate or chain is FERRY_ERR_MALFORMED_CERTIFICATE', () => {
  const cert = encodeCertificate(chainOf(1)[0]!);
  for (let len = 0; len < cert.length; len++) {
    assert.throws(() => decodeCertificate(cert.subarray(0, len)), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'), `certificate cut at ${len}`);
  }
  const chain = encodeChain(chainOf(3));
  for (let len = 0; len < chain.length; len++) {
    assert.throws(() => decodeChain(chain.subarray(0, len)), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'), `chain cut at ${len}`);
  }
  // Also inside a larger buffer: a cut before the end of the chain, not of the buffer, counts.
  assert.throws(() => decodeCertificate(cert, 1), ferry('FERRY_ERR_UNSUPPORTED_VERSION'));
  assert.throws(() => decodeCertificate(Buffer.concat([Buffer.of(0), cert.subarray(0, 164)]), 1), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'));
  assert.throws(() => decodeCertificate(cert, 166), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

test('strict fields: unknown version, a time above 2^53, a window that ends before it starts', () => {
  const good = encodeCertificate(chainOf(1)[0]!);
  for (const v of [0, 2, 0xff]) {
    const b = Buffer.from(good);
    b[0] = v;
    assert.throws(() => decodeCertificate(b), ferry('FERRY_ERR_UNSUPPORTED_VERSION'), `version ${v}`);
    // The version is read before the length, so a future, longer layout is named as such.
    assert.throws(() => decodeCertificate(b.subarray(0, 1)), ferry('FERRY_ERR_UNSUPPORTED_VERSION'));
  }
  for (const off of [85, 93]) {
    const b = Buffer.from(good);
    b.writeUInt32BE(0x20_0000, off); // 2^53
    assert.throws(() => decodeCertificate(b), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'), `u64 at ${off}`);
  }
  const inverted = Buffer.from(good);
  inverted.writeUInt32BE(0, 93);
  inverted.writeUInt32BE(0, 97); // notAfter = 0 < notBefore
  assert.throws(() => decodeCertificate(inverted), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'));
});

test('a link count above the limit is refused before anything is read or allocated', () => {
  assert.throws(() => decodeChain(Buffer.of(MAX + 1)), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  assert.throws(() => decodeChain(Buffer.of(0xff)), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  assert.throws(() => decodeChain(Buffer.of(3), 0, { maxLinks: 2 }), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  // At the limit the count is accepted and the missing links are what is wrong.
  assert.throws(() => decodeChain(Buffer.of(MAX)), ferry('FERRY_ERR_MALFORMED_CERTIFICATE'));
  assert.deepEqual(decodeChain(Buffer.of(0)), { value: [], bytes: 1 });
});

test('encoders refuse values that do not fit the layout', () => {
  const good = chainOf(1)[0]!;
  const bad: [string, DelegationCertificate][] = [
    ['short issuer', { ...good, issuer: good.issuer.subarray(1) }],
    ['long subject', { ...good, subject: Buffer.concat([good.subject, Buffer.of(0)]) }],
    ['epoch 2^32', { ...good, epoch: 2 ** 32 }],
    ['negative epoch', { ...good, epoch: -1 }],
    ['fractional time', { ...good, notBefore: 1.5 }],
    ['time above 2^53', { ...good, notAfter: 2 ** 53 }],
    ['inverted window', { ...good, notAfter: good.notBefore - 1 }],
    ['short signature', { ...good, signature: good.signature.subarray(1) }],
    ['bad agent id', { ...good, agentId: 'xyz' as AgentId }],
    ['other version', { ...good, version: 2 as 1 }],
  ];
  for (const [what, c] of bad) assert.throws(() => encodeCertificate(c), ferry('FERRY_ERR_INVALID_ARGUMENT'), what);
  assert.throws(() => encodeChain(Array.from({ length: 256 }, () => good)), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

test('fuzz: random bytes only ever raise a FerryError, from decode or verify', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2 * CERTIFICATE_BYTES + 4 }), fc.boolean(), (raw, plausible) => {
      const b = Buffer.from(raw);
      if (plausible && b.length > 1) {
        b[0] = Math.min(b[0]!, 2); // mostly a small count
        if (b.length > 1) b[1] = 1; // and a known version, so the fields get read
      }
      try {
        decodeCertificate(b);
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err));
      }
      try {
        const { value } = decodeChain(b);
        verifyAgent(value, T0);
        assert.fail('random links verified');
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

test('fuzz: a mutated chain is refused with a FerryError unless it is byte-for-byte the original', () => {
  const original = encodeChain(chainOf(3));
  const now = lastStart(3);
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat({ max: original.length - 1 }), xor: fc.integer({ min: 1, max: 0xff }) }), { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat({ max: original.length - 1 }), { nil: undefined }),
      (flips, cut) => {
        const b = Buffer.from(original);
        for (const f of flips) b[f.at]! ^= f.xor;
        const m = cut === undefined ? b : b.subarray(0, cut);
        try {
          const { value, bytes } = decodeChain(m);
          // A lowered count leaves whole links behind as trailing bytes, which a caller framing
          // the chain in a message refuses; what decoded is a genuine prefix (see the next test).
          if (bytes !== m.length) return;
          verifyAgent(value, now);
          assert.ok(m.equals(original), 'a changed chain verified');
        } catch (err) {
          assert.ok(err instanceof FerryError, String(err));
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('a prefix of a valid chain is a valid, older delegation: the epoch tells them apart', () => {
  // Not a flaw of the chain but of freshness: verifiers that care which host is current compare
  // epochs (the rendezvous refuses an epoch at or below the registered one).
  const chain = chainOf(3);
  const now = lastStart(3);
  const full = verifyAgent(chain, now);
  const prefix = verifyAgent(chain.slice(0, 2), now);
  assert.ok(prefix.epoch < full.epoch);
  assert.ok(prefix.subject.equals(host(1).publicRaw));
});

// ---------------------------------------------------------------------------------------------
// Valid chains

test('valid chains of 1..MAX_CHAIN_LINKS links verify and name the last subject', () => {
  for (let n = 1; n <= MAX; n++) {
    const r = verifyAgent(chainOf(n), lastStart(n) + 1000);
    assert.equal(r.links, n);
    assert.equal(r.epoch, n);
    assert.ok(r.subject.equals(host(n - 1).publicRaw));
    assert.equal(r.subjectId, host(n - 1).id);
    assert.equal(r.notAfter, lastStart(n) + HOUR);
  }
});

test('property: any chain of sequential moves, each issued inside its issuer\'s window, verifies', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: MAX }),
      fc.array(fc.integer({ min: 0, max: HOUR }), { minLength: MAX, maxLength: MAX }),
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: MAX, maxLength: MAX }),
      fc.integer({ min: -SKEW, max: HOUR + SKEW }),
      (n, gaps, steps, offset) => {
        let t = T0;
        let epoch = steps[0]!;
        let chain = freshChain(agent, host(0).publicRaw, epoch, t, HOUR);
        for (let i = 1; i < n; i++) {
          t += gaps[i]!; // within [prev.notBefore, prev.notAfter]
          epoch += steps[i]!;
          chain = extendChain(chain, host(i - 1), host(i).publicRaw, epoch, HOUR, t);
        }
        const r = verifyAgent(chain, t + offset);
        assert.equal(r.epoch, epoch);
        assert.ok(r.subject.equals(host(n - 1).publicRaw));
      },
    ),
    { numRuns: 60 },
  );
});

test('HIP trust chain: earlier links may have expired, if each was valid when the next was issued', () => {
  // Agent -> host0 for an hour; host0 -> host1 at 59 minutes; checked two hours later.
  let chain = freshChain(agent, host(0).publicRaw, 1, T0, HOUR);
  chain = extendChain(chain, host(0), host(1).publicRaw, 2, 3 * HOUR, T0 + HOUR - 60_000);
  const r = verifyAgent(chain, T0 + 3 * HOUR);
  assert.ok(r.subject.equals(host(1).publicRaw));
});

// ---------------------------------------------------------------------------------------------
// Time

test('expired: the last link checked at notAfter + skew passes, one millisecond later fails', () => {
  const chain = chainOf(2);
  const end = lastStart(2) + HOUR;
  assert.doesNotThrow(() => verifyAgent(chain, end));
  assert.doesNotThrow(() => verifyAgent(chain, end + SKEW));
  assert.throws(() => verifyAgent(chain, end + SKEW + 1), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  assert.throws(() => verifyAgent(chain, end + 10 * HOUR), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  // The skew is a policy knob: with none, notAfter itself is the last valid millisecond.
  assert.doesNotThrow(() => verifyAgent(chain, end, { skewMs: 0 }));
  assert.throws(() => verifyAgent(chain, end + 1, { skewMs: 0 }), ferry('FERRY_ERR_CHAIN_EXPIRED'));
});

test('not yet valid: notBefore - skew passes, one millisecond earlier fails', () => {
  const chain = chainOf(1);
  assert.doesNotThrow(() => verifyAgent(chain, T0 - SKEW));
  assert.throws(() => verifyAgent(chain, T0 - SKEW - 1), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  assert.throws(() => verifyAgent(chain, T0 - 1, { skewMs: 0 }), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  assert.doesNotThrow(() => verifyAgent(chain, T0, { skewMs: 0 }));
});

test('a link issued after its issuer\'s delegation ended is EXPIRED; at the skew boundary it passes', () => {
  const root = issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + HOUR);
  const at = (nb: number): DelegationChain => [root, issueDelegation(host(0), agent.id, host(1).publicRaw, 2, nb, nb + HOUR)];
  assert.doesNotThrow(() => verifyAgent(at(T0 + HOUR + SKEW), T0 + HOUR + SKEW));
  assert.throws(() => verifyAgent(at(T0 + HOUR + SKEW + 1), T0 + HOUR + SKEW + 1), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  assert.throws(() => verifyAgent(at(T0 + 5 * HOUR), T0 + 5 * HOUR), ferry('FERRY_ERR_CHAIN_EXPIRED'));
});

test('a link that starts before its issuer was delegated is BROKEN; at the skew boundary it passes', () => {
  const root = issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + HOUR);
  const at = (nb: number): DelegationChain => [root, issueDelegation(host(0), agent.id, host(1).publicRaw, 2, nb, nb + HOUR)];
  assert.doesNotThrow(() => verifyAgent(at(T0 - SKEW), T0));
  assert.throws(() => verifyAgent(at(T0 - SKEW - 1), T0), ferry('FERRY_ERR_CHAIN_BROKEN'));
});

test('a link from the future (even mid-chain) is not yet valid', () => {
  const root = issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + 20 * HOUR);
  const mid = issueDelegation(host(0), agent.id, host(1).publicRaw, 2, T0 + 10 * HOUR, T0 + 11 * HOUR);
  const last = issueDelegation(host(1), agent.id, host(2).publicRaw, 3, T0 + 10 * HOUR, T0 + 11 * HOUR);
  assert.throws(() => verifyAgent([root, mid, last], T0 + HOUR), ferry('FERRY_ERR_CHAIN_EXPIRED'));
  assert.doesNotThrow(() => verifyAgent([root, mid, last], T0 + 10 * HOUR));
});

test('a window longer than the allowed validity is refused, at issue and at verify', () => {
  const maxV = limit('MAX_CERT_VALIDITY_MS');
  assert.doesNotThrow(() => issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + maxV));
  assert.throws(() => issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 + maxV + 1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  const chain = chainOf(2, T0, agent, 2 * HOUR);
  assert.doesNotThrow(() => verifyAgent(chain, lastStart(2), { maxValidityMs: 2 * HOUR }));
  assert.throws(() => verifyAgent(chain, lastStart(2), { maxValidityMs: 2 * HOUR - 1 }), ferry('FERRY_ERR_CHAIN_EXPIRED'));
});

// ---------------------------------------------------------------------------------------------
// Order and linkage

test('out-of-order epochs: equal, decreasing, or links swapped are BROKEN', () => {
  const root = issueDelegation(agent, agent.id, host(0).publicRaw, 5, T0, T0 + HOUR);
  for (const e of [5, 4, 0]) {
    const next = issueDelegation(host(0), agent.id, host(1).publicRaw, e, T0 + 1000, T0 + HOUR);
    assert.throws(() => verifyAgent([root, next], T0 + 1000), ferry('FERRY_ERR_CHAIN_BROKEN'), `epoch ${e} after 5`);
  }
  const chain = chainOf(3);
  assert.throws(() => verifyAgent([chain[0]!, chain[2]!, chain[1]!], lastStart(3)), ferry('FERRY_ERR_CHAIN_BROKEN'));
  // A replayed link (the chain run back to an older host) is out of order too.
  assert.throws(() => verifyAgent([...chain, chain[1]!], lastStart(3)), ferry('FERRY_ERR_CHAIN_BROKEN'));
});

test('a link signed by a key that is not the previous subject is refused', () => {
  const chain = chainOf(2);
  const now = lastStart(2);
  // Mallory signs honestly as herself: the link does not connect to host 0 -> BROKEN.
  const own = issueDelegation(mallory, agent.id, mallory.publicRaw, 3, now, now + HOUR);
  assert.throws(() => verifyAgent([...chain, own], now), ferry('FERRY_ERR_CHAIN_BROKEN'));
  // Skipping a link (host 1's delegation to host 2 grafted directly after the root) -> BROKEN.
  const c3 = chainOf(3);
  assert.throws(() => verifyAgent([c3[0]!, c3[2]!], lastStart(3)), ferry('FERRY_ERR_CHAIN_BROKEN'));
  // Mallory claims to be host 1 (the last subject) but signs with her key -> FORGED.
  const claimed: DelegationCertificate = { ...own, issuer: Buffer.from(host(1).publicRaw) };
  const resigned: DelegationCertificate = { ...claimed, signature: mallory.sign(Buffer.concat([Buffer.from('ferry/1 delegation'), encodeCertificate(claimed).subarray(0, 101)])) };
  assert.throws(() => verifyAgent([...chain, resigned], now), ferry('FERRY_ERR_CHAIN_FORGED'));
});

test('forged: a flipped bit anywhere in any link is refused; in keys, ids, epoch or signature as FORGED', () => {
  const chain = chainOf(3);
  const bytes = encodeChain(chain);
  const now = lastStart(3);
  for (let link = 0; link < 3; link++) {
    for (let pos = 0; pos < CERTIFICATE_BYTES; pos++) {
      const b = Buffer.from(bytes);
      b[1 + link * CERTIFICATE_BYTES + pos]! ^= 1 << (pos % 8);
      let code: string | undefined;
      try {
        receive(b, now);
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err));
        code = err.code;
      }
      const where = `link ${link} byte ${pos}`;
      if (pos === 0) assert.equal(code, 'FERRY_ERR_UNSUPPORTED_VERSION', where);
      else if (pos < 85 || pos >= 101) assert.equal(code, 'FERRY_ERR_CHAIN_FORGED', where);
      else assert.ok(code === 'FERRY_ERR_CHAIN_FORGED' || code === 'FERRY_ERR_MALFORMED_CERTIFICATE', `${where}: ${code}`);
    }
  }
});

test('truncated: an empty chain, a root not signed by the agent key, a chain missing its root', () => {
  assert.throws(() => verifyAgent([], T0), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  assert.throws(() => receive(Buffer.of(0), T0), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  // A host "roots" the chain for the agent id with its own key.
  const hostRoot = issueDelegation(host(0), agent.id, host(1).publicRaw, 1, T0, T0 + HOUR);
  assert.throws(() => verifyAgent([hostRoot], T0), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  // The tail of a genuine chain, first link dropped.
  const chain = chainOf(3);
  assert.throws(() => verifyAgent(chain.slice(1), lastStart(3)), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
});

test('a chain for another agent is refused', () => {
  const theirs = chainOf(2, T0, otherAgent);
  assert.doesNotThrow(() => verifyChain(otherAgent.id, otherAgent.publicRaw, theirs, lastStart(2)));
  assert.throws(() => verifyAgent(theirs, lastStart(2)), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  // The agent key delegating for an id that is not its own does not start this agent's chain.
  const wrongId = issueDelegation(agent, otherAgent.id, host(0).publicRaw, 1, T0, T0 + HOUR);
  assert.throws(() => verifyAgent([wrongId], T0), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
  // A link spliced in from another agent's chain, though signed by the right host -> BROKEN.
  const mine = chainOf(1);
  const spliced = issueDelegation(host(0), otherAgent.id, host(1).publicRaw, 2, T0 + 1000, T0 + HOUR);
  assert.throws(() => verifyAgent([...mine, spliced], T0 + 1000), ferry('FERRY_ERR_CHAIN_BROKEN'));
  // The agent key passed in must be the one the id is the hash of.
  assert.throws(() => verifyChain(agent.id, otherAgent.publicRaw, mine, T0), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
});

test('too long: MAX_CHAIN_LINKS + 1 links are refused by verify, decode and extend', () => {
  const long = chainOf(MAX + 1);
  assert.equal(long.length, MAX + 1);
  assert.throws(() => verifyAgent(long, lastStart(MAX + 1)), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  assert.throws(() => decodeChain(encodeChain(long)), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
  assert.doesNotThrow(() => verifyAgent(long, lastStart(MAX + 1), { maxLinks: MAX + 1 }));
  const full = chainOf(MAX);
  assert.throws(
    () => extendChain(full, host(MAX - 1), host(MAX).publicRaw, MAX + 1, HOUR, lastStart(MAX)),
    ferry('FERRY_ERR_CHAIN_TOO_LONG'),
  );
  // The bound is checked before any signature: a long chain of garbage costs nothing to refuse.
  const garbage = Array.from({ length: MAX + 1 }, () => ({ ...full[0]!, signature: Buffer.alloc(64) }));
  assert.throws(() => verifyAgent(garbage, T0), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
});

// ---------------------------------------------------------------------------------------------
// Issuing

test('extendChain refuses what a verifier would refuse', () => {
  const chain = chainOf(2);
  const now = lastStart(2);
  assert.throws(() => extendChain([], host(0), host(1).publicRaw, 1, HOUR, T0), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => extendChain(chain, host(0), host(2).publicRaw, 3, HOUR, now), ferry('FERRY_ERR_INVALID_ARGUMENT'), 'not the last subject');
  assert.throws(() => extendChain(chain, host(1), host(2).publicRaw, 2, HOUR, now), ferry('FERRY_ERR_INVALID_ARGUMENT'), 'epoch not above');
  assert.throws(() => extendChain(chain, host(1), host(2).publicRaw, 2 ** 32, HOUR, now), ferry('FERRY_ERR_INVALID_ARGUMENT'), 'epoch beyond u32');
  assert.throws(() => extendChain(chain, host(1), host(2).publicRaw, 3, HOUR, now + HOUR + 1), ferry('FERRY_ERR_CHAIN_EXPIRED'), 'issuer expired');
  assert.throws(() => extendChain(chain, host(1), host(2).publicRaw, 3, HOUR, now - SKEW - 1), ferry('FERRY_ERR_CHAIN_EXPIRED'), 'issuer not yet valid');
  assert.throws(() => extendChain(chain, host(1), host(2).publicRaw.subarray(1), 3, HOUR, now), ferry('FERRY_ERR_INVALID_ARGUMENT'), 'short key');
  // At the very end of the issuer's window it may still delegate, and the result verifies.
  const ok = extendChain(chain, host(1), host(2).publicRaw, 3, HOUR, now + HOUR);
  assert.equal(verifyAgent(ok, now + HOUR).epoch, 3);
  // extendChain does not mutate its input.
  assert.equal(chain.length, 2);
});

test('issueDelegation checks its arguments', () => {
  assert.throws(() => issueDelegation(agent, agent.id, host(0).publicRaw, 1, T0, T0 - 1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => issueDelegation(agent, agent.id, Buffer.alloc(31), 1, T0, T0 + 1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => issueDelegation(agent, agent.id, host(0).publicRaw, -1, T0, T0 + 1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => issueDelegation(agent, 'nope' as AgentId, host(0).publicRaw, 1, T0, T0 + 1), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => issueDelegation(agent, agent.id, host(0).publicRaw, 1, -5, T0), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => verifyAgent(chainOf(1), Number.NaN), ferry('FERRY_ERR_INVALID_ARGUMENT'));
});

test('compaction: the agent re-signs a 1-link chain to its current host, at a higher epoch', () => {
  const long = chainOf(MAX);
  const now = lastStart(MAX) + 5000;
  const before = verifyAgent(long, now);
  const fresh = freshChain(agent, before.subject, before.epoch + 1, now);
  assert.equal(fresh.length, 1);
  assert.equal(encodeChain(fresh).length, 166);
  assert.equal(encodeChain(long).length, chainSizeBytes(MAX));
  const after = receive(encodeChain(fresh), now);
  assert.ok(after.subject.equals(before.subject));
  assert.ok(after.epoch > before.epoch);
  assert.equal(after.notAfter, now + limit('DELEGATION_VALIDITY_MS'));
});
