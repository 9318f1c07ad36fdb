// Scenario: a stranger (a fresh key, its own address 127.0.0.3) opens in-band to a listening
// agent, reads the CONNECT_ACK, drops the socket without a CONNECT_CONFIRM, and sends one RES
// under the connection key: the server takes it as the key confirmation of its half-open
// (CONNECT_ACKED x recv_res, PROTOCOL.md §5.5). The open is then complete: the connection goes to
// the agent, resuming, as one whose peer confirmed and then lost its socket would. The stranger
// never completes the resume: past the resume's deadline the connection is SUSPENDED (not ended),
// a later RES is acknowledged, and the agent ends it when it wants. Before, the half-open was
// dropped at its handshake deadline unless the resume had finished by then, and an honest client,
// ESTABLISHED, whose resume a pause and lost datagrams held up, failed PEER_ABORTED (simulator
// seed 80062219).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { acceptConnectAck, buildConnect, controlMac } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type ConnectionKeys } from '../../src/identity/index.js';
import type { AgentSocket } from '../../src/connection/index.js';
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

test('a half-open confirmed by RES goes to the agent and waits, suspended, for the resume that never comes', { timeout: 60_000 }, async () => {
  const { taps, wrap } = tapper();
  const net = await startHosts(1, { wrapControlSocket: wrap });
  const stranger = await Attacker.bind(STRANGER_IP);
  try {
    const [h0] = net.hosts as [Host];
    const [tap0] = taps as [Tap];
    const a = await h0.addAgent();
    const server = h0.listen(a.id);
    const accepted: AgentSocket[] = [];
    server.on('connection', (s: AgentSocket) => accepted.push(s));

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

    // The RES confirms the key: acknowledged, and the open is complete: the agent has it.
    const first = await stranger.request(h0.controlAddress, MessageType.RES, res(keys!, cid, 1));
    assert.equal(first.error, undefined, `RES_ACK expected, got ${first.error?.code}`);
    assert.equal(first.type, MessageType.RES_ACK);
    for (let i = 0; i < 100 && accepted.length === 0; i++) await sleep(10);
    assert.equal(accepted.length, 1, 'handed to the agent once confirmed');
    const conn = accepted[0]!;
    assert.equal(conn.connectionId, cid.toString('hex'));

    // Past the handshake time (and the resume's deadline): suspended, not ended, and no CLS.
    await sleep(limit('HANDSHAKE_TIMEOUT_MS') + 1000);
    assert.equal(conn.endpoint.state, 'SUSPENDED');
    const later = await stranger.request(h0.controlAddress, MessageType.RES, res(keys!, cid, 2));
    assert.equal(later.error, undefined, `a later RES is acknowledged, got ${later.error?.code}`);
    assert.equal(later.type, MessageType.RES_ACK);
    assert.equal(tap0.sentRequests(MessageType.CLS).filter((s) => s.to === stranger.address).length, 0, 'no CLS');
    assert.equal(accepted.length, 1, 'delivered once, also after the second RES');

    // The agent ends it (the stranger never answers its CLS) and the entry goes.
    await conn.close({ timeoutMs: 300 });
    const gone = await stranger.request(h0.controlAddress, MessageType.RES, res(keys!, cid, 3));
    assert.ok(gone.error, 'after the agent closed it, a RES is refused');
  } finally {
    stranger.close();
    await net.close();
  }
});
