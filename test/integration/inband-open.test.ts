// Scenario: the in-band open (PROTOCOL.md §6.1), attacked on the redirector port. An attacker's raw
// TCP sockets send CONNECT frames of their own making to a security-on host: a genuine signed one
// with one bit flipped (in the signature, and in a signed field) is refused with
// FERRY_ERR_BAD_SIGNATURE; one whose key does not hash to the claimed id with
// FERRY_ERR_IDENTITY_MISMATCH; an unsigned one with FERRY_ERR_SECURITY_REQUIRED; one to an agent
// here but not listening with FERRY_ERR_NOT_LISTENING; one to an agent not here with
// FERRY_ERR_UNKNOWN_AGENT; a truncated one with FERRY_ERR_MALFORMED_FRAME; another data-socket
// version with FERRY_ERR_UNSUPPORTED_VERSION. Each is a REJECT frame with the wire code, counted and
// logged once. A genuine CONNECT gets a CONNECT_ACK that verifies, and a CONNECT_CONFIRM with a
// wrong MAC after it is refused (FERRY_ERR_BAD_MAC, once), delivers no connection and frees the
// half-open slot; a client that leaves without confirming frees it at the handshake deadline (it
// may have confirmed on a socket that died, and resume). Through the public API an
// in-band open to an agent that does not listen rejects with FERRY_ERR_NOT_LISTENING, and one to a
// host that is down with FERRY_ERR_PEER_UNREACHABLE. A connection already up on the same hosts
// keeps streaming throughout, and a genuine open afterwards works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { acceptConnectAck, buildConnect } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import type { LocationService } from '../../src/location/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { FerryError, MemoryLogger, isFerryError, limit, type ErrorCode } from '../../src/util/index.js';
import {
  CONNECT_ACK_FRAME_HEAD_BYTES,
  CONNECT_FRAME_HEAD_BYTES,
  FrameDecoder,
  decodeConnect,
  decodeConnectAckFrame,
  encodeConnect,
  encodeConnectConfirmFrame,
  encodeConnectFrame,
  lengthPrefix,
} from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Link, assertLoggedOnce, flipBit, probeRedirector, sleep } from '../helpers/attacker.js';

function frame(body: Buffer): Buffer {
  return Buffer.concat([lengthPrefix(body.length), body]);
}

/** A genuine in-band CONNECT frame body from `client` to `to`. */
function connectFrame(client: Identity, to: AgentId, secure = true): { body: Buffer; hello: ReturnType<typeof buildConnect> } {
  const hello = buildConnect({ secure, clientHalf: randomBytes(8), client, toAgent: to, redirectorPort: 9, window: 65536, inbandControlPort: 9 });
  return { body: hello.body, hello };
}

/** A raw socket to a redirector that collects the frames it gets back. */
async function rawSocket(port: number): Promise<{ send(b: Buffer): void; next(ms?: number): Promise<Buffer | undefined>; closed: Promise<void>; destroy(): void }> {
  const s = netConnect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  const dec = new FrameDecoder();
  const waiting: ((b: Buffer | undefined) => void)[] = [];
  const ready: Buffer[] = [];
  s.on('data', (c: Buffer) => {
    dec.push(c);
    for (let f = dec.next(); f; f = dec.next()) {
      const w = waiting.shift();
      if (w) w(f);
      else ready.push(f);
    }
  });
  const closed = once(s, 'close').then(() => {});
  await once(s, 'connect');
  return {
    send: (b) => void s.write(b),
    next: (ms = 2000) =>
      ready.length > 0
        ? Promise.resolve(ready.shift())
        : new Promise((resolve) => {
            waiting.push(resolve);
            setTimeout(() => resolve(undefined), ms).unref();
          }),
    closed,
    destroy: () => s.destroy(),
  };
}

test('in-band CONNECTs that are forged, malformed or misaddressed are refused on the socket, typed, once each', async () => {
  const log = new MemoryLogger();
  const net = await startHosts(2, { logger: log });
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const quiet = await h1.addAgent(); // on h1, never listens
    const c = await h0.addAgent();
    const bystander = await Link.open(h0, c.id, h1, b.id, 70);
    await bystander.exchange(40_000, 'bystander before');

    const mallory = Identity.generate();
    const genuine = connectFrame(mallory, b.id).body;
    const sigAt = genuine.length - 64;
    const other = Identity.generate();
    const mismatched = (() => {
      const m = decodeConnect(connectFrame(other, b.id).body.subarray(CONNECT_FRAME_HEAD_BYTES));
      return encodeConnectFrame(9, encodeConnect({ ...m, fromAgent: Buffer.from(mallory.id, 'hex') }));
    })();
    const cases: [string, Buffer, ErrorCode, number][] = [
      ['bit flipped in the signature', flipBit(genuine, sigAt + 10, 3), 'FERRY_ERR_BAD_SIGNATURE', 10],
      ['bit flipped in a signed field (the window)', flipBit(genuine, CONNECT_FRAME_HEAD_BYTES + 82, 0), 'FERRY_ERR_BAD_SIGNATURE', 10],
      ['key that does not hash to the claimed id', mismatched, 'FERRY_ERR_IDENTITY_MISMATCH', 14],
      ['unsigned CONNECT to a security-on host', connectFrame(mallory, b.id, false).body, 'FERRY_ERR_SECURITY_REQUIRED', 15],
      ['agent here but not listening', connectFrame(mallory, quiet.id).body, 'FERRY_ERR_NOT_LISTENING', 22],
      ['agent not here', connectFrame(mallory, Identity.generate().id).body, 'FERRY_ERR_UNKNOWN_AGENT', 21],
      ['truncated CONNECT', genuine.subarray(0, genuine.length - 1), 'FERRY_ERR_MALFORMED_FRAME', 3],
      ['a trailing byte', Buffer.concat([genuine, Buffer.of(0)]), 'FERRY_ERR_MALFORMED_FRAME', 3],
      ['another data-socket version', Buffer.concat([Buffer.of(8, 2), genuine.subarray(2)]), 'FERRY_ERR_UNSUPPORTED_VERSION', 0],
      ['control port 0', Buffer.concat([genuine.subarray(0, 2), Buffer.of(0, 0), genuine.subarray(4)]), 'FERRY_ERR_MALFORMED_FRAME', 3],
    ];
    for (const [what, body, code] of cases) {
      const before = h1.refusals.get(code) ?? 0;
      const answer = await probeRedirector(h1.redirectorPort, frame(body));
      assert.equal(answer.error?.code, code, `${what}: ${answer.detail}`);
      assert.equal(answer.closed, true, `${what}: socket closed`);
      assert.equal(h1.refusals.get(code), before + 1, `${what}: counted once`);
    }
    const perCode = new Map<ErrorCode, number>();
    for (const [, , code] of cases) perCode.set(code, (perCode.get(code) ?? 0) + 1);
    for (const [code, n] of perCode) await assertLoggedOnce(log, 'h1', code, n);

    // A genuine CONNECT is answered with a CONNECT_ACK that verifies; a confirmation with a wrong
    // MAC is refused once and delivers nothing.
    let delivered = 0;
    const server = h1.listen(quiet.id);
    server.on('connection', () => delivered++);
    for (const ending of ['bad confirm', 'leaves'] as const) {
      const { body, hello } = connectFrame(mallory, quiet.id);
      const s = await rawSocket(h1.redirectorPort);
      s.send(frame(body));
      const ackBody = await s.next();
      assert.ok(ackBody, `${ending}: a CONNECT_ACK came`);
      const { ack, controlPort } = decodeConnectAckFrame(ackBody);
      assert.equal(controlPort, Number(h1.controlAddress.split(':')[1]), 'the ACK names the server host control port');
      const { keys } = acceptConnectAck({ hello, ack, expectedServer: quiet.id, ackPrefix: ackBody.subarray(0, CONNECT_ACK_FRAME_HEAD_BYTES) });
      assert.ok(keys, 'secure ACK, keys derived');
      const badBefore = h1.refusals.get('FERRY_ERR_BAD_MAC') ?? 0;
      if (ending === 'bad confirm') {
        s.send(frame(encodeConnectConfirmFrame(randomBytes(32))));
        await s.closed;
        assert.equal(h1.refusals.get('FERRY_ERR_BAD_MAC'), badBefore + 1, 'bad confirmation counted once');
        await assertLoggedOnce(log, 'h1', 'FERRY_ERR_BAD_MAC', 1);
      } else {
        s.destroy();
      }
    }
    // The refused confirmation's half-open is gone at once. The one whose socket just closed is
    // kept until its handshake deadline, extended once (its client may have sent a confirmation
    // we never read, and resume: PROTOCOL.md §5.5), then dropped; nothing was delivered.
    const halfOpen = (): number => (h1 as unknown as { halfOpen: { size: number } }).halfOpen.size;
    await sleep(50);
    assert.equal(halfOpen(), 1, 'the half-open whose socket closed is kept');
    for (let i = 0; i < (2 * limit('HANDSHAKE_TIMEOUT_MS') + 2000) / 50 && halfOpen() > 0; i++) await sleep(50);
    assert.equal(delivered, 0, 'no connection was delivered to the agent');
    assert.equal(halfOpen(), 0, 'half-open slots released by the handshake deadline');
    server.close();

    // Through the public API.
    await assert.rejects(h0.connect(a.id, quiet.id), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_ERR_NOT_LISTENING');
    // A host that is down (killed: it never deregistered): its agent's location still names it,
    // its redirector refuses the dial. Its location service cannot deregister, as a killed host.
    const loc = net.location;
    const killed: LocationService = { register: (e) => loc.register(e), lookup: (a) => loc.lookup(a), watch: (a, n, w) => loc.watch(a, n, w) };
    const h2 = await Host.start({ location: killed, name: 'h2', logger: log });
    const ghost = await h2.addAgent();
    h2.listen(ghost.id);
    await h2.close();
    await assert.rejects(h0.connect(a.id, ghost.id), (err: unknown) => isFerryError(err, 'FERRY_ERR_PEER_UNREACHABLE'));

    // Nothing was disturbed: a genuine open works and the bystander streams on.
    const link = await Link.open(h0, a.id, h1, quiet.id, 80);
    await link.exchange(50_000, 'a genuine open after the refusals');
    await bystander.exchange(50_000, 'bystander after the refusals');
  } finally {
    await net.close();
  }
});

test('the control-channel open (inbandOpen: false) still works, and both kinds interoperate', async () => {
  const net = await startHosts(2, { inbandOpen: false });
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 90);
    await link.exchange(100_000, 'UDP open');
  } finally {
    await net.close();
  }
});

test('plain (security off) in-band open streams, and refuses a CONNECT to an agent that is not listening', async () => {
  const net = await startHosts(2, { security: false });
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const quiet = await h1.addAgent();
    await assert.rejects(h0.connect(a.id, quiet.id), (err: unknown) => isFerryError(err, 'FERRY_ERR_NOT_LISTENING'));
    const link = await Link.open(h0, a.id, h1, b.id, 91);
    await link.exchange(100_000, 'plain in-band open');
  } finally {
    await net.close();
  }
});
