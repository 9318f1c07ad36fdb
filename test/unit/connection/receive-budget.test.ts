// ReceiveBudget: charges per host, agent and source address; windows grow into three quarters of
// each bound, the last quarter is for the floors of new opens; a move's charge is never refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReceiveBudget } from '../../../src/connection/index.js';

const limits = { host: 1000, perAgent: 800, perSource: 400, floor: 10 };

test('room is the tightest of host, agent and source, over three quarters of each', () => {
  const b = new ReceiveBudget(limits);
  assert.equal(b.room('A', 'S'), 300, 'the source bound is the tightest: 3/4 of 400');
  assert.equal(b.room('A', undefined), 600, 'no source (our own connects): the agent bound');
  const a = b.open('A', 'S');
  assert.equal(a.charge, 10, 'an open is charged its floor');
  a.set(250);
  assert.equal(b.room('A', 'S'), 50);
  assert.equal(b.room('A', 'T'), 300, 'another address keeps its whole share');
  assert.equal(b.room('A', undefined), 350, 'the agent is charged for it');
  assert.equal(b.room('B', 'T'), 300, 'nor another agent');
  assert.equal(b.chargedTo({ source: 'S' }), 250);
  assert.equal(b.chargedTo({ agent: 'A' }), 250);
});

test('opens use the last quarter until the floors no longer fit; moves are charged anyway', () => {
  const b = new ReceiveBudget(limits);
  const big = b.open('A', 'S');
  big.set(300);
  assert.ok(b.room('A', 'S') <= 0, 'windows from S cannot grow');
  let opened = 0;
  while (b.canOpen('A', 'S')) {
    b.open('A', 'S');
    opened++;
  }
  assert.equal(opened, 10, 'the last quarter (100) holds ten floors of 10');
  assert.equal(b.canOpen('A', 'T'), true, 'another address still opens');
  const moved = b.open('A', 'S');
  moved.set(50);
  assert.equal(b.chargedTo({ source: 'S' }), 450, 'a move is charged beyond the bound');
  moved.close();
  big.close();
  assert.equal(b.chargedTo({ source: 'S' }), 100);
  moved.set(70);
  assert.equal(b.charged, 100, 'a closed account charges nothing more');
});
