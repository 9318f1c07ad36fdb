// Scenario: a stranger (a fresh key, its own address 127.0.0.3) opens in-band to a listening
// agent, reads the CONNECT_ACK, drops the socket without a CONNECT_CONFIRM, and sends one RES
// under the connection key: the server takes it as the key confirmation of its half-open
// (CONNECT_ACKED x recv_res, PROTOCOL.md §5.5). The stranger then never completes the resume.
// At the handshake deadline the half-open ends: it was never handed to the agent, so nobody
// waits for its close. It sends one CLS and is gone (a later RES is answered
// UNKNOWN_CONNECTION), rather than retrying its CLS, and holding its entry and its source's
// half-open slot, until the reconnect limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { acceptConnectAck, buildConnect, controlMac } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type ConnectionKeys } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { CONNECT_ACK_FRAME_HEAD_BYTES, FRAME_LENGTH_BYTES, MessageType, NONCE_BYTES, decodeConnectAckFrame, encodeConnControl, lengthPrefix, type ConnControl } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Attacker, sleep, tapper, type Tap } from '../helpers/attacker.js';

const STRANGER_IP = '127.0.0.3';

function res(keys: ConnectionKeys, cid: Buffer, counter: number): Buffer {
  const fields = { type: MessageType.RES, connectionId: cid, senderRole: 'client', counter, reason: 0, redirectorPort: 9, challenge: randomBytes(NONCE_BYTES) } as const;
  const m: ConnControl = { ...fields, mac: controlMac(keys, fields) };
  return encodeConnControl(m);
}

test('a half-open confirmed by RES whose resume never comes ends at its deadline with one CLS', { timeout: 60_000 }, async () => {
  const { taps, wrap } = tapper();
  const net = await startHosts(1, { wrapControlSocket: wrap });
  const stranger = await Attacker.bind(STRANGER_IP);
  try {
    const [h0] = net.hosts as [Host];
    const [tap0] = taps as [Tap];
    const a = await h0.addAgent();
    const server = h0.listen(a.id);
    let accepted = 0;
    server.on('connection', () => accepted++);

    // The in-band open, up to the CONNECT_ACK; the stranger's control port is its UDP socket's.
    const client = Identity.generate();
    const hello = buildConnect({ secure: true, clientHalf: randomBytes(8), client, toAgent: a.id, redirectorPort: 9, window: 65536, inbandControlPort: Number(stranger.address.split(':')[1]) });
    const sock = netConnect({ host: '127.0.0.1', port: h0.redirectorPort, localAddress: STRANGER_IP });
    sock.write(Buffer.concat([lengthPrefix(hello.body.length), hello.body]));
    let got = Buffer.alloc(0);
    while (got.length < FRAME_LENGTH_BYTES || got.length < FRAME_LENGTH_BYTES + got.readUInt32BE(0)) {
      const [chunk] = (await once(sock, 'data')) as [Buffer];
      got = Buffer.concat([got, chunk]);
    }
    const body = got.subarray(FRAME_LENGTH_BYTES, FRAME_LENGTH_BYTES + got.readUInt32BE(0));
    const { ack } = decodeConnectAckFrame(body);
    const { keys } = acceptConnectAck({ hello, ack, expectedServer: a.id, ackPrefix: body.subarray(0, CONNECT_ACK_FRAME_HEAD_BYTES) });
    const cid = Buffer.concat([hello.message.clientHalf, ack.serverHalf]);
    sock.destroy(); // no CONNECT_CONFIRM: the half-open stays until its deadline

    // The RES confirms the key: acknowledged, a fresh handshake time for the resume.
    const first = await stranger.request(h0.controlAddress, MessageType.RES, res(keys!, cid, 1));
    assert.equal(first.error, undefined, `RES_ACK expected, got ${first.error?.code}`);
    assert.equal(first.type, MessageType.RES_ACK);

    // Past that deadline, and then long enough for CLS retries (4 tries and a backoff, ~2 s).
    await sleep(limit('HANDSHAKE_TIMEOUT_MS') + 3000);
    const later = await stranger.request(h0.controlAddress, MessageType.RES, res(keys!, cid, 2));
    assert.equal(later.error?.code, 'FERRY_ERR_UNKNOWN_CONNECTION', 'the half-open is gone');
    const cls = tap0.sentRequests(MessageType.CLS).filter((s) => s.to === stranger.address);
    assert.equal(cls.length, 1, `one CLS to the stranger, not ${cls.length}`);
    assert.equal(accepted, 0, 'never handed to the agent');
  } finally {
    stranger.close();
    await net.close();
  }
});
