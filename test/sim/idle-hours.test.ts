// Simulated: connections left idle for hours. Whole hosts on in-memory networks under one
// ManualClock (test/sim/world.ts), every timer of the product running (fence checks, control
// retransmissions, location caches, the wall clock that delegations are checked against), through
// three simulated hours in which a connection carries nothing; then it carries bytes both ways,
// its data socket is cut, and its ends move (one alone, then both as a group over a migration
// channel). A second world sleeps instead: the whole clock jumps two hours at once (a laptop's
// sleep, a stopped VM), so every timer fires late. Each checks exactly-once delivery, a quiet
// period, replayed control requests refused, and a clean close (runSchedule). Nothing in Ferry
// expires an idle connection (docs/TUNNEL.md "Idle connections"); this keeps it so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { limit } from '../../src/util/index.js';
import { runSchedule, type Op, type Schedule } from './world.js';

const HOUR = 3600_000;
const IDLE = 3 * HOUR;

const world = (seed: number, ops: Op[]): Schedule => ({ seed, hosts: 3, agents: 3, security: true, conns: [[0, 1], [1, 2]], loss: 0.05, ops });

test('simulated: idle for three hours, then bytes, a cut and moves; exactly once', async () => {
  assert.ok(IDLE > 2 * limit('DELEGATION_VALIDITY_MS'), 'idle for longer than two delegation windows');
  const s = world(1, [
    { at: 10, kind: 'write', conn: 0, side: 0, n: 5000 },
    { at: 10, kind: 'write', conn: 1, side: 1, n: 5000 },
    // Agent 1 lands elsewhere early on: its chain and its peers' proven locations are hours old below.
    { at: 100, kind: 'move', agents: [1], to: 2, via: 'direct' },
    { at: IDLE, kind: 'write', conn: 0, side: 1, n: 30_000 },
    { at: IDLE + 5, kind: 'cut', link: 0, ms: 0 },
    { at: IDLE + 10, kind: 'write', conn: 1, side: 0, n: 30_000 },
    { at: IDLE + 500, kind: 'move', agents: [0], to: 1, via: 'direct' },
    { at: IDLE + 900, kind: 'move', agents: [1, 2], to: 0, via: 'channel' },
    { at: IDLE + 1300, kind: 'write', conn: 0, side: 0, n: 3000 },
    { at: IDLE + 1300, kind: 'write', conn: 1, side: 1, n: 3000 },
  ]);
  const r = await runSchedule(s);
  assert.equal(r.failure, undefined, `${r.failure}\n${r.trace.join('\n')}`);
  assert.ok(r.simulatedMs > IDLE, `the world ran through the idle hours (${r.simulatedMs} ms)`);
  assert.ok(r.trace.some((l) => / move a1 h1->h2 direct ok$/.test(l)) && r.trace.some((l) => / move a0 h0->h1 direct ok$/.test(l)), r.trace.join('\n'));
});

test('simulated: the whole world sleeps two hours between writes; exactly once', async () => {
  const s = world(2, [
    { at: 10, kind: 'write', conn: 0, side: 0, n: 5000 },
    { at: 50, kind: 'jump', ms: 2 * HOUR },
    { at: 60, kind: 'write', conn: 0, side: 1, n: 20_000 },
    { at: 70, kind: 'cut', link: 1, ms: 0 },
    { at: 80, kind: 'write', conn: 1, side: 0, n: 20_000 },
    { at: 400, kind: 'move', agents: [2], to: 0, via: 'direct' },
    // The world's bound on pending operations counts from the last operation's time, not from the
    // jumped clock: one more write after the sleep keeps that bound after the jump.
    { at: 2 * HOUR + 1000, kind: 'write', conn: 1, side: 1, n: 3000 },
  ]);
  const r = await runSchedule(s);
  assert.equal(r.failure, undefined, `${r.failure}\n${r.trace.join('\n')}`);
  assert.ok(r.simulatedMs > 2 * HOUR, `the clock jumped (${r.simulatedMs} ms)`);
});
