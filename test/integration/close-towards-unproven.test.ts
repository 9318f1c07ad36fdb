// Scenario: a close whose CLS is unanswered follows the peer to where its authenticated RES came
// from (PROTOCOL.md §6.4). That address is only a candidate (§8.4): the source of a datagram is
// not proven by it. An on-path attacker that drops a genuine, proof-carrying RES of a peer that
// just moved and re-sends the same bytes from a spoofed source (here: its own socket, standing in
// for a victim) must not turn the closing host into a reflector: what the host sends there stays
// within AMPLIFICATION_FACTOR times the RES, not CLS after CLS until the reconnect limit.
// The RES is built as the mover's host builds it (the connection's keys, the agent's delegation
// to h2, h2's signature); the bytes are what a relay of the genuine one would carry. Once the
// real peer is reachable again the close completes at both ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { controlMac, ResumeSigner, signResume } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { issueDelegation } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { MessageType, NONCE_BYTES, RESUME_FLAG_PROOF, encodeConnControl, type ConnControl } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Attacker, Link, sleep, tapper, TcpTrap, type Tap } from '../helpers/attacker.js';

const HOUR = 3600_000;

test('a relayed RES from a spoofed source draws at most AMPLIFICATION_FACTOR times its bytes of CLS', { timeout: 60_000 }, async () => {
  const { taps, wrap } = tapper();
  const net = await startHosts(3, { wrapControlSocket: wrap });
  const victim = await Attacker.bind('127.0.0.9');
  const trap = await TcpTrap.open();
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const [tap0, , tap2] = taps as [Tap, Tap, Tap];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 310);
    await link.exchange(20_000, 'before');
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the move');
    await link.exchange(20_000, 'after the move');
    const epoch = (await net.location.lookup(b.id))!.epoch;

    // h2's control channel goes quiet: a's CLS is unanswered and a stays CLOSE_SENT, retrying.
    tap2.silent = true;
    const closing = link.a.close();
    await waitFor(() => link.a.state === 'CLOSE_SENT', 8000, 'a is closing');

    // The peer's next RES as its host would send it: fresh counter, MAC'd, h2's proof for b.
    const ep = link.a.endpoint;
    const fields = { type: MessageType.RES, connectionId: ep.connectionId, senderRole: ep.role === 'client' ? 'server' : 'client', counter: 1_000_000, reason: RESUME_FLAG_PROOF, redirectorPort: trap.port, challenge: randomBytes(NONCE_BYTES) } as const;
    const m: ConnControl = { ...fields, mac: controlMac(ep.keys!, fields) };
    const now = Date.now();
    m.proof = signResume(m, { chain: [issueDelegation(b, b.id, h2.identity.publicRaw, epoch, now - HOUR, now + HOUR)], signer: new ResumeSigner(h2.identity.publicRaw, (x) => h2.identity.sign(x)) });
    const reply = await victim.request(h0.controlAddress, MessageType.RES, encodeConnControl(m));
    assert.equal(reply.error?.code, 'FERRY_ERR_CONNECTION_CLOSED', 'the RES is refused: a is closing');

    // A few CLS rounds (4 tries and a backoff each, 1 to 2 s) while the real peer is silent.
    await sleep(3000);
    assert.equal(link.a.state, 'CLOSE_SENT', 'still closing: the real peer has not answered');

    // The real peer is back: the next CLS reaches it, and the close completes at both ends
    // well within the reconnect limit (a CLS bound to the RES's source never got there).
    tap2.silent = false;
    await waitFor(() => link.a.state === 'CLOSED' && link.b.state === 'CLOSED', 10_000, 'the close reached the peer once it was back');
    await closing;

    // What went to the address that only the RES named: within the amplification bound.
    const cls = tap0.sent.filter((s) => s.to === victim.address && s.msg[1] === MessageType.CLS && s.msg[2] === 0);
    assert.ok(cls.length >= 1, 'the CLS did follow the RES (the peer may really be there)');
    assert.ok(
      victim.bytesIn <= limit('AMPLIFICATION_FACTOR') * victim.bytesOut,
      `${victim.bytesIn} bytes (${cls.length} CLS) sent to an address only a RES named, for ${victim.bytesOut} received from it`,
    );
  } finally {
    victim.close();
    trap.close();
    await net.close();
  }
});
