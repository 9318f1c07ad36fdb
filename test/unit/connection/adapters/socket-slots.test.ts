/**
 * The slot-to-socket map and the write pump (adapters/socket-slots.ts) over in-memory stream
 * sockets under a ManualClock: writes of one turn coalesce into one DATA frame on the slot carrying
 * the connection; after TCP drained, the next frame waits for the end of the turn; nothing is
 * pumped unless the connection is ESTABLISHED; a socket closed under us comes back once as an
 * input naming its slot and is then forgotten; a slot we close reports nothing; a kept slot's
 * frames are the kept socket's inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStreamNetwork, seededRandom, type MemoryStreamSocket } from '../../../../src/testing/index.js';
import { ManualClock, limit, silentLogger, type FerryError } from '../../../../src/util/index.js';
import { FrameType, type Frame } from '../../../../src/wire/index.js';
import { SocketSlots } from '../../../../src/connection/adapters/socket-slots.js';
import { DataSocket } from '../../../../src/connection/data-socket.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn } from '../core/fixtures.js';

interface World {
  clock: ManualClock;
  net: MemoryStreamNetwork;
  slots: SocketSlots;
  core: ReturnType<typeof coreIn>;
  /** Deferred turns (the env's `defer`), run by {@link turn}. */
  deferred: (() => void)[];
  /** What the peer received, frame by frame. */
  peerFrames: Frame[];
  inputs: string[];
  set: { carrier: number | undefined; state: State };
  dial(slot: number): Promise<void>;
  settle(): Promise<void>;
  turn(): void;
}

async function world(): Promise<World> {
  const clock = new ManualClock();
  const net = new MemoryStreamNetwork({ clock, random: seededRandom(3), delayMs: [1, 2] });
  const peerFrames: Frame[] = [];
  const accepted: MemoryStreamSocket[] = [];
  net.listen('10.0.0.2', 80, (s) => {
    accepted.push(s);
    new DataSocket(s, { frame: (f) => peerFrames.push(f), close: () => {}, writable: () => {} }, silentLogger);
  });
  const core = coreIn('ESTABLISHED');
  // The peer's window, as its HELLO would state it.
  core.flow.rewind(0, 1 << 16);
  const deferred: (() => void)[] = [];
  const inputs: string[] = [];
  const set: { carrier: number | undefined; state: State } = { carrier: undefined, state: 'ESTABLISHED' };
  const slots = new SocketSlots(
    { log: silentLogger, flow: core.flow, carrier: () => set.carrier, state: () => set.state, defer: (fn) => deferred.push(fn), drive: () => inputs.push('drive'), data: (slot) => inputs.push(`data ${slot}`) },
    {
      frame: (slot, f) => inputs.push(`frame ${slot} ${f.type}`),
      keptFrame: (slot, type) => inputs.push(`kept ${slot} ${type}`),
      socketClosed: (slot, err: FerryError | undefined) => inputs.push(`closed ${slot} ${err?.code ?? ''}`),
      dialFrame: (slot, f) => inputs.push(`dial frame ${slot} ${f.type}`),
      dialFailed: (slot) => inputs.push(`dial failed ${slot}`),
      openingFrame: (slot) => inputs.push(`opening frame ${slot}`),
      openingClosed: (slot) => inputs.push(`opening closed ${slot}`),
    },
  );
  const settle = async (): Promise<void> => {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      if (!clock.fireNext()) break;
    }
    await new Promise((r) => setImmediate(r));
  };
  return {
    clock,
    net,
    slots,
    core,
    deferred,
    peerFrames,
    inputs,
    set,
    settle,
    dial: async (slot) => {
      slots.accepted(slot, net.dial('10.0.0.1', '10.0.0.2', 80));
      slots.carry(slot);
      await settle();
    },
    turn: () => {
      for (const fn of deferred.splice(0)) fn();
    },
  };
}

test('socket slots: the writes of one turn go out as one DATA frame on the carrying slot, at the end of the turn', async () => {
  const w = await world();
  await w.dial(1);
  w.set.carrier = 1;
  for (let i = 0; i < 10; i++) {
    w.core.send.append(Buffer.from(`w${i};`));
    w.slots.schedulePump();
  }
  assert.equal(w.deferred.length, 1, 'one pump for the whole turn');
  await w.settle();
  assert.equal(w.peerFrames.length, 0, 'nothing before the turn ends');
  w.turn();
  await w.settle();
  const data = w.peerFrames.filter((f) => f.type === FrameType.DATA) as { payload: Buffer }[];
  assert.equal(data.length, 1, 'coalesced into one frame');
  assert.equal(Buffer.concat(data.map((d) => d.payload)).toString(), 'w0;w1;w2;w3;w4;w5;w6;w7;w8;w9;');
});

test('socket slots: after TCP drained, the next frame waits for the end of the turn (the peer\'s reads come between our frames)', async () => {
  const w = await world();
  await w.dial(1);
  w.set.carrier = 1;
  const frame = limit('MAX_FRAME_PAYLOAD');
  w.core.flow.rewind(0, 4 * frame);
  w.core.send.append(Buffer.alloc(3 * frame, 7));
  w.slots.pump();
  const dataBytes = (): number => w.peerFrames.reduce((n, f) => n + (f.type === FrameType.DATA ? f.payload.length : 0), 0);
  await w.settle();
  // The first frame went (TCP asked us to wait, then drained); the drain only scheduled the pump.
  assert.equal(dataBytes(), frame, 'one frame before the turn ends');
  assert.equal(w.deferred.length, 1, 'the drain deferred the pump to the end of the turn');
  w.turn();
  await w.settle();
  assert.equal(dataBytes(), 2 * frame, 'the next frame at the end of the turn, then a wait for the next drain');
  w.turn();
  await w.settle();
  assert.equal(dataBytes(), 3 * frame);
});

test('socket slots: nothing is pumped unless ESTABLISHED, nor on a slot that does not carry the connection', async () => {
  const w = await world();
  await w.dial(1);
  w.core.send.append(Buffer.from('held'));
  w.set.carrier = 2;
  w.slots.pump();
  w.set.carrier = 1;
  w.set.state = 'SUS_SENT';
  w.slots.pump();
  await w.settle();
  assert.equal(w.peerFrames.length, 0);
  w.set.state = 'ESTABLISHED';
  w.slots.pump();
  await w.settle();
  assert.equal(w.peerFrames.length, 1);
});

test('socket slots: a socket closed under us comes back once naming its slot, then the slot is gone; a slot we close reports nothing', async () => {
  const w = await world();
  await w.dial(1);
  await w.dial(2);
  w.slots.keep(2);
  w.net.links[0]!.reset();
  await w.settle();
  assert.deepEqual(w.inputs, ['closed 1 ', 'drive'], 'the carrying slot, once, then what it came to');
  assert.equal(w.slots.socket(1), undefined, 'forgotten');
  assert.equal(w.slots.send(1, { type: FrameType.ACK, received: 0, limit: 0 }), false);
  assert.equal(w.slots.isOpen(2), true);
  w.slots.destroy(2);
  await w.settle();
  assert.deepEqual(w.inputs, ['closed 1 ', 'drive'], 'our own close reports nothing');
  assert.equal(w.slots.socket(2), undefined);
});

test('socket slots: a cut of a slot closes the socket as the network would, so its close comes back as an input', async () => {
  const w = await world();
  await w.dial(5);
  assert.equal(w.slots.cut(5, true), true);
  await w.settle();
  assert.deepEqual(w.inputs, ['closed 5 ', 'drive']);
  assert.equal(w.slots.cut(5, true), false, 'nothing left to cut');
});

test('socket slots: a dialled socket\'s close is its dial\'s failure, an in-band open\'s socket\'s the open\'s loss, each then carried out', async () => {
  const w = await world();
  w.slots.dialed(3, w.net.dial('10.0.0.1', '10.0.0.2', 80));
  w.slots.opening(4, w.net.dial('10.0.0.1', '10.0.0.2', 80), true);
  await w.settle();
  w.net.links[0]!.reset();
  await w.settle();
  assert.deepEqual(w.inputs, ['dial failed 3', 'drive']);
  w.net.links[1]!.reset();
  await w.settle();
  assert.deepEqual(w.inputs, ['dial failed 3', 'drive', 'opening closed 4', 'drive']);
  assert.equal(w.slots.socket(3), undefined, 'forgotten');
  assert.equal(w.slots.socket(4), undefined, 'forgotten');
});

test('socket slots: an ACK goes only on a slot that still takes frames from us (not after our DRAIN)', async () => {
  const w = await world();
  await w.dial(1);
  assert.equal(w.slots.sendAck(1), true);
  assert.equal(w.slots.send(1, { type: FrameType.DRAIN, received: 0 }), true);
  assert.equal(w.slots.sendAck(1), false);
  assert.equal(w.slots.sendAck(9), false, 'no such slot');
  await w.settle();
  assert.deepEqual(w.peerFrames.map((f) => f.type), [FrameType.ACK, FrameType.DRAIN]);
});

/** Slot 1 carries the connection: our window announced (as our HELLO would), 7 bytes of DATA from the peer, their ACK delayed. */
async function delayedAck(): Promise<World> {
  const w = await world();
  await w.dial(1);
  w.set.carrier = 1;
  // Our window, announced (as our HELLO would), then a little DATA from the peer.
  w.core.flow.ack();
  w.core.flow.deliver(0, Buffer.from('request'));
  w.core.setDeadline('ack', w.clock.now() + limit('ACK_DELAY_MS'));
  return w;
}

test('socket slots: a delayed ACK does not ride along with the DATA pumped before its deadline: the DATA goes alone, the ACK waits for its deadline', async () => {
  const w = await delayedAck();
  assert.equal(w.core.flow.ackDelayed, true);
  w.core.send.append(Buffer.from('response'));
  w.slots.pump();
  assert.equal(w.core.flow.ackDelayed, true, 'the delayed ACK still waits for its deadline');
  await w.settle();
  // One frame, not two: on a sealed connection an ACK in front of every response is an AEAD
  // operation more at each end per exchange.
  assert.deepEqual(w.peerFrames.map((f) => f.type), [FrameType.DATA]);
});

test('socket slots: a delayed ACK waits for its deadline when there is nothing to send, and nothing goes once our DRAIN is out', async () => {
  const w = await delayedAck();
  w.slots.pump();
  assert.equal(w.core.flow.ackDelayed, true, 'nothing to send: the ACK waits');
  assert.equal(w.slots.send(1, { type: FrameType.DRAIN, received: 7 }), true);
  w.core.send.append(Buffer.from('late'));
  w.slots.pump();
  assert.equal(w.core.flow.ackDelayed, true, 'nothing goes after our DRAIN');
  await w.settle();
  assert.deepEqual(w.peerFrames.map((f) => f.type), [FrameType.DRAIN]);
});
