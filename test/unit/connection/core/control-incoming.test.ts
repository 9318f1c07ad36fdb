/**
 * The peer's SUS, RES and CLS, decided with no socket, timer or promise: the order of the checks
 * (MAC, counter, proof, moving, table) and that each refusal before the table changes nothing it
 * should not; the reply (challenge, redirector port, proof when asked) and that a retransmission
 * gets it byte for byte; the refusals a retransmission gets again; the CLS towards a resuming
 * peer while closing; and the follow-ups: no automatic resume the peer overtook, the resume()
 * that a SUS crossed going on, the half-open a RES confirms, a peer's abort.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionCore, ControlRequests, controlMac, decideIncoming, type CoreInit, type IncomingContext, type IncomingDecision, type IncomingProofs, type RequestCommand } from '../../../../src/connection/core/index.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { Identity, connectionKeysFromMaster, freshChain, type AgentId, type ConnectionKeys } from '../../../../src/identity/index.js';
import { FerryError, ManualClock, isFerryError, type ErrorCode } from '../../../../src/util/index.js';
import { MessageType, RESUME_FLAG_PROOF, RESUME_FLAG_PROOF_WANTED, decodeConnControl, type ConnControl, type ResumeProof } from '../../../../src/wire/index.js';
import { coreIn as baseCore, countingRandom } from './fixtures.js';

const KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 7));
const CID = Buffer.alloc(16, 1);
const PEER = '127.0.0.1:1000';
const ELSEWHERE = '10.0.0.5:7000';
const CTX: IncomingContext = { moving: false, resumePending: false };
const NO_PROOFS: IncomingProofs = { verify: () => assert.fail('no proof to verify'), prover: () => assert.fail('no proof to give') };

function coreIn(state: State, extra: Partial<CoreInit> = {}): ConnectionCore {
  return baseCore(state, { role: 'server', connectionId: CID, secure: extra.keys !== undefined, random: countingRandom(0x41), ...extra });
}

/** The peer's request (client's role), MAC'd under `keys`. */
function req(type: ConnControl['type'], counter: number, keys: ConnectionKeys | undefined, extra: Partial<ConnControl> = {}): ConnControl {
  const head = { type, connectionId: CID, senderRole: 'client' as const, counter, reason: 0, redirectorPort: 1001, challenge: Buffer.alloc(16, 0x99), ...extra };
  const m: ConnControl = { ...head, mac: controlMac(keys, head) };
  if (extra.proof) m.proof = extra.proof;
  return m;
}

interface Setup {
  core: ConnectionCore;
  requests: ControlRequests;
  decide(m: ConnControl, from?: string, ctx?: Partial<IncomingContext>, proofs?: IncomingProofs): IncomingDecision;
}

function setup(state: State, extra: Partial<CoreInit> = {}): Setup {
  const core = coreIn(state, extra);
  const requests = new ControlRequests(core, { redirectorPort: 2001, reconnectLimitMs: 30_000, verifyProof: () => assert.fail('no proof expected') });
  return { core, requests, decide: (m, from = PEER, ctx = {}, proofs = NO_PROOFS) => decideIncoming(core, requests, m, from, { ...CTX, ...ctx }, { redirectorPort: 2001, proofs }) };
}

function refusedWith(d: IncomingDecision, code: ErrorCode): void {
  assert.equal(d.kind, 'refuse', `expected a refusal ${code}, got ${d.kind}`);
  if (d.kind === 'refuse') assert.ok(isFerryError(d.error, code), `expected ${code}, got ${d.error.code}`);
}

function accepted(d: IncomingDecision): Extract<IncomingDecision, { kind: 'accept' }> {
  assert.equal(d.kind, 'accept', d.kind === 'refuse' ? `refused ${d.error.code}` : d.kind);
  return d as Extract<IncomingDecision, { kind: 'accept' }>;
}

test('incoming: the MAC is checked first: a forgery is refused BAD_MAC and changes nothing, even the replay window', () => {
  const s = setup('ESTABLISHED', { keys: KEYS });
  refusedWith(s.decide(req(MessageType.SUS, 5, connectionKeysFromMaster(Buffer.alloc(32, 8)))), 'FERRY_ERR_BAD_MAC');
  assert.equal(s.core.auth.received, 0);
  assert.equal(accepted(s.decide(req(MessageType.SUS, 1, KEYS))).event, 'recv_sus');
  assert.equal(s.core.auth.received, 1);
});

test('incoming: a replayed counter is refused REPLAYED_CONTROL; a retransmission from the same address gets the same reply, byte for byte', () => {
  const s = setup('ESTABLISHED', { keys: KEYS });
  const first = accepted(s.decide(req(MessageType.SUS, 3, KEYS)));
  const again = s.decide(req(MessageType.SUS, 3, KEYS));
  assert.deepEqual(again, { kind: 'answer', reply: first.reply });
  refusedWith(s.decide(req(MessageType.SUS, 3, KEYS), ELSEWHERE), 'FERRY_ERR_REPLAYED_CONTROL');
  refusedWith(s.decide(req(MessageType.SUS, 2, KEYS)), 'FERRY_ERR_REPLAYED_CONTROL');
  const reply = decodeConnControl(first.reply, MessageType.SUS_ACK);
  assert.equal(reply.counter, 3, 'the reply echoes the counter');
  assert.equal(reply.senderRole, 'server');
  assert.ok(controlMac(KEYS, reply).equals(reply.mac), 'under the control key');
});

test('incoming: a RES from elsewhere without a proof is refused before its counter is recorded', () => {
  const s = setup('SUSPENDED', { keys: KEYS });
  refusedWith(s.decide(req(MessageType.RES, 4, KEYS), ELSEWHERE), 'FERRY_ERR_RESUME_UNPROVEN');
  assert.equal(s.core.auth.received, 0, 'the window did not move: the genuine RES with that counter still counts');
  const refusal = new FerryError('FERRY_ERR_CHAIN_FORGED', 'forged');
  const proofs: IncomingProofs = {
    verify: () => {
      throw refusal;
    },
    prover: () => undefined,
  };
  const d = s.decide(req(MessageType.RES, 4, KEYS, { reason: RESUME_FLAG_PROOF, proof: aProof() }), ELSEWHERE, {}, proofs);
  assert.deepEqual(d, { kind: 'refuse', error: refusal, commands: [] });
  assert.equal(s.core.auth.received, 0);
});

test('incoming: a RES whose proof verifies makes its source a candidate at the proof\'s epoch, and its location proven', () => {
  const s = setup('SUSPENDED', { keys: KEYS });
  const proofs: IncomingProofs = { verify: (_m, e) => (assert.equal(e, 0), 4), prover: () => undefined };
  const a = accepted(s.decide(req(MessageType.RES, 1, KEYS, { reason: RESUME_FLAG_PROOF, proof: aProof(), redirectorPort: 7001 }), ELSEWHERE, {}, proofs));
  assert.equal(a.event, 'recv_res');
  assert.deepEqual(s.core.path.candidate, { ip: '10.0.0.5', controlPort: 7000, redirectorPort: 7001, epoch: 4 });
  assert.deepEqual(s.core.path.proven, { ip: '10.0.0.5', controlPort: 7000, redirectorPort: 7001 });
  assert.equal(s.core.path.peerEpoch, 4);
});

test('incoming: while moving, a RES is answered PEER_MOVING (remembered: its retransmission too); a SUS or CLS is not', () => {
  const s = setup('SUSPENDED');
  refusedWith(s.decide(req(MessageType.RES, 1, undefined), PEER, { moving: true }), 'FERRY_ERR_PEER_MOVING');
  assert.equal(s.core.auth.received, 1, 'authenticated and fresh: its counter counts');
  refusedWith(s.decide(req(MessageType.RES, 1, undefined), PEER, { moving: true }), 'FERRY_ERR_PEER_MOVING');
  assert.equal(accepted(s.decide(req(MessageType.SUS, 2, undefined), PEER, { moving: true })).event, 'recv_sus');
});

test('incoming: a request the state does not take is refused with the table\'s code, and remembered', () => {
  const s = setup('CLOSED');
  refusedWith(s.decide(req(MessageType.SUS, 1, undefined)), 'FERRY_ERR_CONNECTION_CLOSED');
  refusedWith(s.decide(req(MessageType.SUS, 1, undefined)), 'FERRY_ERR_CONNECTION_CLOSED');
  const t = setup('CONNECT_SENT');
  refusedWith(t.decide(req(MessageType.SUS, 1, undefined)), 'FERRY_ERR_ILLEGAL_TRANSITION');
  // A type that is not a request is malformed (the datagram layer lets only control types through).
  refusedWith(t.decide(req(MessageType.SUS_ACK as ConnControl['type'], 2, undefined)), 'FERRY_ERR_MALFORMED_DATAGRAM');
});

test('incoming: a RES while our CLS is unanswered is refused, and one CLS goes to its source', () => {
  const s = setup('CLOSE_SENT');
  s.core.intent.destroy(undefined);
  const [cls] = s.requests.close() as RequestCommand[];
  s.requests.failed(cls!.id, new FerryError('FERRY_ERR_CONTROL_TIMEOUT'), 0);
  const d = s.decide(req(MessageType.RES, 1, undefined), ELSEWHERE);
  refusedWith(d, 'FERRY_ERR_CONNECTION_CLOSED');
  const towards = d.kind === 'refuse' ? (d.commands[0] as RequestCommand) : undefined;
  assert.equal(towards?.to, ELSEWHERE);
  assert.equal(decodeConnControl(towards!.body, MessageType.CLS).reason, 1);
  const again = s.decide(req(MessageType.RES, 1, undefined), ELSEWHERE);
  assert.deepEqual(again.kind === 'refuse' && again.commands, [], 'its retransmission sends no second CLS');
  // A SUS while closing: refused, no CLS.
  const sus = s.decide(req(MessageType.SUS, 2, undefined), ELSEWHERE);
  assert.deepEqual(sus.kind === 'refuse' && sus.commands, []);
});

test('incoming: an accepted RES gets a RES_ACK with a fresh challenge and our redirector port, and stops our resume retry', () => {
  const clock = new ManualClock();
  const s = setup('SUSPENDED');
  s.core.setDeadline('resume_retry', clock.now() + 500);
  const a = accepted(s.decide(req(MessageType.RES, 1, undefined, { redirectorPort: 1555 })));
  assert.equal(a.event, 'recv_res');
  const ack = decodeConnControl(a.reply, MessageType.RES_ACK);
  assert.equal(ack.redirectorPort, 2001);
  assert.notDeepEqual(ack.challenge, Buffer.alloc(16), 'a challenge the peer\'s HELLO must echo');
  s.core.path.redeemChallenge(ack.challenge);
  assert.equal(ack.reason, 0, 'no proof asked, none given');
  assert.equal(s.core.hasDeadline('resume_retry'), false);
  clock.advance(500);
  assert.equal(s.core.handleTimeout(clock.now()), undefined, 'no retry fires');
  assert.deepEqual(s.core.path.peerChallenge, Buffer.alloc(16, 0x99), 'our HELLO will echo the peer\'s challenge');
  assert.equal(s.core.path.peer.redirectorPort, 1555, 'from its own address: only the redirector port is news');
});

test('incoming: a RES that asks for our proof gets it in the RES_ACK, under the MAC; without one the RES_ACK goes plain', () => {
  const s = setup('SUSPENDED', { keys: KEYS });
  const proof = aProof();
  const signed: ConnControl[] = [];
  const proofs: IncomingProofs = { verify: () => assert.fail(), prover: () => (ack) => (signed.push(ack), proof) };
  const a = accepted(s.decide(req(MessageType.RES, 1, KEYS, { reason: RESUME_FLAG_PROOF_WANTED }), PEER, {}, proofs));
  const ack = decodeConnControl(a.reply, MessageType.RES_ACK);
  assert.equal(ack.reason, RESUME_FLAG_PROOF);
  assert.ok(ack.proof, 'the proof travels');
  assert.equal(signed.length, 1);
  assert.equal(signed[0]!.reason, RESUME_FLAG_PROOF, 'the flag is set before signing: it is under the MAC and the proof');
  const b = accepted(s.decide(req(MessageType.RES, 2, KEYS, { reason: RESUME_FLAG_PROOF_WANTED }), PEER, {}, { verify: () => assert.fail(), prover: () => undefined }));
  assert.equal(decodeConnControl(b.reply, MessageType.RES_ACK).reason, 0);
});

test('incoming: a SUS stops our automatic resume unless it is a moving peer\'s while we are live', () => {
  const cases: [State, number, boolean][] = [
    ['ESTABLISHED', 0, true],
    ['ESTABLISHED', 1, false],
    ['SUSPENDED', 0, true],
    ['SUSPENDED', 1, true],
    ['RES_SENT', 1, false],
  ];
  for (const [state, reason, stop] of cases) {
    const s = setup(state);
    s.core.setDeadline('resume_retry', 100);
    const a = accepted(s.decide(req(MessageType.SUS, 1, undefined, { reason })));
    assert.equal(a.stopAutoResume, stop, `${state}, reason ${reason}`);
    assert.equal(a.dropKept, true, 'a SUS datagram is newer than anything on the kept socket');
    assert.equal(a.resumeAfter, false);
  }
});

test('incoming: a SUS crossing an application resume() keeps it: the resume goes on after (a moving peer is looked up)', () => {
  const s = setup('RES_SENT');
  const a = accepted(s.decide(req(MessageType.SUS, 1, undefined, { reason: 1 }), PEER, { resumePending: true }));
  assert.deepEqual([a.stopAutoResume, a.resumeAfter, a.peerMoving], [false, true, true]);
  const b = accepted(setup('SUSPENDED').decide(req(MessageType.SUS, 1, undefined), PEER, { resumePending: true }));
  assert.deepEqual([b.stopAutoResume, b.resumeAfter, b.peerMoving], [false, true, false]);
});

test('incoming: a RES to a half-open is accepted (its row confirms it), and a CLS that aborts is flagged for the adapter', () => {
  const half = accepted(setup('CONNECT_ACKED').decide(req(MessageType.RES, 1, undefined)));
  assert.equal(half.event, 'recv_res');
  const abort = accepted(setup('ESTABLISHED').decide(req(MessageType.CLS, 1, undefined, { reason: 1 })));
  assert.deepEqual([abort.event, abort.peerAborted], ['recv_cls', true]);
  assert.equal(decodeConnControl(abort.reply, MessageType.CLS_ACK).type, MessageType.CLS_ACK);
  assert.equal(accepted(setup('ESTABLISHED').decide(req(MessageType.CLS, 1, undefined))).peerAborted, false);
});

/** A structurally valid proof; what it proves is for the injected verifier to say. */
function aProof(): ResumeProof {
  const agent = Identity.generate();
  const host = Identity.generate();
  return { hostKey: host.publicRaw, chain: freshChain(agent, host.publicRaw, 1, Date.now()), treeSize: 1, leafIndex: 0, path: [], signature: Buffer.alloc(64, 5) };
}
