/**
 * The data sockets' rules by slot (core/slots.ts), each under plain inputs: which slot carries the
 * connection, what a drain's end, the peer's DRAIN or SUSPEND and a closed socket come to, the
 * kept socket's life (kept, offered, taken for a reuse, dropped), who dials a resume and when it
 * dials again, what our HELLO's answer and a peer's HELLO come to (answered, parked for a proof,
 * refused with a typed code), and that the end of the connection closes every slot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, type Frame, type Hello } from '../../../../src/wire/index.js';
import { connectionKeysFromMaster, type ConnectionKeys } from '../../../../src/identity/index.js';
import { isFerryError } from '../../../../src/util/index.js';
import { DataSlots, type ConnectionCore, type HelloCrypto, type SlotCommand } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn, countingRandom } from './fixtures.js';

/** MACs that a test can forge: the received offset and the nonce, tagged; zeros without keys (as handshake.ts). */
const crypto: HelloCrypto = {
  helloMac: (keys, h) => (keys ? Buffer.from(`hello:${h.received}:${h.dialerNonce.toString('hex')}`) : Buffer.alloc(32)),
  helloAckMac: (keys, a, dialerNonce) => (keys ? Buffer.from(`ack:${a.received}:${dialerNonce.toString('hex')}`) : Buffer.alloc(32)),
};

function slotsIn(state: State, keys?: ConnectionKeys): { core: ConnectionCore; slots: DataSlots } {
  const core = coreIn(state, keys ? { keys, secure: true } : {});
  return { core, slots: new DataSlots(core, crypto, countingRandom(1)) };
}

const kinds = (cs: readonly SlotCommand[]): string[] => cs.map((c) => (c.kind === 'fire' ? `fire:${c.event}` : c.kind === 'log' ? `log:${c.event}` : 'slot' in c ? `${c.kind}:${c.slot}` : c.kind));

/** A slot that carries the connection (as after a dial answered). */
function carrying(slots: DataSlots): number {
  const slot = slots.next();
  slots.attached(slot);
  return slot;
}

/** A slot kept after a drained suspend (the peer's DRAIN came on it). */
function kept(slots: DataSlots): number {
  const slot = carrying(slots);
  slots.drain(true);
  slots.drainEnded(slot, true, true, false);
  assert.equal(slots.kept, slot);
  return slot;
}

test('slots: a drain sends our DRAIN on the carrying slot, which no longer carries the connection; without a live socket there is nothing to drain', () => {
  const { slots } = slotsIn('SUS_ACKED');
  const slot = carrying(slots);
  const c = slots.drain(true)!;
  assert.deepEqual(kinds(c), [`send:${slot}`, `deadline:${slot}`]);
  assert.equal((c[0] as { frame: Frame }).frame.type, FrameType.DRAIN);
  assert.equal(slots.data, undefined);
  assert.ok(slots.draining.has(slot));
  const other = slotsIn('SUS_ACKED').slots;
  carrying(other);
  assert.equal(other.drain(false), undefined, 'a dead socket: the drain is over at once');
  assert.equal(other.draining.size, 0);
});

test('slots: a drain that ends with the peer\'s DRAIN keeps the socket while suspending; closed when moving, without the peer\'s DRAIN, or when the socket died', () => {
  for (const [peerDrained, open, moving, keep] of [
    [true, true, false, true],
    [true, true, true, false],
    [false, true, false, false],
    [true, false, false, false],
  ] as const) {
    const { slots } = slotsIn('SUSPENDED');
    const slot = carrying(slots);
    slots.drain(true);
    const c = slots.drainEnded(slot, peerDrained, open, moving);
    const want = keep ? [`clear:${slot}`, `keep:${slot}`, `deadline:${slot}`, 'fire:drained', 'drained'] : [`clear:${slot}`, `close:${slot}`, 'fire:drained', 'drained'];
    assert.deepEqual(kinds(c), want, `peerDrained ${peerDrained} open ${open} moving ${moving}`);
    assert.equal(slots.kept, keep ? slot : undefined);
    assert.deepEqual(slots.drainEnded(slot, peerDrained, open, moving), [], 'a drain ends once');
  }
});

test('slots: an in-band SUSPEND that gets no answer closes its socket and falls back to the SUS datagram while still SUS_SENT', () => {
  for (const [state, fallback] of [['SUS_SENT', true], ['SUSPENDED', false]] as const) {
    const { slots } = slotsIn(state);
    const slot = carrying(slots);
    assert.equal(slots.suspendInband(), slot);
    slots.suspendSent(slot);
    const c = slots.drainExpired(slot, true, false);
    assert.deepEqual(kinds(c), [`clear:${slot}`, `close:${slot}`, ...(fallback ? ['suspend_by_datagram'] : [])], state);
    assert.equal(slots.inbandSus, undefined);
    assert.equal(slots.kept, undefined, 'never kept: the peer did not drain');
  }
});

test('slots: the peer\'s DRAIN answering our in-band SUSPEND keeps the socket and is our suspend acknowledged', () => {
  const { slots } = slotsIn('SUS_SENT');
  const slot = carrying(slots);
  slots.suspendInband();
  slots.suspendSent(slot);
  assert.deepEqual(kinds(slots.peerDrain(slot, FrameType.DRAIN, true, false)), [`clear:${slot}`, `keep:${slot}`, `deadline:${slot}`, 'fire:recv_sus_ack', 'suspend_counted']);
  assert.equal(slots.kept, slot);
  assert.equal(slots.draining.size, 0);
});

test('slots: the peer draining first while our SUS is out is answered with our DRAIN, the socket kept; a drain on the carrying socket otherwise loses it', () => {
  const a = slotsIn('SUS_SENT').slots;
  const slot = carrying(a);
  const c = a.peerDrain(slot, FrameType.DRAIN, true, false);
  assert.deepEqual(kinds(c), [`send:${slot}`, `keep:${slot}`, `deadline:${slot}`, 'forget_sus', 'fire:recv_sus_ack', 'suspend_counted']);
  assert.equal((c[0] as { frame: Frame }).frame.type, FrameType.DRAIN);
  assert.equal(a.data, undefined);
  const b = slotsIn('SUS_SENT').slots;
  const s2 = carrying(b);
  assert.deepEqual(kinds(b.peerDrain(s2, FrameType.DRAIN, true, true)), [`close:${s2}`, 'fire:socket_lost'], 'moving: the socket is lost');
  const e = slotsIn('ESTABLISHED').slots;
  const s3 = carrying(e);
  assert.deepEqual(kinds(e.peerDrain(s3, FrameType.SUSPEND, true, false)), [`peer_suspends:${s3}`]);
  assert.equal(e.peerSuspendsNow(s3, false), true);
  assert.equal(e.peerSuspendsNow(s3, true), false, 'a move began meanwhile');
});

test('slots: the peer\'s DRAIN on a live connection\'s socket loses it, and the connection resumes by itself as after any loss', () => {
  // The peer took a stale SUS of ours (one its host had refused, replayed later) and drained: an
  // earlier suspend() of ours must not leave the connection SUSPENDED with neither end resuming.
  const { slots } = slotsIn('ESTABLISHED');
  const slot = carrying(slots);
  assert.deepEqual(kinds(slots.peerDrain(slot, FrameType.DRAIN, true, false)), ['auto_resume', `close:${slot}`, 'fire:socket_lost']);
  assert.equal(slots.data, undefined);
  const m = slotsIn('ESTABLISHED').slots;
  const s2 = carrying(m);
  assert.deepEqual(kinds(m.peerDrain(s2, FrameType.SUSPEND, true, true)), ['auto_resume', `close:${s2}`, 'fire:socket_lost'], 'a SUSPEND while moving');
});

test('slots: a closed carrying socket is lost (an ESTABLISHED connection resumes by itself); a close of a slot in no role changes nothing', () => {
  const { slots } = slotsIn('ESTABLISHED');
  const slot = carrying(slots);
  assert.deepEqual(kinds(slots.closed(slot, undefined, false, false)), ['log:data_socket_lost', 'auto_resume', 'fire:socket_lost']);
  assert.equal(slots.data, undefined);
  assert.deepEqual(slots.closed(slot, undefined, false, false), [], 'a late close of the same slot');
  const r = slotsIn('RES_ACKED').slots;
  const s2 = carrying(r);
  assert.deepEqual(kinds(r.closed(s2, undefined, false, false)), ['log:data_socket_lost', 'fire:socket_lost']);
});

test('slots: the kept socket closing while our RESUME is out on it falls back to the RES datagram; otherwise it is only forgotten', () => {
  const { core, slots } = slotsIn('SUSPENDED');
  const slot = kept(slots);
  assert.deepEqual(kinds(slots.offerResume()), [`send:${slot}`]);
  assert.equal(slots.offered, slot);
  core.handle('resume');
  while (core.poll(0));
  assert.equal(core.state, 'RES_SENT');
  assert.deepEqual(kinds(slots.closed(slot, undefined, false, false)), [`clear:${slot}`, `clear:${slot}`, `clear:${slot}`, `clear:${slot}`, 'log:kept_socket_lost', 'resume_by_datagram']);
  assert.equal(slots.kept, undefined);
  assert.equal(slots.offered, undefined);
  const b = slotsIn('SUSPENDED').slots;
  const s2 = kept(b);
  assert.deepEqual(kinds(b.closed(s2, undefined, false, false)), [`clear:${s2}`, `clear:${s2}`, 'log:kept_socket_lost']);
});

test('slots: the peer\'s RESUME on the kept socket is taken for a reuse answered by RESUME_ACK; a frame on another slot closes that slot', () => {
  const { slots } = slotsIn('SUSPENDED');
  const slot = kept(slots);
  assert.deepEqual(kinds(slots.keptFrame(slot + 100, FrameType.RESUME, false)), [`close:${slot + 100}`]);
  assert.deepEqual(kinds(slots.keptFrame(slot, FrameType.RESUME, false)), [`clear:${slot}`, `clear:${slot}`, 'peer_resumes', 'fire:recv_res_reuse']);
  assert.equal(slots.kept, undefined);
  const r = slots.takeReuse()!;
  assert.equal(r.slot, slot);
  assert.equal(r.answer, true, 'ours is the acceptance: RESUME_ACK first');
  assert.equal(slots.data, slot);
  assert.equal(slots.takeReuse(), undefined, 'taken once');
});

test('slots: a RESUME on the kept socket while moving, or an unexpected frame, closes it; with our RESUME out on it we resume by datagram', () => {
  const { slots } = slotsIn('SUSPENDED');
  const slot = kept(slots);
  assert.deepEqual(kinds(slots.keptFrame(slot, FrameType.RESUME, true)), ['log:kept_socket_refused', `clear:${slot}`, `clear:${slot}`, 'log:kept_socket_dropped', `close:${slot}`]);
  const b = slotsIn('SUSPENDED');
  const s2 = kept(b.slots);
  b.slots.offerResume();
  b.core.handle('resume');
  while (b.core.poll(0));
  assert.deepEqual(kinds(b.slots.keptFrame(s2, FrameType.ACK, false)).slice(-1), ['resume_by_datagram']);
  const c = slotsIn('SUSPENDED');
  const s3 = kept(c.slots);
  c.slots.offerResume();
  c.core.handle('resume');
  while (c.core.poll(0));
  assert.deepEqual(kinds(c.slots.keptFrame(s3, FrameType.RESUME_ACK, false)).slice(-1), ['fire:recv_res_ack_reuse']);
  assert.equal(c.slots.takeReuse()!.answer, false, 'our RESUME was accepted: nothing to answer');
});

test('slots: the kept socket is kept into our resume that offers it and dropped by any other transition; its deadlines name it', () => {
  const { slots } = slotsIn('SUSPENDED');
  const slot = kept(slots);
  assert.deepEqual(slots.transition('SUSPENDED', 'RES_SENT').filter((c) => c.kind === 'close'), [], 'into our resume');
  assert.equal(slots.kept, slot);
  assert.deepEqual(kinds(slots.keptExpired(slot + 1)), [], 'another slot\'s deadline');
  assert.deepEqual(kinds(slots.transition('SUSPENDED', 'ESTABLISHED')).slice(-2), ['log:kept_socket_dropped', `close:${slot}`]);
  assert.equal(slots.kept, undefined);
  const b = slotsIn('SUSPENDED').slots;
  const s2 = kept(b);
  assert.deepEqual(kinds(b.keptExpired(s2)).slice(-1), [`close:${s2}`]);
});

test('slots: a dial sends HELLO with our received offset; its HELLO_ACK is adopted only while it is the outstanding dial of a resume still on', () => {
  const { core, slots } = slotsIn('RES_SENT');
  const d = slots.dial('resume', Buffer.alloc(16, 9), undefined);
  const hello = d.hello as Hello;
  assert.equal(hello.type, FrameType.HELLO);
  assert.equal(hello.kind, 'resume');
  assert.equal(hello.received, core.recv.received);
  assert.equal(slots.dialing, d.slot);
  const ack: Frame = { type: FrameType.HELLO_ACK, acceptorNonce: Buffer.alloc(16, 3), received: 0, limit: 1000, mac: Buffer.alloc(32) };
  assert.deepEqual(slots.dialAnswer(d.slot, ack), { kind: 'attach', keys: undefined, received: 0, limit: 1000 });
  assert.deepEqual(slots.dialAnswer(d.slot, ack), { kind: 'ignore' }, 'answered once');
  // A second dial, overtaken by a third: proven, but not the outstanding one.
  const d2 = slots.dial('resume', Buffer.alloc(16), undefined);
  slots.dial('resume', Buffer.alloc(16), undefined);
  assert.deepEqual(slots.dialAnswer(d2.slot, ack), { kind: 'close' });
  // A suspend began while the resume dial was out: not adopted.
  const s = slotsIn('SUS_SENT').slots;
  const d3 = s.dial('resume', Buffer.alloc(16), undefined);
  assert.deepEqual(s.dialAnswer(d3.slot, ack), { kind: 'close' });
});

test('slots: a HELLO_ACK with a bad MAC (security on) or a REJECT fails the dial with its typed code', () => {
  const keys = connectionKeysFromMaster(Buffer.alloc(32, 5));
  const { slots } = slotsIn('RES_SENT', keys);
  const d = slots.dial('resume', Buffer.alloc(16), undefined);
  const nonce = (d.hello as Hello).dialerNonce;
  const bad: Frame = { type: FrameType.HELLO_ACK, acceptorNonce: Buffer.alloc(16, 3), received: 0, limit: 1000, mac: Buffer.alloc(32) };
  const a = slots.dialAnswer(d.slot, bad);
  assert.equal(a.kind === 'fail' && a.err.code, 'FERRY_ERR_BAD_MAC');
  const good: Frame = { ...bad, mac: Buffer.from(`ack:0:${nonce.toString('hex')}`) };
  const b = slots.dialAnswer(d.slot, good);
  assert.equal(b.kind, 'attach');
  assert.ok(b.kind === 'attach' && b.keys && b.keys.send.length === 32 && !b.keys.send.equals(b.keys.receive), 'per-direction session keys');
  const d2 = slots.dial('resume', Buffer.alloc(16), undefined);
  const r = slots.dialAnswer(d2.slot, { type: FrameType.REJECT, wireCode: 1, detail: 'no' } as Frame);
  assert.equal(r.kind, 'fail');
});

test('slots: a failed dial closes its slot; the outstanding one is the socket lost, or dials again when it was an earlier exchange\'s', () => {
  const { slots } = slotsIn('RES_SENT');
  const d = slots.dial('resume', Buffer.alloc(16), undefined);
  assert.equal(slots.mayDialResume(), false, 'a dial is out: the exchange waits for it');
  assert.deepEqual(kinds(slots.dialFailed(d.slot, undefined)), [`clear:${d.slot}`, `close:${d.slot}`, 'log:dial_failed', 'log:redial', 'dial_resume']);
  assert.equal(slots.mayDialResume(), true);
  const d2 = slots.dial('resume', Buffer.alloc(16), undefined);
  assert.deepEqual(kinds(slots.dialFailed(d2.slot, undefined)), [`clear:${d2.slot}`, `close:${d2.slot}`, 'log:dial_failed', 'fire:socket_lost']);
  assert.deepEqual(slots.dialFailed(d2.slot, undefined), [], 'fails once');
  const e = slotsIn('ESTABLISHED').slots;
  const d3 = e.dial('open', Buffer.alloc(16), undefined);
  assert.ok(kinds(e.dialFailed(d3.slot, undefined)).includes('auto_resume'), 'the open\'s own dial: the connection recovers by itself');
  const f = slotsIn('RES_SENT').slots;
  carrying(f);
  assert.equal(f.mayDialResume(), false, 'a socket carries the connection');
});

test('slots: a resume HELLO must echo a challenge we issued; one overtaking the proof we asked for is parked; an open HELLO only before the socket', () => {
  const { core, slots } = slotsIn('RES_SENT');
  const base = { type: FrameType.HELLO, connectionId: core.connectionId, dialerRole: 'server', dialerNonce: Buffer.alloc(16, 2), received: 0, limit: 1000, mac: Buffer.alloc(32) } as const;
  assert.throws(() => slots.hello({ ...base, kind: 'resume', challenge: Buffer.alloc(16, 1) }), (e: unknown) => isFerryError(e) && e.code === 'FERRY_ERR_PATH_UNVALIDATED');
  const challenge = core.path.issueChallenge();
  assert.deepEqual(slots.hello({ ...base, kind: 'resume', challenge }), { kind: 'answer' });
  const a = slots.answerHello({ ...base, kind: 'resume', challenge }, '127.0.0.1');
  assert.equal(a.frame.type, FrameType.HELLO_ACK);
  assert.equal((a.frame as { received: number }).received, core.recv.received);
  core.path.resSent(true);
  const c2 = core.path.issueChallenge();
  assert.deepEqual(slots.hello({ ...base, kind: 'resume', challenge: c2 }), { kind: 'park' });
  assert.equal(slots.holdsHello, false, 'the verdict holds nothing');
  // Handed over on slot 9: held for the proof; a second one replaces it, its socket closed.
  assert.deepEqual(kinds(slots.handed({ ...base, kind: 'resume', challenge: core.path.issueChallenge() }, 9, '10.0.0.9')), ['log:resume_hello_parked']);
  assert.deepEqual(kinds(slots.handed({ ...base, kind: 'resume', challenge: core.path.issueChallenge() }, 10, '10.0.0.9')), ['close:9', 'log:resume_hello_parked']);
  assert.equal(slots.holdsHello, true);
  assert.deepEqual(kinds(slots.dropParked()), ['close:10']);
  assert.deepEqual(slots.dropParked(), [], 'no HELLO held: no socket to close');
  const s = slotsIn('SUSPENDED');
  assert.throws(() => s.slots.hello({ ...base, kind: 'resume', challenge: Buffer.alloc(16) }), (e: unknown) => isFerryError(e) && e.code !== 'FERRY_ERR_INTERNAL');
  const o = slotsIn('RES_SENT');
  assert.throws(() => o.slots.hello({ ...base, kind: 'open', challenge: Buffer.alloc(16) }), (e: unknown) => isFerryError(e), 'an open HELLO on a client');
});

test('slots: the delayed ACK goes on the carrying socket, else on the one its DATA came on', () => {
  const { slots } = slotsIn('ESTABLISHED');
  slots.ackArranged(7, 'delay');
  assert.equal(slots.ackTarget(), 7);
  assert.equal(slots.ackTarget(), undefined, 'once');
  const slot = carrying(slots);
  slots.ackArranged(7, 'delay');
  assert.equal(slots.ackTarget(), slot);
});

test('slots: the end of the connection closes every slot: the carrying one, a waiting dial, the draining and kept ones, a parked HELLO', () => {
  const { core, slots } = slotsIn('SUSPENDED');
  const k = kept(slots);
  // Resuming (the kept socket stays), a HELLO overtakes the proof we asked for and is parked.
  core.handle('resume');
  while (core.poll(0));
  assert.equal(core.state, 'RES_SENT');
  core.path.resSent(true);
  const hello = { type: FrameType.HELLO, kind: 'resume', connectionId: core.connectionId, dialerRole: 'server', dialerNonce: Buffer.alloc(16, 2), challenge: core.path.issueChallenge(), received: 0, limit: 1000, mac: Buffer.alloc(32) } as const;
  assert.deepEqual(kinds(slots.handed(hello, 42, undefined)), ['log:resume_hello_parked']);
  const d = slots.dial('resume', Buffer.alloc(16), undefined);
  const c = carrying(slots);
  const out = kinds(slots.ended());
  for (const s of [c, d.slot, k]) assert.ok(out.includes(`close:${s}`), `slot ${s} closes: ${out.join(' ')}`);
  assert.ok(out.includes('close:42'), 'the parked HELLO\'s socket');
  assert.equal(slots.data, undefined);
  assert.equal(slots.kept, undefined);
  assert.equal(slots.isDialing(d.slot), false);
});

test('slots: exactly one end dials after a resume: the lower AgentId, the client when an agent is connected to itself', () => {
  const lower = slotsIn('SUSPENDED').slots;
  assert.equal(lower.isDialer, true, 'a… < b…');
  const higher = new DataSlots(coreIn('SUSPENDED', { localAgent: 'c'.repeat(32) as never }), crypto, countingRandom(1));
  assert.equal(higher.isDialer, false);
  const server = new DataSlots(coreIn('SUSPENDED', { role: 'server' }), crypto, countingRandom(1));
  assert.equal(server.isDialer, true, 'the role does not matter between different agents');
  const self = (role: 'client' | 'server'): boolean => new DataSlots(coreIn('SUSPENDED', { role, peerAgent: 'a'.repeat(32) as never }), crypto, countingRandom(1)).isDialer;
  assert.equal(self('client'), true);
  assert.equal(self('server'), false);
});
