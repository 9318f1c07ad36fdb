/**
 * Our control requests under a ManualClock, with no socket, timer or promise: what a SUS, RES and
 * CLS carry (counter, reason, challenge, proof wanted or carried, padding, tries), that only the
 * outstanding request's answer acts (a superseded, cancelled or forgotten one changes nothing),
 * what a reply, a failure or a bad reply comes to, the resume retry and its lookup, and the close:
 * everything else out is over, one CLS or retries with lookups, CLS towards a resuming peer's
 * source, and the host stopping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionCore, ControlRequests, CLS_ONCE_TIMEOUT_MS, CLS_TRIES, MOVE_SUSPEND_TRIES, RES_TRIES, type ControlHooks, type CoreCommand, type CoreInit, type RequestCommand } from '../../../../src/connection/core/index.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { Identity, connectionKeysFromMaster, freshChain, type AgentId, type ConnectionKeys } from '../../../../src/identity/index.js';
import { FerryError, ManualClock, isFerryError, limit, type ErrorCode } from '../../../../src/util/index.js';
import { coreIn as baseCore, countingRandom } from './fixtures.js';
import {
  DATAGRAM_HEADER_BYTES,
  FrameType,
  MessageType,
  RESUME_FLAG_PROOF,
  RESUME_FLAG_PROOF_WANTED,
  RESUME_PROOF_WANTED_MIN_DATAGRAM,
  decodeConnControl,
  encodeConnControl,
  type ConnControl,
  type ResumeProof,
} from '../../../../src/wire/index.js';
import { ControlAuth } from '../../../../src/connection/core/index.js';

const KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 7));
const PEER = '127.0.0.1:1000';
const LIMIT_MS = 30_000;

function coreIn(state: State, extra: Partial<CoreInit> = {}): ConnectionCore {
  // Distinct challenges, so a test can tell which one a message carries.
  return baseCore(state, { reconnectLimitMs: LIMIT_MS, random: countingRandom(), ...extra });
}

function requestsOf(core: ConnectionCore, hooks: Partial<ControlHooks> = {}): ControlRequests {
  return new ControlRequests(core, { redirectorPort: 2001, reconnectLimitMs: LIMIT_MS, verifyProof: () => assert.fail('no proof expected'), ...hooks });
}

/** What the request carries, decoded as the peer would. */
function sent(c: RequestCommand): ConnControl {
  return decodeConnControl(c.body, c.type);
}

/** The peer's reply to `c` (`type` its reply type), MAC'd under `keys`, as the peer's ControlAuth builds it. */
function replyTo(c: RequestCommand, type: ConnControl['type'], keys: ConnectionKeys | undefined, extra: Partial<ConnControl> = {}): { type: number; body: Buffer } {
  const m = sent(c);
  const head = { type, connectionId: m.connectionId, senderRole: 'server' as const, counter: m.counter, reason: 0, redirectorPort: 0, challenge: Buffer.alloc(16, 0xee), ...extra };
  const r = new ControlAuth().reply(keys, head);
  if (extra.proof) r.proof = extra.proof;
  return { type, body: encodeConnControl(r) };
}

const err = (code: ErrorCode): FerryError => new FerryError(code);

/** A resume HELLO that overtook the proof our RES asked for, held (parked) on slot 9; returns that slot. */
function holdHello(core: ConnectionCore): number {
  core.path.resSent(true);
  const hello = { type: FrameType.HELLO, kind: 'resume', connectionId: core.connectionId, dialerRole: 'server', dialerNonce: Buffer.alloc(16, 2), challenge: core.path.issueChallenge(), received: 0, limit: 1000, mac: Buffer.alloc(32) } as const;
  assert.deepEqual(core.slots.handed(hello, 9, undefined).map((c) => c.kind), ['log']);
  assert.equal(core.slots.holdsHello, true);
  return 9;
}

/** Zero MACs: the HELLO's cryptography of these tests. */
const helloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/**
 * Deadline `name` of `core` is due at `now`: taken out of the table, as the core's handleTimeout
 * would, but for a test that drives a ControlRequests of its own rather than the core's.
 */
function takeDue(core: ConnectionCore, name: 'resume_retry' | 'close_retry', now: number): void {
  assert.ok(core.hasDeadline(name) && core.nextDeadline()! <= now, `${name} due at ${now}`);
  core.cancelDeadline(name);
}

test('SUS: each takes the next counter; a move suspend tries MOVE_SUSPEND_TRIES times, a user one the channel default', () => {
  const core = coreIn('SUS_SENT');
  const r = requestsOf(core);
  const user = r.suspend(0);
  assert.equal(user.to, PEER);
  assert.equal(user.type, MessageType.SUS);
  assert.deepEqual(user.opts, {});
  assert.equal(user.cancellable, false);
  assert.equal(sent(user).counter, 1);
  assert.equal(sent(user).reason, 0);
  const move = r.suspend(1);
  assert.deepEqual(move.opts, { maxTries: MOVE_SUSPEND_TRIES });
  assert.equal(sent(move).counter, 2);
  assert.equal(sent(move).reason, 1);
  assert.equal(core.auth.sent, 2);
});

test('SUS: its SUS_ACK fires recv_sus_ack once; a later answer, or one to a superseded SUS, changes nothing', () => {
  const core = coreIn('SUS_SENT');
  const r = requestsOf(core);
  const first = r.suspend(0);
  const second = r.suspend(0);
  assert.deepEqual(r.replied(first.id, replyTo(first, MessageType.SUS_ACK, undefined), 0), {}, 'the first SUS is no longer the outstanding one');
  assert.deepEqual(r.replied(second.id, replyTo(second, MessageType.SUS_ACK, undefined), 0), { event: 'recv_sus_ack' });
  assert.deepEqual(r.replied(second.id, replyTo(second, MessageType.SUS_ACK, undefined), 0), {}, 'answered already');
  assert.deepEqual(r.failed(second.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 0), {});
});

test('SUS: no answer, or a reply that does not verify, ends the suspend as a timeout; one answered in-band is forgotten', () => {
  const core = coreIn('SUS_SENT', { keys: KEYS, secure: true });
  const r = requestsOf(core);
  const a = r.suspend(0);
  assert.deepEqual(r.failed(a.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 0), { log: { level: 'info', event: 'suspend_unanswered', fields: { code: 'FERRY_ERR_CONTROL_TIMEOUT' } }, event: 'timeout' });
  const b = r.suspend(0);
  // A reply under another key (forged or mangled): as if unanswered, with its code.
  const forged = replyTo(b, MessageType.SUS_ACK, connectionKeysFromMaster(Buffer.alloc(32, 9)));
  assert.deepEqual(r.replied(b.id, forged, 0), { log: { level: 'info', event: 'suspend_unanswered', fields: { code: 'FERRY_ERR_BAD_MAC' } }, event: 'timeout' });
  // A reply echoing another counter does not answer it either.
  const c = r.suspend(0);
  const wrong = replyTo(r.suspend(0), MessageType.SUS_ACK, KEYS);
  r.forgetSus();
  assert.deepEqual(r.replied(c.id, wrong, 0), {}, 'forgotten: nothing acts');
  const d = r.suspend(0);
  assert.equal(r.replied(d.id, wrong, 0).event, 'timeout', 'a reply with the wrong counter is refused');
});

test('RES: carries a fresh path challenge and the redirector port; tries RES_TRIES times and may be cancelled', () => {
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  const plan = r.resume(false);
  const m = plan.build()!;
  const c = plan.request(undefined, 0);
  assert.equal(c.type, MessageType.RES);
  assert.equal(c.to, PEER);
  assert.deepEqual(c.opts, { maxTries: RES_TRIES }, 'not broken: no bound of its own');
  assert.equal(c.cancellable, true);
  assert.deepEqual(sent(c).challenge, m.challenge);
  assert.notDeepEqual(m.challenge, Buffer.alloc(16), 'a fresh challenge, redeemable by the HELLO');
  assert.equal(sent(c).redirectorPort, 2001);
  assert.equal(sent(c).reason, 0);
  assert.equal(c.body.length, encodeConnControl(m).length, 'no proof wanted: no padding');
});

test('RES: while broken, one RES may not outlive the reconnect limit', () => {
  const clock = new ManualClock();
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  core.recovery.next(clock.now()); // broken from 0
  clock.advance(LIMIT_MS - 1000);
  const plan = r.resume(false);
  plan.build();
  assert.deepEqual(plan.request(undefined, clock.now()).opts, { maxTries: RES_TRIES, timeoutMs: 1000 });
});

test('RES: to where the peer has not proven itself (security on), it asks for a proof and is padded to pay for it', () => {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 } });
  const r = requestsOf(core);
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  assert.equal(sent(c).reason & RESUME_FLAG_PROOF_WANTED, RESUME_FLAG_PROOF_WANTED);
  assert.equal(c.body.length, RESUME_PROOF_WANTED_MIN_DATAGRAM - DATAGRAM_HEADER_BYTES);
  assert.equal(core.path.awaitingProof, true, 'a resume HELLO waits for the proof');
});

test('RES: a proved one is built at the flush only while it is still this resume (RES_SENT, not superseded), flagged, with its proof', () => {
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  const old = r.resume(true);
  const plan = r.resume(true);
  assert.equal(old.build(), undefined, 'superseded');
  const m = plan.build()!;
  assert.equal(m.reason & RESUME_FLAG_PROOF, RESUME_FLAG_PROOF);
  const proof = aProof();
  const c = plan.request(proof, 0);
  assert.ok(sent(c).proof, 'the proof travels');
  const late = coreIn('SUSPENDED');
  assert.equal(requestsOf(late).resume(true).build(), undefined, 'the resume fell back to SUSPENDED before the flush');
  const cancelled = r.resume(true);
  assert.deepEqual(r.cancelRes(), { kind: 'cancel', id: cancelled.id });
  assert.equal(cancelled.build(), undefined, 'cancelled before the flush');
  assert.equal(r.resCurrent(cancelled.id), false);
});

test('RES: its RES_ACK fires recv_res_ack and tells where the peer is; after a cancel nothing acts', () => {
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  assert.deepEqual(r.replied(c.id, replyTo(c, MessageType.RES_ACK, undefined, { redirectorPort: 3003 }), 0), { event: 'recv_res_ack', resAcked: true });
  assert.equal(core.path.peer.redirectorPort, 3003);
  assert.deepEqual(core.path.peerChallenge, Buffer.alloc(16, 0xee), 'the HELLO echoes the peer\'s challenge');
  const again = r.resume(false);
  again.build();
  const c2 = again.request(undefined, 0);
  assert.deepEqual(r.cancelRes(), { kind: 'cancel', id: c2.id });
  assert.equal(r.cancelRes(), undefined, 'nothing out any more');
  assert.deepEqual(r.replied(c2.id, replyTo(c2, MessageType.RES_ACK, undefined), 0), {});
  assert.deepEqual(r.failed(c2.id, err('FERRY_ERR_PEER_MOVING'), 0), {});
  assert.equal(core.recovery.lookupNeeded, false, 'a cancelled RES\'s failure teaches nothing');
});

test('RES: a failure ends the attempt (timeout) and tells recovery; our own abort does nothing', () => {
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  assert.deepEqual(r.failed(c.id, err('FERRY_ERR_ABORTED'), 0), {});
  assert.equal(core.recovery.lookupNeeded, false);
  assert.deepEqual(r.failed(c.id, err('FERRY_ERR_PEER_MOVING'), 0), { log: { level: 'info', event: 'resume_unanswered', fields: { code: 'FERRY_ERR_PEER_MOVING' } }, event: 'timeout' });
  assert.equal(core.recovery.lookupNeeded, true, 'the next try asks the location service');
  // A reply that does not match its request is as if unanswered.
  const p2 = r.resume(false);
  p2.build();
  const c2 = p2.request(undefined, 0);
  assert.equal(r.replied(c2.id, replyTo(c2, MessageType.SUS_ACK as ConnControl['type'], undefined), 0).event, 'timeout');
});

test('RES: refused RESUME_UNPROVEN by the peer, the next RES carries our location proof', () => {
  const core = coreIn('RES_SENT');
  const r = requestsOf(core);
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  assert.equal(core.path.mustProve, false);
  assert.equal(r.failed(c.id, err('FERRY_ERR_PEER_MOVING'), 0).event, 'timeout');
  assert.equal(core.path.mustProve, false, 'another refusal asks for no proof');
  const p2 = r.resume(false);
  p2.build();
  const c2 = p2.request(undefined, 0);
  assert.equal(r.failed(c2.id, err('FERRY_ERR_RESUME_UNPROVEN'), 0).event, 'timeout');
  assert.equal(core.path.mustProve, true, 'the next RES proves where we are');
});

test('RES_ACK: a wanted proof that is missing, or one that does not verify, is refused: timeout, kept to fail with, looked up', () => {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 } });
  const refusal = new FerryError('FERRY_ERR_CHAIN_EXPIRED', 'expired');
  const r = requestsOf(core, {
    verifyProof: () => {
      throw refusal;
    },
  });
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  const missing = r.replied(c.id, replyTo(c, MessageType.RES_ACK, KEYS), 0);
  assert.equal(missing.event, 'timeout');
  assert.ok(isFerryError(missing.refused, 'FERRY_ERR_RESUME_UNPROVEN'));
  assert.equal(missing.log?.event, 'resume_refused');
  assert.equal(missing.log?.fields['from'], PEER);
  assert.equal(core.recovery.proofRefusal?.code, 'FERRY_ERR_RESUME_UNPROVEN');
  assert.equal(core.recovery.lookupNeeded, true);
  const p2 = r.resume(false);
  p2.build();
  const c2 = p2.request(undefined, 0);
  const bad = r.replied(c2.id, replyTo(c2, MessageType.RES_ACK, KEYS, { reason: RESUME_FLAG_PROOF, proof: aProof() }), 0);
  assert.equal(bad.refused, refusal);
  assert.equal(core.recovery.proofRefusal, refusal);
});

test('RES_ACK: a proof that verifies records its epoch and location: the peer proved itself there', () => {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 } });
  const seen: number[] = [];
  const r = requestsOf(core, {
    verifyProof: (_m, peerEpoch) => {
      seen.push(peerEpoch);
      return 7;
    },
  });
  const plan = r.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  const o = r.replied(c.id, replyTo(c, MessageType.RES_ACK, KEYS, { reason: RESUME_FLAG_PROOF, redirectorPort: 1001, proof: aProof() }), 0);
  assert.deepEqual(o, { event: 'recv_res_ack', resAcked: true });
  assert.deepEqual(seen, [0], 'verified against the highest epoch accepted so far');
  assert.equal(core.path.peerEpoch, 7);
  assert.equal(core.path.peer.epoch, 7);
  assert.deepEqual(core.path.proven, { ip: '127.0.0.1', controlPort: 1000, redirectorPort: 1001 });
});

test('resume retry: backoff into the timer table, give up past the reconnect limit; a lookup of an earlier attempt is forgotten', () => {
  const clock = new ManualClock();
  const core = coreIn('SUSPENDED');
  const r = requestsOf(core);
  const d = r.scheduleResume(clock.now());
  assert.deepEqual(d, { kind: 'retry', delayMs: limit('RESUME_RETRY_MS'), lookup: false });
  assert.equal(core.nextDeadline(), limit('RESUME_RETRY_MS'));
  clock.advance(limit('RESUME_RETRY_MS'));
  takeDue(core, 'resume_retry', clock.now());
  assert.equal(r.resumeDue(clock.now()), undefined, 'nothing to look up: resume now');
  // The peer is said to be moving: the next try first looks it up, waiting for it to land.
  core.recovery.resumeFailed(err('FERRY_ERR_PEER_MOVING'));
  r.scheduleResume(clock.now());
  const lookup = r.resumeDue(clock.now())!;
  assert.deepEqual({ ...lookup, id: 0 }, { kind: 'lookup', id: 0, agent: 'b'.repeat(32), newerThan: 0, waitMs: limit('PEER_MOVE_WAIT_MS') });
  r.scheduleResume(clock.now());
  assert.deepEqual(r.located(lookup.id, undefined), {}, 'an earlier attempt\'s lookup');
  clock.advance(LIMIT_MS + 1);
  const gone = r.scheduleResume(clock.now());
  assert.equal(gone.kind, 'give_up');
});

test('resume deadline: under ManualClock, a resume without its data socket in time ends as silence: timeout, and the next try looks the peer up', () => {
  const clock = new ManualClock();
  const core = coreIn('SUSPENDED');
  const r = requestsOf(core);
  core.handle('resume');
  while (core.poll(clock.now()));
  assert.equal(core.state, 'RES_SENT');
  clock.advance(limit('HANDSHAKE_TIMEOUT_MS'));
  assert.ok(core.hasDeadline('resume_deadline') && core.nextDeadline() === clock.now());
  assert.equal(core.recovery.lookupNeeded, false);
  assert.deepEqual(r.resumeDeadline(), { log: { level: 'info', event: 'resume_deadline', fields: { state: 'RES_SENT' } }, event: 'timeout' });
  assert.equal(core.recovery.lookupNeeded, true, 'silence: the location service is asked before the next try');
  core.recovery.next(clock.now());
  assert.equal(r.resumeDue(clock.now())?.waitMs, 0, 'silence says nothing of a move: the lookup does not wait for a newer location');
});

test('resume retry: the lookup\'s answer resumes, only while SUSPENDED, not moving, and not stopped', () => {
  const core = coreIn('SUSPENDED');
  const r = requestsOf(core);
  core.recovery.resumeFailed(err('FERRY_ERR_UNKNOWN_CONNECTION'));
  const moved = { ip: '10.0.0.9', controlPort: 5000, redirectorPort: 5001, epoch: 2 };
  const l = r.resumeDue(0)!;
  core.intent.prepareMove();
  assert.deepEqual(r.located(l.id, moved), {}, 'moving: the resume waits for the destination');
  core.intent.cancelMove();
  assert.deepEqual(r.located(l.id, moved), { event: 'resume' });
  assert.equal(core.path.peer, moved, 'the next RES goes where the location service said');
  assert.equal(core.recovery.lookupNeeded, false);
  assert.deepEqual(r.located(l.id, moved), {}, 'answered once');
  core.recovery.resumeFailed(err('FERRY_ERR_UNKNOWN_CONNECTION'));
  const l2 = r.resumeDue(0)!;
  core.setDeadline('resume_retry', 50);
  assert.equal(r.stopResumeRetry(), true);
  assert.equal(core.hasDeadline('resume_retry'), false);
  assert.deepEqual(r.located(l2.id, undefined), {}, 'stopped: its lookup is forgotten');
});

test('close: a RES still out is cancelled first, a SUS forgotten, the resume retry stopped; the CLS carries the intent\'s reason', () => {
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const sus = r.suspend(0);
  const plan = r.resume(false);
  plan.build();
  const res = plan.request(undefined, 0);
  core.setDeadline('resume_retry', 100);
  core.intent.destroy(undefined);
  const out = r.close();
  assert.equal(out.length, 2);
  assert.deepEqual(out[0], { kind: 'cancel', id: res.id });
  const cls = out[1] as RequestCommand;
  assert.equal(cls.kind, 'request');
  assert.equal(cls.type, MessageType.CLS);
  assert.equal(sent(cls).reason, 1);
  assert.equal(cls.to, PEER);
  assert.deepEqual(cls.opts, { maxTries: CLS_TRIES });
  assert.equal(core.hasDeadline('resume_retry'), false);
  assert.deepEqual(r.failed(sus.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 0), {}, 'the SUS\'s late failure does not end the close');
  assert.deepEqual(r.replied(cls.id, replyTo(cls, MessageType.CLS_ACK, undefined), 0), { event: 'recv_cls_ack' });
});

test('close: giving up on an unreachable peer, or a half-open, sends one short CLS and no retries', () => {
  for (const code of ['FERRY_ERR_PEER_UNREACHABLE', 'FERRY_ERR_HANDSHAKE_TIMEOUT'] as const) {
    const core = coreIn('CLOSE_SENT');
    const r = requestsOf(core);
    core.intent.closedError = new FerryError(code);
    const [cls] = r.close() as RequestCommand[];
    assert.equal(sent(cls!).reason, 1, 'a failed connection\'s CLS says abort');
    assert.deepEqual(cls!.opts, { maxTries: 1, timeoutMs: CLS_ONCE_TIMEOUT_MS });
    assert.deepEqual(r.failed(cls!.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 0), { event: 'timeout' });
    assert.equal(core.hasDeadline('close_retry'), false);
    assert.deepEqual(r.closeTowards('10.0.0.5:7000'), [], 'no retries: no CLS towards a resuming peer either');
  }
});

test('close: a CLS the peer did not acknowledge is retried under ManualClock, following the peer through the location service', () => {
  const clock = new ManualClock();
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [first] = r.close() as RequestCommand[];
  // Silence: retried with backoff after a lookup that does not wait.
  const o = r.failed(first!.id, err('FERRY_ERR_CONTROL_TIMEOUT'), clock.now());
  assert.deepEqual(o, { log: { level: 'info', event: 'close_unanswered', fields: { code: 'FERRY_ERR_CONTROL_TIMEOUT', retryMs: 0 } } });
  assert.equal(core.nextDeadline(), 0);
  takeDue(core, 'close_retry', clock.now());
  const lookup = r.closeRetryDue();
  assert.equal(lookup?.kind, 'lookup');
  const moved = { ip: '10.0.0.9', controlPort: 5000, redirectorPort: 5001, epoch: 3 };
  const again = r.located(lookup!.id, moved).commands?.[0] as RequestCommand;
  assert.equal(again.to, '10.0.0.9:5000', 'sent again where the peer is now');
  assert.equal(sent(again).counter, sent(first!).counter + 1, 'a fresh counter each time');
  // The peer says it holds no such connection, and is where the lookup says: the close is done.
  r.failed(again.id, err('FERRY_ERR_UNKNOWN_CONNECTION'), clock.now());
  const l2 = r.closeRetryDue()!;
  assert.equal(l2.kind, 'lookup');
  assert.deepEqual(r.located(l2.id, moved), { log: { level: 'info', event: 'close_peer_forgot', fields: {} }, event: 'timeout' });
});

test('close: a lookup that failed after UNKNOWN_CONNECTION does not end the close; the CLS goes again', () => {
  const clock = new ManualClock();
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [first] = r.close() as RequestCommand[];
  r.failed(first!.id, err('FERRY_ERR_UNKNOWN_CONNECTION'), clock.now());
  const l = r.closeRetryDue()!;
  assert.equal(l.kind, 'lookup');
  const o = r.lookupFailed(l.id);
  assert.equal(o.event, undefined, 'the close is not over');
  const again = o.commands?.[0] as RequestCommand;
  assert.equal(again.kind, 'request');
  assert.equal(again.to, first!.to, 'sent again where it went');
  assert.equal(sent(again).type, MessageType.CLS);
  assert.deepEqual(r.lookupFailed(l.id), {}, 'a stale failure changes nothing');
  // A resume's failed lookup tries where the peer was, as a lookup that found nothing newer.
  const core2 = coreIn('SUSPENDED');
  const r2 = requestsOf(core2);
  core2.recovery.resumeFailed(err('FERRY_ERR_PEER_MOVING'));
  const l2 = r2.resumeDue(0);
  assert.equal(l2?.kind, 'lookup');
  assert.deepEqual(r2.lookupFailed(l2!.id), { event: 'resume' });
  assert.equal(core2.recovery.lookupNeeded, false);
});

test('close: an answer that says the close cannot happen ends it; so does the reconnect limit', () => {
  const clock = new ManualClock();
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [cls] = r.close() as RequestCommand[];
  assert.deepEqual(r.failed(cls!.id, err('FERRY_ERR_CONNECTION_CLOSED'), clock.now()), {
    log: { level: 'info', event: 'close_given_up', fields: { code: 'FERRY_ERR_CONNECTION_CLOSED', why: 'FERRY_ERR_CONNECTION_CLOSED' } },
    event: 'timeout',
  });
  const core2 = coreIn('CLOSE_SENT');
  const r2 = requestsOf(core2);
  let [c] = r2.close() as RequestCommand[];
  // A bad reply is as if unanswered: backoff, no lookup.
  r2.failed(c!.id, err('FERRY_ERR_BAD_MAC'), clock.now());
  for (;;) {
    const at = core2.nextDeadline()!;
    clock.advance(at - clock.now());
    takeDue(core2, 'close_retry', clock.now());
    c = r2.closeRetryDue() as RequestCommand;
    assert.equal(c.kind, 'request', 'no lookup after a bad reply');
    const o = r2.failed(c.id, err('FERRY_ERR_BAD_MAC'), clock.now());
    if (o.event) {
      assert.equal(o.event, 'timeout');
      assert.match(String(o.log?.fields['why']), /no CLS_ACK within/);
      assert.ok(clock.now() > LIMIT_MS, 'not before the reconnect limit');
      break;
    }
  }
  assert.equal(core2.hasDeadline('close_retry'), false);
});

test('close: a CLS failing after the close ended another way (no longer CLOSE_SENT) is not retried', () => {
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [cls] = r.close() as RequestCommand[];
  core.handle('timeout');
  while (core.poll(0));
  assert.equal(core.state, 'CLOSED');
  assert.deepEqual(r.failed(cls!.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 0), {
    log: { level: 'info', event: 'close_given_up', fields: { code: 'FERRY_ERR_CONTROL_TIMEOUT', why: undefined } },
    event: 'timeout',
  });
  assert.equal(core.hasDeadline('close_retry'), false);
});

test('closeTowards: one CLS to the source of a resuming peer\'s RES (AMPLIFICATION_FACTOR tries), not again while it is out', () => {
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [first] = r.close() as RequestCommand[];
  r.failed(first!.id, err('FERRY_ERR_PEER_MOVING'), 0);
  assert.equal(core.hasDeadline('close_retry'), true);
  const [towards] = r.closeTowards('10.0.0.5:7000') as RequestCommand[];
  assert.equal(towards!.to, '10.0.0.5:7000');
  assert.deepEqual(towards!.opts, { maxTries: limit('AMPLIFICATION_FACTOR') });
  assert.equal(core.hasDeadline('close_retry'), false, 'the backoff stops: this CLS replaces it');
  assert.deepEqual(r.closeTowards('10.0.0.5:7000'), [], 'that one is still out');
  assert.equal(r.closeTowards('10.0.0.6:7000').length, 1, 'another source gets one');
  const retry = r.closeRetryDue() as RequestCommand;
  assert.equal(retry.kind, 'request', 'the PEER_MOVING lookup was dropped: a due retry sends at once');
  assert.equal(retry.to, PEER, 'retries go to the proven or located address');
});

test('stopClose: the host stops: no retry, no lookup, and the CLS\'s answer changes nothing', () => {
  const core = coreIn('CLOSE_SENT');
  const r = requestsOf(core);
  const [cls] = r.close() as RequestCommand[];
  r.failed(cls!.id, err('FERRY_ERR_PEER_MOVING'), 0);
  const l = r.closeRetryDue()!;
  const [towards] = r.closeTowards('10.0.0.5:7000') as RequestCommand[];
  core.setDeadline('close_retry', 10);
  r.stopClose();
  assert.equal(core.hasDeadline('close_retry'), false);
  assert.equal(r.closeRetryDue(), undefined);
  assert.deepEqual(r.replied(towards!.id, replyTo(towards!, MessageType.CLS_ACK, undefined), 0), {});
  assert.deepEqual(r.located(l.id, undefined), {});
});

/** A location proof whose content the injected verifier decides on. */
function aProof(): ResumeProof {
  const agent = Identity.generate();
  const host = Identity.generate();
  return { hostKey: host.publicRaw, chain: freshChain(agent, host.publicRaw, 1, Date.now()), treeSize: 1, leafIndex: 0, path: [], signature: Buffer.alloc(64, 5) };
}

/** Every command `core` gives out at `now`, with whether it belongs to a row (else to an input). */
function drainRows(core: ConnectionCore, now = 0): [string, boolean][] {
  const out: [string, boolean][] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push([c.kind === 'act' ? c.action : c.kind === 'transition' ? `${c.from}->${c.to}` : c.kind, core.inRow]);
  return out;
}

test('through the core\'s queue: a refused RES_ACK proof is counted, logged and drops the held HELLO, outside any row, before the timeout\'s row (which cancels the RES)', () => {
  const refusal = new FerryError('FERRY_ERR_CHAIN_EXPIRED', 'expired');
  const core = coreIn('RES_SENT', {
    keys: KEYS,
    secure: true,
    proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 },
    verifyProof: () => {
      throw refusal;
    },
    helloCrypto,
  });
  const held = holdHello(core);
  const plan = core.control.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  core.replied(c.id, replyTo(c, MessageType.RES_ACK, KEYS, { reason: RESUME_FLAG_PROOF, proof: aProof() }), 0);
  const first = core.poll(0);
  assert.ok(first?.kind === 'count_refusal' && first.err === refusal && !core.inRow);
  assert.deepEqual(drainRows(core), [
    ['log', false],
    ['close', false],
    ['RES_SENT->SUSPENDED', true],
    ['cancel', true],
  ]);
  assert.equal(core.slots.holdsHello, false, `the held HELLO's socket (slot ${held}) closed`);
});

test('through the core\'s queue: a verified RES_ACK frees the held HELLO only after its event and every event handed in meanwhile were applied', () => {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 }, verifyProof: () => 7, helloCrypto });
  holdHello(core);
  const plan = core.control.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  core.replied(c.id, replyTo(c, MessageType.RES_ACK, KEYS, { reason: RESUME_FLAG_PROOF, redirectorPort: 1001, proof: aProof() }), 0);
  // dial_if_dialer is the core's: this end is the dialer, its resume dials.
  assert.equal(core.poll(0)?.kind, 'dial');
  // While the dial is being carried out, the application suspends: that row comes first.
  core.handle('suspend');
  const rest = drainRows(core);
  // Leaving the resume drops the held HELLO (its socket closes just before the transition): when
  // the verified proof's turn comes last, there is nothing left to take.
  assert.deepEqual(rest, [
    ['close', true],
    ['RES_SENT->SUS_SENT', true],
    ['cancel', true],
    ['request', true],
  ]);
  assert.equal(core.slots.holdsHello, false);
  // An answer to a request no longer out queues nothing.
  core.requestFailed(c.id + 100, new FerryError('FERRY_ERR_CONTROL_TIMEOUT'), 0);
  assert.equal(core.poll(0), undefined);
});

test('through the core\'s queue: a verified RES_ACK answers the held HELLO last, on its slot, if still resuming: HELLO_ACK, attach', () => {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.1', controlPort: 999, redirectorPort: 1001 }, verifyProof: () => 7, helloCrypto });
  const asked: number[] = [];
  core.bindSockets({ isOpen: () => true, remoteAddress: (slot) => (asked.push(slot), '10.0.0.9') });
  const held = holdHello(core);
  const plan = core.control.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  core.replied(c.id, replyTo(c, MessageType.RES_ACK, KEYS, { reason: RESUME_FLAG_PROOF, redirectorPort: 1001, proof: aProof() }), 0);
  const out: CoreCommand[] = [];
  for (let x = core.poll(0); x; x = core.poll(0)) out.push(x);
  assert.deepEqual(out.slice(-2).map((x) => [x.kind, 'slot' in x ? x.slot : undefined]), [['accept', held], ['attach', held]]);
  assert.equal(core.slots.holdsHello, false);
  assert.deepEqual(asked, [held], 'where its socket comes from, asked when it is answered');
});

test('through the core\'s queue: the resume deadline, a lookup\'s answer and cancel_res come out as commands', () => {
  const core = coreIn('RES_SENT');
  core.resumeDeadlinePassed();
  assert.deepEqual(drainRows(core), [
    ['log', false],
    ['RES_SENT->SUSPENDED', true],
  ], 'no RES out: cancel_res comes to nothing; no automatic resume wanted: schedule_resume neither');
  // The next try looks the peer up first; its answer resumes (the event's row).
  const d = core.control.scheduleResume(0);
  assert.equal(d.kind, 'retry');
  const lookup = core.control.resumeDue(0);
  assert.ok(lookup);
  core.located(lookup.id, { ip: '127.0.0.2', controlPort: 1000, redirectorPort: 1001, epoch: 3 });
  assert.deepEqual(drainRows(core)[0], ['SUSPENDED->RES_SENT', true]);
  core.lookupFailed(lookup.id);
  assert.equal(core.poll(0), undefined, 'answered already');
});

test('through the core\'s queue: send_cls, established and checkpoint are decided by the core, a RES still out cancelled first', () => {
  // send_cls: the RES out is cancelled, then the CLS goes (carrying the abort reason once the intent has an error).
  const closing = coreIn('RES_SENT');
  const res = closing.control.resume(false);
  res.build();
  const r = res.request(undefined, 0);
  closing.intent.closedError = new FerryError('FERRY_ERR_PEER_UNREACHABLE');
  closing.handle('close');
  const out = drainCommands(closing);
  assert.deepEqual(out.map((c) => c.kind), ['transition', 'cancel', 'request']);
  assert.deepEqual(out[1], { kind: 'cancel', id: r.id });
  const cls = out[2];
  assert.ok(cls?.kind === 'request' && cls.type === MessageType.CLS);
  assert.equal(sent(cls).reason, 1);
  assert.deepEqual(cls.opts, { maxTries: 1, timeoutMs: CLS_ONCE_TIMEOUT_MS }, 'given up on an unreachable peer: one short CLS');
  // established: the RES out is cancelled, recovery and path told, then the adapter's part.
  const resuming = coreIn('RES_ACKED');
  const plan = resuming.control.resume(false);
  plan.build();
  const c = plan.request(undefined, 0);
  resuming.recovery.resumeFailed(err('FERRY_ERR_CONTROL_TIMEOUT'));
  resuming.path.proveOurLocation();
  resuming.handle('socket_ready');
  assert.deepEqual(drainCommands(resuming).slice(1), [{ kind: 'cancel', id: c.id }, { kind: 'established' }]);
  assert.equal(resuming.recovery.lookupNeeded, false, 'recovery knows it resumed');
  assert.equal(resuming.path.mustProve, false, 'the peer accepted where we are');
  assert.equal(resuming.control.resCurrent(c.id), false);
  // checkpoint: no retry, deadline, SUS or RES left, then the adapter's part.
  const moving = coreIn('SUSPENDED');
  const p2 = moving.control.resume(false);
  moving.control.scheduleResume(0);
  moving.setDeadline('handshake', 50);
  moving.setDeadline('resume_deadline', 60);
  moving.handle('detach');
  assert.deepEqual(drainCommands(moving), [{ kind: 'cancel', id: p2.id }, { kind: 'act', action: 'checkpoint' }]);
  assert.equal(moving.nextDeadline(), undefined, 'the resume retry, handshake and resume deadlines are gone');
});

function drainCommands(core: ConnectionCore): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(0); c; c = core.poll(0)) out.push(c);
  return out;
}

test('through the core\'s queue: our SUS that settles is counted once all its answer led to is applied (SUSPENDED by then); one forgotten meanwhile too, once', () => {
  const core = coreIn('ESTABLISHED');
  core.intent.suspend('move', 100);
  core.handle('suspend');
  const sus = drainCommands(core).find((c) => c.kind === 'request');
  assert.ok(sus?.kind === 'request' && sus.type === MessageType.SUS);
  core.replied(sus.id, replyTo(sus, MessageType.SUS_ACK, undefined), 130);
  // recv_sus_ack's row (SUSPENDED) comes out first; the count is taken after it, at 130.
  assert.deepEqual(drainRows(core, 130).map(([k]) => k), ['SUS_SENT->SUSPENDED', 'fire_later']);
  assert.equal(core.stats.suspends, 1);
  assert.equal(core.stats.lastSuspendMs, 30);
  // A SUS forgotten (the peer drained first) still counts when it settles: the suspend it measured is over once.
  const again = coreIn('ESTABLISHED');
  again.intent.suspend('move', 10);
  again.handle('suspend');
  const s2 = drainCommands(again).find((c) => c.kind === 'request');
  assert.ok(s2?.kind === 'request');
  again.control.forgetSus();
  again.handle('recv_sus_ack');
  drainCommands(again);
  assert.equal(again.stats.suspends, 0, 'not counted before it settles');
  again.requestFailed(s2.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 40);
  assert.deepEqual(drainRows(again, 40), [], 'forgotten: nothing acts');
  assert.equal(again.stats.suspends, 1);
  assert.equal(again.stats.lastSuspendMs, 30);
  again.requestFailed(s2.id, err('FERRY_ERR_CONTROL_TIMEOUT'), 50);
  drainRows(again, 50);
  assert.equal(again.stats.suspends, 1, 'once');
});

test('through the core\'s queue: a lookup the location service failed is logged (its code), then answered as one that found nothing', () => {
  const core = coreIn('SUSPENDED');
  core.intent.autoResume = true;
  core.recovery.resumeFailed(err('FERRY_ERR_PEER_MOVING'));
  core.control.scheduleResume(0);
  const lookup = core.control.resumeDue(0);
  assert.ok(lookup);
  core.lookupFailed(lookup.id, err('FERRY_ERR_DIRECTORY_UNAVAILABLE'));
  const out = drainCommands(core);
  assert.deepEqual(out[0], { kind: 'log', level: 'info', event: 'lookup_failed', fields: { code: 'FERRY_ERR_DIRECTORY_UNAVAILABLE', detail: err('FERRY_ERR_DIRECTORY_UNAVAILABLE').message } });
  assert.deepEqual(out[1], { kind: 'transition', event: 'resume', from: 'SUSPENDED', to: 'RES_SENT' });
  // Whatever failed, the line names a code.
  core.lookupFailed(99, new Error('boom'));
  assert.deepEqual(drainCommands(core), [{ kind: 'log', level: 'info', event: 'lookup_failed', fields: { code: 'FERRY_ERR_INTERNAL', detail: 'boom' } }]);
});

/**
 * Our RES went to the peer's old host; the peer's crossing RES came, proven, from its new one
 * (both ends had moved). The old host answers a retransmission of our RES from its reply cache:
 * a genuine RES_ACK of the peer's, naming the redirector port it had there, with no proof.
 */
function crossedFromElsewhere(): { core: ConnectionCore; res: RequestCommand; staleAck: { type: number; body: Buffer } } {
  const core = coreIn('RES_SENT', { keys: KEYS, secure: true, verifyProof: () => assert.fail('no proof to verify') });
  core.intent.autoResume = true;
  const plan = core.control.resume(false);
  plan.build();
  const res = plan.request(undefined, 0);
  assert.equal(sent(res).reason, 0, 'to where the peer proved itself: no proof asked for');
  // The peer's RES, its proof verified: it speaks from 127.0.0.2 now, at a newer epoch.
  core.path.proofAccepted(2, { ip: '127.0.0.2', controlPort: 1000, redirectorPort: 2002 });
  core.handle('recv_res');
  drainCommands(core);
  assert.equal(core.state, 'RES_ACKED');
  return { core, res, staleAck: replyTo(res, MessageType.RES_ACK, KEYS, { redirectorPort: 1001 }) };
}

test('through the core\'s queue: a resume that ends in RES_ACKED (its dial lost, or no socket in time) stops our crossing RES: its late answer changes nothing', () => {
  for (const ending of ['socket_lost', 'timeout'] as const) {
    const { core, res, staleAck } = crossedFromElsewhere();
    core.handle(ending);
    const out = drainCommands(core);
    assert.equal(core.state, 'SUSPENDED');
    assert.ok(out.some((c) => c.kind === 'cancel' && c.id === res.id), `${ending}: our RES is cancelled with the attempt`);
    assert.equal(core.control.resCurrent(res.id), false);
    // Before, the late RES_ACK was judged against where the peer had proved itself since, refused
    // RESUME_UNPROVEN, and kept as the code the connection gave up with (seed 93253422).
    core.replied(res.id, staleAck, 50);
    assert.deepEqual(drainCommands(core), [], `${ending}: nothing acts on it`);
    assert.equal(core.recovery.proofRefusal, undefined);
    assert.equal(core.path.wantsProof(true, { ...core.path.proven, epoch: 2 }), false, 'nor does it make our next RES to the proven location ask for a proof');
  }
});

test('through the core\'s queue: in RES_ACKED the peer\'s RES leads the resume: our crossing RES unanswered, or its answer refused, ends only that RES', () => {
  // Its answer refused (the stale RES_ACK from the peer's old host): counted and logged, nothing more.
  const a = crossedFromElsewhere();
  a.core.replied(a.res.id, a.staleAck, 50);
  const out = drainCommands(a.core);
  assert.deepEqual(out.map((c) => c.kind), ['count_refusal', 'log']);
  const refusal = out[0];
  assert.ok(refusal?.kind === 'count_refusal' && refusal.err.code === 'FERRY_ERR_RESUME_UNPROVEN');
  assert.equal(a.core.state, 'RES_ACKED', 'the resume goes on');
  assert.equal(a.core.control.resCurrent(a.res.id), false);
  assert.equal(a.core.recovery.proofRefusal, undefined, 'not the code a give-up fails with');
  // Unanswered (the peer's old host says it moved away): logged, nothing more.
  const b = crossedFromElsewhere();
  b.core.requestFailed(b.res.id, err('FERRY_ERR_PEER_MOVING'), 50);
  assert.deepEqual(drainCommands(b.core), [{ kind: 'log', level: 'info', event: 'resume_unanswered', fields: { code: 'FERRY_ERR_PEER_MOVING' } }]);
  assert.equal(b.core.state, 'RES_ACKED');
  assert.equal(b.core.control.resCurrent(b.res.id), false);
  // In RES_SENT it is the resume's own RES: its refusal ends the attempt, as before.
  const c = coreIn('RES_SENT', { keys: KEYS, secure: true, proven: { ip: '127.0.0.2', controlPort: 1000, redirectorPort: 2002 } });
  const plan = c.control.resume(false);
  plan.build();
  const r = plan.request(undefined, 0);
  assert.equal(sent(r).reason, RESUME_FLAG_PROOF_WANTED);
  c.replied(r.id, replyTo(r, MessageType.RES_ACK, KEYS, { redirectorPort: 1001 }), 50);
  assert.ok(drainCommands(c).some((x) => x.kind === 'transition' && x.to === 'SUSPENDED'));
  assert.equal(c.recovery.proofRefusal?.code, 'FERRY_ERR_RESUME_UNPROVEN');
});
