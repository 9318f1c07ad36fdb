/**
 * Control authentication, rule by rule, with no socket and no clock: the MAC is checked before the
 * counter (a forgery with a replayed counter is a forgery), a counter at or below the accepted one
 * is refused with FERRY_ERR_REPLAYED_CONTROL, a counter is recorded only once accepted (a RES
 * refused for its proof leaves the window as it was), a retransmission from the same address gets
 * the cached reply (or refusal) and nothing else does, and replies must echo type, counter and
 * connection id and come from the peer's role, under the MAC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionKeysFromMaster, type ConnectionKeys } from '../../../../src/identity/index.js';
import { FerryError, isFerryError, type ErrorCode } from '../../../../src/util/index.js';
import { MessageType, encodeConnControl, type ConnControl } from '../../../../src/wire/index.js';
import { ControlAuth, controlMac, verifyControlMac } from '../../../../src/connection/core/index.js';

const KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 7));
const OTHER_KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 8));
const CID = Buffer.alloc(16, 0xc1);
const PEER = '10.0.0.2:4000';
const ELSEWHERE = '10.0.0.66:4000';

function refused(code: ErrorCode): (e: unknown) => boolean {
  return (e: unknown) => isFerryError(e, code);
}

/** A SUS, RES or CLS from the peer with counter `counter`, MAC'd under `keys` (null: security off). */
function request(counter: number, type: ConnControl['type'] = MessageType.SUS, keys: ConnectionKeys | null = KEYS): ConnControl {
  const head = { type, connectionId: CID, senderRole: 'client' as const, counter, reason: 0, redirectorPort: 0, challenge: Buffer.alloc(16) };
  return { ...head, mac: controlMac(keys ?? undefined, head) };
}

test('ControlAuth: a forged MAC is refused first, even on a replayed counter, and changes nothing', () => {
  const auth = new ControlAuth();
  assert.deepEqual(auth.admit(KEYS, request(5), PEER), { kind: 'fresh' });
  auth.accept(request(5));
  // The forgery carries a replayed counter: the MAC is checked first, so it is BAD_MAC, not REPLAYED.
  assert.throws(() => auth.admit(KEYS, request(5, MessageType.SUS, OTHER_KEYS), PEER), refused('FERRY_ERR_BAD_MAC'));
  assert.throws(() => auth.admit(KEYS, request(9, MessageType.SUS, OTHER_KEYS), PEER), refused('FERRY_ERR_BAD_MAC'));
  // A flipped MAC byte.
  const m = request(9);
  assert.throws(() => auth.admit(KEYS, { ...m, mac: Buffer.from(m.mac.map((b, i) => (i === 0 ? b ^ 1 : b))) }, PEER), refused('FERRY_ERR_BAD_MAC'));
  assert.equal(auth.received, 5);
  assert.deepEqual(auth.admit(KEYS, request(6), PEER), { kind: 'fresh' });
});

test('ControlAuth: a counter at or below the accepted one is refused with FERRY_ERR_REPLAYED_CONTROL', () => {
  const auth = new ControlAuth();
  auth.accept(request(3));
  assert.throws(() => auth.admit(KEYS, request(3), PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
  assert.throws(() => auth.admit(KEYS, request(2, MessageType.RES), PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
  assert.throws(() => auth.admit(KEYS, request(0, MessageType.CLS), PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
  assert.deepEqual(auth.admit(KEYS, request(4), PEER), { kind: 'fresh' });
});

test('ControlAuth: a fresh request is not recorded until accepted (a refused RES leaves the window)', () => {
  const auth = new ControlAuth({ received: 10 });
  const res = request(11, MessageType.RES);
  assert.deepEqual(auth.admit(KEYS, res, ELSEWHERE), { kind: 'fresh' });
  // The caller refused it (say, for its location proof): not accepted, so the peer may send it
  // again, proven, under the same counter.
  assert.equal(auth.received, 10);
  assert.deepEqual(auth.admit(KEYS, res, ELSEWHERE), { kind: 'fresh' });
  auth.accept(res);
  assert.equal(auth.received, 11);
  // Accepting an older one never moves the floor back.
  auth.accept(request(4));
  assert.equal(auth.received, 11);
});

test('ControlAuth: a retransmission from the same address gets the cached reply, byte for byte', () => {
  const auth = new ControlAuth();
  const sus = request(1);
  auth.admit(KEYS, sus, PEER);
  auth.accept(sus);
  const reply = encodeConnControl(auth.reply(KEYS, { ...sus, type: MessageType.SUS_ACK, senderRole: 'server' }));
  auth.remember(sus, PEER, reply);
  const again = auth.admit(KEYS, sus, PEER);
  assert.equal(again.kind, 'retransmission');
  assert.ok(again.kind === 'retransmission' && again.reply === reply);
});

test('ControlAuth: the same request from another address is a replay (our challenge stays where it went)', () => {
  const auth = new ControlAuth();
  const res = request(1, MessageType.RES);
  auth.admit(KEYS, res, PEER);
  auth.accept(res);
  auth.remember(res, PEER, Buffer.from('RES_ACK with a fresh challenge'));
  assert.throws(() => auth.admit(KEYS, res, ELSEWHERE), refused('FERRY_ERR_REPLAYED_CONTROL'));
});

test('ControlAuth: a cached refusal is answered again as that refusal', () => {
  const auth = new ControlAuth();
  const res = request(2, MessageType.RES);
  auth.admit(KEYS, res, PEER);
  auth.accept(res);
  const moving = new FerryError('FERRY_ERR_PEER_MOVING', 'endpoint is moving');
  auth.remember(res, PEER, moving);
  const again = auth.admit(KEYS, res, PEER);
  assert.ok(again.kind === 'retransmission' && again.reply === moving);
});

test('ControlAuth: only the last request is cached; an older one is a replay', () => {
  const auth = new ControlAuth();
  for (const c of [1, 2]) {
    const m = request(c);
    auth.admit(KEYS, m, PEER);
    auth.accept(m);
    auth.remember(m, PEER, Buffer.from(`reply ${c}`));
  }
  assert.throws(() => auth.admit(KEYS, request(1), PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
  assert.equal(auth.admit(KEYS, request(2), PEER).kind, 'retransmission');
});

test('ControlAuth: our requests count up from the checkpoint, and the peer admits each once', () => {
  const ours = new ControlAuth({ sent: 41 });
  const theirs = new ControlAuth({ received: 41 });
  const head = { type: MessageType.SUS, connectionId: CID, senderRole: 'client' as const, reason: 0, redirectorPort: 0, challenge: Buffer.alloc(16) };
  const a = ours.request(KEYS, head);
  const b = ours.request(KEYS, head);
  assert.deepEqual([a.counter, b.counter, ours.sent], [42, 43, 43]);
  assert.ok(verifyControlMac(KEYS, a) && verifyControlMac(KEYS, b));
  theirs.accept(a);
  theirs.accept(b);
  assert.throws(() => theirs.admit(KEYS, a, PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
});

test('ControlAuth: a reply must echo type, counter and connection id, under the MAC', () => {
  const auth = new ControlAuth();
  const sent = auth.request(KEYS, { type: MessageType.RES, connectionId: CID, senderRole: 'client', reason: 0, redirectorPort: 9000, challenge: Buffer.alloc(16, 3) });
  const expect = { type: MessageType.RES_ACK, counter: sent.counter, connectionId: CID, senderRole: 'server' as const };
  const ack = { type: MessageType.RES_ACK as ConnControl['type'], connectionId: CID, senderRole: 'server' as const, counter: sent.counter, reason: 0, redirectorPort: 9001, challenge: Buffer.alloc(16, 4) };
  const good = auth.reply(KEYS, ack);
  assert.equal(auth.checkReply(KEYS, { type: MessageType.RES_ACK, body: encodeConnControl(good) }, expect).redirectorPort, 9001);
  const wrong = (m: Partial<typeof ack>): Buffer => encodeConnControl(auth.reply(KEYS, { ...ack, ...m }));
  assert.throws(() => auth.checkReply(KEYS, { type: MessageType.SUS_ACK, body: wrong({ type: MessageType.SUS_ACK }) }, expect), refused('FERRY_ERR_MALFORMED_DATAGRAM'));
  assert.throws(() => auth.checkReply(KEYS, { type: MessageType.RES_ACK, body: wrong({ counter: sent.counter + 1 }) }, expect), refused('FERRY_ERR_MALFORMED_DATAGRAM'));
  assert.throws(() => auth.checkReply(KEYS, { type: MessageType.RES_ACK, body: wrong({ connectionId: Buffer.alloc(16, 0xc2) }) }, expect), refused('FERRY_ERR_MALFORMED_DATAGRAM'));
  const forged = encodeConnControl({ ...ack, mac: controlMac(OTHER_KEYS, ack) });
  assert.throws(() => auth.checkReply(KEYS, { type: MessageType.RES_ACK, body: forged }, expect), refused('FERRY_ERR_BAD_MAC'));
});

test('ControlAuth: a reply must come from the peer\'s role: our own reply to the peer\'s crossing request, reflected back to us, answers nothing', () => {
  // Both ends count from the same start: our RES and the peer's crossing RES both carry counter 1.
  const ours = new ControlAuth();
  const theirs = new ControlAuth();
  const head = { type: MessageType.RES as ConnControl['type'], connectionId: CID, reason: 0, challenge: Buffer.alloc(16, 3) };
  const ourRes = ours.request(KEYS, { ...head, senderRole: 'client', redirectorPort: 9000 });
  const theirRes = theirs.request(KEYS, { ...head, senderRole: 'server', redirectorPort: 9100 });
  assert.equal(ourRes.counter, theirRes.counter);
  // We accept the peer's RES and answer it: a RES_ACK under the one control key, from our role.
  assert.deepEqual(ours.admit(KEYS, theirRes, PEER), { kind: 'fresh' });
  ours.accept(theirRes);
  const ourAck = ours.reply(KEYS, { ...head, type: MessageType.RES_ACK, senderRole: 'client', counter: theirRes.counter, redirectorPort: 9000 });
  const expect = { type: MessageType.RES_ACK, counter: ourRes.counter, connectionId: CID, senderRole: 'server' as const };
  // Reflected to us as the answer to our own RES: it echoes our counter, type and id, and its MAC
  // verifies (one control key for both directions); only the role under the MAC tells.
  assert.ok(verifyControlMac(KEYS, ourAck));
  assert.throws(() => ours.checkReply(KEYS, { type: MessageType.RES_ACK, body: encodeConnControl(ourAck) }, expect), refused('FERRY_ERR_MALFORMED_DATAGRAM'));
  // The peer's own answer to our RES is taken.
  const theirAck = theirs.reply(KEYS, { ...head, type: MessageType.RES_ACK, senderRole: 'server', counter: ourRes.counter, redirectorPort: 9100 });
  assert.equal(ours.checkReply(KEYS, { type: MessageType.RES_ACK, body: encodeConnControl(theirAck) }, expect).redirectorPort, 9100);
});

test('ControlAuth: without security the MAC is zeros and always verifies; counters still hold', () => {
  const auth = new ControlAuth();
  const m = request(1, MessageType.SUS, null);
  assert.ok(m.mac.equals(Buffer.alloc(32)));
  assert.deepEqual(auth.admit(undefined, m, PEER), { kind: 'fresh' });
  auth.accept(m);
  assert.throws(() => auth.admit(undefined, request(1, MessageType.RES, null), PEER), refused('FERRY_ERR_REPLAYED_CONTROL'));
});
