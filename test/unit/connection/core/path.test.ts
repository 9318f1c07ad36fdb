/**
 * Path validation, rule by rule, with a seeded random source and no socket: a challenge is
 * redeemed once and only if we issued it (at most MAX_CHALLENGES outstanding, the oldest dropped);
 * a fresh RES from another address is a candidate, never the peer's address, until a data socket
 * there is proven (our dial answered, or the peer's HELLO from that IP); a location proof is
 * required from anywhere but where the peer last proved itself; a RES_ACK without a wanted proof
 * is refused and one naming another redirector port makes the next RES ask; and a RES that asks
 * for a proof is padded so the RES_ACK carrying one stays within the amplification factor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFerryError, type ErrorCode } from '../../../../src/util/index.js';
import { DATAGRAM_HEADER_BYTES, RESUME_PROOF_WANTED_MIN_DATAGRAM } from '../../../../src/wire/index.js';
import { MAX_CHALLENGES, PathValidation, proofWantedPadding, type PathInit } from '../../../../src/connection/core/index.js';
import type { PeerLocator } from '../../../../src/connection/index.js';

const PEER: PeerLocator = { ip: '10.0.0.2', controlPort: 4000, redirectorPort: 4001, epoch: 3 };

/** Deterministic "random" bytes: a counter, so each challenge differs and tests replay. */
function counterRandom(): (n: number) => Buffer {
  let i = 0;
  return (n) => Buffer.alloc(n, ++i);
}

function path(init: Partial<PathInit> = {}): PathValidation {
  return new PathValidation({ peer: { ...PEER }, random: counterRandom(), ...init });
}

function refused(code: ErrorCode): (e: unknown) => boolean {
  return (e: unknown) => isFerryError(e, code);
}

test('path: a HELLO must echo a challenge we issued, each redeemed once', () => {
  const p = path();
  const a = p.issueChallenge();
  const b = p.issueChallenge();
  assert.throws(() => p.redeemChallenge(Buffer.alloc(16, 0x77)), refused('FERRY_ERR_PATH_UNVALIDATED'));
  p.redeemChallenge(b);
  assert.throws(() => p.redeemChallenge(b), refused('FERRY_ERR_PATH_UNVALIDATED'));
  p.redeemChallenge(a);
});

test('path: at most MAX_CHALLENGES are outstanding; the oldest goes first', () => {
  const p = path();
  const issued = Array.from({ length: MAX_CHALLENGES + 1 }, () => p.issueChallenge());
  assert.throws(() => p.redeemChallenge(issued[0]!), refused('FERRY_ERR_PATH_UNVALIDATED'));
  for (const c of issued.slice(1)) p.redeemChallenge(c);
});

test('path: a RES from the peer\'s own address only updates its redirector port', () => {
  const p = path();
  p.resReceived({ ip: PEER.ip, port: PEER.controlPort }, 5001, Buffer.alloc(16, 9), undefined);
  assert.equal(p.candidate, undefined);
  assert.equal(p.peer.redirectorPort, 5001);
  assert.deepEqual(p.peerChallenge, Buffer.alloc(16, 9));
  assert.equal(p.dialTarget(), p.peer);
});

test('path: a RES from elsewhere is a candidate; the peer\'s address changes only once a dial there is answered', () => {
  const p = path();
  p.resReceived({ ip: '10.0.0.9', port: 6000 }, 6001, Buffer.alloc(16, 1), 7);
  assert.equal(p.peer.ip, PEER.ip, 'not trusted yet');
  const target = p.dialTarget();
  assert.deepEqual(target, { ip: '10.0.0.9', controlPort: 6000, redirectorPort: 6001, epoch: 7 });
  // A dial answered somewhere else (an older target object) proves nothing about the candidate.
  p.dialAnswered({ ...target });
  assert.equal(p.peer.ip, PEER.ip);
  p.dialAnswered(target);
  assert.deepEqual(p.peer, { ip: '10.0.0.9', controlPort: 6000, redirectorPort: 6001, epoch: 7 });
  assert.equal(p.candidate, undefined);
});

test('path: a candidate is proven by the peer\'s HELLO from its IP (IPv4-mapped or not), and not from another', () => {
  const p = path();
  p.resReceived({ ip: '10.0.0.9', port: 6000 }, 6001, Buffer.alloc(16, 1), undefined);
  p.helloAccepted('10.0.0.66');
  p.helloAccepted(undefined);
  assert.equal(p.peer.ip, PEER.ip);
  p.helloAccepted('::ffff:10.0.0.9');
  assert.equal(p.peer.ip, '10.0.0.9');
  // The candidate's epoch never lowers the one we had.
  assert.equal(p.peer.epoch, PEER.epoch);
});

test('path: a RES_ACK from where we sent the RES drops a stale candidate elsewhere', () => {
  const p = path();
  p.resReceived({ ip: '10.0.0.9', port: 6000 }, 6001, Buffer.alloc(16, 1), undefined);
  const target = p.peer;
  p.resAckReceived(target, 4444, Buffer.alloc(16, 2), false);
  assert.equal(p.candidate, undefined);
  assert.equal(p.peer.redirectorPort, 4444);
  assert.deepEqual(p.peerChallenge, Buffer.alloc(16, 2));
});

test('path: the location service moves the peer only to another address or a newer epoch', () => {
  const p = path();
  assert.equal(p.located(undefined), false);
  assert.equal(p.located({ ...PEER, redirectorPort: 1, epoch: 2 }), false);
  assert.equal(p.peer.redirectorPort, PEER.redirectorPort);
  p.resReceived({ ip: '10.0.0.9', port: 6000 }, 6001, Buffer.alloc(16, 1), undefined);
  assert.equal(p.located({ ...PEER, epoch: 4 }), true);
  assert.equal(p.peer.epoch, 4);
  assert.equal(p.candidate, undefined, 'the location service overrides an unproven candidate');
});

test('path: a RES needs a location proof from anywhere but where the peer last proved itself', () => {
  const p = path();
  const proven = { ip: PEER.ip, controlPort: PEER.controlPort, redirectorPort: PEER.redirectorPort };
  assert.equal(p.resProofNeeded(true, proven, false), false);
  assert.equal(p.resProofNeeded(true, proven, true), true, 'a proof that is present is always checked');
  assert.throws(() => p.resProofNeeded(true, { ...proven, redirectorPort: 9 }, false), refused('FERRY_ERR_RESUME_UNPROVEN'));
  assert.throws(() => p.resProofNeeded(true, { ...proven, ip: '::ffff:10.0.0.3' }, false), refused('FERRY_ERR_RESUME_UNPROVEN'));
  assert.equal(p.resProofNeeded(true, { ...proven, ip: '::ffff:10.0.0.2' }, false), false);
  assert.equal(p.resProofNeeded(false, { ...proven, ip: '10.9.9.9' }, false), false, 'security off: nothing is proven');
  // Once a proof from the new location is accepted, that is where the peer is proven.
  const there = { ip: '10.0.0.9', controlPort: 6000, redirectorPort: 6001 };
  p.proofAccepted(5, there);
  assert.equal(p.peerEpoch, 5);
  assert.equal(p.resProofNeeded(true, there, false), false);
  assert.throws(() => p.resProofNeeded(true, proven, false), refused('FERRY_ERR_RESUME_UNPROVEN'));
  p.proofAccepted(2, proven);
  assert.equal(p.peerEpoch, 5, 'the accepted epoch never goes back');
});

test('path: a RES_ACK without a wanted proof is refused; another redirector port makes the next RES ask', () => {
  const p = path();
  const proven = { ip: PEER.ip, controlPort: PEER.controlPort, redirectorPort: PEER.redirectorPort };
  assert.equal(p.wantsProof(true), false);
  assert.throws(() => p.resAckProofNeeded(true, proven, false, true), refused('FERRY_ERR_RESUME_UNPROVEN'));
  assert.equal(p.resAckProofNeeded(true, proven, false, false), false);
  assert.throws(() => p.resAckProofNeeded(true, { ...proven, redirectorPort: 9 }, false, false), refused('FERRY_ERR_RESUME_UNPROVEN'));
  assert.equal(p.wantsProof(true), true, 'asked for next time');
  assert.equal(p.wantsProof(false), false, 'never without security');
  p.proofAccepted(1, proven);
  assert.equal(p.wantsProof(true), false);
  // A RES to an address where the peer has not proven itself asks for a proof.
  assert.equal(p.wantsProof(true, { ip: '10.0.0.9', controlPort: 6000, redirectorPort: 6001, epoch: 0 }), true);
});

test('path: a resume HELLO waits for the proof our RES asked for, until it is accepted or the resume ends', () => {
  const p = path();
  p.resSent(true);
  assert.equal(p.awaitingProof, true);
  p.proofAccepted(1, { ip: PEER.ip, controlPort: PEER.controlPort, redirectorPort: PEER.redirectorPort });
  assert.equal(p.awaitingProof, false);
  p.resSent(true);
  p.stopAwaiting();
  assert.equal(p.awaitingProof, false);
});

test('path: after landing (or an address change) our RES carries a proof until the peer accepts one', () => {
  const p = path();
  assert.equal(p.mustProve, false);
  p.proveOurLocation();
  assert.equal(p.mustProve, true);
  p.resAckReceived(p.peer, PEER.redirectorPort, Buffer.alloc(16), false);
  assert.equal(p.mustProve, true, 'an answer to an unproven RES does not count');
  p.resAckReceived(p.peer, PEER.redirectorPort, Buffer.alloc(16), true);
  assert.equal(p.mustProve, false);
});

test('path: a RES that asks for a proof is padded so the proof-carrying RES_ACK stays within the amplification factor', () => {
  assert.equal(proofWantedPadding(100, false), 0);
  const pad = proofWantedPadding(100, true);
  assert.equal(DATAGRAM_HEADER_BYTES + 100 + pad, RESUME_PROOF_WANTED_MIN_DATAGRAM);
  assert.equal(proofWantedPadding(RESUME_PROOF_WANTED_MIN_DATAGRAM, true), 0, 'never negative');
});
