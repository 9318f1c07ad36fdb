/**
 * SourceRoutes: a dial binds the host's address first only until the kernel has said it would
 * pick another source for that destination (answers over real UDP sockets on loopback).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SourceRoutes } from '../../../src/host/source-routes.js';
import { limit, systemClock, type Clock } from '../../../src/util/index.js';

test('bound to the address the kernel picks anyway: the first dial binds, later ones do not', async () => {
  const r = new SourceRoutes('127.0.0.1', systemClock);
  assert.equal(r.mustBind('127.0.0.1'), true, 'no answer yet: bind');
  await r.settled();
  assert.equal(r.mustBind('127.0.0.1'), false);
});

test('bound to another loopback address than the kernel would pick: every dial binds', async () => {
  // Linux routes all of 127/8 over lo with source 127.0.0.1: a host on 127.0.0.2 must bind.
  const r = new SourceRoutes('127.0.0.2', systemClock);
  r.mustBind('127.0.0.1');
  await r.settled();
  assert.equal(r.mustBind('127.0.0.1'), true);
});

test('an answer is kept SOURCE_ROUTE_TTL_MS, then asked again (binding meanwhile)', async () => {
  let now = 1_000;
  const clock: Clock = { ...systemClock, now: () => now };
  const r = new SourceRoutes('127.0.0.1', clock);
  r.mustBind('127.0.0.1');
  await r.settled();
  now += limit('SOURCE_ROUTE_TTL_MS') - 1;
  assert.equal(r.mustBind('127.0.0.1'), false, 'still fresh');
  now += 2;
  assert.equal(r.mustBind('127.0.0.1'), true, 'expired: bind until the kernel answers again');
  await r.settled();
  assert.equal(r.mustBind('127.0.0.1'), false);
});

test('a destination the kernel cannot route is no answer: dials keep binding', async () => {
  const r = new SourceRoutes('127.0.0.1', systemClock);
  // An IPv6 destination from an IPv4-only bound address: whatever the kernel says, it is not ours.
  r.mustBind('::1');
  await r.settled();
  assert.equal(r.mustBind('::1'), true);
});

test('at most SOURCE_ROUTE_LOOKUPS questions at once: a destination beyond them binds and is asked later', async () => {
  const r = new SourceRoutes('127.0.0.1', systemClock);
  const ips = Array.from({ length: 40 }, (_, i) => `127.0.0.${i + 2}`);
  for (const ip of ips) assert.equal(r.mustBind(ip), true);
  await r.settled();
  // The kernel dials all of 127/8 from 127.0.0.1: every destination asked has its answer.
  const answered = ips.filter((ip) => !r.mustBind(ip));
  assert.equal(answered.length, limit('SOURCE_ROUTE_LOOKUPS'));
  assert.deepEqual(answered, ips.slice(0, limit('SOURCE_ROUTE_LOOKUPS')));
  await r.settled();
});
