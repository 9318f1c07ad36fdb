/**
 * What the core decides around the end of a connection and the peer's requests, with no socket,
 * timer or promise: `fail` and `closed` come out once as `ended` with the connection's error (an
 * aborted open's own when it has none), after the RES still out is cancelled and every request
 * and deadline of ours is stopped; the peer's accepted request, through the core, tells the intent
 * and stops the automatic resume it overtook, a RES that confirms a half-open gives the resume a
 * whole handshake time; and a suspend or a move's preparation stops the resume retry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlMac, type ConnectionCore, type CoreCommand, type CoreInit, type OpenCrypto, type OwnProof } from '../../../../src/connection/core/index.js';
import { Identity, connectionKeysFromMaster, freshChain, type ConnectionKeys } from '../../../../src/identity/index.js';
import { FerryError, limit } from '../../../../src/util/index.js';
import { MessageType, RESUME_FLAG_PROOF, RESUME_FLAG_PROOF_WANTED, decodeConnControl, type Connect, type ConnControl, type ResumeProof } from '../../../../src/wire/index.js';
import { coreIn } from './fixtures.js';

const PEER = '127.0.0.1:1000';

function drain(core: ConnectionCore, now = 0): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push(c);
  return out;
}

/** The peer's request, as the client sends it, MAC'd under `keys` (none: plain). */
function req(type: ConnControl['type'], counter: number, reason = 0, keys?: ConnectionKeys): ConnControl {
  const head = { type, connectionId: Buffer.alloc(16, 1), senderRole: 'client' as const, counter, reason, redirectorPort: 1001, challenge: Buffer.alloc(16, 0x99) };
  return { ...head, mac: controlMac(keys, head) };
}

test('end: an open that fails ends ABORTED unless it has its own error; the error a close carries is kept', () => {
  const opening = coreIn('CONNECT_SENT');
  opening.handle('close');
  const out = drain(opening);
  assert.equal(out.length, 2);
  const ended = out[1]!;
  assert.ok(ended.kind === 'ended');
  assert.equal(ended.err?.code, 'FERRY_ERR_ABORTED');
  assert.equal(opening.intent.closedError, ended.err, 'the intent keeps it');
  const timedOut = coreIn('CONNECT_SENT');
  timedOut.intent.closedError = new FerryError('FERRY_ERR_HANDSHAKE_TIMEOUT');
  timedOut.handle('timeout');
  assert.deepEqual(drain(timedOut)[1], { kind: 'ended', err: timedOut.intent.closedError });
  // A clean close: no error.
  const closing = coreIn('CLOSE_SENT');
  closing.handle('recv_cls_ack');
  // (The row's drop_socket is the core's too: no socket carries the connection here, nothing to close.)
  assert.deepEqual(drain(closing).map((c) => c.kind), ['transition', 'ended']);
  assert.equal(closing.intent.closedError, undefined);
});

/** An open's cryptography that builds placeholders: these tests check the end, not the handshake. */
const STUB_CRYPTO: OpenCrypto = {
  buildConnect: () => ({ body: Buffer.alloc(4), message: { clientHalf: Buffer.alloc(8) } as Connect, ephemeral: undefined }),
  buildConnectAck: () => assert.fail('a client builds no CONNECT_ACK'),
  acceptConnectAck: () => assert.fail('no CONNECT_ACK here'),
  clientFinished: () => Buffer.alloc(32),
  verifyClientFinished: () => false,
};

test('end: once; an end after the end comes to nothing', () => {
  const core = coreIn('CLOSED');
  core.open.startClient({ inband: false, client: { id: 'a'.repeat(32) } as Identity, redirectorPort: 2001, controlPort: 2000, window: 1 << 16, crypto: STUB_CRYPTO });
  for (const n of [1, 0]) {
    core.handle('connect');
    drain(core);
    core.handle('close');
    assert.equal(drain(core).filter((c) => c.kind === 'ended').length, n);
    assert.equal(core.state, 'CLOSED');
  }
});

test('end: the RES still out is cancelled before ended; no retry, resume or handshake deadline of ours is left', () => {
  const core = coreIn('CLOSE_ACKED');
  const res = core.control.resume(false);
  res.build();
  core.control.scheduleResume(0);
  core.setDeadline('handshake', 50);
  core.setDeadline('resume_deadline', 60);
  core.handle('drained');
  assert.deepEqual(drain(core), [
    { kind: 'transition', event: 'drained', from: 'CLOSE_ACKED', to: 'CLOSED' },
    { kind: 'cancel', id: res.id },
    { kind: 'ended', err: undefined },
  ]);
  assert.equal(core.nextDeadline(), undefined);
});

test('incoming, through the core: a SUS the peer sent while we were SUSPENDED stops our resume retry; the intent hears of it', () => {
  const core = coreIn('SUSPENDED');
  core.intent.autoResume = true;
  core.control.scheduleResume(0);
  assert.equal(core.hasDeadline('resume_retry'), true);
  const d = core.incoming(req(MessageType.SUS, 1), PEER, 5);
  assert.ok(d.kind === 'accept' && d.stopAutoResume);
  assert.equal(core.hasDeadline('resume_retry'), false, 'the peer overtook our resume');
  assert.equal(core.intent.autoResume, false);
  // A CLS that aborts: the connection will end PEER_ABORTED.
  const cls = core.incoming(req(MessageType.CLS, 2, 1), PEER, 6);
  assert.equal(cls.kind, 'accept');
  assert.equal(core.intent.closedError?.code, 'FERRY_ERR_PEER_ABORTED');
});

test('incoming, through the core: a RES that confirms a half-open opens it: the handshake deadline goes, the resume\'s own applies', () => {
  const core = coreIn('CONNECT_ACKED', { role: 'server' });
  core.setDeadline('handshake', 10);
  const d = core.incoming(req(MessageType.RES, 1), PEER, 5);
  assert.equal(d.kind, 'accept');
  if (d.kind !== 'accept') return;
  core.handle(d.event);
  const cmds = drain(core, 5);
  core.incomingApplied(d, 5);
  assert.ok(cmds.some((c) => c.kind === 'confirmed'), 'the adapter is told: the host hands it to the agent');
  assert.equal(core.state, 'RES_ACKED');
  assert.equal(core.hasDeadline('handshake'), false);
  assert.equal(core.hasDeadline('resume_deadline'), true);
});

test('a suspend, or a move\'s preparation, stops the resume retry and forgets its lookup', () => {
  for (const stop of [(c: ConnectionCore) => c.intent.suspend('user', 0), (c: ConnectionCore) => c.intent.suspend('move', 0), (c: ConnectionCore) => c.intent.prepareMove()]) {
    const core = coreIn('SUSPENDED');
    core.intent.autoResume = true;
    core.recovery.resumeFailed(new FerryError('FERRY_ERR_PEER_MOVING'));
    core.control.scheduleResume(0);
    const lookup = core.control.resumeDue(0)!;
    assert.equal(lookup.kind, 'lookup');
    stop(core);
    assert.equal(core.hasDeadline('resume_retry'), false);
    core.located(lookup.id, undefined);
    assert.equal(core.poll(0), undefined, 'its lookup\'s answer changes nothing');
  }
});

const KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 9));
/** A stand-in for the host's signature over a real chain: the core only puts it in the RES_ACK. */
const HOST = Identity.generate();
const SIGNED: ResumeProof = { hostKey: HOST.publicRaw, chain: freshChain(Identity.generate(), HOST.publicRaw, 1, Date.now()), treeSize: 1, leafIndex: 0, path: [], signature: Buffer.alloc(64, 2) };

/** A secure core (the peer proven where it is) whose host has `proof` for our agent; the RES_ACKs it signs. */
function proving(proof: OwnProof | undefined, extra: Partial<CoreInit> = {}): { core: ConnectionCore; signed: ConnControl[] } {
  const signed: ConnControl[] = [];
  const core = coreIn('SUSPENDED', {
    role: 'server',
    keys: KEYS,
    secure: true,
    proven: { ip: '127.0.0.1', controlPort: 1000, redirectorPort: 1001 },
    ownProof: () => proof,
    signAck: (agent, ack) => {
      assert.equal(agent, 'a'.repeat(32), 'our agent\'s proof');
      signed.push(ack);
      return SIGNED;
    },
    ...extra,
  });
  return { core, signed };
}

test('incoming, through the core: a RES that asks for our proof gets it signed by the injected signer when the host has one that fits; else plain, and the line says why', () => {
  const { core, signed } = proving({ chain: [0, 0] });
  const d = core.incoming(req(MessageType.RES, 1, RESUME_FLAG_PROOF_WANTED, KEYS), PEER, 5);
  assert.equal(d.kind, 'accept');
  const ack = decodeConnControl((d as { reply: Buffer }).reply, MessageType.RES_ACK);
  assert.equal(ack.reason, RESUME_FLAG_PROOF);
  assert.deepEqual(ack.proof?.signature, SIGNED.signature);
  assert.equal(signed.length, 1);
  assert.equal(signed[0]!.reason, RESUME_FLAG_PROOF, 'flagged before signing');
  assert.equal(core.poll(5), undefined, 'nothing to say');
  for (const [proof, event] of [
    [undefined, 'resume_no_proof'],
    [{ chain: new Array<number>(limit('RESUME_PROOF_MAX_LINKS') + 1).fill(0) }, 'resume_proof_too_long'],
  ] as const) {
    const p = proving(proof);
    const plain = p.core.incoming(req(MessageType.RES, 1, RESUME_FLAG_PROOF_WANTED, KEYS), PEER, 5);
    assert.equal(decodeConnControl((plain as { reply: Buffer }).reply, MessageType.RES_ACK).reason, 0);
    assert.deepEqual(p.signed, [], 'nothing signed');
    const said = p.core.poll(5);
    assert.ok(said?.kind === 'log' && said.event === event);
  }
  // A RES that does not ask: no proof is looked for.
  const quiet = proving(undefined, { ownProof: () => assert.fail('not asked') });
  assert.equal(quiet.core.incoming(req(MessageType.RES, 1, 0, KEYS), PEER, 5).kind, 'accept');
});

test('stop: the host stopping ends a close still retrying (CLOSED, ended with its error, no more tries); elsewhere nothing', () => {
  const core = coreIn('ESTABLISHED');
  core.handle('close');
  const cls = drain(core).find((c) => c.kind === 'request');
  assert.ok(cls?.kind === 'request');
  const err = new FerryError('FERRY_ERR_CONNECTION_CLOSED');
  assert.equal(core.stop(err), true);
  const out = drain(core);
  assert.equal(core.state, 'CLOSED');
  assert.deepEqual(out.at(-1), { kind: 'ended', err });
  core.requestFailed(cls.id, new FerryError('FERRY_ERR_CONTROL_TIMEOUT'), 0);
  assert.equal(core.poll(0), undefined, 'the CLS\'s late failure changes nothing');
  const live = coreIn('ESTABLISHED');
  assert.equal(live.stop(err), false);
  assert.equal(live.poll(0), undefined);
});

/** What `core` gives out, as short strings (`act:` actions, `from->to` transitions). */
const shown = (core: ConnectionCore, now = 0): string[] => drain(core, now).map((c) => (c.kind === 'act' ? `act:${c.action}` : c.kind === 'transition' ? `${c.from}->${c.to}` : c.kind === 'fire_later' ? `fire_later:${c.event}` : c.kind));

test('peerRequest: the peer\'s CLS is applied as an input; once all it led to is out, CLOSE_ACKED has its drain over on a later turn (fire_later), last', () => {
  const core = coreIn('SUSPENDED');
  const d = core.peerRequest(req(MessageType.CLS, 1), PEER, 5);
  assert.equal(d.kind, 'accept');
  assert.deepEqual(shown(core, 5), ['SUSPENDED->CLOSE_ACKED', 'act:ack_cls', 'fire_later:drained']);
  assert.equal(core.state, 'CLOSE_ACKED');
  core.later('drained');
  assert.deepEqual(shown(core, 6), ['CLOSE_ACKED->CLOSED', 'ended']);
  // Not CLOSE_ACKED afterwards (a SUS while SUSPENDED), no drain handed back.
  const sus = coreIn('SUSPENDED');
  sus.peerRequest(req(MessageType.SUS, 1), PEER, 5);
  assert.ok(!shown(sus, 5).some((s) => s.startsWith('fire_later')));
});

test('peerRequest: a RES that confirms a half-open: its row first, then (incomingApplied) the resume\'s time; a retransmission is answered and queues nothing; a refusal queues what it sends', () => {
  const core = coreIn('CONNECT_ACKED', { role: 'server' });
  core.setDeadline('handshake', 10);
  const d = core.peerRequest(req(MessageType.RES, 1), PEER, 5);
  assert.equal(d.kind, 'accept');
  assert.equal(core.state, 'CONNECT_ACKED', 'applied when polled');
  const out = shown(core, 5);
  assert.equal(out[0], 'CONNECT_ACKED->RES_ACKED');
  assert.ok(out.includes('confirmed'));
  assert.equal(core.hasDeadline('handshake'), false);
  assert.equal(core.hasDeadline('resume_deadline'), true);
  // The same RES again: answered from the cache, nothing applied.
  const again = core.peerRequest(req(MessageType.RES, 1), PEER, 6);
  assert.equal(again.kind, 'answer');
  assert.deepEqual(drain(core, 6), []);
  // A RES towards an end that is closing: refused, with the CLS it sends towards the peer's source queued.
  const closing = coreIn('ESTABLISHED');
  closing.handle('close');
  drain(closing);
  const refused = closing.peerRequest(req(MessageType.RES, 1), '127.0.0.1:2000', 7);
  assert.equal(refused.kind, 'refuse');
  const cls = drain(closing, 7);
  assert.equal(cls.length, 1);
  assert.ok(cls[0]?.kind === 'request' && cls[0].type === MessageType.CLS && cls[0].to === '127.0.0.1:2000');
});

test('peerRequest: a SUS crossing an application resume() that left us SUSPENDED: our resume goes on, decided after the SUS\'s row (incomingApplied)', () => {
  const core = coreIn('RES_SENT');
  core.intent.resumeCalled();
  core.intent.autoResume = true;
  const d = core.peerRequest(req(MessageType.SUS, 1), PEER, 5);
  assert.ok(d.kind === 'accept' && d.resumeAfter);
  assert.equal(core.hasDeadline('resume_retry'), false, 'decided once the SUS is applied, not before');
  drain(core, 5);
  assert.equal(core.state, 'SUSPENDED');
  assert.equal(core.hasDeadline('resume_retry'), true, 'our resume goes on');
});
