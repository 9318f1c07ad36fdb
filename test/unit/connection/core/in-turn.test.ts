/**
 * The core's own part of what the data sockets' rules decide (core/connection-core.ts `InTurn`),
 * taken when its turn comes in the queue and never given out: our SUS forgotten and our suspend
 * counted when the peer drained first, the peer's resume on the kept socket (our retry's deadline
 * cleared as a command, the resume timed), the resume wanted after the carrying socket is lost,
 * and our SUS or RES datagram built when the in-band SUSPEND or RESUME found no answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionCore, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { FerryError } from '../../../../src/util/index.js';
import { FrameType, MessageType } from '../../../../src/wire/index.js';
import { coreIn, pollAll } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** A core in `state` whose every socket is usable. */
function core(state: State): ConnectionCore {
  const c = coreIn(state, { helloCrypto });
  c.bindSockets({ isOpen: (slot) => slot !== undefined, remoteAddress: () => undefined });
  return c;
}

/** A slot that carries the connection. */
function carrying(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  return slot;
}

/** The kinds of what the core gives out (what the adapter would carry out). */
const kinds = (c: ConnectionCore, now = 0): string[] => pollAll(c, now).map((x) => (x.kind === 'request' ? `request:${x.type}` : x.kind));

test('in turn: the peer drained first while our SUS datagram is out: that SUS is forgotten (its late answer changes nothing) and our suspend is counted once SUSPENDED', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  // A move's suspend goes by SUS datagram, the socket still carrying.
  c.intent.suspend('move', 10);
  c.handle('suspend');
  const sus = pollAll(c, 10).find((x) => x.kind === 'request');
  assert.ok(sus?.kind === 'request' && sus.type === MessageType.SUS);
  c.frame(slot, { type: FrameType.DRAIN, received: 0 });
  const out = kinds(c, 40);
  assert.ok(!out.includes('forget_sus') && !out.includes('suspend_counted'), out.join(' '));
  assert.equal(c.state, 'SUSPENDED');
  assert.equal(c.stats.suspends, 1);
  assert.equal(c.stats.lastSuspendMs, 30);
  // A reply to the forgotten SUS (even one that does not verify) is no answer of ours any more.
  c.replied(sus.id, { type: MessageType.SUS_ACK, body: Buffer.alloc(4) }, 50);
  assert.deepEqual(pollAll(c, 50), []);
});

test('in turn: the peer resumes on the kept socket: our resume retry\'s deadline is cleared by the adapter, the lookup it waited for forgotten, the resume timed', () => {
  const c = core('SUSPENDED');
  const slot = carrying(c);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  c.setDeadline('resume_retry', 500);
  c.keptFrame(slot, FrameType.RESUME);
  const out = pollAll(c, 100);
  assert.ok(out.some((x) => x.kind === 'clear' && x.name === 'resume_retry' && x.slot === 0), 'the retry\'s deadline cleared as a command');
  assert.ok(!out.some((x) => (x.kind as string) === 'peer_resumes'));
  assert.equal(c.state, 'ESTABLISHED');
  // Timed from the peer's RESUME (100) to ESTABLISHED (100).
  assert.equal(c.stats.resumes, 1);
  assert.equal(c.stats.lastResumeMs, 0);
});

test('in turn: the carrying socket lost while ESTABLISHED makes the connection resume by itself', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  assert.equal(c.intent.autoResume, false);
  c.socketClosed(slot, new FerryError('FERRY_ERR_MALFORMED_FRAME'), false);
  const out = kinds(c);
  assert.ok(!out.includes('auto_resume'), out.join(' '));
  assert.equal(c.intent.autoResume, true);
  assert.equal(c.state, 'SUSPENDED');
  assert.ok(c.hasDeadline('resume_retry'), 'the row\'s schedule_resume wants the retry');
});

test('in turn: our in-band SUSPEND unanswered in DRAIN_TIMEOUT_MS: the socket closes and our SUS datagram goes', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.intent.suspend('user', 0);
  c.handle('suspend');
  assert.deepEqual(kinds(c), ['transition', 'send_suspend']);
  c.suspendFrameSent(slot, true);
  pollAll(c);
  c.slotDeadlinePassed({ name: 'drain', slot, at: 0 }, true);
  assert.deepEqual(kinds(c), ['clear', 'close', `request:${MessageType.SUS}`]);
  assert.equal(c.state, 'SUS_SENT');
});

test('in turn: our in-band RESUME unanswered on the kept socket: the RES datagram goes', () => {
  const c = core('SUSPENDED');
  const slot = carrying(c);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  c.handle('resume');
  pollAll(c, 100);
  assert.equal(c.slots.offered, slot);
  c.slotDeadlinePassed({ name: 'resume_offer', slot, at: 0 }, true);
  const out = kinds(c, 200);
  assert.ok(out.includes(`request:${MessageType.RES}`), out.join(' '));
  assert.ok(!out.includes('resume_by_datagram'));
  assert.equal(c.state, 'RES_SENT');
});
