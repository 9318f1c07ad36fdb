// Scenario: a connection's peer address changes only on authenticated, fresh control traffic,
// and is trusted only once a data socket proves it (STYLE §10, RFC 9000 §8/§9).
// 1. An eavesdropper re-sends genuine, MAC'd RES datagrams it captured, from its own UDP socket
//    (a spoofed source). An older RES, replayed while the connection is suspended (where a fresh
//    RES would resume it and make the host dial), is refused with FERRY_ERR_REPLAYED_CONTROL; the
//    newest RES, re-sent from elsewhere, changes nothing either. A RES forged under a wrong key
//    that names the attacker's own TCP port as redirector is refused with FERRY_ERR_BAD_MAC. In
//    every case the host sends the attacker's address one reply datagram, at most 3x the bytes
//    it received from it (anti-amplification), never dials it, and keeps the peer address.
// 2. After a legitimate move (host.moveAgent), the static end holds the new address only as a
//    candidate when the mover's RES arrives, and adopts it once the HELLO / HELLO_ACK exchange
//    on the new data socket proved it — whichever end dials. The stream continues intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { controlMac } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, connectionKeysFromMaster } from '../../src/identity/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { MessageType, NONCE_BYTES, TYPE_ERROR, decodeConnControl, decodeDatagram, encodeConnControl, type ConnControl } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { assertLoggedOnce, assertRefused, Attacker, Link, sleep, splitAddress, tapper, TcpTrap } from '../helpers/attacker.js';

test('replayed and forged RES from a spoofed address change nothing and are not amplified', async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(2, { logger: log, wrapControlSocket: wrap });
  const attacker = await Attacker.bind();
  const second = await Attacker.bind();
  // The attacker's TCP port, named as redirector in its forged RES: the host must never dial it.
  const trap = await TcpTrap.open();
  const trapPort = trap.port;
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const tap0 = taps[0]!;
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 110);
    const bystander = await Link.open(h0, c.id, h1, d.id, 120);
    await link.exchange(30_000, 'before');
    const server = link.b.endpoint;
    const genuinePeer = { ...server.peer };
    assert.equal(`${genuinePeer.ip}:${genuinePeer.controlPort}`, h0.controlAddress);

    // Two genuine cycles from the client end; capture each RES as sent on the wire. (The kept
    // socket is killed first each time: with it, the resume would go in-band, with no RES.)
    const resSent = (): Buffer[] => tap0.sentRequests(MessageType.RES).filter((s) => s.to === h1.controlAddress).map((s) => s.msg);
    const captured: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      const before = resSent().length;
      await link.a.suspend();
      await waitFor(() => link.b.state === 'SUSPENDED', 5000, 'server end suspended');
      assert.ok(h1.breakDataSockets(b.id) > 0, 'the kept socket was there to kill');
      await link.a.resumeConnection();
      captured.push(resSent()[before]!);
      await link.exchange(20_000, `genuine cycle ${i + 1}`);
    }
    const counters = captured.map((d) => decodeConnControl(Buffer.from(decodeDatagram(d).body), MessageType.RES).counter);
    assert.ok(counters[1]! > counters[0]!, 'two distinct RES captured');

    const expectNothingMoved = async (what: string): Promise<void> => {
      await sleep(150);
      assert.deepEqual(server.peer, genuinePeer, `${what}: peer address unchanged`);
      assert.equal(trap.dialed.length, 0, `${what}: the host never dialed the attacker`);
      assert.ok(attacker.bytesIn <= 3 * attacker.bytesOut, `${what}: ${attacker.bytesIn} bytes sent to the attacker for ${attacker.bytesOut} received`);
    };

    // (a) The newest RES, re-sent from the attacker's address while the connection is up. The
    // endpoint answers an exact retransmission from its cache only when it comes from the address
    // the original came from; a copy from elsewhere is a replay: refused, nothing computed, no
    // path challenge handed to an unproven address.
    let replies = attacker.seen.length;
    const latest = await attacker.sendRaw(h1.controlAddress, captured[1]!);
    assertRefused(latest, 'FERRY_ERR_REPLAYED_CONTROL', 12);
    await expectNothingMoved('newest RES replayed');
    assert.equal(attacker.seen.length, replies + 1, 'one reply datagram');
    assert.equal(link.b.state, 'ESTABLISHED');

    // (b) Suspend genuinely, then replay the older RES at the suspended end: a fresh RES would
    // resume it here and make it dial. It is refused as replayed.
    await link.a.suspend();
    await waitFor(() => link.b.state === 'SUSPENDED', 5000, 'server end suspended');
    replies = attacker.seen.length;
    const old = await attacker.sendRaw(h1.controlAddress, captured[0]!);
    assertRefused(old, 'FERRY_ERR_REPLAYED_CONTROL', 12);
    // Even the newest RES, older than the SUS that followed it, is a replay now. (From another
    // socket: the attacker's own repeat of (a) would get the control channel's cached answer.)
    assertRefused(await second.sendRaw(h1.controlAddress, captured[1]!), 'FERRY_ERR_REPLAYED_CONTROL', 12);
    assert.equal(second.seen.length, 1);
    assert.ok(second.bytesIn <= 3 * second.bytesOut);
    assert.equal(h1.refusals.get('FERRY_ERR_REPLAYED_CONTROL'), 3);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_REPLAYED_CONTROL', 3);
    await expectNothingMoved('old RES replayed at a suspended end');
    assert.equal(attacker.seen.length, replies + 1, 'one reply datagram per replay');
    assert.equal(link.b.state, 'SUSPENDED', 'the replay did not resume the connection');

    // (c) A RES forged under a wrong key, with a counter far ahead, naming the trap as redirector.
    const wrong = connectionKeysFromMaster(randomBytes(32));
    const fields = { type: MessageType.RES, connectionId: server.connectionId, senderRole: 'client' as const, counter: 1_000, reason: 0, redirectorPort: trapPort, challenge: randomBytes(NONCE_BYTES) };
    const forged = encodeConnControl({ ...fields, mac: controlMac(wrong, fields) } as ConnControl);
    replies = attacker.seen.length;
    assertRefused(await attacker.request(h1.controlAddress, MessageType.RES, forged), 'FERRY_ERR_BAD_MAC', 11);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_BAD_MAC');
    await expectNothingMoved('forged RES');
    assert.equal(attacker.seen.length, replies + 1, 'exactly one error reply');
    assert.ok(attacker.seen.slice(replies).every((s) => s.msg[1] === TYPE_ERROR && s.from === h1.controlAddress));
    assert.equal(link.b.state, 'SUSPENDED');

    // The genuine end resumes as if nothing happened.
    link.write(10_000);
    await link.a.resumeConnection();
    await link.exchange(40_000, 'after the attacks');
    await bystander.exchange(40_000, 'bystander after the attacks');
    assert.deepEqual(server.peer, genuinePeer);
  } finally {
    attacker.close();
    second.close();
    trap.close();
    await net.close();
  }
});

for (const dialer of ['static', 'moving'] as const) {
  test(`after a move the new address is adopted only once the data socket proves it (${dialer} end dials)`, async () => {
    const { taps, wrap } = tapper();
    const net = await startHosts(3, { wrapControlSocket: wrap });
    try {
      const [h0, h1, h2] = net.hosts as [Host, Host, Host];
      // The lower AgentId dials after a resume: order the ids to choose which end proves the path.
      const [lo, hi] = [Identity.generate(), Identity.generate()].sort((x, y) => (x.id < y.id ? -1 : 1)) as [Identity, Identity];
      const a = await h0.addAgent(dialer === 'static' ? lo : hi); // stays on h0
      const b = await h1.addAgent(dialer === 'static' ? hi : lo); // moves h1 -> h2
      const c = await h0.addAgent();
      const d = await h1.addAgent();
      const link = await Link.open(h0, a.id, h1, b.id, 130);
      const bystander = await Link.open(h0, c.id, h1, d.id, 140);
      await link.exchange(50_000, 'before the move');
      const staticEnd = link.a.endpoint;
      assert.equal(staticEnd.isDialer, dialer === 'static');
      const h1Port = splitAddress(h1.controlAddress).port;
      const h2Port = splitAddress(h2.controlAddress).port;
      assert.equal(staticEnd.peer.controlPort, h1Port);

      // The moment the mover's RES from h2 has been handled on h0: what does the static end trust?
      let atRes: { state: string; peerPort: number } | undefined;
      taps[0]!.afterIncoming = (msg, from) => {
        if (atRes || from !== h2.controlAddress || msg[1] !== MessageType.RES || msg[2] !== 0) return;
        atRes = { state: staticEnd.state, peerPort: staticEnd.peer.controlPort };
      };
      link.write(40_000); // in flight during the move
      const moved = await h1.moveAgent(b.id, h2);
      link.follow('b', moved.sockets[0]!);
      await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the move');

      assert.ok(atRes, 'the RES from the new host was seen');
      assert.equal(atRes.state, 'RES_ACKED', 'the RES was authenticated and fresh: acknowledged');
      assert.equal(atRes.peerPort, h1Port, 'but the new address was only a candidate then');
      assert.equal(staticEnd.peer.controlPort, h2Port, 'and was adopted once the data socket proved it');
      assert.equal(staticEnd.peer.redirectorPort, h2.redirectorPort);
      await link.settle('after the move');
      await link.exchange(50_000, 'stream continues after the move');
      await bystander.exchange(30_000, 'bystander');
    } finally {
      await net.close();
    }
  });
}
