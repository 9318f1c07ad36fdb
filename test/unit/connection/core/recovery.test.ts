/**
 * Recovery decisions under plain `now` numbers, one rule per test: the resume backoff doubles up
 * to its cap, the reconnect limit counts from the first failure of a broken stretch (or from the
 * application's resume), giving up fails with FERRY_ERR_PEER_UNREACHABLE or with the refused
 * location proof that was the last answer heard, which answers send the next try to the location
 * service (and whether it waits there), and that no single RES outlives the limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../../../src/util/index.js';
import { Recovery, type RecoveryDecision } from '../../../../src/connection/core/index.js';

const LIMITS = { reconnectLimitMs: 10_000, retryMs: 50, maxRetryMs: 1000, peerMoveWaitMs: 4000 };

function retry(d: RecoveryDecision): { delayMs: number; lookup: boolean } {
  assert.equal(d.kind, 'retry', `expected a retry, got ${JSON.stringify(d)}`);
  return d.kind === 'retry' ? { delayMs: d.delayMs, lookup: d.lookup } : { delayMs: -1, lookup: false };
}

function giveUp(d: RecoveryDecision): FerryError {
  assert.equal(d.kind, 'give_up');
  return d.kind === 'give_up' ? d.error : new FerryError('FERRY_ERR_INTERNAL');
}

test('Recovery: the pause between attempts doubles from RESUME_RETRY_MS up to its cap', () => {
  const r = new Recovery(LIMITS);
  const delays = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => retry(r.next(i * 10)).delayMs);
  assert.deepEqual(delays, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
});

test('Recovery: gives up with FERRY_ERR_PEER_UNREACHABLE once broken longer than the limit, counted from the first failure', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(1000));
  assert.equal(r.broken, 1000);
  retry(r.next(6000));
  retry(r.next(11_000)); // exactly at the limit: one more try
  const e = giveUp(r.next(11_001));
  assert.equal(e.code, 'FERRY_ERR_PEER_UNREACHABLE');
  assert.match(e.message, /10001 ms/);
});

test('Recovery: the application\'s resume() restarts the count and the backoff', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  retry(r.next(100));
  // Long suspended by choice, then resumed by the application.
  r.userResume();
  assert.equal(r.broken, undefined);
  assert.deepEqual(retry(r.next(60_000)), { delayMs: 50, lookup: false });
  retry(r.next(69_000));
});

test('Recovery: once established again, a later failure starts a new stretch', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  retry(r.next(9000));
  r.resumeFailed(new FerryError('FERRY_ERR_CHAIN_EXPIRED'));
  r.established();
  assert.equal(r.proofRefusal, undefined);
  assert.deepEqual(retry(r.next(50_000)), { delayMs: 50, lookup: false });
});

test('Recovery: gives up with the refused proof when that was the last answer; silence keeps it, another answer clears it', () => {
  const refused = new FerryError('FERRY_ERR_RESUME_UNPROVEN', 'no proof');
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  r.resumeFailed(refused);
  r.resumeFailed(new FerryError('FERRY_ERR_CONTROL_TIMEOUT'));
  assert.equal(giveUp(r.next(20_000)), refused);

  const s = new Recovery(LIMITS);
  retry(s.next(0));
  s.resumeFailed(new FerryError('FERRY_ERR_STALE_EPOCH'));
  s.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
  assert.equal(giveUp(s.next(20_000)).code, 'FERRY_ERR_PEER_UNREACHABLE');
});

test('Recovery: a RES_ACK whose proof we refused fails the connection with that refusal and asks the location service', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  const refused = new FerryError('FERRY_ERR_RESUME_HOST_MISMATCH');
  r.proofRefused(refused);
  assert.deepEqual(retry(r.next(100)), { delayMs: 0, lookup: true });
  assert.equal(giveUp(r.next(10_101)), refused);
});

test('Recovery: a peer said to be moving, or unknown there, is looked up at once and waited for', () => {
  for (const code of ['FERRY_ERR_PEER_MOVING', 'FERRY_ERR_UNKNOWN_CONNECTION', 'FERRY_ERR_UNKNOWN_AGENT'] as const) {
    const r = new Recovery(LIMITS);
    retry(r.next(0));
    r.resumeFailed(new FerryError(code));
    assert.deepEqual(retry(r.next(100)), { delayMs: 0, lookup: true }, code);
    assert.equal(r.lookupWait(100), 4000, code);
    // Near the limit the wait is what is left of it.
    assert.equal(r.lookupWait(8000), 2000, code);
    assert.equal(r.lookupWait(12_000), 0, code);
  }
});

test('Recovery: silence asks the location service without waiting; other refusals only back off', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  r.resumeFailed(new FerryError('FERRY_ERR_CONTROL_TIMEOUT'));
  assert.deepEqual(retry(r.next(100)), { delayMs: 0, lookup: true });
  assert.equal(r.lookupWait(100), 0);

  const s = new Recovery(LIMITS);
  retry(s.next(0));
  s.resumeFailed(new FerryError('FERRY_ERR_REPLAYED_CONTROL'));
  assert.deepEqual(retry(s.next(100)), { delayMs: 100, lookup: false });
});

test('Recovery: a lookup that found the peer elsewhere starts the backoff over; one that did not keeps it', () => {
  const r = new Recovery(LIMITS);
  retry(r.next(0));
  retry(r.next(10));
  r.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
  retry(r.next(20));
  r.located(false);
  assert.equal(r.lookupNeeded, false);
  assert.deepEqual(retry(r.next(30)), { delayMs: 200, lookup: false });
  r.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
  retry(r.next(40));
  r.located(true);
  assert.deepEqual(retry(r.next(50)), { delayMs: 50, lookup: false });
});

test('Recovery: the peer suspended to move: the next try waits for it through the location service', () => {
  const r = new Recovery(LIMITS);
  r.resumeFailed(new FerryError('FERRY_ERR_CONTROL_TIMEOUT'));
  r.peerMoving();
  assert.deepEqual(retry(r.next(0)), { delayMs: 0, lookup: true });
  assert.equal(r.lookupWait(0), 4000);
});

test('Recovery: no single RES outlives the reconnect limit while broken', () => {
  const r = new Recovery(LIMITS);
  assert.equal(r.requestTimeout(0), undefined);
  retry(r.next(1000));
  assert.equal(r.requestTimeout(1000), 10_000);
  assert.equal(r.requestTimeout(7500), 3500);
  assert.equal(r.requestTimeout(50_000), 1);
});
