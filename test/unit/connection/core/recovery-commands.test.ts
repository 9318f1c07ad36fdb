/**
 * The core's own recovery under a ManualClock: `schedule_resume` is decided by the core (a retry
 * set in its timer table, nothing, or give up and close), and the deadlines of our recovery
 * (`resume_retry`, `close_retry`, `resume_deadline`) are acted on inside `handleTimeout`: what
 * they come to comes out of `poll()` as commands (the resume's row, a lookup, the CLS again),
 * while a socket's deadline is still handed to the adapter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionCore, CoreCommand, RequestCommand } from '../../../../src/connection/core/index.js';
import { FerryError, ManualClock, limit } from '../../../../src/util/index.js';
import { MessageType } from '../../../../src/wire/index.js';
import { coreIn } from './fixtures.js';
import type { AcceptedIncoming } from '../../../../src/connection/core/intent.js';

const LIMIT_MS = 30_000;

/** Every command `core` gives out at `now`, named (an action by its name, a transition as from->to). */
function drain(core: ConnectionCore, now: number): string[] {
  return commands(core, now).map((c) => (c.kind === 'act' ? c.action : c.kind === 'transition' ? `${c.from}->${c.to}` : c.kind));
}

function commands(core: ConnectionCore, now: number): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push(c);
  return out;
}

/** Advance `clock` to the core's next deadline and hand it to the core. */
function fireNext(core: ConnectionCore, clock: ManualClock): ReturnType<ConnectionCore['handleTimeout']> {
  const at = core.nextDeadline();
  assert.ok(at !== undefined, 'a deadline is set');
  clock.advance(Math.max(0, at - clock.now()));
  return core.handleTimeout(clock.now());
}

/** A live connection that lost its socket: SUSPENDED through `socket_lost`, resuming by itself. */
function lostSocket(clock: ManualClock): ConnectionCore {
  const core = coreIn('ESTABLISHED', { reconnectLimitMs: LIMIT_MS });
  core.intent.socketLost();
  core.handle('socket_lost');
  assert.deepEqual(drain(core, clock.now()), ['ESTABLISHED->SUSPENDED'], 'schedule_resume is the core\'s: no command for it');
  return core;
}

test('schedule_resume: the core sets the resume retry itself; when it is due, handleTimeout applies the resume (its row comes out of poll)', () => {
  const clock = new ManualClock();
  const core = lostSocket(clock);
  assert.equal(core.hasDeadline('resume_retry'), true);
  assert.equal(core.nextDeadline(), limit('RESUME_RETRY_MS'));
  clock.advance(limit('RESUME_RETRY_MS') - 1);
  assert.equal(core.handleTimeout(clock.now()), undefined);
  assert.deepEqual(drain(core, clock.now()), [], 'not due yet');
  assert.equal(fireNext(core, clock), undefined, 'the core\'s own deadline: not handed out');
  assert.deepEqual(drain(core, clock.now()), ['SUSPENDED->RES_SENT', 'request']);
  assert.equal(core.hasDeadline('resume_retry'), false);
});

test('schedule_resume: nothing without an automatic resume, or while a move is being prepared', () => {
  const clock = new ManualClock();
  const manual = coreIn('RES_SENT', { reconnectLimitMs: LIMIT_MS });
  manual.handle('timeout');
  assert.deepEqual(drain(manual, 0), ['RES_SENT->SUSPENDED']);
  assert.equal(manual.nextDeadline(), undefined, 'the application suspended it: no retry');
  const moving = coreIn('RES_SENT', { reconnectLimitMs: LIMIT_MS });
  moving.intent.autoResume = true;
  moving.intent.prepareMove();
  moving.handle('timeout');
  assert.deepEqual(drain(moving, clock.now()), ['RES_SENT->SUSPENDED']);
  assert.equal(moving.hasDeadline('resume_retry'), false, 'the destination resumes');
});

test('resume_retry: after an answer saying the peer is elsewhere, the lookup goes out first (outside any row); its answer resumes', () => {
  const clock = new ManualClock();
  const core = lostSocket(clock);
  core.recovery.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
  core.cancelDeadline('resume_retry');
  core.intent.autoResume = true;
  core.handle('resume');
  drain(core, clock.now());
  core.handle('timeout');
  assert.deepEqual(drain(core, clock.now()), ['RES_SENT->SUSPENDED', 'cancel'], 'the RES the resume sent is cancelled');
  assert.equal(fireNext(core, clock), undefined);
  const out = commands(core, clock.now());
  assert.equal(out.length, 1);
  const lookup = out[0]!;
  assert.ok(lookup.kind === 'lookup' && !core.inRow);
  assert.equal(lookup.waitMs, limit('PEER_MOVE_WAIT_MS'), 'a moving peer is waited for');
  core.located(lookup.id, { ip: '10.0.0.2', controlPort: 7000, redirectorPort: 7001, epoch: 4 });
  assert.deepEqual(drain(core, clock.now()), ['SUSPENDED->RES_SENT', 'request']);
  assert.equal(core.path.peer.ip, '10.0.0.2');
});

test('resume_retry: nothing once no longer SUSPENDED, or while a move is being prepared', () => {
  const clock = new ManualClock();
  const core = lostSocket(clock);
  core.intent.prepareMove();
  assert.equal(core.hasDeadline('resume_retry'), false, 'a move\'s preparation stops the retry');
  core.setDeadline('resume_retry', clock.now());
  assert.equal(core.handleTimeout(clock.now()), undefined);
  assert.deepEqual(drain(core, clock.now()), [], 'moving: the destination resumes');
  const other = lostSocket(clock);
  other.handle('close');
  drain(other, clock.now());
  assert.equal(other.hasDeadline('resume_retry'), false, 'the close stopped the retry');
});

test('schedule_resume past the reconnect limit gives up: the line is logged, then the close is applied with PEER_UNREACHABLE (one short CLS)', () => {
  const clock = new ManualClock();
  const core = lostSocket(clock);
  clock.advance(LIMIT_MS + 1);
  core.handle('resume');
  drain(core, clock.now());
  core.handle('timeout');
  const out = commands(core, clock.now());
  assert.deepEqual(out.map((c) => (c.kind === 'transition' ? `${c.from}->${c.to}` : c.kind)), ['RES_SENT->SUSPENDED', 'cancel', 'log', 'SUSPENDED->CLOSE_SENT', 'request']);
  const log = out[2];
  assert.ok(log?.kind === 'log' && log.level === 'warn' && log.event === 'peer_unreachable');
  assert.equal(log.fields['code'], 'FERRY_ERR_PEER_UNREACHABLE');
  assert.equal(core.intent.closedError?.code, 'FERRY_ERR_PEER_UNREACHABLE');
  const cls = out[4] as RequestCommand;
  assert.equal(cls.type, MessageType.CLS);
  assert.equal(cls.opts.maxTries, 1, 'one CLS to an unreachable peer');
});

test('close_retry: the CLS goes again when its deadline is due, a fresh request outside any row', () => {
  const clock = new ManualClock();
  const core = coreIn('ESTABLISHED', { reconnectLimitMs: LIMIT_MS });
  core.handle('close');
  const first = commands(core, clock.now()).find((c): c is RequestCommand => c.kind === 'request')!;
  core.requestFailed(first.id, new FerryError('FERRY_ERR_BAD_MAC'), clock.now());
  assert.deepEqual(drain(core, clock.now()), ['log'], 'close_unanswered: retried later');
  assert.equal(fireNext(core, clock), undefined);
  const again = commands(core, clock.now());
  assert.equal(again.length, 1);
  const cls = again[0]!;
  assert.ok(cls.kind === 'request' && cls.type === MessageType.CLS && cls.id !== first.id && !core.inRow);
  core.handle('timeout');
  drain(core, clock.now());
  assert.equal(core.state, 'CLOSED');
  core.setDeadline('close_retry', clock.now());
  assert.equal(core.handleTimeout(clock.now()), undefined);
  assert.deepEqual(drain(core, clock.now()), [], 'closed: no CLS after the close ended');
});

test('handleTimeout acts on a data socket\'s deadlines and the handshake itself, asking the bound sockets whether theirs is up; only the delayed ACK comes out', () => {
  // A kept socket whose deadline passes is dropped (it is still the kept one).
  const kept = coreIn('SUSPENDED');
  const slot = kept.newSlot();
  kept.slots.attached(slot);
  kept.slots.drain(true);
  kept.slots.drainEnded(slot, true, true, false);
  assert.equal(kept.slots.kept, slot);
  kept.setDeadline('kept_socket', 5, slot);
  assert.equal(kept.handleTimeout(10), undefined);
  assert.deepEqual(drain(kept, 10), ['clear', 'clear', 'log', 'close']);
  assert.equal(kept.slots.kept, undefined);
  // A drain: the socket kept only if the adapter's socket is still up (it says no here: closed).
  const up = new Set<number>();
  const draining = coreIn('SUSPENDED');
  draining.bindSockets({ isOpen: (s) => s !== undefined && up.has(s) , remoteAddress: () => undefined });
  const d = draining.newSlot();
  draining.slots.attached(d);
  draining.slots.drain(true);
  draining.setDeadline('drain', 5, d);
  assert.equal(draining.handleTimeout(10), undefined);
  assert.deepEqual(drain(draining, 10), ['clear', 'close', 'drained']);
  assert.equal(draining.slots.kept, undefined, 'its socket closed, not kept');
  // The handshake of a server half-open (its rules: open.test.ts).
  const half = coreIn('CONNECT_ACKED', { role: 'server' });
  half.setDeadline('handshake', 6);
  assert.equal(half.handleTimeout(10), undefined);
  assert.deepEqual(drain(half, 10), ['CONNECT_ACKED->CLOSED', 'ended'], 'no opening socket: the half-open times out');
  // The delayed ACK too (its rules: data-inputs.test.ts): on the carrying socket.
  const ack = coreIn('ESTABLISHED');
  const carrying = ack.newSlot();
  ack.slots.attached(carrying);
  ack.setDeadline('ack', 3);
  assert.equal(ack.handleTimeout(10), undefined);
  assert.deepEqual(ack.poll(10), { kind: 'send_ack', slot: carrying });
});

/** An accepted SUS of the peer that crossed an application resume() (core/control-incoming.ts). */
function crossingSus(peerMoving: boolean): AcceptedIncoming {
  return { kind: 'accept', type: MessageType.SUS, event: 'recv_sus', reply: Buffer.alloc(0), stopAutoResume: false, dropKept: true, peerAborted: false, resumeAfter: true, peerMoving };
}

test('incomingApplied: a peer\'s SUS that crossed a resume() and left us SUSPENDED schedules our resume; giving up closes at once', () => {
  const clock = new ManualClock();
  const core = coreIn('SUSPENDED', { reconnectLimitMs: LIMIT_MS });
  core.incomingApplied(crossingSus(true), clock.now());
  assert.deepEqual(drain(core, clock.now()), []);
  assert.equal(core.hasDeadline('resume_retry'), true, 'our resume goes on');
  assert.equal(fireNext(core, clock), undefined);
  assert.equal(commands(core, clock.now())[0]?.kind, 'lookup', 'a peer that suspended to move is found through the location service');
  const live = coreIn('RES_SENT', { reconnectLimitMs: LIMIT_MS });
  live.incomingApplied(crossingSus(false), 0);
  assert.equal(live.nextDeadline(), undefined, 'not left SUSPENDED: nothing');
  const late = coreIn('SUSPENDED', { reconnectLimitMs: LIMIT_MS });
  late.recovery.next(0);
  late.incomingApplied(crossingSus(false), LIMIT_MS + 1);
  assert.deepEqual(drain(late, LIMIT_MS + 1), ['log', 'SUSPENDED->CLOSE_SENT', 'request']);
  assert.equal(late.inRow, true);
});
