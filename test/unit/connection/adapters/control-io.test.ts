/**
 * Our control requests carried out (adapters/control-io.ts) against a host whose control channel
 * and location service are the test's: a request goes with the core's options (a cancellable one
 * with an abort signal) and its reply or failure goes back to the core naming its id, then the
 * endpoint drives on; a cancel aborts only the request it names, once; a location service that
 * fails is a lookup without an answer, logged by the core, never an unhandled rejection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlIO, type ControlEnv } from '../../../../src/connection/adapters/control-io.js';
import { ControlAuth, type ConnectionCore, type CoreCommand, type RequestCommand } from '../../../../src/connection/core/index.js';
import { FerryError, isFerryError } from '../../../../src/util/index.js';
import { MessageType, decodeConnControl, encodeConnControl } from '../../../../src/wire/index.js';
import { coreIn, pollAll } from '../core/fixtures.js';

interface Sent {
  readonly to: string;
  readonly type: number;
  readonly opts: { maxTries?: number; signal?: AbortSignal; timeoutMs?: number } | undefined;
  resolve(r: { type: number; body: Buffer }): void;
  reject(e: unknown): void;
}

/** A host whose requests wait for the test, and whose location service fails with `locateError` (else finds nothing). */
function host(locateError?: Error): { env: ControlEnv; sent: Sent[] } {
  const sent: Sent[] = [];
  const env: ControlEnv = {
    request: (to, type, _body, opts) =>
      new Promise((resolve, reject) => {
        sent.push({ to, type, opts, resolve, reject });
        opts?.signal?.addEventListener('abort', () => reject(new FerryError('FERRY_ERR_ABORTED', undefined, { cause: opts.signal?.reason })));
      }),
    locate: () => (locateError ? Promise.reject(locateError) : Promise.resolve(undefined)),
  };
  return { env, sent };
}

/** A ControlIO over `core`, counting the endpoint's drives. */
function io(env: ControlEnv, core: ConnectionCore): { io: ControlIO; drives: () => number } {
  let n = 0;
  return { io: new ControlIO(env, core, () => 0, () => void n++), drives: () => n };
}

const turns = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The peer's SUS_ACK to `c` (plain). */
function susAck(c: RequestCommand): { type: number; body: Buffer } {
  const m = decodeConnControl(c.body, c.type);
  const head = { type: MessageType.SUS_ACK, connectionId: m.connectionId, senderRole: 'server' as const, counter: m.counter, reason: 0, redirectorPort: 0, challenge: Buffer.alloc(16) };
  return { type: MessageType.SUS_ACK, body: encodeConnControl(new ControlAuth().reply(undefined, head)) };
}

test('control io: a request goes with the core\'s options; its reply goes back to the core by its id and the endpoint drives on', async () => {
  const core = coreIn('ESTABLISHED');
  core.intent.suspend('move', 0);
  core.handle('suspend');
  const sus = pollAll(core).find((c): c is RequestCommand => c.kind === 'request');
  assert.ok(sus);
  const { env, sent } = host();
  const { io: control, drives } = io(env, core);
  control.carryOut(sus);
  assert.equal(sent.length, 1);
  assert.deepEqual([sent[0]!.to, sent[0]!.type, sent[0]!.opts], ['127.0.0.1:1000', MessageType.SUS, { maxTries: 4 }], 'not cancellable: no signal');
  sent[0]!.resolve(susAck(sus));
  await turns();
  assert.equal(drives(), 1);
  assert.ok(pollAll(core).some((c) => c.kind === 'transition' && c.to === 'SUSPENDED'), 'the SUS_ACK was the core\'s');
});

test('control io: a cancellable request has an abort signal; a cancel aborts the request it names (its failure goes back, changing nothing), once', async () => {
  const core = coreIn('SUSPENDED');
  core.handle('resume');
  const res = pollAll(core).find((c): c is RequestCommand => c.kind === 'request');
  assert.ok(res?.cancellable);
  const { env, sent } = host();
  const { io: control, drives } = io(env, core);
  control.carryOut(res);
  const signal = sent[0]!.opts?.signal;
  assert.ok(signal && !signal.aborted);
  control.carryOut({ kind: 'cancel', id: res.id + 1 });
  assert.equal(signal.aborted, false, 'another id: nothing');
  // The core's own cancel of that RES (its resume timed out).
  control.carryOut({ kind: 'cancel', id: res.id });
  assert.ok(signal.aborted && isFerryError(signal.reason) && signal.reason.code === 'FERRY_ERR_ABORTED');
  await turns();
  assert.equal(drives(), 1, 'the abort\'s rejection went back to the core');
  assert.deepEqual(pollAll(core), [], 'our own abort changes nothing');
  control.carryOut({ kind: 'cancel', id: res.id });
});

test('control io: a location service that fails is a lookup without an answer: the core logs why and goes on', async () => {
  const core = coreIn('SUSPENDED');
  core.intent.autoResume = true;
  core.recovery.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
  core.control.scheduleResume(0);
  const lookup = core.control.resumeDue(0);
  assert.ok(lookup);
  const { env } = host(new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', 'down'));
  const { io: control, drives } = io(env, core);
  control.carryOut(lookup);
  await turns();
  assert.equal(drives(), 1);
  const out: CoreCommand[] = pollAll(core);
  assert.deepEqual(out[0], { kind: 'log', level: 'info', event: 'lookup_failed', fields: { code: 'FERRY_ERR_DIRECTORY_UNAVAILABLE', detail: 'down' } });
  assert.ok(out.some((c) => c.kind === 'transition' && c.to === 'RES_SENT'), 'the resume tries where the peer was');
});
