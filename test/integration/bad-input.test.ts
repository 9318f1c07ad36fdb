// Scenario: junk at both of a host's ports while two connections stream through it.
// UDP control port: random bytes, a wrong version, a 1500-byte datagram, truncated and empty
// datagrams are dropped unanswered (no requestId can be trusted) and each is logged once with
// its code; a well-formed header with a truncated body, or an unknown request type, is answered
// with an error reply carrying the wire code. TCP redirector: garbage, a 2^31 length prefix
// (refused from the 4-byte prefix alone, before any allocation), a zero length, a non-HELLO first
// frame, a HELLO of an unknown version, a HELLO for an unknown connection, and resume HELLOs that
// fail the MAC or the path challenge each get one REJECT frame with the wire code, then the
// socket closes. Nothing crashes, and both connections keep streaming, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { helloMac } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { MemoryLogger, limit, type ErrorCode } from '../../src/util/index.js';
import { FrameType, MessageType, NONCE_BYTES, encodeDatagram, encodeFrame, type Hello } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Attacker, Link, assertLoggedOnce, assertRefused, probeRedirector, sleep, tapper, warnings } from '../helpers/attacker.js';

/** A HELLO for `connectionId`, MAC'd under `keys` (or a random MAC when undefined). */
function hello(connectionId: Buffer, kind: 'open' | 'resume', challenge: Buffer, keys?: Parameters<typeof helloMac>[0]): Buffer {
  const fields = { kind, connectionId, dialerRole: 'client' as const, dialerNonce: randomBytes(NONCE_BYTES), challenge, received: 0, limit: 1 << 20 };
  const mac = keys ? helloMac(keys, fields) : randomBytes(32);
  return encodeFrame({ type: FrameType.HELLO, ...fields, mac } as Hello);
}

test('malformed, oversized and truncated input on both ports is refused, typed, without a crash', async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(2, { logger: log, wrapControlSocket: wrap });
  const attacker = await Attacker.bind();
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 90);
    const bystander = await Link.open(h0, c.id, h1, d.id, 100);
    link.write(100_000);
    bystander.write(100_000);

    // ---- UDP: undecodable datagrams are dropped, unanswered, and logged once each.
    const header = (type: number): Buffer => encodeDatagram({ type, flags: 0, requestId: 7 }, Buffer.alloc(0));
    const random = randomBytes(64);
    random[0] = 1; // our version, so decoding goes past it...
    random[3] = 0xee; // ...and fails on a field: the reserved byte
    const wrongVersion = Buffer.from(header(MessageType.SUS));
    wrongVersion[0] = 2;
    const huge = Buffer.concat([header(MessageType.SUS), randomBytes(1500 - 8)]);
    const junk: [string, Buffer, ErrorCode][] = [
      ['random bytes', random, 'FERRY_ERR_MALFORMED_DATAGRAM'],
      ['wrong version', wrongVersion, 'FERRY_ERR_UNSUPPORTED_VERSION'],
      ['1500-byte datagram', huge, 'FERRY_ERR_MALFORMED_DATAGRAM'],
      ['truncated header', header(MessageType.SUS).subarray(0, 5), 'FERRY_ERR_MALFORMED_DATAGRAM'],
      ['empty datagram', Buffer.alloc(0), 'FERRY_ERR_MALFORMED_DATAGRAM'],
    ];
    const expected = new Map<ErrorCode, number>();
    for (const [, bytes, code] of junk) {
      attacker.send(h1.controlAddress, bytes);
      expected.set(code, (expected.get(code) ?? 0) + 1);
    }
    await waitFor(() => taps[1]!.received.filter((r) => r.from === attacker.address).length === junk.length, 2000, 'junk delivered');
    for (const [code, n] of expected) await assertLoggedOnce(log, 'h1', code, n);
    assert.equal(log.lines.filter((l) => l.event === 'control.malformed' && l.fields['from'] === attacker.address).length, junk.length);
    await sleep(50);
    assert.equal(attacker.seen.length, 0, 'undecodable datagrams are never answered');

    // A valid header with a body that is not: answered with the wire code.
    assertRefused(await attacker.request(h1.controlAddress, MessageType.SUS, randomBytes(20)), 'FERRY_ERR_MALFORMED_DATAGRAM', 1);
    assertRefused(await attacker.request(h1.controlAddress, MessageType.CONNECT, Buffer.alloc(0)), 'FERRY_ERR_MALFORMED_DATAGRAM', 1);
    assertRefused(await attacker.request(h1.controlAddress, 200, randomBytes(10)), 'FERRY_ERR_UNKNOWN_TYPE', 4);
    assert.equal(h1.refusals.get('FERRY_ERR_MALFORMED_DATAGRAM'), 2);
    assert.equal(h1.refusals.get('FERRY_ERR_UNKNOWN_TYPE'), 1);
    await link.settle('streams after the UDP junk');
    await bystander.settle('bystander after the UDP junk');

    // ---- TCP: each bad opening gets one REJECT with its wire code, then the socket closes.
    const cid = link.b.endpoint.connectionId;
    const port = h1.redirectorPort;
    const len = (n: number): Buffer => {
      const b4 = Buffer.alloc(4);
      b4.writeUInt32BE(n);
      return b4;
    };
    const wrongVersionHello = hello(cid, 'open', Buffer.alloc(NONCE_BYTES));
    wrongVersionHello[4 + 1] = 9;
    const tcp: [string, Buffer, ErrorCode, number][] = [
      ['garbage', Buffer.concat([len(5), Buffer.from([0x99, 1, 2, 3, 4])]), 'FERRY_ERR_UNKNOWN_TYPE', 4],
      // Only the 4-byte prefix is sent: the REJECT proves the host decided before any body.
      ['a 2^31 length prefix alone', len(2 ** 31), 'FERRY_ERR_FRAME_TOO_LARGE', 5],
      // A first frame may not be a DATA-sized one: the redirector holds at most HANDOFF_FRAME_BYTES.
      ['a length prefix one over HANDOFF_FRAME_BYTES', len(limit('HANDOFF_FRAME_BYTES') + 1), 'FERRY_ERR_FRAME_TOO_LARGE', 5],
      ['a zero length', len(0), 'FERRY_ERR_MALFORMED_FRAME', 2],
      ['a truncated HELLO body', Buffer.concat([len(20), Buffer.alloc(20, 1)]), 'FERRY_ERR_MALFORMED_FRAME', 2],
      ['an ACK as the first frame', encodeFrame({ type: FrameType.ACK, received: 0, limit: 0 }), 'FERRY_ERR_MALFORMED_FRAME', 2],
      ['a HELLO of another version', wrongVersionHello, 'FERRY_ERR_UNSUPPORTED_VERSION', 3],
      ['a HELLO for an unknown connection', hello(randomBytes(16), 'open', Buffer.alloc(NONCE_BYTES)), 'FERRY_ERR_UNKNOWN_CONNECTION', 20],
      ['a resume HELLO for the live connection without its key', hello(cid, 'resume', randomBytes(NONCE_BYTES)), 'FERRY_ERR_BAD_MAC', 11],
    ];
    for (const [what, bytes, code, wire] of tcp) {
      const before = h1.refusals.get(code) ?? 0;
      const warned = warnings(log, 'h1', code);
      const answer = await probeRedirector(port, bytes);
      assert.equal(answer.error?.code, code, `${what}: REJECT code`);
      assert.equal(answer.wire, wire, `${what}: wire code`);
      assert.equal(answer.detail, code, `${what}: REJECT detail`);
      assert.ok(answer.closed, `${what}: the host closed the socket`);
      assert.equal(h1.refusals.get(code), before + 1, `${what}: counted once`);
      await assertLoggedOnce(log, 'h1', code, warned + 1);
    }
    link.write(50_000);
    bystander.write(50_000);
    await link.settle('streams after the TCP junk');
    await bystander.settle('bystander after the TCP junk');

    // ---- Path validation on the redirector: a resume HELLO that carries the right MAC (an
    // insider holding the connection key) but answers no challenge we issued. The server end is
    // made to wait in RES_SENT: the connection is suspended, its kept socket killed (so the
    // resume goes by RES datagram, not in-band on it), then the client host's control socket goes
    // silent while the server end resumes.
    await link.a.suspend();
    await waitFor(() => link.b.state === 'SUSPENDED', 5000, 'server end suspended');
    assert.ok(h1.breakDataSockets(b.id) > 0, 'the kept socket was there to kill');
    taps[0]!.silent = true;
    const resumed = link.b.resumeConnection();
    await waitFor(() => link.b.state === 'RES_SENT', 5000, 'server end resuming');
    const keys = link.b.endpoint.keys;
    assert.ok(keys);
    const wrongChallenge = await probeRedirector(port, hello(cid, 'resume', randomBytes(NONCE_BYTES), keys));
    assert.equal(wrongChallenge.error?.code, 'FERRY_ERR_PATH_UNVALIDATED');
    assert.equal(wrongChallenge.wire, 16);
    assert.equal(h1.refusals.get('FERRY_ERR_PATH_UNVALIDATED'), 1);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_PATH_UNVALIDATED');
    assert.notEqual(link.b.state, 'ESTABLISHED', 'the unproven socket did not resume the connection');
    taps[0]!.silent = false;
    await resumed;
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 8000, 'genuine resume after the refusal');
    await link.exchange(60_000, 'after the path-validation refusal');
    await bystander.exchange(60_000, 'bystander at the end');
  } finally {
    attacker.close();
    await net.close();
  }
});
