/**
 * The retries of a CLS the peer has not acknowledged, under plain `now` numbers: which answers
 * send it again (after a lookup, waiting for a peer in transit or not), which end the close at
 * once, that an unknown connection ends it unless the lookup finds the peer elsewhere, and that
 * it gives up at the reconnect limit counted from the first failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '../../../../src/util/index.js';
import { CloseRetry, type CloseDecision } from '../../../../src/connection/core/index.js';

const LIMITS = { reconnectLimitMs: 10_000, retryMs: 50, maxRetryMs: 1000, peerMoveWaitMs: 4000 };
const err = (code: ConstructorParameters<typeof FerryError>[0]): FerryError => new FerryError(code);

function retry(d: CloseDecision): { delayMs: number; lookup: boolean; lookupWaitMs: number } {
  assert.equal(d.kind, 'retry', `expected a retry, got ${JSON.stringify(d)}`);
  return d.kind === 'retry' ? d : { delayMs: -1, lookup: false, lookupWaitMs: -1 };
}

test('CloseRetry: a peer said to be moving is looked up, waiting for it to land', () => {
  const r = new CloseRetry(LIMITS);
  assert.deepEqual(retry(r.failed(err('FERRY_ERR_PEER_MOVING'), 0)), { kind: 'retry', delayMs: 0, lookup: true, lookupWaitMs: 4000 });
  assert.equal(r.located(true), true);
  // Found where it was: still sent again (only an unknown connection ends the close).
  retry(r.failed(err('FERRY_ERR_PEER_MOVING'), 100));
  assert.equal(r.located(false), true);
});

test('CloseRetry: silence is looked up without waiting, and retried with backoff', () => {
  const r = new CloseRetry(LIMITS);
  assert.deepEqual(retry(r.failed(err('FERRY_ERR_CONTROL_TIMEOUT'), 0)), { kind: 'retry', delayMs: 0, lookup: true, lookupWaitMs: 0 });
  assert.equal(r.located(false), true);
  // After the lookup the pauses back off.
  const d = retry(r.failed(err('FERRY_ERR_CONTROL_TIMEOUT'), 500));
  assert.equal(d.lookup, true);
  r.located(false);
});

test('CloseRetry: an unknown connection ends the close, unless the lookup finds the peer elsewhere', () => {
  const r = new CloseRetry(LIMITS);
  assert.deepEqual(retry(r.failed(err('FERRY_ERR_UNKNOWN_CONNECTION'), 0)), { kind: 'retry', delayMs: 0, lookup: true, lookupWaitMs: 0 });
  assert.equal(r.located(true), true, 'the peer moved on: send the CLS to where it is');
  retry(r.failed(err('FERRY_ERR_UNKNOWN_CONNECTION'), 100));
  assert.equal(r.located(false), false, 'where the peer is, the connection is unknown: it is closed there');
});

test('CloseRetry: a reply that does not verify is as if unanswered (sent again)', () => {
  const r = new CloseRetry(LIMITS);
  const d = retry(r.failed(err('FERRY_ERR_BAD_MAC'), 0));
  assert.equal(d.lookup, false);
  assert.equal(d.delayMs, 50);
  assert.equal(retry(r.failed(err('FERRY_ERR_MALFORMED_DATAGRAM'), 60)).delayMs, 100);
});

test('CloseRetry: any other answer ends the close at once', () => {
  for (const code of ['FERRY_ERR_ABORTED', 'FERRY_ERR_CONNECTION_CLOSED', 'FERRY_ERR_ILLEGAL_TRANSITION', 'FERRY_ERR_REPLAYED_CONTROL'] as const) {
    const d = new CloseRetry(LIMITS).failed(err(code), 0);
    assert.deepEqual(d, { kind: 'closed', why: code });
  }
});

test('CloseRetry: gives up at the reconnect limit, counted from the first failure', () => {
  const r = new CloseRetry(LIMITS);
  retry(r.failed(err('FERRY_ERR_BAD_MAC'), 1000));
  retry(r.failed(err('FERRY_ERR_BAD_MAC'), 6000));
  retry(r.failed(err('FERRY_ERR_BAD_MAC'), 11_000));
  const d = r.failed(err('FERRY_ERR_BAD_MAC'), 11_001);
  assert.equal(d.kind, 'closed');
  assert.match(d.kind === 'closed' ? d.why : '', /10001 ms/);
});
