/**
 * The data path's inputs, as the core decides them (core/data-inputs.ts), with the adapter's
 * sockets reduced to whether a slot's socket is usable: a frame on the carrying socket (DATA,
 * ACK, FIN, the peer's DRAIN or SUSPEND), the ACK's turn and its deadline, the two-phase attach,
 * the reuse's rewind, the peer's in-band SUSPEND inside and outside a row, and the reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionCore, CoreCommand, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { isFerryError, limit } from '../../../../src/util/index.js';
import { FrameType } from '../../../../src/wire/index.js';
import { ReceiveBuffer } from '../../../../src/connection/data-path.js';
import { coreIn } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** A core in `state` whose every socket is usable (`window`: its receive window). */
function core(state: State, window = 1 << 16): ConnectionCore {
  const c = coreIn(state, { helloCrypto, recv: new ReceiveBuffer(window) });
  c.bindSockets({ isOpen: (slot) => slot !== undefined, remoteAddress: () => undefined });
  return c;
}

function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'act') return `act:${c.action}`;
  if (c.kind === 'notify') return `notify:${c.event}`;
  if (c.kind === 'deadline') return `deadline:${c.name}`;
  if (c.kind === 'log') return `log:${c.event}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

/** Everything the core gives out at `now`; its deadlines set and cleared as the adapter does. */
function drain(c: ConnectionCore, now = 0): string[] {
  const out: string[] = [];
  for (let x = c.poll(now); x; x = c.poll(now)) {
    if (x.kind === 'deadline') c.setDeadline(x.name, now + x.ms, x.slot);
    if (x.kind === 'clear') c.cancelDeadline(x.name, x.slot);
    out.push(show(x));
  }
  return out;
}

/** A slot that carries the connection, our window announced on it. */
function carrying(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  c.flow.ack();
  return slot;
}

const data = (offset: number, n: number) => ({ type: FrameType.DATA, offset, payload: Buffer.alloc(n, 1) }) as const;

test('data inputs: a small DATA is told to the reader, then its ACK delayed (a deadline of the connection)', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.flow.ack();
  c.frame(slot, data(0, 10));
  assert.deepEqual(drain(c), ['notify:readable', 'deadline:ack']);
  const d = (() => {
    c.frame(slot, data(10, 10));
    return drain(c);
  })();
  assert.deepEqual(d, ['notify:readable'], 'the delayed ACK pending covers the next small DATA');
  assert.equal(c.recv.received, 20);
});

test('data inputs: a DATA frame\'s ACK is decided after the reader was told (an ACK it sent meanwhile counts)', () => {
  const bulk = limit('ACK_NOW_BYTES');
  // Alone, bulk is acknowledged at the end of this turn on its socket.
  const c = core('ESTABLISHED', 4 * bulk);
  const slot = carrying(c);
  c.frame(slot, data(0, bulk));
  assert.deepEqual(drain(c), ['notify:readable', `ack_at_turn_end:${slot}`]);
  // The reader, told, read and reopened the window (its ACK said everything): the ACK decided
  // after that is only the delayed one.
  const d = core('ESTABLISHED', 4 * bulk);
  const s2 = carrying(d);
  d.flow.ack();
  d.frame(s2, data(0, bulk));
  assert.equal(show(d.poll(0)!), 'notify:readable');
  d.flow.ack();
  assert.deepEqual(drain(d), ['deadline:ack']);
});

test('data inputs: a duplicate DATA tells nobody and is acknowledged at the end of the turn, once', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.frame(slot, data(0, 10));
  drain(c);
  c.frame(slot, data(0, 10));
  assert.deepEqual(drain(c), [`ack_at_turn_end:${slot}`]);
  c.frame(slot, data(0, 10));
  assert.deepEqual(drain(c), [], 'the ACK at the end of this turn covers it');
  // The turn ended: our ACK goes on that socket.
  c.turnEnded(slot);
  assert.deepEqual(drain(c), [`send_ack:${slot}`]);
});

test('data inputs: at the end of the turn no second ACK goes if one went meanwhile on the carrying socket; on a socket replaced since, it does', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.frame(slot, data(0, 10));
  c.frame(slot, data(0, 10));
  drain(c);
  c.flow.ack();
  c.turnEnded(slot);
  assert.deepEqual(drain(c), [], 'an ACK went during the turn');
  c.frame(slot, data(0, 10));
  drain(c);
  const next = carrying(c);
  c.turnEnded(slot);
  assert.deepEqual(drain(c), [`send_ack:${slot}`], 'the DATA came on a socket that no longer carries: its ACK still goes there');
  assert.notEqual(next, slot);
});

test('data inputs: the delayed ACK\'s deadline sends it on the carrying socket, else on the one its DATA came on, else nothing', () => {
  const c = core('ESTABLISHED');
  const first = carrying(c);
  c.flow.ack();
  c.frame(first, data(0, 10));
  drain(c);
  c.setDeadline('ack', 100);
  // A resume replaced the socket meanwhile: the ACK goes on the new one.
  const second = c.newSlot();
  c.slots.attached(second);
  assert.equal(c.handleTimeout(100), undefined, 'the core acts on it itself');
  assert.deepEqual(drain(c, 100), [`send_ack:${second}`]);
  // No socket carries: on the one the DATA came on.
  c.frame(second, data(10, 10));
  drain(c);
  c.slots.dropSocket();
  c.setDeadline('ack', 200);
  c.handleTimeout(200);
  assert.deepEqual(drain(c, 200), [`send_ack:${second}`]);
  // Nothing arrived since: nothing to send it on.
  c.setDeadline('ack', 300);
  c.handleTimeout(300);
  assert.deepEqual(drain(c, 300), []);
});

test('data inputs: an ACK that frees room tells the writer, then pumps; one that frees nothing only pumps', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.send.append(Buffer.alloc(100));
  c.send.nextFrame(100);
  c.frame(slot, { type: FrameType.ACK, received: 60, limit: 1 << 16 });
  assert.deepEqual(drain(c), ['notify:room', 'pump']);
  c.frame(slot, { type: FrameType.ACK, received: 60, limit: 1 << 16 });
  assert.deepEqual(drain(c), ['pump']);
});

test('data inputs: a FIN is acknowledged this turn, then the reader told; one below what arrived, or a frame out of place, throws and changes nothing', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.frame(slot, data(0, 10));
  drain(c);
  assert.throws(() => c.frame(slot, { type: FrameType.FIN, offset: 5 }), (e: unknown) => isFerryError(e));
  assert.throws(
    () => c.frame(slot, { type: FrameType.HELLO_ACK, acceptorNonce: Buffer.alloc(16), received: 0, limit: 0, mac: Buffer.alloc(32) }),
    (e: unknown) => isFerryError(e) && e.code === 'FERRY_ERR_MALFORMED_FRAME',
  );
  assert.deepEqual(drain(c), []);
  c.frame(slot, { type: FrameType.FIN, offset: 10 });
  assert.deepEqual(drain(c), [`ack_at_turn_end:${slot}`, 'notify:readable']);
  assert.equal(c.recv.ended, false, 'not read yet');
});

test('data inputs: the peer\'s DRAIN frees what it received, tells the writer, then is judged with the socket as it is then', () => {
  const c = core('SUS_SENT');
  const slot = carrying(c);
  c.send.append(Buffer.alloc(100));
  c.send.nextFrame(100);
  c.frame(slot, { type: FrameType.DRAIN, received: 100 });
  const out = drain(c);
  assert.equal(c.send.acked, 100);
  // Our SUS reached the peer and it drained first: our DRAIN answers, the socket kept.
  assert.deepEqual(out.slice(0, 3), ['notify:room', `send:${slot}`, `keep:${slot}`]);
  assert.ok(out.includes('SUS_SENT->SUSPENDED'));
  assert.equal(c.slots.kept, slot);
});

test('data inputs: the peer\'s in-band SUSPEND outside a row is taken at once: recv_sus, our drain of that socket ends, the socket kept', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.frame(slot, { type: FrameType.SUSPEND, received: 0 });
  const out = drain(c, 50);
  assert.equal(out[0], 'notify:room');
  assert.ok(!out.includes(`peer_suspends:${slot}`), 'nothing held for the adapter');
  assert.ok(out.includes('ESTABLISHED->SUS_ACKED'));
  assert.ok(out.includes(`keep:${slot}`), 'our DRAIN answered, the peer\'s SUSPEND was its DRAIN: kept');
  assert.equal(c.state, 'SUSPENDED');
  assert.equal(c.intent.suspendMeasured(80), 30, 'the peer\'s suspend timed from its SUSPEND');
});

/** A core ESTABLISHED by a resume on `slot`, the peer's SUSPEND arriving on it while the row's transition is carried out. */
function suspendInRow(): { c: ConnectionCore; slot: number; out: string[] } {
  const c = core('RES_SENT');
  const slot = carrying(c);
  c.handle('socket_ready');
  assert.equal(c.poll(0)?.kind, 'transition');
  assert.equal(c.inRow, true);
  c.frame(slot, { type: FrameType.SUSPEND, received: 0 });
  return { c, slot, out: drain(c) };
}

test('data inputs: the peer\'s in-band SUSPEND inside a row comes out to wait for a later turn, and is taken then only if it still applies', () => {
  const { c, slot, out } = suspendInRow();
  assert.ok(out.includes(`peer_suspends:${slot}`), 'held for a later turn');
  assert.ok(!out.includes('ESTABLISHED->SUS_ACKED'));
  assert.equal(c.state, 'ESTABLISHED');
  c.peerSuspends(slot, 10);
  assert.ok(drain(c).includes('ESTABLISHED->SUS_ACKED'), 'taken on its turn');
  // By its turn we suspend ourselves: it no longer applies.
  const d = suspendInRow();
  d.c.handle('suspend');
  drain(d.c);
  d.c.peerSuspends(d.slot, 10);
  assert.deepEqual(drain(d.c), []);
});

test('data inputs: attach rewinds to the peer\'s offset (room told first), carries the slot, applies socket_ready, then restates our offsets and pumps', () => {
  const c = core('RES_SENT');
  c.send.onAck(0, 1 << 16);
  c.send.append(Buffer.alloc(300));
  assert.equal(c.send.nextFrame(300)?.length, 300);
  const slot = c.newSlot();
  c.attach(slot, 100, 1 << 16, true);
  assert.equal(c.stats.bytesReplayed, 200, 'sent again from the peer\'s stated offset');
  assert.deepEqual(drain(c), ['notify:room', `carry:${slot}`, 'RES_SENT->ESTABLISHED', 'established', `send_ack:${slot}`, 'pump']);
  assert.equal(c.slots.data, slot);
  assert.equal(c.stats.sockets, 1);
  // Nothing freed: no room told; the in-band open's socket (no initial ACK) only pumps.
  const o = core('ESTABLISHED');
  const s2 = o.newSlot();
  o.attach(s2, 0, 1 << 16, false);
  assert.deepEqual(drain(o), [`carry:${s2}`, 'pump']);
});

test('data inputs: an attach whose slot a listener took away meanwhile (a suspend as the resume completed) sends nothing more on it', () => {
  const c = core('RES_SENT');
  const slot = c.newSlot();
  c.attach(slot, 0, 1 << 16, true);
  const before: string[] = [];
  for (let x = c.poll(0); x; x = c.poll(0)) {
    before.push(show(x));
    // The application hears 'established' and suspends at once (its event is handed in then).
    if (x.kind === 'established') break;
  }
  assert.deepEqual(before, [`carry:${slot}`, 'RES_SENT->ESTABLISHED', 'established']);
  c.intent.suspend('user', 0);
  c.handle('suspend');
  const out = drain(c);
  assert.ok(out.includes(`send_suspend:${slot}`), out.join(' '));
  assert.ok(!out.includes(`send_ack:${slot}`) && !out.includes('pump'), out.join(' '));
});

test('data inputs: attach inside a row restates our offsets before its socket_ready is applied (it waits for the row)', () => {
  const c = core('RES_SENT');
  c.handle('suspend');
  assert.equal(c.poll(0)?.kind, 'transition');
  assert.equal(c.inRow, true);
  const slot = c.newSlot();
  c.attach(slot, 0, 1 << 16, true);
  const out = drain(c);
  const ready = out.indexOf(`send_ack:${slot}`);
  assert.ok(ready >= 0 && out.indexOf(`carry:${slot}`) < ready, out.join(' '));
  assert.ok(!out.slice(0, ready).includes('SUS_SENT->ESTABLISHED'), 'socket_ready is applied after the row');
});

test('data inputs: a reuse rewinds to what the peer acknowledged, counts, answers RESUME_ACK first, then restates our offsets on the carrying slot', () => {
  const c = core('SUSPENDED');
  const slot = carrying(c);
  c.send.onAck(0, 1 << 16);
  c.send.append(Buffer.alloc(100));
  assert.equal(c.send.nextFrame(100)?.length, 100);
  c.slots.drain(true);
  drain(c);
  c.slots.drainEnded(slot, true, true, false);
  drain(c);
  c.keptFrame(slot, FrameType.RESUME);
  const out = drain(c);
  assert.equal(c.stats.reused, 1);
  assert.equal(c.stats.bytesReplayed, 100);
  const at = out.indexOf(`reuse:${slot}`);
  assert.deepEqual(out.slice(at, at + 4), [`reuse:${slot}`, `send:${slot}`, `send_ack:${slot}`, 'pump']);
});

test('data inputs: a read that lets the window grow by a quarter credit comes with its ACK on the carrying socket; holding what was read changes it', () => {
  const c = core('ESTABLISHED');
  const slot = carrying(c);
  c.flow.ack();
  const window = c.recv.window;
  c.frame(slot, data(0, window / 2));
  drain(c);
  const r = c.read(window);
  assert.equal(r.bytes?.length, window / 2);
  assert.deepEqual(r.ack, { kind: 'send_ack', slot });
  assert.equal(c.read(10).ack, undefined, 'nothing read: no ACK');
  // No socket carries: the ACK waits for the next one.
  c.frame(slot, data(window / 2, 1000));
  drain(c);
  c.slots.dropSocket();
  assert.equal(c.read(window).ack, undefined);
  assert.equal(c.holding(0), undefined, 'held nothing before: nothing changes');
});
