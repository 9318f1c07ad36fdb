/**
 * The data sockets' inputs of the connection core (a socket's close, a frame on the kept socket,
 * a slot's deadline, a failed dial): what core/slots.ts decides comes out of `poll()` as the
 * core's commands, ahead of anything queued, and an event among them is applied at once, with
 * its row, before the commands after it (as a direct call's `fire` did); one the state no longer
 * accepts comes out as `stale`. The event itself never comes out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../../../src/util/index.js';
import { FrameType } from '../../../../src/wire/index.js';
import type { ConnectionCore, CoreCommand, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn } from './fixtures.js';

/** Zero MACs, as handshake.ts gives without keys. */
const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

function core(state: State): ConnectionCore {
  return coreIn(state, { helloCrypto });
}

/** Every command the core gives out at `now`, as short strings. */
function drain(c: ConnectionCore, now = 0): string[] {
  const out: string[] = [];
  for (let x = c.poll(now); x; x = c.poll(now)) out.push(show(x));
  return out;
}

function show(c: CoreCommand): string {
  switch (c.kind) {
    case 'transition':
      return `${c.from}->${c.to}`;
    case 'act':
      return `act:${c.action}`;
    case 'stale':
      return `stale:${c.event}`;
    case 'log':
      return `log:${c.event}`;
    default:
      return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
  }
}

/** A slot that carries the connection (as after a dial answered). */
function carrying(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  return slot;
}

test('slot inputs: a drain deadline\'s event is applied at once, its row before the commands after it', () => {
  const c = core('SUS_ACKED');
  const slot = carrying(c);
  c.slots.drain(true);
  c.slotDeadlinePassed({ name: 'drain', slot, at: 0 }, true);
  // Without the peer's DRAIN the socket closes; `drained` takes SUS_ACKED to SUSPENDED before
  // the listeners are told the drain ended.
  assert.deepEqual(drain(c), [`clear:${slot}`, `close:${slot}`, 'SUS_ACKED->SUSPENDED', 'drained']);
  assert.equal(c.state, 'SUSPENDED');
  c.slotDeadlinePassed({ name: 'drain', slot, at: 0 }, true);
  assert.deepEqual(drain(c), [], 'a drain ends once');
});

test('slot inputs: an event the state no longer accepts comes out as stale and changes nothing', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.slots.drain(true);
  c.slotDeadlinePassed({ name: 'drain', slot, at: 0 }, false);
  assert.deepEqual(drain(c), [`clear:${slot}`, `close:${slot}`, 'stale:drained', 'drained']);
  assert.equal(c.state, 'ESTABLISHED');
});

test('slot inputs: the carrying socket closed while ESTABLISHED resumes by itself; a late close of another slot does nothing', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.socketClosed(slot + 1, undefined, false);
  assert.deepEqual(drain(c), []);
  c.socketClosed(slot, new FerryError('FERRY_ERR_MALFORMED_FRAME'), false);
  // The core wants the resume (auto_resume, taken in its turn, before the row): the row's
  // schedule_resume then sets the retry's deadline.
  assert.deepEqual(drain(c), ['log:data_socket_lost', 'ESTABLISHED->SUSPENDED']);
  assert.equal(c.slots.data, undefined);
  assert.equal(c.intent.autoResume, true);
  assert.ok(c.hasDeadline('resume_retry'));
});

test('slot inputs: an input\'s commands go ahead of what is queued; one that comes during a row\'s command belongs to the row, its event after the row', () => {
  const c = core('SUS_ACKED');
  const slot = carrying(c);
  c.slots.drain(true);
  // An event queued before the input (as one an earlier command handed in) is applied after the
  // input's own event: the input's commands, and their event, come first.
  c.handle('socket_lost');
  c.slotDeadlinePassed({ name: 'drain', slot, at: 0 }, true);
  assert.deepEqual(drain(c), [`clear:${slot}`, `close:${slot}`, 'SUS_ACKED->SUSPENDED', 'drained']);

  const r = core('ESTABLISHED');
  const data = carrying(r);
  r.handle('recv_res');
  assert.deepEqual(show(r.poll(0)!), 'ESTABLISHED->RES_ACKED');
  // While the adapter carries out the transition, the carrying socket reports its close: its
  // commands go out next, as the row's, and its socket_lost waits for the row's actions.
  r.socketClosed(data, undefined, false);
  // (The row's drop_socket finds no socket left to drop; its dial goes, this end being the dialer.)
  assert.deepEqual(drain(r), ['log:data_socket_lost', 'act:ack_res', `dial:${data + 1}`, 'RES_ACKED->SUSPENDED']);

  // Once the core ran dry, an input is nobody's row, even if the last command was a row's: its
  // event is applied at once again.
  const d = core('SUS_ACKED');
  const draining = carrying(d);
  d.slots.drain(true);
  d.handle('recv_sus_ack');
  assert.deepEqual(drain(d), ['stale:recv_sus_ack']);
  d.slotDeadlinePassed({ name: 'drain', slot: draining, at: 0 }, true);
  assert.deepEqual(drain(d), [`clear:${draining}`, `close:${draining}`, 'SUS_ACKED->SUSPENDED', 'drained']);
});

test('slot inputs: the HELLO deadline of a dial still waiting fails it; once answered or failed it does nothing', () => {
  const c = core('RES_SENT');
  const d = c.slots.dial('resume', Buffer.alloc(16), undefined);
  c.slotDeadlinePassed({ name: 'hello', slot: d.slot, at: 0 }, true);
  // The outstanding dial failed in RES_SENT: the resume's socket is lost, SUSPENDED to retry (no
  // RES of ours is out here, so the row's cancel_res comes to nothing).
  assert.deepEqual(drain(c), [`clear:${d.slot}`, `close:${d.slot}`, 'log:dial_failed', 'RES_SENT->SUSPENDED']);
  c.slotDeadlinePassed({ name: 'hello', slot: d.slot, at: 0 }, true);
  assert.deepEqual(drain(c), []);
});

test('slot inputs: the peer\'s RESUME on the kept socket is taken for a reuse: the peer\'s resume, then the row that reuses it', () => {
  const c = core('SUSPENDED');
  const slot = carrying(c);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  assert.equal(c.slots.kept, slot);
  c.keptFrame(slot, FrameType.RESUME);
  const out = drain(c);
  // The peer's resume (core's own, in its turn): our retry's deadline cleared by the adapter (slot 0).
  assert.deepEqual(out.slice(0, 3), [`clear:${slot}`, `clear:${slot}`, 'clear:0']);
  assert.equal(out[3], 'SUSPENDED->ESTABLISHED');
  assert.deepEqual(out.slice(4), ['act:ack_res', `reuse:${slot}`, `send:${slot}`, `send_ack:${slot}`, 'pump', 'established']);
  // A stray frame on a slot that is not the kept one closes it.
  c.keptFrame(slot + 5, FrameType.RESUME);
  assert.deepEqual(drain(c), [`close:${slot + 5}`]);
});
