/**
 * The resume intent under plain `now` numbers, one rule per test: what the application's
 * suspend(), resume(), close() and destroy() come to in each state (and a later suspend()
 * superseding a pending resume()), a move's preparation and which wish wins when it lands or is
 * cancelled, whether our SUSPEND and RESUME go in-band or by datagram, the resume retry scheduled
 * or given up, what the peer's accepted SUS, RES or CLS changes, and the metrics' durations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SuspendWatch, type AcceptedIncoming, type ConnectionCore, type CoreInit, type Expiry, type ResumeStep } from '../../../../src/connection/core/index.js';
import type { Event, State } from '../../../../src/connection/state-machine.js';
import { connectionKeysFromMaster } from '../../../../src/identity/index.js';
import { FerryError, limit } from '../../../../src/util/index.js';
import { MessageType } from '../../../../src/wire/index.js';
import { coreIn } from './fixtures.js';

const LIMIT_MS = 30_000; // the fixture's reconnect limit


/** Apply `event` to completion (the adapter's part is not under test here). */
function drive(core: ConnectionCore, event: Event, now = 0): void {
  core.handle(event);
  while (core.poll(now)) {
    // Commands are the adapter's; only the state matters here.
  }
}

function at(state: State, extra: Partial<CoreInit> = {}): ConnectionCore {
  return coreIn(state, extra);
}

/** The peer's accepted request, with every follow-up off unless `o` sets it. */
function accepted(type: number, o: Partial<AcceptedIncoming> = {}): AcceptedIncoming {
  const event: Event = type === MessageType.SUS ? 'recv_sus' : type === MessageType.RES ? 'recv_res' : 'recv_cls';
  return { kind: 'accept', type, event, reply: Buffer.alloc(0), stopAutoResume: false, dropKept: false, peerAborted: false, resumeAfter: false, peerMoving: false, ...o };
}

test('intent: a suspend() starts from live or resuming states, joins one under way, and is refused elsewhere with the table\'s code', () => {
  for (const s of ['ESTABLISHED', 'RES_SENT', 'RES_ACKED'] as const) assert.deepEqual(at(s).intent.suspend('user', 5), { kind: 'suspend' }, s);
  for (const s of ['SUS_SENT', 'SUS_ACKED', 'SUSPENDED'] as const) assert.deepEqual(at(s).intent.suspend('user', 5), { kind: 'join' }, s);
  for (const s of ['CLOSED', 'CONNECT_SENT', 'CLOSE_SENT'] as const) {
    const step = at(s).intent.suspend('user', 5);
    assert.equal(step.kind, 'refuse', s);
    if (step.kind === 'refuse') assert.match(step.error.code, /^FERRY_ERR_/);
  }
});

test('intent: a user suspend() ends the automatic resume and supersedes a resume() pending; a move\'s suspend does neither', () => {
  const core = at('SUSPENDED');
  core.intent.autoResume = true;
  const call = core.intent.resumeCalled();
  core.intent.suspend('move', 0);
  assert.equal(core.intent.autoResume, true);
  assert.equal(core.intent.superseded(call), false);
  core.intent.suspend('user', 0);
  assert.equal(core.intent.autoResume, false);
  assert.equal(core.intent.superseded(call), true);
  const step = core.intent.resumeStep(call, 0);
  assert.equal(step.kind === 'refuse' && step.error.code, 'FERRY_ERR_SUPERSEDED');
  assert.equal(core.intent.resumeWaitOver('wait_resume', call), true, 'a wait of a superseded resume() is over');
  assert.equal(core.intent.superseded(core.intent.resumeCalled()), false, 'a resume() after the suspend() is not superseded');
});

test('intent: our SUSPEND goes in-band only for a user suspend, not moving, on an open live socket, in SUS_SENT', () => {
  const core = at('ESTABLISHED');
  core.intent.suspend('user', 0);
  drive(core, 'suspend');
  assert.equal(core.state, 'SUS_SENT');
  assert.equal(core.intent.suspendInBand(true), true);
  assert.equal(core.intent.suspendInBand(false), false, 'no open socket: the datagram');
  assert.equal(core.intent.susReason, 0);
  core.intent.suspend('move', 0);
  assert.equal(core.intent.susReason, 1, "a move's SUS says so");
  assert.equal(core.intent.suspendInBand(true), false, "a move's suspend goes by datagram");
  const resuming = at('RES_SENT');
  resuming.intent.suspend('user', 0);
  assert.equal(resuming.intent.suspendInBand(true), false, 'not in SUS_SENT');
});

test('intent: a user suspend during a move\'s preparation joins the move (reason 1) and is the wish that lands', () => {
  const core = at('ESTABLISHED');
  const resumeWanted = core.intent.prepareMove();
  assert.equal(resumeWanted, true, 'live when the move began');
  core.intent.suspend('user', 0);
  assert.equal(core.intent.susReason, 1);
  core.intent.movePrepared(resumeWanted);
  assert.equal(core.intent.autoResume, false, 'lands suspended');
  assert.equal(core.checkpoint().resume, false);
});

test('intent: without a wish of the application, a move lands as the connection was when it began', () => {
  const cases: [State, boolean, boolean][] = [
    ['ESTABLISHED', false, true],
    ['RES_SENT', false, true],
    ['RES_ACKED', false, true],
    ['SUSPENDED', false, false],
    ['SUSPENDED', true, true],
  ];
  for (const [state, auto, lands] of cases) {
    const core = at(state);
    core.intent.autoResume = auto;
    const wanted = core.intent.prepareMove();
    core.intent.autoResume = !lands; // what the move's own suspend may have changed meanwhile
    core.intent.movePrepared(wanted);
    assert.equal(core.intent.autoResume, lands, `${state}, autoResume ${auto}`);
  }
});

test('intent: a resume() during a move\'s preparation waits for the move and is the wish that lands', () => {
  const core = at('SUSPENDED');
  const wanted = core.intent.prepareMove();
  assert.equal(wanted, false);
  const call = core.intent.resumeCalled();
  assert.deepEqual(core.intent.resumeStep(call, 0), { kind: 'wait_move' });
  assert.equal(core.intent.resumeWaitOver('wait_move', call), false, 'held while the move is prepared');
  core.intent.movePrepared(wanted);
  assert.equal(core.intent.autoResume, true, 'lands live');
  assert.deepEqual(core.intent.incomingContext(), { moving: true, resumePending: true });
  // Cancelled: the resume goes on here.
  assert.equal(core.intent.cancelMove(), true, 'rollback resumes here');
  assert.equal(core.intent.resumeWaitOver('wait_move', call), true);
  core.intent.resumeSettled();
  assert.equal(core.intent.incomingContext().resumePending, false);
});

test('intent: a cancelled move resumes here only when SUSPENDED and wanted; a landed one starts only then', () => {
  const idle = at('SUSPENDED');
  idle.intent.prepareMove();
  assert.equal(idle.intent.moving, true);
  assert.equal(idle.intent.cancelMove(), false, 'not wanted');
  assert.equal(idle.intent.moving, false);
  const closing = at('CLOSE_SENT');
  closing.intent.autoResume = true;
  assert.equal(closing.intent.cancelMove(), false, 'not SUSPENDED');
  const landed = at('SUSPENDED');
  assert.equal(landed.intent.start(10), false);
  landed.intent.autoResume = true;
  assert.equal(landed.intent.start(10), true);
  drive(landed, 'resume');
  // Established at 35: the core times the resume (its stats), once.
  drive(landed, 'socket_ready', 35);
  assert.deepEqual([landed.stats.resumes, landed.stats.lastResumeMs], [1, 25], 'the resume is measured from the start');
  assert.equal(landed.intent.resumeMeasured(40), undefined, 'taken');
});

test('intent: a move waits for an open to finish, then suspends unless SUSPENDED with no drain running', () => {
  assert.equal(at('CONNECT_SENT').intent.moveWaitsForOpen, true);
  assert.equal(at('CONNECT_ACKED').intent.moveWaitsForOpen, true);
  assert.equal(at('ESTABLISHED').intent.moveWaitsForOpen, false);
  assert.equal(at('ESTABLISHED').intent.moveSuspends(0), true);
  assert.equal(at('SUS_ACKED').intent.moveSuspends(0), true);
  assert.equal(at('SUSPENDED').intent.moveSuspends(1), true, 'a drain still running is waited for');
  assert.equal(at('SUSPENDED').intent.moveSuspends(0), false);
});

test('intent: a RESUME offered on the kept socket ends the RES of an earlier attempt, waits for no proof, and is bounded by its slot\'s resume_offer deadline', () => {
  const core = at('SUSPENDED');
  const control = core.control;
  drive(core, 'resume');
  // The resume's RES datagram (no kept socket) is the earlier attempt's RES here.
  const earlier = { id: [...Array(10).keys()].find((id) => control.resCurrent(id))! };
  core.path.resSent(true);
  assert.equal(core.path.awaitingProof, true, 'as if the earlier RES had asked for the peer\'s proof');
  const cancel = core.intent.resumeOffered(7, 1000);
  assert.deepEqual(cancel, { kind: 'cancel', id: earlier.id });
  assert.equal(control.resCurrent(earlier.id), false);
  assert.equal(core.path.awaitingProof, false, 'no resume HELLO waits for a proof');
  // The core acts on the deadline itself (slot 7 is no kept socket here: nothing comes of it).
  core.handleTimeout(999 + limit('DRAIN_TIMEOUT_MS'));
  assert.equal(core.hasDeadline('resume_offer', 7), true, 'not due before DRAIN_TIMEOUT_MS');
  core.handleTimeout(1000 + limit('DRAIN_TIMEOUT_MS'));
  assert.equal(core.hasDeadline('resume_offer', 7), false, 'due DRAIN_TIMEOUT_MS after the offer');
  assert.equal(core.intent.resumeOffered(7, 1000), undefined, 'no RES out: nothing to cancel');
});

test('intent: our RES carries this host\'s proof only if it has one that fits (at most RESUME_PROOF_MAX_LINKS links)', () => {
  const core = at('SUSPENDED');
  const fits = { chain: new Array<number>(limit('RESUME_PROOF_MAX_LINKS')).fill(0) };
  assert.deepEqual(core.intent.fittingProof(fits), { proof: fits });
  const long = { chain: new Array<number>(limit('RESUME_PROOF_MAX_LINKS') + 1).fill(0) };
  const tooLong = core.intent.fittingProof(long);
  assert.equal(tooLong.proof, undefined);
  assert.equal(tooLong.log?.event, 'resume_proof_too_long');
  const none = core.intent.fittingProof(undefined);
  assert.equal(none.proof, undefined);
  assert.equal(none.log?.event, 'resume_no_proof');
});

test('intent: resume() turn by turn: done, finish the suspend first, resume from SUSPENDED, wait for one under way, refused elsewhere', () => {
  const call = (core: ConnectionCore): number => core.intent.resumeCalled();
  const step = (s: State): ResumeStep => {
    const core = at(s);
    return core.intent.resumeStep(call(core), 0);
  };
  assert.deepEqual(step('ESTABLISHED'), { kind: 'done' });
  assert.deepEqual(step('SUS_SENT'), { kind: 'wait_suspend' });
  assert.deepEqual(step('SUS_ACKED'), { kind: 'wait_suspend' });
  assert.deepEqual(step('SUSPENDED'), { kind: 'resume' });
  assert.deepEqual(step('RES_SENT'), { kind: 'wait_resume' });
  assert.deepEqual(step('RES_ACKED'), { kind: 'wait_resume' });
  for (const s of ['CLOSED', 'CLOSE_SENT'] as const) {
    const r = step(s);
    assert.equal(r.kind, 'refuse', s);
  }
  const core = at('SUS_SENT');
  const c = call(core);
  core.intent.resumeStep(c, 0);
  assert.equal(core.intent.autoResume, true, 'the wish holds while the suspend finishes');
  assert.equal(core.intent.resumeWaitOver('wait_suspend', c), false);
  core.intent.prepareMove();
  assert.equal(core.intent.resumeWaitOver('wait_suspend', c), true, 'a move overtakes it');
});

test('intent: a resume() from SUSPENDED counts the reconnect limit from now', () => {
  const core = at('SUSPENDED');
  core.intent.autoResume = true;
  assert.equal(core.intent.scheduleResume(0).kind, 'scheduled');
  assert.equal(core.recovery.requestTimeout(20_000), 10_000, 'broken since 0');
  core.intent.resumeStep(core.intent.resumeCalled(), 20_000);
  assert.equal(core.recovery.requestTimeout(20_000), undefined, 'the limit starts over');
});

test('intent: a resume\'s wait ends when ESTABLISHED or when a move overtakes it', () => {
  const core = at('RES_SENT');
  const c = core.intent.resumeCalled();
  assert.equal(core.intent.resumeWaitOver('wait_resume', c), false);
  core.intent.prepareMove();
  assert.equal(core.intent.resumeWaitOver('wait_resume', c), true);
  const live = at('ESTABLISHED');
  assert.equal(live.intent.resumeWaitOver('wait_resume', live.intent.resumeCalled()), true);
});

test('intent: our RESUME goes in-band on an open kept socket only with no proof due either way and no move', () => {
  const plain = at('SUSPENDED');
  assert.equal(plain.intent.resumeInBand(true), true);
  assert.equal(plain.intent.resumeInBand(false), false, 'no open kept socket');
  plain.intent.prepareMove();
  assert.equal(plain.intent.resumeInBand(true), false, 'moving');
  const keys = connectionKeysFromMaster(Buffer.alloc(32, 7));
  const proven = at('SUSPENDED', { keys, secure: true, proven: { ip: '127.0.0.1', controlPort: 1000, redirectorPort: 1001 } });
  assert.equal(proven.intent.resumeInBand(true), true, 'secure, the peer proven where it is');
  proven.path.proveOurLocation();
  assert.equal(proven.intent.resumeInBand(true), false, 'our RES must carry a proof');
  const unproven = at('SUSPENDED', { keys, secure: true, proven: { ip: '10.0.0.5', controlPort: 7000, redirectorPort: 7001 } });
  assert.equal(unproven.intent.resumeInBand(true), false, 'the peer proved itself elsewhere: our RES asks for its proof');
});

test('intent: schedule_resume does nothing unless an automatic resume is wanted and no move is prepared', () => {
  const core = at('SUSPENDED');
  assert.deepEqual(core.intent.scheduleResume(0), { kind: 'none' });
  assert.equal(core.nextDeadline(), undefined);
  core.intent.autoResume = true;
  core.intent.prepareMove();
  assert.deepEqual(core.intent.scheduleResume(0), { kind: 'none' });
  core.intent.cancelMove();
  assert.deepEqual(core.intent.scheduleResume(100), { kind: 'scheduled' });
  assert.ok(core.hasDeadline('resume_retry'));
  assert.deepEqual(core.intent.scheduleResume(120), { kind: 'scheduled' }, 'the next attempt');
  drive(core, 'resume');
  drive(core, 'socket_ready', 150);
  assert.equal(core.stats.lastResumeMs, 50, 'the resume is measured from the first schedule');
});

test('intent: schedule_resume past the reconnect limit gives up with PEER_UNREACHABLE, and our CLS then says abort', () => {
  const core = at('SUSPENDED');
  core.intent.autoResume = true;
  assert.equal(core.intent.scheduleResume(0).kind, 'scheduled');
  assert.equal(core.intent.clsReason, 0);
  const d = core.intent.scheduleResume(LIMIT_MS + 1);
  assert.equal(d.kind, 'give_up');
  assert.equal(core.intent.closedError?.code, 'FERRY_ERR_PEER_UNREACHABLE');
  assert.equal(core.intent.clsReason, 1);
});

test('intent: resume_retry resumes now, or looks the peer up first, only while SUSPENDED and not moving', () => {
  const core = at('SUSPENDED');
  assert.equal(core.intent.resumeDue(0), 'resume');
  core.recovery.peerMoving();
  const lookup = core.intent.resumeDue(0);
  assert.equal(typeof lookup === 'object' && lookup.kind, 'lookup');
  core.intent.prepareMove();
  assert.equal(core.intent.resumeDue(0), undefined, 'moving');
  assert.equal(at('RES_SENT').intent.resumeDue(0), undefined, 'not SUSPENDED');
});

test('intent: close() fires close unless a close began (then waits) or ended; destroy() marks the abort and keeps the first error', () => {
  assert.equal(at('ESTABLISHED').intent.close(), 'close');
  assert.equal(at('SUSPENDED').intent.close(), 'close');
  assert.equal(at('CLOSE_SENT').intent.close(), 'wait');
  assert.equal(at('CLOSE_ACKED').intent.close(), 'wait');
  assert.equal(at('CLOSED').intent.close(), 'done');
  const core = at('ESTABLISHED');
  const first = new FerryError('FERRY_ERR_INTERNAL', 'first');
  assert.equal(core.intent.clsReason, 0);
  assert.equal(core.intent.destroy(first), true);
  assert.equal(core.intent.clsReason, 1, 'our CLS says abort');
  assert.equal(core.intent.destroy(new FerryError('FERRY_ERR_ABORTED')), true);
  assert.equal(core.intent.closedError, first);
  const closing = at('CLOSE_SENT');
  assert.equal(closing.intent.destroy(undefined), false, 'already closing');
  assert.equal(closing.intent.clsReason, 1, 'but its further CLS say abort');
  assert.equal(at('CLOSED').intent.destroy(first), false);
});

test('intent: the host stopping ends only a close still retrying, with its error unless one is set', () => {
  const err = new FerryError('FERRY_ERR_CONNECTION_CLOSED', 'host stopped');
  assert.equal(at('ESTABLISHED').intent.stop(err), false);
  const closing = at('CLOSE_SENT');
  assert.equal(closing.intent.stop(err), true);
  assert.equal(closing.intent.closedError, err);
});

test('intent: a lost socket of a live connection turns the automatic resume on; elsewhere it changes nothing', () => {
  const live = at('ESTABLISHED');
  live.intent.socketLost();
  assert.equal(live.intent.autoResume, true);
  const suspended = at('SUSPENDED');
  suspended.intent.socketLost();
  assert.equal(suspended.intent.autoResume, false);
});

test('intent: the peer\'s accepted request: the abort, the metrics, our overtaken automatic resume', () => {
  const core = at('ESTABLISHED');
  core.intent.autoResume = true;
  core.intent.incomingAccepted(accepted(MessageType.SUS, { stopAutoResume: true }), 100);
  assert.equal(core.intent.autoResume, false);
  drive(core, 'recv_sus');
  drive(core, 'drained');
  assert.equal(core.state, 'SUSPENDED');
  assert.equal(core.intent.suspendMeasured(130), 30, 'the peer\'s suspend is measured from its SUS');
  assert.equal(core.intent.suspendMeasured(140), undefined, 'once');
  core.intent.incomingAccepted(accepted(MessageType.RES), 200);
  core.intent.incomingAccepted(accepted(MessageType.RES), 250);
  assert.equal(core.intent.resumeMeasured(260), 60, 'from the first RES');
  const aborted = at('ESTABLISHED');
  aborted.intent.incomingAccepted(accepted(MessageType.CLS, { peerAborted: true }), 0);
  assert.equal(aborted.intent.closedError?.code, 'FERRY_ERR_PEER_ABORTED');
  const kept = new FerryError('FERRY_ERR_INTERNAL');
  const already = at('ESTABLISHED');
  already.intent.closedError = kept;
  already.intent.incomingAccepted(accepted(MessageType.CLS, { peerAborted: true }), 0);
  assert.equal(already.intent.closedError, kept, 'the first error stays');
});

test('intent: a SUS that crossed an application resume() leaves us SUSPENDED: our resume goes on (through the location service for a moving peer)', () => {
  const core = at('SUSPENDED');
  assert.equal(core.intent.resumeAfterIncoming(accepted(MessageType.SUS)), false, 'no resume() crossed');
  assert.equal(core.intent.autoResume, false);
  assert.equal(core.intent.resumeAfterIncoming(accepted(MessageType.SUS, { resumeAfter: true })), true);
  assert.equal(core.intent.autoResume, true);
  assert.equal(core.recovery.lookupNeeded, false);
  const moving = at('SUSPENDED');
  assert.equal(moving.intent.resumeAfterIncoming(accepted(MessageType.SUS, { resumeAfter: true, peerMoving: true })), true);
  assert.equal(moving.recovery.lookupNeeded, true, 'the peer is found again where it lands');
  const live = at('RES_SENT');
  assert.equal(live.intent.resumeAfterIncoming(accepted(MessageType.SUS, { resumeAfter: true })), false, 'not left SUSPENDED');
});

test('intent: a suspend is done once SUSPENDED and drained, or once it was suspended and the peer resumed it', () => {
  const w = new SuspendWatch();
  assert.equal(w.done('SUS_SENT', 0), false);
  assert.equal(w.done('SUSPENDED', 1), false, 'still draining');
  assert.equal(w.done('SUSPENDED', 0), true);
  const crossed = new SuspendWatch();
  crossed.observe('SUS_ACKED');
  assert.equal(crossed.done('RES_ACKED', 1), true, 'suspended, then the peer resumed it');
  assert.equal(new SuspendWatch().done('RES_ACKED', 0), false, 'never suspended');
});

test('intent: an application\'s wait fails once CLOSED, or once a close began unless it waits for CLOSED, with the connection\'s error', () => {
  assert.equal(at('SUSPENDED').intent.waitFails(false), undefined);
  assert.equal(at('CLOSE_SENT').intent.waitFails(true), undefined, 'close() waits for CLOSED');
  assert.equal(at('CLOSE_ACKED').intent.waitFails(false)?.code, 'FERRY_ERR_CONNECTION_CLOSED');
  const closed = at('CLOSED');
  assert.equal(closed.intent.waitFails(true)?.code, 'FERRY_ERR_CONNECTION_CLOSED');
  const err = new FerryError('FERRY_ERR_PEER_UNREACHABLE');
  closed.intent.closedError = err;
  assert.equal(closed.intent.waitFails(false), err);
});
