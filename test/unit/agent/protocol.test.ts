// The worker -> host boundary: agent code shares its worker's realm, so every message is input
// from an adversary. parseWorkerMessage accepts the well-formed ones and refuses anything else with
// FERRY_ERR_AGENT_PROTOCOL, never another exception (fast-check over arbitrary values).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseWorkerMessage } from '../../../src/host/agent-protocol.js';
import { isFerryError, limit } from '../../../src/util/index.js';

const refused = (m: unknown): boolean => {
  try {
    parseWorkerMessage(m);
    return false;
  } catch (err) {
    if (!isFerryError(err, 'FERRY_ERR_AGENT_PROTOCOL')) throw err;
    return true;
  }
};

test('well-formed messages parse to themselves', () => {
  const ok = [
    { t: 'pong', seq: 3, external: 10 },
    { t: 'req', id: 1, op: 'connect', to: 'ab'.repeat(16) },
    { t: 'req', id: 2, op: 'listen' },
    { t: 'req', id: 3, op: 'migrate', target: 'h', state: { a: [1] }, consumed: [[1, 20]], queued: [2] },
    { t: 'frozen', id: 4, ok: true, state: null, consumed: [], queued: [] },
    { t: 'dropped', sid: 2, why: 'unaccepted' },
    { t: 'dropped', sid: 3, why: 'unhandled' },
    { t: 'ack', sid: 1, offset: 5 },
    { t: 'write', sid: 1, chunks: [new Uint8Array(3)] },
    { t: 'end', sid: 1 },
    { t: 'unlisten' },
    { t: 'done', ok: true, result: 7 },
  ];
  for (const m of ok) assert.deepEqual(parseWorkerMessage(m), m);
  // Unknown error codes from the worker are not believed.
  assert.deepEqual(parseWorkerMessage({ t: 'done', ok: false, code: 'FERRY_ERR_MADE_UP', message: 'x' }), { t: 'done', ok: false, code: 'FERRY_ERR_INTERNAL', message: 'x' });
});

test('malformed messages are FERRY_ERR_AGENT_PROTOCOL', () => {
  const bad = [
    null,
    42,
    'pong',
    [],
    { t: 'pong', seq: -1, external: 0 },
    { t: 'pong', seq: 1.5, external: 0 },
    { t: 'ack', sid: '1', offset: 0 },
    { t: 'ack', sid: 1, offset: 2 ** 60 },
    { t: 'req', id: 1, op: 'exec' },
    { t: 'req', id: 1, op: 'connect', to: 'x'.repeat(65) },
    { t: 'req', id: 1, op: 'migrate', target: 'h', consumed: [[1]] },
    { t: 'req', id: 1, op: 'migrate', target: 'h', consumed: [], queued: [-1] },
    { t: 'frozen', id: 1, ok: true, consumed: [] },
    { t: 'dropped', sid: 1, why: 'bored' },
    { t: 'write', sid: 1, chunks: [] },
    { t: 'write', sid: 1, chunks: ['text'] },
    { t: 'write', sid: 1, chunks: [new Uint8Array(limit('AGENT_MESSAGE_BYTES') + 1)] },
    { t: 'shell', cmd: 'rm -rf /' },
  ];
  for (const m of bad) assert.ok(refused(m), JSON.stringify(m)?.slice(0, 80));
});

test('arbitrary values never throw anything but FERRY_ERR_AGENT_PROTOCOL', () => {
  const types = fc.constantFrom('pong', 'ready', 'req', 'frozen', 'dropped', 'ack', 'write', 'end', 'close', 'destroy', 'unlisten', 'log', 'done', 'x');
  const shaped = fc.record({ t: types, id: fc.anything(), sid: fc.anything(), seq: fc.anything(), op: fc.constantFrom('connect', 'listen', 'migrate', 1), to: fc.anything(), chunks: fc.anything(), offset: fc.anything(), ok: fc.anything(), code: fc.anything(), message: fc.anything(), consumed: fc.anything(), external: fc.anything(), text: fc.anything(), level: fc.anything(), target: fc.anything() }, { requiredKeys: ['t'] });
  fc.assert(
    fc.property(fc.oneof(fc.anything(), shaped), (m) => {
      refused(m); // returns or throws AGENT_PROTOCOL; anything else fails the property
    }),
    { numRuns: 2000 },
  );
});
