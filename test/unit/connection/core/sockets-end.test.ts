/**
 * Which sockets go, decided by the connection core: at the end (`ended` comes after every slot's
 * close, the open's socket dialled ahead and its opening one included, with no deadline left), at
 * a checkpoint (the kept socket, before the action, no deadline left), on the peer's SUS datagram
 * (the kept socket, ahead of its event), and on an address change (which to cut, and how); and an
 * event deferred to a later turn (`later`) is applied only if the state still takes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlMac, type ConnectionCore, type CoreCommand, type HelloCrypto, type OpenCrypto } from '../../../../src/connection/core/index.js';
import { connectionKeysFromMaster, type Identity } from '../../../../src/identity/index.js';
import { MessageType, type Connect, type ConnControl } from '../../../../src/wire/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn, pollAll } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** An open's cryptography that builds placeholders: these tests check the sockets, not the handshake. */
const STUB_CRYPTO: OpenCrypto = {
  buildConnect: () => ({ body: Buffer.alloc(4), message: { clientHalf: Buffer.alloc(8) } as Connect, ephemeral: undefined }),
  buildConnectAck: () => assert.fail('a client builds no CONNECT_ACK'),
  acceptConnectAck: () => assert.fail('no CONNECT_ACK here'),
  clientFinished: () => Buffer.alloc(32),
  verifyClientFinished: () => false,
};

function core(state: State): ConnectionCore {
  return coreIn(state, { helloCrypto });
}


function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'act') return `act:${c.action}`;
  if (c.kind === 'log') return `log:${c.event}`;
  if (c.kind === 'stale') return `stale:${c.event}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

const shown = (c: ConnectionCore, now = 0): string[] => pollAll(c, now).map(show);

/** A slot kept after a drained suspend (both DRAINs crossed on it). */
function keep(c: ConnectionCore): number {
  const slot = c.newSlot();
  c.slots.attached(slot);
  c.slots.drain(true);
  c.slots.drainEnded(slot, true, true, false);
  assert.equal(c.slots.kept, slot);
  return slot;
}

test('sockets at the end: every slot closes (carrying, a waiting dial, a draining one), then the open\'s, then `ended`; no deadline is left', () => {
  const c = core('CLOSE_ACKED');
  const draining = c.newSlot();
  c.slots.attached(draining);
  c.slots.drain(true);
  const dial = c.slots.dial('resume', Buffer.alloc(16), undefined);
  const carrying = c.newSlot();
  c.slots.attached(carrying);
  c.setDeadline('ack', 100);
  c.handle('socket_lost');
  const out = shown(c);
  const ended = out.indexOf('ended');
  assert.equal(ended, out.length - 1, `ended last: ${out.join(' ')}`);
  for (const slot of [carrying, dial.slot, draining]) assert.ok(out.slice(0, ended).includes(`close:${slot}`), `slot ${slot} closes first: ${out.join(' ')}`);
  assert.equal(c.nextDeadline(), undefined, 'no timer outlives the connection');
});

test('sockets at the end: a control-channel open\'s socket dialled ahead closes if the open never took it; an in-band open\'s opening socket too', () => {
  const ahead = core('CLOSED');
  ahead.open.startClient({ inband: false, client: { id: 'a'.repeat(32) } as Identity, redirectorPort: 2001, controlPort: 2000, window: 1 << 16, crypto: STUB_CRYPTO });
  ahead.beginOpen();
  const dialled = pollAll(ahead).find((x) => x.kind === 'dial');
  assert.ok(dialled?.kind === 'dial' && dialled.ahead);
  ahead.handle('close');
  // (Its CONNECT, still out, is cancelled after the sockets close.)
  assert.deepEqual(shown(ahead).slice(-3), [`close:${dialled.slot}`, 'cancel', 'ended']);

  const inband = core('CLOSED');
  inband.open.startClient({ inband: true, client: { id: 'a'.repeat(32) } as Identity, redirectorPort: 2001, controlPort: 2000, window: 1 << 16, crypto: STUB_CRYPTO });
  inband.beginOpen();
  const opening = pollAll(inband).find((x) => x.kind === 'dial');
  assert.ok(opening?.kind === 'dial' && opening.first);
  inband.handle('close');
  assert.deepEqual(shown(inband).slice(-2), [`close:${opening.slot}`, 'ended']);
  inband.handle('closed' as never);
  assert.deepEqual(pollAll(inband).filter((x) => x.kind === 'close' || x.kind === 'ended'), [], 'once');
});

test('sockets at a checkpoint: the kept socket closes before the action, and no deadline is left', () => {
  const c = core('SUSPENDED');
  const kept = keep(c);
  c.setDeadline('ack', 100);
  c.handle('detach');
  const out = shown(c);
  assert.ok(out.indexOf(`close:${kept}`) >= 0 && out.indexOf(`close:${kept}`) < out.indexOf('act:checkpoint'), out.join(' '));
  assert.equal(c.slots.kept, undefined);
  assert.equal(c.nextDeadline(), undefined);
});

test('sockets on the peer\'s SUS datagram: the kept socket goes, ahead of the event', () => {
  const keys = connectionKeysFromMaster(Buffer.alloc(32, 7));
  const c = coreIn('SUSPENDED', { helloCrypto, keys, secure: true, role: 'server' });
  const kept = keep(c);
  const head = { type: MessageType.SUS, connectionId: c.connectionId, senderRole: 'client' as const, counter: 1, reason: 0, redirectorPort: 1001, challenge: Buffer.alloc(16, 0x99) };
  const sus: ConnControl = { ...head, mac: controlMac(keys, head) };
  const d = c.incoming(sus, '127.0.0.1:1000', 0);
  assert.ok(d.kind === 'accept' && d.dropKept);
  c.handle(d.event);
  assert.deepEqual(shown(c), [`clear:${kept}`, `clear:${kept}`, 'log:kept_socket_dropped', `close:${kept}`, 'act:ack_sus']);
  assert.equal(c.slots.kept, undefined);
});

test('sockets on an address change: the carrying and kept ones reset, the in-band open\'s closed raw; our next RES proves where we are; nothing once CLOSED', () => {
  const c = coreIn('SUSPENDED', { helloCrypto, keys: connectionKeysFromMaster(Buffer.alloc(32, 7)), secure: true });
  const kept = keep(c);
  assert.deepEqual(c.addressChanged(), [{ slot: kept, reset: true }]);
  assert.equal(c.path.mustProve, true, 'our next RES carries a location proof');
  const e = core('ESTABLISHED');
  const carrying = e.newSlot();
  e.slots.attached(carrying);
  assert.deepEqual(e.addressChanged(), [{ slot: carrying, reset: true }]);
  const inband = core('CLOSED');
  inband.open.startClient({ inband: true, client: { id: 'a'.repeat(32) } as Identity, redirectorPort: 2001, controlPort: 2000, window: 1 << 16, crypto: STUB_CRYPTO });
  inband.beginOpen();
  const opening = pollAll(inband).find((x) => x.kind === 'dial');
  assert.ok(opening?.kind === 'dial');
  assert.deepEqual(inband.addressChanged(), [{ slot: opening.slot, reset: false }]);
  assert.deepEqual(core('CLOSED').addressChanged(), []);
});

test('an event deferred to a later turn is applied if the state still takes it, else it is stale', () => {
  const c = core('SUS_ACKED');
  c.later('drained');
  assert.deepEqual(shown(c), ['SUS_ACKED->SUSPENDED']);
  c.later('recv_connect_ack');
  assert.deepEqual(shown(c), ['stale:recv_connect_ack']);
});
