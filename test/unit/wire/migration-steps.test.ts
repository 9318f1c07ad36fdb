/**
 * The migration step bodies (STYLE rule 3): each step round-trips with arbitrary valid fields and
 * its bytes are the JSON the channel has always carried (the wire format did not change); every
 * strict prefix of a valid body, a body with a field missing, of the wrong type or range, with an
 * unknown field, with a list or string above its bound, and a body over MAX_FRAME_PAYLOAD are
 * refused with FERRY_ERR_MALFORMED_MIGRATION_STEP; random bytes never throw anything but a
 * FerryError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Identity, encodeChain, freshChain, type AgentId } from '../../../src/identity/index.js';
import { FerryError, isFerryError, limit } from '../../../src/util/index.js';
import {
  MIGRATION_ABORT_DETAIL_CHARS,
  decodeAbortStep,
  decodeCheckpointBody,
  decodeCheckpointEndStep,
  decodeCommittedStep,
  decodeConfirmStep,
  decodeConnectionIdsStep,
  decodeDelegateStep,
  decodePeersStep,
  encodeAbortStep,
  encodeCheckpointBody,
  encodeCheckpointEndStep,
  encodeCommittedStep,
  encodeConfirmStep,
  encodeConnectionIdsStep,
  encodeDelegateStep,
  encodePeersStep,
  type DelegateStep,
} from '../../../src/wire/index.js';

const M = 'FERRY_ERR_MALFORMED_MIGRATION_STEP';
const malformed = (e: unknown): boolean => isFerryError(e, M);
const body = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const idArb = fc.stringMatching(/^[0-9a-f]{32}$/).map((s) => s as AgentId);
const hexArb = (bytes: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b));

const agent = Identity.generate();
const destination = Identity.generate();
const now = Date.now();
function delegate(epoch = 3, admission = true): DelegateStep {
  return {
    agents: [
      {
        agent: agent.id,
        agentKey: agent.publicRaw,
        epoch,
        chain: freshChain(agent, destination.publicRaw, epoch, now),
        ...(admission ? { admission: { owner: 'ab'.repeat(16), codeHash: 'cd'.repeat(32), credential: 'AAAA/+==' } } : {}),
      },
    ],
  };
}

/** Every strict prefix of `bytes` is refused by `decode` with the typed code. */
function prefixesRefused(bytes: Buffer, decode: (b: Buffer) => unknown): void {
  for (let i = 0; i < bytes.length; i++) assert.throws(() => decode(bytes.subarray(0, i)), malformed, `prefix of ${i} bytes`);
}

test('DELEGATE: round trip, the same JSON as before, prefixes and bad fields refused', () => {
  const d = delegate();
  const enc = encodeDelegateStep(d);
  const a = d.agents[0]!;
  // The body the source built inline before the codec existed: the wire format is unchanged.
  assert.equal(
    enc.toString(),
    JSON.stringify({ agents: [{ agent: a.agent, agentKey: a.agentKey.toString('hex'), epoch: a.epoch, chain: encodeChain(a.chain).toString('hex'), admission: a.admission }] }),
  );
  const back = decodeDelegateStep(enc);
  assert.equal(back.agents[0]!.agent, a.agent);
  assert.ok(back.agents[0]!.agentKey.equals(a.agentKey));
  assert.equal(back.agents[0]!.epoch, 3);
  assert.ok(encodeChain(back.agents[0]!.chain).equals(encodeChain(a.chain)));
  assert.deepEqual(back.agents[0]!.admission, a.admission);
  assert.equal(decodeDelegateStep(encodeDelegateStep(delegate(1, false))).agents[0]!.admission, undefined);
  prefixesRefused(enc, decodeDelegateStep);

  const raw = JSON.parse(enc.toString()) as { agents: Record<string, unknown>[] };
  const variant = (f: (x: Record<string, unknown>) => void): Buffer => {
    const copy = structuredClone(raw);
    f(copy.agents[0]!);
    return body(copy);
  };
  const bad: [string, Buffer][] = [
    ['unknown field', variant((x) => (x.extra = 1))],
    ['missing agentKey', variant((x) => delete x.agentKey)],
    ['epoch 0', variant((x) => (x.epoch = 0))],
    ['epoch fraction', variant((x) => (x.epoch = 1.5))],
    ['epoch as string', variant((x) => (x.epoch = '3'))],
    ['agent id uppercase', variant((x) => (x.agent = String(x.agent).toUpperCase()))],
    ['agentKey 31 bytes', variant((x) => (x.agentKey = String(x.agentKey).slice(2)))],
    ['chain odd hex', variant((x) => (x.chain = `${String(x.chain)}0`))],
    ['chain trailing byte', variant((x) => (x.chain = `${String(x.chain)}00`))],
    ['admission unknown field', variant((x) => ((x.admission as Record<string, unknown>).x = 1))],
    ['codeHash short', variant((x) => ((x.admission as Record<string, unknown>).codeHash = 'cd'))],
    ['credential not base64', variant((x) => ((x.admission as Record<string, unknown>).credential = 'a b'))],
    ['credential too long', variant((x) => ((x.admission as Record<string, unknown>).credential = 'A'.repeat(4 * 8192 + 4)))],
    ['no agents', body({ agents: [] })],
    ['too many agents', body({ agents: Array.from({ length: limit('MIGRATION_GROUP_AGENTS') + 1 }, () => raw.agents[0]) })],
    ['agents not a list', body({ agents: {} })],
    ['a list, not an object', body([raw])],
    ['not JSON', Buffer.from('{"agents":')],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
  ];
  for (const [what, b] of bad) assert.throws(() => decodeDelegateStep(b), malformed, what);
  // The chain inside keeps its own codec's codes.
  const longChain = variant((x) => (x.chain = `ff${String(x.chain).slice(2)}`));
  assert.throws(() => decodeDelegateStep(longChain), (e) => isFerryError(e, 'FERRY_ERR_CHAIN_TOO_LONG'));
});

test('a body over MAX_FRAME_PAYLOAD is refused before it is parsed', () => {
  const huge = Buffer.alloc(limit('MAX_FRAME_PAYLOAD') + 1, 0x20);
  for (const decode of [decodeDelegateStep, decodePeersStep, decodeConnectionIdsStep, decodeConfirmStep, decodeCheckpointEndStep, decodeCommittedStep, decodeAbortStep]) {
    assert.throws(() => decode(huge), (e) => malformed(e) && /exceeds MAX_FRAME_PAYLOAD/.test((e as Error).message), decode.name);
  }
});

test('PEERS: round trip, unchanged JSON, bounded, each field checked', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ agent: idArb, id: hexArb(16), role: fc.constantFrom('client' as const, 'server' as const), peer: idArb }).map((c) => ({ ...c })), { maxLength: 8 }), (connections) => {
      const enc = encodePeersStep({ connections });
      assert.equal(enc.toString(), JSON.stringify({ connections: connections.map((c) => ({ agent: c.agent, id: c.id.toString('hex'), role: c.role, peer: c.peer })) }));
      assert.deepEqual(decodePeersStep(enc), { connections });
    }),
  );
  const one = { agent: agent.id, id: 'aa'.repeat(16), role: 'client', peer: destination.id };
  prefixesRefused(body({ connections: [one] }), decodePeersStep);
  const bad: [string, unknown][] = [
    ['role', { connections: [{ ...one, role: 'both' }] }],
    ['id 15 bytes', { connections: [{ ...one, id: 'aa'.repeat(15) }] }],
    ['peer missing', { connections: [{ agent: one.agent, id: one.id, role: one.role }] }],
    ['unknown field', { connections: [{ ...one, epoch: 1 }] }],
    ['unknown top field', { connections: [], more: true }],
    ['null entry', { connections: [null] }],
    ['connections not a list', { connections: { length: 1 } }],
  ];
  for (const [what, v] of bad) assert.throws(() => decodePeersStep(body(v)), malformed, what);
  // The list bound is checked on the count before any entry is looked at.
  const many = Buffer.from(`{"connections":[${'0,'.repeat(limit('MAX_CONNECTIONS'))}0]}`);
  assert.throws(() => decodePeersStep(many), (e) => malformed(e) && /entries/.test((e as Error).message));
});

test('CONNECTION_IDS: round trip, ok must agree with the collisions', () => {
  const k = `${'0f'.repeat(16)}/server`;
  for (const s of [{ ok: true, collisions: [] }, { ok: false, collisions: [k] }]) {
    assert.equal(encodeConnectionIdsStep(s).toString(), JSON.stringify(s));
    assert.deepEqual(decodeConnectionIdsStep(encodeConnectionIdsStep(s)), s);
    prefixesRefused(encodeConnectionIdsStep(s), decodeConnectionIdsStep);
  }
  for (const v of [{ ok: true, collisions: [k] }, { ok: false, collisions: [] }, { ok: 1, collisions: [] }, { ok: false, collisions: [`${'0f'.repeat(16)}/peer`] }, { ok: true }]) {
    assert.throws(() => decodeConnectionIdsStep(body(v)), malformed, JSON.stringify(v));
  }
});

test('CONFIRM: exactly {}', () => {
  assert.equal(encodeConfirmStep().toString(), '{}');
  decodeConfirmStep(encodeConfirmStep());
  for (const b of ['', '{', '[]', '{"a":1}', 'null', '0']) assert.throws(() => decodeConfirmStep(Buffer.from(b)), malformed, b);
});

test('CHECKPOINT_END: round trip, length bounded by MAX_CHECKPOINT_BYTES, digest 32 bytes', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: limit('MAX_CHECKPOINT_BYTES') }), hexArb(32), (length, sha256) => {
      const enc = encodeCheckpointEndStep({ length, sha256 });
      assert.equal(enc.toString(), JSON.stringify({ length, sha256: sha256.toString('hex') }));
      assert.deepEqual(decodeCheckpointEndStep(enc), { length, sha256 });
    }),
  );
  const d = 'ab'.repeat(32);
  prefixesRefused(body({ length: 5, sha256: d }), decodeCheckpointEndStep);
  for (const v of [{ length: limit('MAX_CHECKPOINT_BYTES') + 1, sha256: d }, { length: -1, sha256: d }, { length: 5, sha256: d.toUpperCase() }, { length: 5, sha256: d.slice(2) }, { length: 5 }]) {
    assert.throws(() => decodeCheckpointEndStep(body(v)), malformed, JSON.stringify(v));
  }
});

test('COMMITTED: round trip, 1 to MIGRATION_GROUP_AGENTS agent ids with epochs', () => {
  fc.assert(
    fc.property(fc.uniqueArray(idArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 2 ** 40 }), (ids, epoch) => {
      const epochs = new Map(ids.map((id, i) => [id, epoch + i]));
      const enc = encodeCommittedStep({ epochs });
      assert.equal(enc.toString(), JSON.stringify({ epochs: Object.fromEntries(epochs) }));
      assert.deepEqual(decodeCommittedStep(enc), { epochs });
    }),
  );
  const many = Object.fromEntries(Array.from({ length: limit('MIGRATION_GROUP_AGENTS') + 1 }, (_, i) => [i.toString(16).padStart(32, '0'), 1]));
  for (const v of [{ epochs: {} }, { epochs: [] }, { epochs: { [agent.id]: 0 } }, { epochs: { nope: 1 } }, { epochs: { ['__proto__']: 1 } }, { epochs: many }]) {
    assert.throws(() => decodeCommittedStep(body(v)), malformed, JSON.stringify(v).slice(0, 60));
  }
  prefixesRefused(body({ epochs: { [agent.id]: 2 } }), decodeCommittedStep);
});

test('ABORT: round trip, the detail cut to its bound, the code shaped like one', () => {
  const long = 'x'.repeat(MIGRATION_ABORT_DETAIL_CHARS + 50);
  const enc = encodeAbortStep({ code: 'FERRY_ERR_POLICY_DENIED', detail: long });
  assert.equal(enc.toString(), JSON.stringify({ code: 'FERRY_ERR_POLICY_DENIED', detail: long.slice(0, MIGRATION_ABORT_DETAIL_CHARS) }));
  assert.deepEqual(decodeAbortStep(enc), { code: 'FERRY_ERR_POLICY_DENIED', detail: long.slice(0, MIGRATION_ABORT_DETAIL_CHARS) });
  prefixesRefused(enc, decodeAbortStep);
  for (const v of [{ code: 'EACCES', detail: '' }, { code: 'FERRY_ERR_X', detail: long }, { code: `FERRY_ERR_${'A'.repeat(60)}`, detail: '' }, { code: 'FERRY_ERR_X' }, { code: 'FERRY_ERR_X', detail: 5 }]) {
    assert.throws(() => decodeAbortStep(body(v)), malformed, JSON.stringify(v).slice(0, 60));
  }
});

test('the checkpoint body: envelope checked, one entry per delegated member', () => {
  const entry = { v: 1, epoch: 2, agentSeed: 'ab'.repeat(32), listening: true, endpoints: [{ anything: 1 }] };
  const enc = encodeCheckpointBody([entry]);
  assert.equal(enc.toString(), JSON.stringify({ agents: [entry] }));
  assert.deepEqual(decodeCheckpointBody(enc, 1), { agents: [entry] });
  const code = (e: unknown): boolean => isFerryError(e, 'FERRY_ERR_MALFORMED_CHECKPOINT');
  assert.throws(() => decodeCheckpointBody(enc, 2), code, 'one entry for two members');
  for (const v of [{ ...entry, agentSeed: 'ab' }, { ...entry, listening: 1 }, { ...entry, endpoints: {} }, { ...entry, epoch: -1 }, { ...entry, landing: [] }, { ...entry, extra: 1 }, { v: 1 }]) {
    assert.throws(() => decodeCheckpointBody(body({ agents: [v] }), 1), code, JSON.stringify(v).slice(0, 60));
  }
  assert.throws(() => decodeCheckpointBody(body({ agents: [{ ...entry, v: 2 }] }), 1), (e) => isFerryError(e, 'FERRY_ERR_UNSUPPORTED_VERSION'));
  for (let i = 0; i < enc.length; i++) assert.throws(() => decodeCheckpointBody(enc.subarray(0, i), 1), code, `prefix of ${i}`);
});

test('random bytes and random JSON never throw anything but a FerryError', () => {
  const decoders = [decodeDelegateStep, decodePeersStep, decodeConnectionIdsStep, decodeConfirmStep, decodeCheckpointEndStep, decodeCommittedStep, decodeAbortStep, (b: Buffer) => decodeCheckpointBody(b, 1)];
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.json().map((j) => Buffer.from(j))), (b) => {
      for (const decode of decoders) {
        try {
          decode(b);
        } catch (err) {
          assert.ok(err instanceof FerryError, `${decode.name}: ${String(err)}`);
        }
      }
    }),
  );
});
