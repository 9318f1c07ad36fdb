// The endpoint checkpoint codec: a valid checkpoint comes back equal (also through JSON), every
// bad field is refused with FERRY_ERR_MALFORMED_CHECKPOINT, another version with
// FERRY_ERR_UNSUPPORTED_VERSION, and arbitrary input never gets through or throws anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEndpointCheckpoint, type EndpointCheckpoint } from '../../../src/connection/index.js';
import { isFerryError } from '../../../src/util/index.js';
import { endpointCheckpoint } from '../../helpers/checkpoints.js';

const valid = endpointCheckpoint;

const refused = (code: string) => (e: unknown) => isFerryError(e, code as never);

test('a valid checkpoint decodes to itself, also after JSON', () => {
  assert.deepEqual(decodeEndpointCheckpoint(valid()), valid());
  assert.deepEqual(decodeEndpointCheckpoint(JSON.parse(JSON.stringify(valid()))), valid());
  const plain = { ...valid(), secure: false, master: '' } as Record<string, unknown>;
  delete plain.proven;
  delete plain.peerEpoch;
  assert.deepEqual(decodeEndpointCheckpoint(plain), plain);
});

test('every bad field is refused with FERRY_ERR_MALFORMED_CHECKPOINT', () => {
  const cases: [string, (c: Record<string, any>) => void][] = [
    ['send an array', (c) => (c.send = [])],
    ['connectionId short', (c) => (c.connectionId = 'ab')],
    ['connectionId upper case', (c) => (c.connectionId = 'AB'.repeat(16))],
    ['role', (c) => (c.role = 'admin')],
    ['localAgent', (c) => (c.localAgent = 42)],
    ['peerAgent', (c) => (c.peerAgent = 'zz'.repeat(16))],
    ['secure not boolean', (c) => (c.secure = 'yes')],
    ['master wrong length', (c) => (c.master = '5a'.repeat(16))],
    ['master without security', (c) => ((c.secure = false), (c.master = '5a'.repeat(32)))],
    ['controlCounter negative', (c) => (c.controlCounter = -1)],
    ['peerCounter fractional', (c) => (c.peerCounter = 1.5)],
    ['peerCounter unsafe', (c) => (c.peerCounter = 2 ** 60)],
    ['send missing', (c) => delete c.send],
    ['send.data not base64', (c) => (c.send.data = 'not base64!')],
    ['send.data not canonical', (c) => (c.send.data = 'QQ=')],
    ['send.fin not at the end', (c) => (c.send.fin = 1012)],
    ['send.acked a string', (c) => (c.send.acked = '1000')],
    ['receive.data past the window', (c) => ((c.receiveWindow = 4), (c.receive.data = Buffer.alloc(8).toString('base64')))],
    ['receive.fin below what is held', (c) => (c.receive.fin = 505)],
    ['peer.ip', (c) => (c.peer.ip = '10.0.0.2; rm -rf')],
    ['peer.controlPort 0', (c) => (c.peer.controlPort = 0)],
    ['peer.redirectorPort too big', (c) => (c.peer.redirectorPort = 70000)],
    ['peer.epoch missing', (c) => delete c.peer.epoch],
    ['sendBudget zero', (c) => (c.sendBudget = 0)],
    ['receiveWindow huge', (c) => (c.receiveWindow = 2 ** 40)],
    ['resume not boolean', (c) => (c.resume = 1)],
    ['proven not an object', (c) => (c.proven = 'here')],
    ['peerEpoch negative', (c) => (c.peerEpoch = -3)],
  ];
  for (const [what, mutate] of cases) {
    const c = valid() as unknown as Record<string, any>;
    mutate(c);
    assert.throws(() => decodeEndpointCheckpoint(c), refused('FERRY_ERR_MALFORMED_CHECKPOINT'), what);
  }
  assert.throws(() => decodeEndpointCheckpoint(null), refused('FERRY_ERR_MALFORMED_CHECKPOINT'));
  assert.throws(() => decodeEndpointCheckpoint({ ...valid(), v: 2 }), refused('FERRY_ERR_UNSUPPORTED_VERSION'));
});

test('an oversized buffer is refused by its length, before it is decoded', () => {
  const c = valid();
  c.receiveWindow = 1024;
  c.receive.data = 'A'.repeat(2000);
  assert.throws(() => decodeEndpointCheckpoint(c), (e: unknown) => isFerryError(e, 'FERRY_ERR_MALFORMED_CHECKPOINT') && /more than 1024 bytes/.test((e as Error).message));
});

test('arbitrary input: refused with a typed code or decoded to a checkpoint that decodes to itself', () => {
  const fieldNames = Object.keys(valid());
  fc.assert(
    fc.property(fc.constantFrom(...fieldNames), fc.jsonValue(), (field, value) => {
      const c = { ...valid(), [field]: value } as unknown;
      try {
        const out = decodeEndpointCheckpoint(c);
        assert.deepEqual(decodeEndpointCheckpoint(JSON.parse(JSON.stringify(out))), out);
      } catch (e) {
        assert.ok(isFerryError(e, 'FERRY_ERR_MALFORMED_CHECKPOINT') || isFerryError(e, 'FERRY_ERR_UNSUPPORTED_VERSION'), String(e));
      }
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      assert.throws(() => decodeEndpointCheckpoint(value), (e: unknown) => isFerryError(e, 'FERRY_ERR_MALFORMED_CHECKPOINT') || isFerryError(e, 'FERRY_ERR_UNSUPPORTED_VERSION'));
    }),
    { numRuns: 1000 },
  );
});

// Found by the property above (two of its counterexamples): -0 must come out as 0, and a version
// whose String() throws must still be refused with a typed code, not a TypeError.
test('-0 decodes as 0; a version that cannot be turned into a string is refused with its code', () => {
  const out = decodeEndpointCheckpoint({ ...valid(), peerEpoch: JSON.parse('-0') as number });
  assert.ok(Object.is(out.peerEpoch, 0));
  assert.throws(() => decodeEndpointCheckpoint({ ...valid(), v: { toString: 0 } }), refused('FERRY_ERR_UNSUPPORTED_VERSION'));
});
