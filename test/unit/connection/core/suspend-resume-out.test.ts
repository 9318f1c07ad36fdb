/**
 * How our SUSPEND and RESUME go out, as the core decides them (`send_sus`, `send_res`), with the
 * adapter's sockets reduced to whether a slot's socket is usable: a user suspend on a live socket
 * goes in-band (`send_suspend` on it, then its drain awaited, or, the socket dead, closed and the
 * SUS datagram instead); a move's suspend or one without a live socket is the SUS datagram; a
 * resume with a usable kept socket and nothing to prove is offered on it (RESUME, its offer
 * bounded), else the kept socket goes and the RES datagram goes at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionCore, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { limit } from '../../../../src/util/index.js';
import { FrameType, MessageType, decodeConnControl } from '../../../../src/wire/index.js';
import { coreIn, pollAll } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** A core in `state` whose sockets are usable as `open` says. */
function core(state: State, open: (slot: number | undefined) => boolean): ConnectionCore {
  const c = coreIn(state, { helloCrypto });
  c.bindSockets({ isOpen: open, remoteAddress: () => undefined });
  return c;
}


/** A slot that carries the connection. */
function carrying(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  return slot;
}

test('send_sus: a user suspend on a live socket goes in-band; sent, its drain is awaited on that slot', () => {
  const c = core('ESTABLISHED', () => true);
  const slot = carrying(c);
  assert.equal(c.intent.suspend('user', 0).kind, 'suspend');
  c.handle('suspend');
  const out = pollAll(c);
  assert.equal(out.length, 2);
  const send = out[1]!;
  assert.ok(send.kind === 'send_suspend' && send.slot === slot && send.frame.type === FrameType.SUSPEND);
  assert.equal(c.slots.data, undefined, 'the slot no longer carries the connection');
  c.suspendFrameSent(slot, true);
  assert.deepEqual(pollAll(c), [{ kind: 'deadline', name: 'drain', slot, ms: limit('DRAIN_TIMEOUT_MS') }]);
  assert.equal(c.slots.draining.has(slot), true);
});

test('send_sus: an in-band SUSPEND the socket did not take, on a socket that died meanwhile: closed, and the SUS datagram instead', () => {
  let up = true;
  const c = core('ESTABLISHED', () => up);
  const slot = carrying(c);
  c.intent.suspend('user', 0);
  c.handle('suspend');
  const send = pollAll(c).at(-1);
  assert.ok(send?.kind === 'send_suspend');
  up = false;
  c.suspendFrameSent(slot, false);
  const out = pollAll(c);
  assert.deepEqual(out[0], { kind: 'close', slot });
  const sus = out[1];
  assert.ok(sus?.kind === 'request' && sus.type === MessageType.SUS);
  assert.equal(out.length, 2);
  // Not taken but the socket still up: the drain is awaited all the same.
  const d = core('ESTABLISHED', () => true);
  const s2 = carrying(d);
  d.intent.suspend('user', 0);
  d.handle('suspend');
  pollAll(d);
  d.suspendFrameSent(s2, false);
  assert.equal(pollAll(d)[0]?.kind, 'deadline');
});

test('send_sus: a move\'s suspend, or one without a usable socket, is the SUS datagram (a move\'s says so: reason 1)', () => {
  const moving = core('ESTABLISHED', () => true);
  carrying(moving);
  moving.intent.suspend('move', 0);
  moving.handle('suspend');
  const out = pollAll(moving);
  const sus = out[1];
  assert.ok(sus?.kind === 'request' && sus.type === MessageType.SUS);
  assert.equal(decodeConnControl(sus.body, sus.type).reason, 1);
  assert.ok(moving.slots.data !== undefined, 'the live socket still carries the connection (its drain follows the SUS_ACK)');
  const dead = core('ESTABLISHED', () => false);
  carrying(dead);
  dead.intent.suspend('user', 0);
  dead.handle('suspend');
  assert.deepEqual(
    pollAll(dead).map((c) => c.kind),
    ['transition', 'request'],
  );
});

/** A SUSPENDED core with a socket kept for a resume on it (both DRAINs crossed on `slot`). */
function keptCore(open: (slot: number | undefined) => boolean): { c: ConnectionCore; slot: number } {
  const c = core('SUSPENDED', open);
  const slot = carrying(c);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  assert.equal(c.slots.kept, slot);
  return { c, slot };
}

test('send_res: with a usable kept socket and nothing to prove, RESUME is offered on it, the offer bounded by its resume_offer deadline', () => {
  const { c, slot } = keptCore(() => true);
  c.handle('resume');
  const out = pollAll(c, 100);
  assert.deepEqual(out.slice(1), [{ kind: 'send', slot, frame: { type: FrameType.RESUME } }]);
  assert.equal(c.slots.offered, slot);
  assert.equal(c.hasDeadline('resume_offer', slot), true);
});

test('send_res: a kept socket that is no longer usable, or a proof due, drops it and sends the RES datagram', () => {
  const { c, slot } = keptCore((s) => s !== slot);
  c.handle('resume');
  const out = pollAll(c, 100);
  const kinds = out.map((x) => x.kind);
  assert.deepEqual(kinds.slice(1), ['clear', 'clear', 'log', 'close', 'request']);
  assert.deepEqual(out[4], { kind: 'close', slot });
  const res = out[5];
  assert.ok(res?.kind === 'request' && res.type === MessageType.RES);
  assert.equal(c.slots.kept, undefined);
  // Without a kept socket: the RES datagram alone.
  const bare = core('SUSPENDED', () => true);
  bare.handle('resume');
  assert.deepEqual(
    pollAll(bare).map((x) => x.kind),
    ['transition', 'request'],
  );
});
