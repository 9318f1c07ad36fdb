/**
 * Our dials through the connection core: one `dial{slot, ip, port}` command for every socket this
 * end opens, and the adapter's reports as inputs naming the slot: `dialStarted` (the socket
 * exists: a data socket's HELLO and its deadline come next, built by the core), `dialThrew` (on a
 * later turn: no socket), `dialFrame` (the acceptor's answer: attach, close or fail).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError, limit } from '../../../../src/util/index.js';
import { FrameType, type Frame } from '../../../../src/wire/index.js';
import type { ConnectionCore, CoreCommand, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn, pollAll } from './fixtures.js';

/** Zero MACs, as handshake.ts gives without keys. */
const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

function core(state: State): ConnectionCore {
  return coreIn(state, { helloCrypto });
}


function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'act') return `act:${c.action}`;
  if (c.kind === 'log') return `log:${c.event}`;
  if (c.kind === 'stale') return `stale:${c.event}`;
  if (c.kind === 'send') return `send:${c.slot}:${Object.entries(FrameType).find(([, v]) => v === c.frame.type)?.[0]}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

const shown = (c: ConnectionCore): string[] => pollAll(c).map(show);

/** A resume in RES_ACKED at the dialer: the `dial` its row asked for. */
function resumeDial(): { c: ConnectionCore; slot: number } {
  const c = core('SUSPENDED');
  c.handle('recv_res');
  const dial = pollAll(c).find((x): x is Extract<CoreCommand, { kind: 'dial' }> => x.kind === 'dial');
  assert.ok(dial, 'the dialer dials');
  return { c, slot: dial.slot };
}

const ackFrame: Frame = { type: FrameType.HELLO_ACK, acceptorNonce: Buffer.alloc(16, 3), received: 5, limit: 1000, mac: Buffer.alloc(32) };

test('dials: the socket exists (dialStarted): its HELLO deadline, then the HELLO, come next; a slot not asked for gives nothing', () => {
  const { c, slot } = resumeDial();
  c.dialStarted(slot + 10);
  assert.deepEqual(shown(c), [], 'no dial asked on that slot');
  c.dialStarted(slot);
  const [deadline, hello] = pollAll(c);
  assert.deepEqual(deadline, { kind: 'deadline', name: 'hello', slot, ms: limit('HELLO_TIMEOUT_MS') });
  assert.ok(hello?.kind === 'send' && hello.slot === slot && hello.frame.type === FrameType.HELLO);
  assert.equal(c.slots.dialing, slot, 'the outstanding dial');
  c.dialStarted(slot);
  assert.deepEqual(shown(c), [], 'started once');
});

test('dials: the acceptor\'s HELLO_ACK clears the deadline and attaches the slot at its offsets; a later frame does nothing; a REJECT fails the dial', () => {
  const { c, slot } = resumeDial();
  c.dialStarted(slot);
  pollAll(c);
  c.dialFrame(slot, ackFrame);
  assert.deepEqual(pollAll(c), [
    { kind: 'clear', name: 'hello', slot },
    { kind: 'attach', slot, keys: undefined, received: 5, limit: 1000 },
  ]);
  c.dialFrame(slot, ackFrame);
  assert.deepEqual(shown(c), [], 'answered once');

  const r = resumeDial();
  r.c.dialStarted(r.slot);
  pollAll(r.c);
  r.c.dialFrame(r.slot, { type: FrameType.REJECT, wireCode: 0, detail: 'no' } as Frame);
  assert.deepEqual(shown(r.c), [`clear:${r.slot}`, `close:${r.slot}`, 'log:dial_failed', 'RES_ACKED->SUSPENDED']);
});

test('dials: a HELLO_ACK of a dial a suspend overtook closes the socket instead of attaching it', () => {
  const { c, slot } = resumeDial();
  c.dialStarted(slot);
  pollAll(c);
  c.handle('suspend');
  pollAll(c);
  assert.equal(c.state, 'SUS_SENT');
  c.dialFrame(slot, ackFrame);
  assert.deepEqual(shown(c), [`clear:${slot}`, `close:${slot}`]);
});

test('dials: a resume dial that threw loses the resume\'s socket (socket_lost, if the state still takes it); once', () => {
  const { c, slot } = resumeDial();
  c.dialThrew(slot, new Error('EINVAL'));
  assert.deepEqual(shown(c), ['log:dial_failed', 'RES_ACKED->SUSPENDED']);
  assert.equal(c.slots.dialing, undefined);
  c.dialThrew(slot, new Error('again'));
  assert.deepEqual(shown(c), [], 'reported once');
  // Once the resume is over, the lost socket changes nothing.
  const late = resumeDial();
  late.c.handle('close');
  pollAll(late.c);
  assert.equal(late.c.state, 'CLOSE_SENT');
  late.c.dialThrew(late.slot, new Error('EINVAL'));
  assert.deepEqual(shown(late.c), ['log:dial_failed']);
  assert.equal(late.c.state, 'CLOSE_SENT');
});

test('dials: the control-channel open\'s data dial that threw leaves an ESTABLISHED connection resuming by itself', () => {
  const c = core('ESTABLISHED');
  const dial = c.slots.askDial('open', Buffer.alloc(16), undefined, { ip: '10.0.0.2', port: 9 });
  assert.deepEqual(dial, { kind: 'dial', slot: dial.slot, ip: '10.0.0.2', port: 9 });
  c.dialThrew(dial.slot, new FerryError('FERRY_ERR_INVALID_ARGUMENT'));
  // The core wants the resume itself (auto_resume, in its turn): the row's schedule_resume sets the retry.
  assert.deepEqual(shown(c), ['log:dial_failed', 'ESTABLISHED->SUSPENDED']);
  assert.equal(c.intent.autoResume, true);
  assert.ok(c.hasDeadline('resume_retry'));
});
