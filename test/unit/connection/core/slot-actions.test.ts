/**
 * The table's data socket actions, decided by the connection core when their turn comes
 * (core/slots.ts): `drop_socket` closes the carrying slot, `drain` sends our DRAIN on it if its
 * socket is still usable (asked of the adapter's sockets) or ends on a later turn, `reuse_socket`
 * carries the stream on on the kept slot both ends agreed on, `dial_if_dialer` dials our resume
 * only at the dialer and only while no earlier dial is out; and a transition drops what the new
 * state does not keep (the kept socket, a HELLO held for a proof) before listeners hear of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType } from '../../../../src/wire/index.js';
import { limit } from '../../../../src/util/index.js';
import type { AgentId } from '../../../../src/identity/index.js';
import type { ConnectionCore, CoreCommand, CoreInit, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn, pollAll } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** A core in `state` whose sockets in `open` are usable. */
function core(state: State, open: number[] = [], extra: Partial<CoreInit> = {}): ConnectionCore {
  const c = coreIn(state, { helloCrypto, ...extra });
  c.bindSockets({ isOpen: (slot) => slot !== undefined && open.includes(slot) , remoteAddress: () => undefined });
  return c;
}


function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'act') return `act:${c.action}`;
  if (c.kind === 'log') return `log:${c.event}`;
  if (c.kind === 'send') return `send:${c.slot}:${Object.entries(FrameType).find(([, v]) => v === c.frame.type)?.[0]}`;
  if (c.kind === 'fire_later') return `fire_later:${c.event}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

const shown = (c: ConnectionCore): string[] => pollAll(c).map(show);

/** Slot `slot` carries the connection (as after a dial answered). */
function carry(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  return slot;
}

test('slot actions: drain sends our DRAIN on a carrying socket that is still usable, and waits DRAIN_TIMEOUT_MS for the peer\'s', () => {
  const c = core('ESTABLISHED', [1]);
  const slot = carry(c);
  assert.equal(slot, 1);
  c.handle('recv_sus');
  assert.deepEqual(shown(c), ['ESTABLISHED->SUS_ACKED', 'act:ack_sus', 'send:1:DRAIN', 'deadline:1']);
  assert.equal(c.slots.data, undefined, 'it no longer carries the connection');
  assert.ok(c.slots.draining.has(1));
});

test('slot actions: drain with no usable socket ends on a later turn', () => {
  for (const open of [[], [2]]) {
    const c = core('ESTABLISHED', open);
    carry(c);
    c.handle('recv_sus');
    assert.deepEqual(shown(c), ['ESTABLISHED->SUS_ACKED', 'act:ack_sus', 'fire_later:drained'], `usable: ${open.join(',')}`);
    assert.equal(c.slots.draining.size, 0);
  }
});

test('slot actions: drop_socket closes the carrying slot; with none it comes to nothing', () => {
  const c = core('ESTABLISHED', [1]);
  const slot = carry(c);
  c.handle('recv_cls');
  assert.deepEqual(shown(c), ['ESTABLISHED->CLOSE_ACKED', 'act:ack_cls', `close:${slot}`]);
  assert.equal(c.slots.data, undefined);
  const none = core('ESTABLISHED');
  none.handle('recv_cls');
  assert.deepEqual(shown(none), ['ESTABLISHED->CLOSE_ACKED', 'act:ack_cls']);
});

test('slot actions: dial_if_dialer dials at the dialer to the peer\'s dial target with its challenge; never at the other end, nor twice while a dial is out', () => {
  const c = core('SUSPENDED');
  c.handle('recv_res');
  const out = pollAll(c);
  const dial = out[2] as Extract<CoreCommand, { kind: 'dial' }>;
  assert.deepEqual(out.map(show), ['SUSPENDED->RES_ACKED', 'act:ack_res', `dial:${dial.slot}`]);
  const target = c.path.dialTarget();
  assert.deepEqual([dial.ip, dial.port, dial.first, dial.ahead], [target.ip, target.redirectorPort, undefined, undefined]);
  // The adapter dialled: that dial is out, its HELLO echoing the peer's challenge...
  c.dialStarted(dial.slot);
  const [deadline, hello] = pollAll(c);
  assert.deepEqual(deadline, { kind: 'deadline', name: 'hello', slot: dial.slot, ms: limit('HELLO_TIMEOUT_MS') });
  assert.ok(hello?.kind === 'send' && hello.frame.type === FrameType.HELLO && hello.frame.kind === 'resume');
  assert.deepEqual(hello.frame.challenge, c.path.peerChallenge);
  const d = { slot: dial.slot };
  // ...and a retransmitted RES dials nothing more...
  c.handle('recv_res');
  assert.deepEqual(shown(c), ['act:ack_res']);
  // ...but if that earlier dial fails, the resume dials again (core/slots.ts `redial`).
  c.dialFailed(d.slot, undefined);
  assert.deepEqual(shown(c), [`clear:${d.slot}`, `close:${d.slot}`, 'log:dial_failed', 'log:redial', `dial:${d.slot + 1}`]);
  const other = core('SUSPENDED', [], { localAgent: 'c'.repeat(32) as AgentId });
  other.handle('recv_res');
  assert.deepEqual(shown(other), ['SUSPENDED->RES_ACKED', 'act:ack_res'], 'the higher AgentId waits for the peer\'s dial');
});

test('slot actions: reuse_socket carries the stream on on the kept slot; the peer\'s RESUME is answered first', () => {
  const c = core('SUS_ACKED', [1]);
  const slot = carry(c);
  c.slots.drain(true);
  pollAll(c);
  c.slots.drainEnded(slot, true, true, false);
  c.handle('drained');
  pollAll(c);
  assert.equal(c.state, 'SUSPENDED');
  assert.equal(c.slots.kept, slot);
  c.keptFrame(slot, FrameType.RESUME);
  const out = pollAll(c);
  // The socket carries again, our RESUME_ACK first on it, then our offsets restated and the pump.
  const at = out.findIndex((x) => x.kind === 'reuse');
  assert.deepEqual(out.slice(at, at + 4), [{ kind: 'reuse', slot }, { kind: 'send', slot, frame: { type: FrameType.RESUME_ACK } }, { kind: 'send_ack', slot }, { kind: 'pump' }]);
  assert.equal(c.slots.data, slot, 'it carries the connection again');
  assert.equal(c.slots.kept, undefined);
  // Once taken, a reuse_socket finds nothing (a second RESUME_ACK never goes).
  c.handle('recv_res_ack_reuse');
  assert.equal(pollAll(c).find((x) => x.kind === 'reuse'), undefined);
});

test('slot actions: a transition that does not keep the kept socket closes it before the transition comes out', () => {
  const c = core('SUS_ACKED', [1]);
  const slot = carry(c);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  assert.equal(c.slots.kept, slot);
  c.handle('recv_cls');
  const out = shown(c);
  assert.deepEqual(out.slice(-4), ['log:kept_socket_dropped', `close:${slot}`, 'SUS_ACKED->CLOSE_ACKED', 'act:ack_cls']);
  assert.equal(c.slots.kept, undefined);
});
