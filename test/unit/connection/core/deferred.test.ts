/**
 * What the core hands the adapter to give back on a later turn (core/connection-core.ts
 * `Deferred`): when each is due (`dueAt`: the turn's ACK once the turn's I/O is queued, the rest
 * on the next microtask), and what each comes to when it is handed back (`deferredDue`): the event
 * of `fire_later` (stale if the state moved on), the peer's SUSPEND held through a row, the ACK
 * of the turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dueAt, type ConnectionCore, type CoreCommand, type Deferred } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { FrameType } from '../../../../src/wire/index.js';
import { coreIn, pollAll } from './fixtures.js';

/** A core in `state` whose sockets in `open` are usable. */
function core(state: State, open: (slot: number | undefined) => boolean = (slot) => slot !== undefined): ConnectionCore {
  const c = coreIn(state);
  c.bindSockets({ isOpen: open, remoteAddress: () => undefined });
  return c;
}

/** Slot `slot` carries the connection (as after a dial answered). */
function carry(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  return slot;
}

function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'stale') return `stale:${c.event}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

/** The one deferred command among `out`. */
function deferredOf(out: CoreCommand[], kind: Deferred['kind']): Deferred {
  const found = out.filter((x): x is Deferred => x.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in ${out.map(show).join(', ')}`);
  return found[0]!;
}

test('deferred: the turn\'s ACK is due once the turn\'s I/O is queued; an event and the peer\'s held SUSPEND on the next microtask', () => {
  assert.equal(dueAt({ kind: 'ack_at_turn_end', slot: 1 }), 'turn');
  assert.equal(dueAt({ kind: 'peer_suspends', slot: 1 }), 'microtask');
  assert.equal(dueAt({ kind: 'fire_later', event: 'drained' }), 'microtask');
});

test('deferred: fire_later hands its event back (the drain with no usable socket ends), stale if the state moved on', () => {
  const c = core('ESTABLISHED', () => false);
  carry(c);
  c.handle('recv_sus');
  const later = deferredOf(pollAll(c), 'fire_later');
  c.deferredDue(later, 0);
  assert.deepEqual(pollAll(c).map(show), ['SUS_ACKED->SUSPENDED']);
  const moved = core('ESTABLISHED');
  moved.deferredDue(later, 0);
  assert.deepEqual(pollAll(moved).map(show), ['stale:drained'], 'ESTABLISHED takes no drained');
});

test('deferred: the peer\'s SUSPEND held through a row is taken when handed back', () => {
  const c = core('RES_SENT');
  const slot = carry(c);
  c.handle('socket_ready');
  assert.equal(c.poll(0)?.kind, 'transition');
  c.frame(slot, { type: FrameType.SUSPEND, received: 0 });
  const held = deferredOf(pollAll(c), 'peer_suspends');
  assert.equal(c.state, 'ESTABLISHED');
  c.deferredDue(held, 10);
  assert.ok(pollAll(c).map(show).includes('ESTABLISHED->SUS_ACKED'));
});

test('deferred: the turn\'s ACK, handed back, goes on the socket its DATA came on', () => {
  const c = core('ESTABLISHED');
  const slot = carry(c);
  c.flow.ack();
  c.frame(slot, { type: FrameType.DATA, offset: 0, payload: Buffer.alloc(10, 1) });
  pollAll(c);
  // A duplicate is acknowledged at the end of the turn.
  c.frame(slot, { type: FrameType.DATA, offset: 0, payload: Buffer.alloc(10, 1) });
  const ack = deferredOf(pollAll(c), 'ack_at_turn_end');
  c.deferredDue(ack, 0);
  assert.deepEqual(pollAll(c).map(show), [`send_ack:${slot}`]);
});
