// The agent checkpoint's codecs (src/host/agent-checkpoint.ts): what a move carries of an agent
// and, for an agent with code, its landing. A valid one comes back equal (also through JSON);
// every bad field is refused with its stable code (FERRY_ERR_MALFORMED_CHECKPOINT; another
// version FERRY_ERR_UNSUPPORTED_VERSION; a landing without a credential FERRY_ERR_NO_CREDENTIAL);
// arbitrary input never gets through or throws anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeAgentCheckpoint, decodeAgentLanding } from '../../../src/host/agent-checkpoint.js';
import type { AgentCheckpoint } from '../../../src/host/index.js';
import { isFerryError, type ErrorCode } from '../../../src/util/index.js';
import { endpointCheckpoint } from '../../helpers/checkpoints.js';

const endpoint = endpointCheckpoint;

function agent(): AgentCheckpoint {
  return { v: 1, epoch: 4, agentSeed: '5a'.repeat(32), listening: true, endpoints: [endpoint()] };
}

function landing(): Record<string, unknown> {
  return {
    v: 1,
    agentId: '01'.repeat(16),
    owner: '02'.repeat(16),
    code: 'export default {}',
    codeHash: 'c0'.repeat(32),
    credential: 'ferry-credential-text',
    state: Buffer.from('state').toString('base64'),
    connections: [
      { key: `${'ab'.repeat(16)}/client`, remoteAgent: 'fe'.repeat(16), connectionId: 'ab'.repeat(16), undelivered: '', writeEnded: false, closed: false },
      { key: `${'cd'.repeat(16)}/server`, remoteAgent: 'fe'.repeat(16), connectionId: 'cd'.repeat(16), undelivered: 'AAE=', writeEnded: true, closed: true, error: { code: 'FERRY_ERR_PEER_ABORTED', message: 'gone' }, queued: true },
    ],
  };
}

const refused = (code: ErrorCode) => (e: unknown) => isFerryError(e, code);

test('a valid agent checkpoint decodes to itself, also after JSON and without its epoch', () => {
  assert.deepEqual(decodeAgentCheckpoint(agent()), agent());
  assert.deepEqual(decodeAgentCheckpoint(JSON.parse(JSON.stringify(agent()))), agent());
  const { epoch: _, ...noEpoch } = agent();
  assert.deepEqual(decodeAgentCheckpoint(noEpoch), noEpoch);
  assert.deepEqual(decodeAgentCheckpoint({ ...agent(), endpoints: [] }), { ...agent(), endpoints: [] });
  // A landing is not what attaching uses: it is left out.
  assert.deepEqual(decodeAgentCheckpoint({ ...agent(), landing: landing() }), agent());
});

test('every bad field of an agent checkpoint is refused with its code', () => {
  const cases: [string, ErrorCode, (c: Record<string, any>) => void][] = [
    ['version 2', 'FERRY_ERR_UNSUPPORTED_VERSION', (c) => (c.v = 2)],
    ['version missing', 'FERRY_ERR_UNSUPPORTED_VERSION', (c) => delete c.v],
    ['agentSeed short', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.agentSeed = 'ab')],
    ['agentSeed upper case', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.agentSeed = 'AB'.repeat(32))],
    ['endpoints not a list', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.endpoints = {})],
    ['listening missing', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => delete c.listening],
    ['listening not a boolean', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.listening = 1)],
    ['epoch negative', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.epoch = -1)],
    ['epoch fractional', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.epoch = 1.5)],
    ['epoch null', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.epoch = null)],
    ['epoch a string', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.epoch = '4')],
    ['an endpoint with bad base64', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.endpoints[0].send.data = 'bad')],
    ['an endpoint of another version', 'FERRY_ERR_UNSUPPORTED_VERSION', (c) => (c.endpoints[0].v = 2)],
    ['an endpoint not an object', 'FERRY_ERR_MALFORMED_CHECKPOINT', (c) => (c.endpoints[0] = 'x')],
  ];
  for (const [name, code, mutate] of cases) {
    const c = JSON.parse(JSON.stringify(agent()));
    mutate(c);
    assert.throws(() => decodeAgentCheckpoint(c), refused(code), name);
  }
  for (const x of [null, undefined, 7, 'cp', [agent()]]) assert.throws(() => decodeAgentCheckpoint(x), refused('FERRY_ERR_MALFORMED_CHECKPOINT'), String(x));
});

test('a valid landing decodes to itself, also after JSON; absent optional fields may be undefined', () => {
  assert.deepEqual(decodeAgentLanding(landing()), landing());
  assert.deepEqual(decodeAgentLanding(JSON.parse(JSON.stringify(landing()))), landing());
  const l = landing();
  (l.connections as Record<string, unknown>[])[0]!.error = undefined;
  (l.connections as Record<string, unknown>[])[0]!.queued = undefined;
  assert.deepEqual(decodeAgentLanding(l), landing());
  assert.deepEqual(decodeAgentLanding({ ...landing(), connections: [] }), { ...landing(), connections: [] });
});

test('every bad field of a landing is refused with its code, in the order admission judged it', () => {
  const cases: [string, ErrorCode, (l: Record<string, any>) => void][] = [
    ['version 2', 'FERRY_ERR_UNSUPPORTED_VERSION', (l) => (l.v = 2)],
    ['no credential', 'FERRY_ERR_NO_CREDENTIAL', (l) => delete l.credential],
    ['credential not text', 'FERRY_ERR_NO_CREDENTIAL', (l) => (l.credential = { sig: 'x' })],
    ['another version and no credential: the version first', 'FERRY_ERR_UNSUPPORTED_VERSION', (l) => ((l.v = 0), delete l.credential)],
    ['agentId not an id', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.agentId = 'agent')],
    ['owner missing', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => delete l.owner],
    ['code not a string', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.code = 42)],
    ['codeHash not a string', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.codeHash = null)],
    ['state not a string', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.state = [1, 2])],
    ['connections not a list', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections = {})],
    ['connections missing', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => delete l.connections],
    ['a connection not an object', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections[0] = 'c')],
    ['a connection without key', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => delete l.connections[0].key],
    ['undelivered not a string', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections[1].undelivered = 5)],
    ['writeEnded not a boolean', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections[0].writeEnded = 'no')],
    ['closed missing', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => delete l.connections[0].closed],
    ['queued not a boolean', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections[1].queued = 1)],
    ['error not an object', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => (l.connections[1].error = 'boom')],
    ['error without message', 'FERRY_ERR_MALFORMED_CHECKPOINT', (l) => delete l.connections[1].error.message],
  ];
  for (const [name, code, mutate] of cases) {
    const l = JSON.parse(JSON.stringify(landing()));
    mutate(l);
    assert.throws(() => decodeAgentLanding(l), refused(code), name);
  }
  for (const x of [null, undefined, 7, 'landing', [landing()]]) assert.throws(() => decodeAgentLanding(x), refused('FERRY_ERR_UNSUPPORTED_VERSION'), String(x));
});

test('arbitrary input is refused with a typed error, never anything else', () => {
  const codes: ErrorCode[] = ['FERRY_ERR_MALFORMED_CHECKPOINT', 'FERRY_ERR_UNSUPPORTED_VERSION', 'FERRY_ERR_NO_CREDENTIAL'];
  fc.assert(
    fc.property(fc.anything(), (x) => {
      for (const decode of [decodeAgentCheckpoint, decodeAgentLanding]) {
        try {
          decode(x);
          assert.fail('arbitrary input decoded');
        } catch (e) {
          assert.ok(codes.some((c) => isFerryError(e, c)), String(e));
        }
      }
    }),
    { numRuns: 300 },
  );
  // One field of a valid landing replaced by anything: refused with a typed error, or (a value
  // that happens to fit) decoded to what it decodes to again.
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(landing())), fc.anything(), (field, value) => {
      const l = { ...landing(), [field]: value };
      try {
        const d = decodeAgentLanding(l);
        assert.deepEqual(d, decodeAgentLanding(JSON.parse(JSON.stringify(d))));
      } catch (e) {
        assert.ok(codes.some((c) => isFerryError(e, c)), String(e));
      }
    }),
    { numRuns: 300 },
  );
});
