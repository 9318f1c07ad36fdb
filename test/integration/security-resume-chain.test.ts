// Scenario: a resume from a new location must prove that its host speaks for the agent
// (docs/DELEGATION.md, "Resuming from a new location"; PROTOCOL.md §4.4). The threat is a party
// that holds the connection's keys (the master secret travels in checkpoints) but no valid
// delegation from the agent key to a host it holds the key of.
// 1. A plain suspend/resume carries no proof (85-byte RES and RES_ACK). A real move does: the
//    mover's RES from its new host carries the agent-key-to-host chain and the host's signature,
//    the static end verifies it and resumes; the stream is intact, and the next plain cycle from
//    the new host carries no proof again.
// 2. After that move, RES datagrams MAC'd with the connection's own keys, sent from another
//    address (a new location) with a counter far ahead, are refused, each with its stable code
//    and one log line: no proof at all (RESUME_UNPROVEN), a forged chain (CHAIN_FORGED), an
//    expired chain (CHAIN_EXPIRED), a chain naming another host than the signer
//    (RESUME_HOST_MISMATCH), a proof claiming the real host's key but signed by another
//    (BAD_SIGNATURE), and the former host's own chain at an older epoch (STALE_EPOCH). Nothing
//    changes: no dial, no address change, the counter is not recorded (a later genuine cycle
//    works), the link and a bystander stream on byte for byte.
// 3. A real destination host whose delegation has expired (its wall clock is hours behind) is
//    refused with CHAIN_EXPIRED, one log line per attempt, and keeps its bytes; once its clock is
//    right it re-issues the chain and the next attempt resumes, exactly once. With a short
//    reconnect limit and no fix, the mover's connection fails cleanly with CHAIN_EXPIRED.
// 4. A resume towards a location that cannot prove (the location service names an impostor that
//    holds the keys): the impostor's RES_ACK without a proof is refused (RESUME_UNPROVEN, logged
//    once), and the resume HELLO it dialed ahead of its RES_ACK is held, never attached. When the
//    real host is found, its RES_ACK proves it and the connection resumes intact.
// 5. Batch proofs: after a move whose four RES share one signed tree (the peer has its root
//    cached), a key holder with the whole batch in hand is refused with BAD_SIGNATURE, each once
//    and logged once: another connection's proof from the batch, this connection's own proof in a
//    new RES (a leaf not in the tree), and a tree of its own under the batch's signature. The
//    genuine RES replayed from elsewhere is REPLAYED_CONTROL. Nothing changes, no root is added to
//    the cache, and all four connections stream on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { controlMac, helloMac, resumeRootStats, ResumeSigner, signResume } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import { Identity, freshChain, issueDelegation, type ConnectionKeys, type DelegationChain } from '../../src/identity/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { MemoryLogger, isFerryError } from '../../src/util/index.js';
import {
  FLAG_REPLY,
  FrameType,
  MessageType,
  NONCE_BYTES,
  RESUME_FLAG_PROOF,
  RESUME_FLAG_PROOF_WANTED,
  decodeConnControl,
  decodeDatagram,
  encodeConnControl,
  encodeDatagram,
  encodeFrame,
  type ConnControl,
  type ResumeProof,
  type Role,
} from '../../src/wire/index.js';
import { outcomeOf, startHosts, waitFor } from '../helpers/harness.js';
import { assertLoggedOnce, assertRefused, Attacker, Link, sleep, splitAddress, tapper, TcpTrap, type Tap, warnings } from '../helpers/attacker.js';

const HOUR = 3600_000;

/** A RES for `cid`, MAC'd under the connection's own keys, with an optional location proof. */
function craftRes(keys: ConnectionKeys, cid: Buffer, senderRole: Role, counter: number, redirectorPort: number, proof?: { hostKey: Buffer; chain: DelegationChain; signer: Identity }): Buffer {
  const fields = { type: MessageType.RES, connectionId: cid, senderRole, counter, reason: proof ? RESUME_FLAG_PROOF : 0, redirectorPort, challenge: randomBytes(NONCE_BYTES) };
  const m: ConnControl = { ...fields, mac: controlMac(keys, fields) };
  if (proof) m.proof = signResume(m, { chain: proof.chain, signer: new ResumeSigner(proof.hostKey, (x) => proof.signer.sign(x)) });
  return encodeConnControl(m);
}

/** RES / RES_ACK requests and replies a host sent, decoded. */
function sentControl(tap: Tap, type: number): { bytes: number; m: ConnControl; to: string }[] {
  return tap.sent
    .filter((s) => s.msg[1] === type)
    .map((s) => {
      const d = decodeDatagram(s.msg);
      return { bytes: s.msg.length, m: decodeConnControl(Buffer.from(d.body), d.header.type), to: s.to };
    });
}

test('a plain suspend/resume carries no proof; a move proves the new host and resumes intact', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(3, { logger: log, wrapControlSocket: wrap });
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const [tap0, tap1, tap2] = taps as [Tap, Tap, Tap];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 210);
    await link.exchange(30_000, 'before');

    // Plain cycles from each end resume in-band on the socket both ends kept: no RES at all.
    await link.a.suspend();
    await link.a.resumeConnection();
    await link.b.suspend();
    await link.b.resumeConnection();
    await link.exchange(20_000, 'after plain cycles');
    for (const tap of [tap0, tap1]) for (const type of [MessageType.RES, MessageType.RES_ACK]) assert.equal(sentControl(tap, type).length, 0, 'no RES datagram');
    // A plain cycle whose kept socket died: 85-byte RES and RES_ACK, no proof flags.
    await link.a.suspend();
    await waitFor(() => link.b.state === 'SUSPENDED', 5000, 'b suspended');
    assert.ok(h1.breakDataSockets(b.id) > 0, 'the kept socket was there to kill');
    await link.a.resumeConnection();
    await link.exchange(20_000, 'after a plain cycle on a new socket');
    for (const [tap, type] of [
      [tap0, MessageType.RES],
      [tap1, MessageType.RES_ACK],
    ] as const) {
      {
        const sent = sentControl(tap, type);
        assert.ok(sent.length >= 1);
        for (const s of sent) {
          assert.equal(s.bytes, 85, 'a plain RES / RES_ACK is 85 bytes');
          assert.equal(s.m.reason, 0);
        }
      }
    }

    // A move: the RES from h2 carries h2's proof for b, at b's new epoch.
    link.write(40_000); // in flight across the move
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the move');
    await link.settle('after the move');
    const epoch = (await net.location.lookup(b.id))!.epoch;
    const fromH2 = sentControl(tap2, MessageType.RES);
    assert.ok(fromH2.length >= 1, 'the mover sent RES from h2');
    const proof = fromH2[0]!.m.proof;
    assert.ok(proof, 'the RES from the new host carries a proof');
    assert.equal(fromH2[0]!.m.reason & RESUME_FLAG_PROOF, RESUME_FLAG_PROOF);
    assert.ok(proof.hostKey.equals(h2.identity.publicRaw), 'signed by h2');
    assert.equal(proof.chain.length, 1, 'one link: the agent key delegates straight to h2');
    assert.ok(proof.chain[0]!.issuer.equals(b.publicRaw));
    assert.ok(proof.chain[0]!.subject.equals(h2.identity.publicRaw));
    assert.equal(proof.chain[0]!.epoch, epoch);
    // b's one connection is a batch of one: size 1, leaf 0, no audit path (9 bytes for the fields).
    assert.equal(proof.treeSize, 1);
    assert.equal(proof.leafIndex, 0);
    assert.equal(proof.path.length, 0);
    assert.equal(fromH2[0]!.bytes, 8 + 77 + 32 + 166 + 9 + 64);
    // The static end answered without a proof of its own: it did not move.
    assert.ok(sentControl(tap0, MessageType.RES_ACK).every((s) => s.m.proof === undefined && s.bytes === 85));
    await link.exchange(30_000, 'stream continues after the move');

    // The next plain cycle from the new host carries no proof: the peer accepted it already.
    // (It resumes in-band on the kept socket, which is offered only when no proof is due.)
    const before = sentControl(tap2, MessageType.RES).length;
    const reused = link.b.endpoint.stats.reused;
    await link.b.suspend();
    await link.b.resumeConnection();
    const later = sentControl(tap2, MessageType.RES).slice(before);
    assert.ok(later.every((s) => s.bytes === 85 && s.m.proof === undefined), 'no proof once accepted');
    assert.equal(link.b.endpoint.stats.reused, reused + 1, 'resumed in-band: no proof due');
    await link.exchange(20_000, 'after a plain cycle at the new host');
    for (const h of ['h0', 'h1', 'h2']) assert.equal(log.lines.filter((l) => l.level === 'warn' && l.fields['host'] === h).length, 0, `no warnings on ${h}`);
  } finally {
    await net.close();
  }
});

test('RES from a new location with no proof, or a forged, expired, misnamed, unsigned or stale one, is refused with its code', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const net = await startHosts(3, { logger: log });
  const attacker = await Attacker.bind();
  // The attacker's TCP port, named as redirector in its RES: the host must never dial it.
  const trap = await TcpTrap.open();
  const trapPort = trap.port;
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 220);
    const bystander = await Link.open(h0, c.id, h1, d.id, 230);
    await link.exchange(30_000, 'before');
    // A genuine move first: the static end now knows b at h2, at epoch 2.
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the move');
    await link.exchange(30_000, 'after the move');
    const epoch = (await net.location.lookup(b.id))!.epoch;
    assert.equal(epoch, 2);

    const staticEnd = link.a.endpoint;
    const keys = staticEnd.keys!;
    const cid = staticEnd.connectionId;
    const genuinePeer = { ...staticEnd.peer };
    assert.equal(genuinePeer.controlPort, splitAddress(h2.controlAddress).port);
    const impostor = Identity.generate(); // a host key the agent never delegated to
    const now = Date.now();
    // Forged: claims the agent key as issuer, but the agent key never signed it.
    const forgedCert = { ...issueDelegation(impostor, b.id, impostor.publicRaw, epoch + 1, now, now + HOUR), issuer: Buffer.from(b.publicRaw) };
    const attacks: { what: string; code: Parameters<typeof assertRefused>[1]; wire: number; proof?: Parameters<typeof craftRes>[5] }[] = [
      { what: 'no proof at all', code: 'FERRY_ERR_RESUME_UNPROVEN', wire: 17 },
      { what: 'a forged chain', code: 'FERRY_ERR_CHAIN_FORGED', wire: 53, proof: { hostKey: impostor.publicRaw, chain: [forgedCert], signer: impostor } },
      {
        what: 'an expired chain (an old delegation to this host)',
        code: 'FERRY_ERR_CHAIN_EXPIRED',
        wire: 54,
        proof: { hostKey: impostor.publicRaw, chain: [issueDelegation(b, b.id, impostor.publicRaw, epoch + 1, now - 3 * HOUR, now - 2 * HOUR)], signer: impostor },
      },
      {
        what: 'a chain naming another host (h2) than the signer',
        code: 'FERRY_ERR_RESUME_HOST_MISMATCH',
        wire: 18,
        proof: { hostKey: impostor.publicRaw, chain: freshChain(b, h2.identity.publicRaw, epoch, now), signer: impostor },
      },
      {
        what: "h2's chain and key, signed by another key",
        code: 'FERRY_ERR_BAD_SIGNATURE',
        wire: 10,
        proof: { hostKey: h2.identity.publicRaw, chain: freshChain(b, h2.identity.publicRaw, epoch, now), signer: impostor },
      },
      {
        what: "the former host's own, valid chain at an older epoch",
        code: 'FERRY_ERR_STALE_EPOCH',
        wire: 26,
        proof: { hostKey: h1.identity.publicRaw, chain: freshChain(b, h1.identity.publicRaw, epoch - 1, now), signer: h1.identity },
      },
    ];

    const expectNothingMoved = async (what: string, state: string): Promise<void> => {
      await sleep(60);
      assert.equal(link.a.state, state, `${what}: state`);
      assert.deepEqual(staticEnd.peer, genuinePeer, `${what}: peer address unchanged`);
      assert.equal(trap.dialed.length, 0, `${what}: the host never dialed the attacker`);
      assert.ok(attacker.bytesIn <= 3 * attacker.bytesOut, `${what}: no amplification`);
    };

    // While established: the unproven RES would have made the static end drop its socket.
    let counter = 1_000_000;
    assertRefused(await attacker.request(h0.controlAddress, MessageType.RES, craftRes(keys, cid, 'server', counter++, trapPort)), 'FERRY_ERR_RESUME_UNPROVEN', 17);
    await assertLoggedOnce(log, 'h0', 'FERRY_ERR_RESUME_UNPROVEN');
    await expectNothingMoved('unproven RES while established', 'ESTABLISHED');
    await link.exchange(20_000, 'after the refused RES while established');
    await bystander.exchange(20_000, 'bystander after the refused RES while established');

    // While suspended (by the genuine mover): any accepted RES would resume and dial.
    await link.b.suspend();
    await waitFor(() => link.a.state === 'SUSPENDED', 5000, 'static end suspended');
    link.write(8_000); // queued on both sides while suspended
    const seen = new Map<string, number>([['FERRY_ERR_RESUME_UNPROVEN', 1]]);
    for (const x of attacks) {
      const replies = attacker.seen.length;
      const reply = await attacker.request(h0.controlAddress, MessageType.RES, craftRes(keys, cid, 'server', counter++, trapPort, x.proof));
      assertRefused(reply, x.code, x.wire);
      seen.set(x.code, (seen.get(x.code) ?? 0) + 1);
      assert.equal(h0.refusals.get(x.code), seen.get(x.code), `${x.what}: counted`);
      await assertLoggedOnce(log, 'h0', x.code, seen.get(x.code));
      assert.equal(attacker.seen.length, replies + 1, `${x.what}: one error reply`);
      await expectNothingMoved(x.what, 'SUSPENDED');
      await bystander.exchange(10_000, `bystander after ${x.what}`);
    }
    assert.equal(warnings(log, 'h2', 'FERRY_ERR_RESUME_UNPROVEN'), 0, 'the genuine host refused nothing');

    // The attacker's counters (a million and up) were not recorded: the genuine mover's next
    // RES, a plain one from h2 (where the peer proved itself), resumes the connection.
    await link.b.resumeConnection();
    await link.settle('resumed by the genuine end after the attacks');
    await link.exchange(30_000, 'after the attacks');
    await link.a.suspend();
    await link.a.resumeConnection();
    await link.exchange(20_000, 'a later genuine cycle from the static end');
    await bystander.exchange(20_000, 'bystander at the end');
    assert.deepEqual(staticEnd.peer, genuinePeer);
  } finally {
    attacker.close();
    trap.close();
    await net.close();
  }
});

test('a destination whose delegation expired is refused (bytes kept) until it renews; without renewal the connection fails with CHAIN_EXPIRED', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const location = new MemoryLocationTable();
  let skew = -3 * HOUR; // h2's wall clock runs three hours behind: its delegations are long over
  const h0 = await Host.start({ location, name: 'h0', logger: log });
  const h1 = await Host.start({ location, name: 'h1', logger: log });
  const h2 = await Host.start({ location, name: 'h2', logger: log, wallClock: () => Date.now() + skew });
  // The same on a host that gives up after 1.5 s, and is never fixed.
  const h3 = await Host.start({ location, name: 'h3', logger: log, wallClock: () => Date.now() - 3 * HOUR, reconnectLimitMs: 1500 });
  try {
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 240);
    const bystander = await Link.open(h0, c.id, h1, d.id, 250);
    await link.exchange(30_000, 'before');

    link.write(50_000); // in flight across the move: must arrive once, after the renewal
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => (h0.refusals.get('FERRY_ERR_CHAIN_EXPIRED') ?? 0) >= 2, 8000, 'two refused attempts');
    assert.notEqual(link.a.state, 'ESTABLISHED');
    assert.notEqual(link.b.state, 'ESTABLISHED');
    await bystander.exchange(20_000, 'bystander while the mover is refused');
    // One warning per refused RES, on the verifying host only.
    assert.equal(warnings(log, 'h0', 'FERRY_ERR_CHAIN_EXPIRED'), h0.refusals.get('FERRY_ERR_CHAIN_EXPIRED'));
    assert.equal(warnings(log, 'h2', 'FERRY_ERR_CHAIN_EXPIRED'), 0);

    skew = 0; // the clock is fixed: the next RES carries a re-issued chain at the same epoch
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the renewal');
    await link.settle('after the renewal');
    await link.exchange(30_000, 'stream continues after the renewal');

    // h3 never renews: the mover gives up at its reconnect limit with the refusal's code, and
    // the static end learns of it from the abort (the CLS needs no proof: it only ends things).
    const f = await h0.addAgent();
    const g = await h1.addAgent();
    const doomed = await Link.open(h0, f.id, h1, g.id, 260);
    await doomed.exchange(10_000, 'doomed before');
    const errors: { side: string; code: string }[] = [];
    const m3 = await h1.moveAgent(g.id, h3);
    const sockB = m3.sockets[0]!;
    sockB.on('error', (err) => errors.push({ side: 'mover', code: isFerryError(err) ? err.code : String(err) }));
    doomed.a.on('error', (err) => errors.push({ side: 'static', code: isFerryError(err) ? err.code : String(err) }));
    await waitFor(() => sockB.state === 'CLOSED' && doomed.a.state === 'CLOSED', 10_000, 'the doomed connection closed');
    assert.equal(sockB.endpoint.error?.code, 'FERRY_ERR_CHAIN_EXPIRED', 'the mover fails with the refusal code');
    assert.equal(doomed.a.endpoint.error?.code, 'FERRY_ERR_PEER_ABORTED');
    assert.deepEqual(errors.map((x) => x.side).sort(), ['mover', 'static']);
    assert.ok(errors.some((x) => x.side === 'mover' && x.code === 'FERRY_ERR_CHAIN_EXPIRED'), JSON.stringify(errors));
    await link.exchange(10_000, 'the renewed link is untouched');
    await bystander.exchange(10_000, 'bystander at the end');
  } finally {
    await Promise.all([h0, h1, h2, h3].map((h) => h.close()));
  }
});

test('a resume towards a location that cannot prove it speaks for the peer is refused; its early HELLO is never attached', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const net = await startHosts(3, { logger: log });
  const impostor = await Attacker.bind();
  const helloSockets: Socket[] = [];
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    // The moving agent has the lower id, so after a resume its side dials (as the impostor will).
    const [lo, hi] = [Identity.generate(), Identity.generate()].sort((x, y) => (x.id < y.id ? -1 : 1)) as [Identity, Identity];
    const a = await h0.addAgent(hi);
    const b = await h1.addAgent(lo);
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 270);
    const bystander = await Link.open(h0, c.id, h1, d.id, 280);
    await link.exchange(30_000, 'before');
    const staticEnd = link.a.endpoint;
    const keys = staticEnd.keys!;
    const cid = staticEnd.connectionId;

    // a suspends; b moves to h2 while suspended (it does not resume there by itself).
    await link.a.suspend();
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    link.write(20_000);
    // The location service now names the impostor, which holds the connection's keys.
    const epoch = (await net.location.lookup(b.id))!.epoch;
    const imp = splitAddress(impostor.address);
    await net.location.register({ agent: b.id, hostId: Identity.generate().id, ip: imp.ip, controlPort: imp.port, redirectorPort: h0.redirectorPort, epoch: epoch + 1 });

    // The impostor answers a RES: it first dials h0's redirector with a valid resume HELLO (the
    // keys and the RES's challenge are all it needs), then sends its RES_ACK, without a proof.
    const helloReplies: Buffer[] = [];
    const requests: { bytes: number; m: ConnControl }[] = [];
    impostor.socket.on('message', (msg, rinfo) => {
      if (msg[1] !== MessageType.RES || msg[2] !== 0) return;
      const d = decodeDatagram(msg);
      const res = decodeConnControl(Buffer.from(d.body), MessageType.RES);
      requests.push({ bytes: msg.length, m: res });
      const s = netConnect({ host: '127.0.0.1', port: h0.redirectorPort });
      helloSockets.push(s);
      s.on('error', () => {});
      s.on('data', (chunk: Buffer) => helloReplies.push(chunk));
      s.once('connect', () => {
        const fields = { kind: 'resume' as const, connectionId: cid, dialerRole: 'server' as const, dialerNonce: randomBytes(NONCE_BYTES), challenge: res.challenge, received: 0, limit: 1 << 20 };
        s.write(encodeFrame({ type: FrameType.HELLO, ...fields, mac: helloMac(keys, fields) }));
        setTimeout(() => {
          const ack = { type: MessageType.RES_ACK, connectionId: cid, senderRole: 'server' as const, counter: res.counter, reason: 0, redirectorPort: h0.redirectorPort, challenge: randomBytes(NONCE_BYTES) };
          const body = encodeConnControl({ ...ack, mac: controlMac(keys, ack) });
          impostor.socket.send(encodeDatagram({ type: MessageType.RES_ACK, flags: FLAG_REPLY, requestId: d.header.requestId }, body), rinfo.port, rinfo.address);
        }, 60);
      });
    });

    const resumed = link.a.resumeConnection();
    const resumeOutcome = outcomeOf(resumed);
    await waitFor(() => warnings(log, 'h0', 'FERRY_ERR_RESUME_UNPROVEN') >= 1, 8000, 'the impostor refused');
    // The refusal is not the resume's answer: it goes on looking for the real host.
    assert.equal(resumeOutcome(), 'pending', 'the resume still pending after the impostor was refused');
    assert.equal(h0.refusals.get('FERRY_ERR_RESUME_UNPROVEN'), 1);
    await assertLoggedOnce(log, 'h0', 'FERRY_ERR_RESUME_UNPROVEN');
    // The RES asked for a proof and paid for it: the impostor may answer up to 3x as much.
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.m.reason & RESUME_FLAG_PROOF_WANTED, RESUME_FLAG_PROOF_WANTED);
    assert.ok(requests[0]!.bytes >= 394, `${requests[0]!.bytes}-byte RES`);
    // The impostor's HELLO reached the endpoint and was held for the proof, then dropped: the
    // connection did not resume with it, and the impostor got no HELLO_ACK.
    assert.ok(log.lines.some((l) => l.fields['host'] === 'h0' && l.event === 'resume_hello_parked'), 'the early HELLO was held');
    await waitFor(() => helloSockets.every((s) => s.destroyed || s.readableEnded), 3000, 'impostor sockets closed');
    assert.equal(Buffer.concat(helloReplies).length, 0, 'no HELLO_ACK to the impostor');
    assert.notEqual(link.a.state, 'ESTABLISHED');
    await bystander.exchange(20_000, 'bystander after the refusal');
    assert.equal(resumeOutcome(), 'pending', 'the resume still pending before the real host is registered');

    // The real host is found (a newer registration): its RES_ACK proves it, the stream resumes.
    await net.location.register({ agent: b.id, hostId: h2.id, ip: '127.0.0.1', controlPort: splitAddress(h2.controlAddress).port, redirectorPort: h2.redirectorPort, epoch: epoch + 2 });
    await resumed;
    await link.settle('resumed at the real host');
    await link.exchange(30_000, 'after the refusal');
    await bystander.exchange(20_000, 'bystander at the end');
    assert.equal(requests.length, 1, 'the impostor was not asked again');
  } finally {
    for (const s of helloSockets) s.destroy();
    impostor.close();
    await net.close();
  }
});

test('a batch proof lifted from another connection, into a new RES, or over a tree of the forger\'s own is refused; the batch itself is not replayable', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(3, { logger: log, wrapControlSocket: wrap });
  const attacker = await Attacker.bind();
  const trap = await TcpTrap.open();
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const tap2 = taps[2] as Tap;
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 290);
    // Three more connections of b (b dials them), so its move is a batch of four.
    const others: Link[] = [];
    for (let i = 0; i < 3; i++) others.push(await Link.open(h1, b.id, h0, (await h0.addAgent()).id, 300 + 2 * i));
    await link.exchange(10_000, 'before');
    const moved = await h1.moveAgent(b.id, h2);
    for (const sock of moved.sockets) {
      if (sock.endpoint.connectionId.equals(link.b.endpoint.connectionId)) link.follow('b', sock);
      else others.find((l) => l.a.endpoint.connectionId.equals(sock.endpoint.connectionId))!.follow('a', sock);
    }
    await waitFor(() => [link, ...others].every((l) => l.a.state === 'ESTABLISHED' && l.b.state === 'ESTABLISHED'), 8000, 'all four resumed');
    for (const l of [link, ...others]) await l.exchange(10_000, 'after the move');
    // The batch as the forger sees it: four RES from h2, one tree, one signature.
    const batch = sentControl(tap2, MessageType.RES).filter((s) => s.m.proof);
    const byCid = new Map(batch.map((s) => [s.m.connectionId.toString('hex'), s]));
    assert.equal(byCid.size, 4);
    const own = byCid.get(link.a.endpoint.connectionId.toString('hex'))!;
    const foreign = byCid.get(others[0]!.b.endpoint.connectionId.toString('hex'))!;
    assert.equal(own.m.proof!.treeSize, 4);
    assert.ok(own.m.proof!.signature.equals(foreign.m.proof!.signature), 'one signature for the batch');

    const staticEnd = link.a.endpoint;
    const keys = staticEnd.keys!;
    const cid = staticEnd.connectionId;
    const genuinePeer = { ...staticEnd.peer };
    const chain = own.m.proof!.chain;
    /** A fresh RES of ours for this connection, MAC'd with its keys, with the proof `prove` makes for it. */
    const forge = (counter: number, prove: (m: ConnControl) => ResumeProof): Buffer => {
      const fields = { type: MessageType.RES, connectionId: cid, senderRole: 'server' as const, counter, reason: RESUME_FLAG_PROOF, redirectorPort: trap.port, challenge: randomBytes(NONCE_BYTES) };
      const m: ConnControl = { ...fields, mac: controlMac(keys, fields) };
      return encodeConnControl({ ...m, proof: prove(m) });
    };
    // A signer that "signs" with the batch's genuine signature: a tree of the forger's own leaves.
    const stolen = new ResumeSigner(h2.identity.publicRaw, () => Buffer.from(own.m.proof!.signature));
    const attacks: { what: string; body: (counter: number) => Buffer }[] = [
      { what: "another connection's proof from the batch", body: (n) => forge(n, () => foreign.m.proof!) },
      { what: "this connection's own proof, in a new RES (a leaf not in the tree)", body: (n) => forge(n, () => own.m.proof!) },
      {
        what: "a tree of the forger's own, of the batch's size, under the batch's signature",
        body: (n) => forge(n, (m) => stolen.sign([{ m, chain }, { m: foreign.m, chain }, { m: own.m, chain }, { m: own.m, chain }])[0]!),
      },
    ];
    const checked = resumeRootStats();
    let counter = 5_000_000;
    for (const [i, x] of attacks.entries()) {
      assertRefused(await attacker.request(h0.controlAddress, MessageType.RES, x.body(counter++)), 'FERRY_ERR_BAD_SIGNATURE', 10);
      assert.equal(h0.refusals.get('FERRY_ERR_BAD_SIGNATURE'), i + 1, `${x.what}: counted once`);
      await assertLoggedOnce(log, 'h0', 'FERRY_ERR_BAD_SIGNATURE', i + 1);
      assert.equal(staticEnd.state, 'ESTABLISHED', `${x.what}: state`);
      assert.deepEqual(staticEnd.peer, genuinePeer, `${x.what}: peer address unchanged`);
    }
    assert.equal(resumeRootStats().verified, checked.verified, 'no forged root was accepted into the cache');
    // The genuine RES, replayed from the attacker's address: caught by the control counter.
    const genuine = tap2.sentRequests(MessageType.RES).find((s) => {
      const d = decodeDatagram(s.msg);
      return decodeConnControl(Buffer.from(d.body), MessageType.RES).connectionId.equals(cid);
    })!;
    assertRefused(await attacker.sendRaw(h0.controlAddress, genuine.msg), 'FERRY_ERR_REPLAYED_CONTROL', 12);
    await sleep(50);
    assert.equal(trap.dialed.length, 0, 'the host never dialed the forger');
    assert.ok(attacker.bytesIn <= 3 * attacker.bytesOut, 'no amplification');
    for (const l of [link, ...others]) await l.exchange(10_000, 'after the forgeries');
    // The counters the forger used were not recorded: a genuine cycle from the mover works.
    await link.b.suspend();
    await link.b.resumeConnection();
    await link.exchange(10_000, 'a genuine cycle after the forgeries');
    assert.equal(warnings(log, 'h2', 'FERRY_ERR_BAD_SIGNATURE'), 0);
  } finally {
    attacker.close();
    trap.close();
    await net.close();
  }
});
