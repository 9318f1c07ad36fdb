// Scenario: the reflection bound of a closing end (PROTOCOL.md §6.4, §8.4) holds in total, not
// only per source. a closes while its peer's host is silent, so a stays CLOSE_SENT, retrying. An
// on-path attacker relays the peer's proof-carrying RES datagrams, each from another spoofed
// source (here: eight sockets of its own), and also relays copies of each from further sources.
// Each RES draws one CLS towards its source (at most AMPLIFICATION_FACTOR sends); a copy of a RES
// already taken, from any other source, is a replay (REPLAYED_CONTROL) and draws nothing but its
// error reply. So what all the sources together receive stays within AMPLIFICATION_FACTOR times
// what they sent, and once the peer answers again the close completes at both ends.
// The RES are built as the mover's host builds them (the connection's keys, the agent's
// delegation to h2, h2's signature): the bytes a relay of the genuine ones would carry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { controlMac, ResumeSigner, signResume } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { issueDelegation } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { MessageType, NONCE_BYTES, RESUME_FLAG_PROOF, encodeConnControl, encodeDatagram, type ConnControl } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Attacker, Link, sleep, tapper, TcpTrap, type Tap } from '../helpers/attacker.js';

const HOUR = 3600_000;
const SOURCES = 8;

test('relayed RES from many spoofed sources draw at most AMPLIFICATION_FACTOR times their bytes of CLS in all', { timeout: 60_000 }, async () => {
  const { taps, wrap } = tapper();
  const net = await startHosts(3, { wrapControlSocket: wrap });
  const sources: Attacker[] = [];
  const copiers: Attacker[] = [];
  const trap = await TcpTrap.open();
  try {
    for (let i = 0; i < SOURCES; i++) sources.push(await Attacker.bind(`127.0.0.${20 + i}`));
    for (let i = 0; i < SOURCES; i++) copiers.push(await Attacker.bind(`127.0.0.${40 + i}`));
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const [tap0, , tap2] = taps as [Tap, Tap, Tap];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 330);
    await link.exchange(20_000, 'before');
    const moved = await h1.moveAgent(b.id, h2);
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'resumed after the move');
    const epoch = (await net.location.lookup(b.id))!.epoch;

    tap2.silent = true;
    const closing = link.a.close();
    await waitFor(() => link.a.state === 'CLOSE_SENT', 8000, 'a is closing');

    const ep = link.a.endpoint;
    const signer = new ResumeSigner(h2.identity.publicRaw, (x) => h2.identity.sign(x));
    const now = Date.now();
    const chain = [issueDelegation(b, b.id, h2.identity.publicRaw, epoch, now - HOUR, now + HOUR)];
    for (let i = 0; i < SOURCES; i++) {
      const fields = { type: MessageType.RES, connectionId: ep.connectionId, senderRole: ep.role === 'client' ? 'server' : 'client', counter: 1_000_000 + i, reason: RESUME_FLAG_PROOF, redirectorPort: trap.port, challenge: randomBytes(NONCE_BYTES) } as const;
      const m: ConnControl = { ...fields, mac: controlMac(ep.keys!, fields) };
      m.proof = signResume(m, { chain, signer });
      const datagram = encodeDatagram({ type: MessageType.RES, flags: 0, requestId: 7000 + i }, encodeConnControl(m));
      const first = await sources[i]!.sendRaw(h0.controlAddress, datagram);
      assert.equal(first.error?.code, 'FERRY_ERR_CONNECTION_CLOSED', 'a fresh RES is refused: a is closing');
      // The same RES from another source: a replay, answered with an error and nothing else.
      const copy = await copiers[i]!.sendRaw(h0.controlAddress, datagram);
      assert.equal(copy.error?.code, 'FERRY_ERR_REPLAYED_CONTROL');
    }
    await sleep(2500); // every CLS towards a source has had all its tries

    let sent = 0;
    let received = 0;
    for (const s of [...sources, ...copiers]) {
      const cls = tap0.sent.filter((x) => x.to === s.address && x.msg[1] === MessageType.CLS && x.msg[2] === 0).length;
      assert.ok(cls <= limit('AMPLIFICATION_FACTOR'), `${cls} CLS to ${s.address}`);
      sent += s.bytesOut;
      received += s.bytesIn;
    }
    for (const c of copiers) assert.equal(c.seen.length, 1, 'a copier gets its error reply only');
    assert.ok(received <= limit('AMPLIFICATION_FACTOR') * sent, `${received} bytes to the sources for ${sent} from them`);
    assert.equal(trap.dialed.length, 0, 'nothing dialed the address the RES named');

    tap2.silent = false;
    await waitFor(() => link.a.state === 'CLOSED' && link.b.state === 'CLOSED', 15_000, 'the close reached the peer once it was back');
    await closing;
  } finally {
    for (const s of [...sources, ...copiers]) s.close();
    trap.close();
    await net.close();
  }
});
