/**
 * The open of a connection end (core/open.ts) under a ManualClock, with the real handshake
 * cryptography and no socket: what each step sends and where, what a CONNECT_ACK, a REJECT, a
 * CONNECT_CONFIRM or a lost opening socket leads to, that an answer naming another request or
 * socket slot changes nothing, the handshake deadline's rules (the client fails at it; the
 * server's half-open is extended once while its socket is up; a half-open that took the client's
 * RES ends at it), and which typed error each failure carries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionCore, serverEnd, type CoreCommand, type Expiry, type OpenCommand, type OpenCrypto, type OpenEffect } from '../../../../src/connection/core/index.js';
import { acceptConnectAck, buildConnect, buildConnectAck, clientFinished, helloAckMac, helloMac, verifyClientFinished, type ClientHello } from '../../../../src/connection/handshake.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { Identity, idFromBytes } from '../../../../src/identity/index.js';
import { FerryError, ManualClock, limit } from '../../../../src/util/index.js';
import { FrameType, MessageType, connectAckFramePrefix, decodeConnect, decodeConnectAck, decodeConnectAckFrame, decodeConnectConfirm, decodeConnectFrame, decodeConnectConfirmFrame, encodeConnectAckFrame, encodeConnectConfirmFrame, encodeFrameBody } from '../../../../src/wire/index.js';

const crypto: OpenCrypto = { buildConnect, buildConnectAck, acceptConnectAck, clientFinished, verifyClientFinished };
const HANDSHAKE_MS = limit('HANDSHAKE_TIMEOUT_MS');
const CLIENT = Identity.generate();
const SERVER = Identity.generate();
const CLIENT_HALF = Buffer.alloc(8, 0xc1);
const SERVER_HALF = Buffer.alloc(8, 0x5e);
/** Where the client found the server (its location entry). */
const SERVER_AT = { ip: '10.0.0.2', controlPort: 4000, redirectorPort: 4001, epoch: 0 };
/** The server's own word for its ports, in its CONNECT_ACK. */
const SERVER_CONTROL_PORT = 4100;
const SERVER_REDIRECTOR_PORT = 4101;

function newCore(role: 'client' | 'server', state: State, secure: boolean): ConnectionCore {
  return new ConnectionCore({
    state,
    role,
    localAgent: role === 'client' ? CLIENT.id : SERVER.id,
    peerAgent: role === 'client' ? SERVER.id : CLIENT.id,
    connectionId: role === 'client' ? Buffer.concat([CLIENT_HALF, Buffer.alloc(8)]) : Buffer.concat([CLIENT_HALF, SERVER_HALF]),
    secure,
    peer: role === 'client' ? { ...SERVER_AT } : { ip: '10.0.0.1', controlPort: 3000, redirectorPort: 3001, epoch: 0 },
    send: new SendBuffer(1 << 16),
    recv: new ReceiveBuffer(1 << 16),
    reconnectLimitMs: 30_000,
    random: (n) => Buffer.alloc(n, 7),
    helloCrypto: { helloMac, helloAckMac },
  });
}

/** Every command `core` gives out at `now` (the adapter's drive). */
function drain(core: ConnectionCore, now: number): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push(c);
  return out;
}

/** Apply every queued event of `core`: the table's actions, and (by kind) what the core's own open steps came to. */
function apply(core: ConnectionCore, now: number): string[] {
  return drain(core, now).flatMap((c) => (c.kind === 'act' ? [c.action] : c.kind === 'transition' || c.kind === 'stale' ? [] : [c.kind]));
}

/** The open's commands among `cmds`. */
function openCommands(cmds: readonly CoreCommand[]): OpenCommand[] {
  return cmds.filter((c): c is OpenEffect => c.kind !== 'act' && c.kind !== 'transition' && c.kind !== 'stale');
}

/**
 * A client end in CONNECT_SENT that has sent its CONNECT: the core, the CONNECT it built (kept
 * from the injected crypto, for the test's server to answer) and the commands `send_connect` gave.
 */
function clientOpening(clock: ManualClock, inband: boolean, secure = true): { core: ConnectionCore; hello: ClientHello; sent: OpenCommand[] } {
  const core = newCore('client', 'CLOSED', secure);
  const built: ClientHello[] = [];
  const keeping: OpenCrypto = { ...crypto, buildConnect: (a) => built[built.push(buildConnect(a)) - 1]! };
  core.open.startClient({ inband, client: CLIENT, redirectorPort: 3001, controlPort: 3000, window: 1 << 16, crypto: keeping });
  const hello = built[0]!;
  const begun = core.open.begin();
  assert.deepEqual(begun.at(-1), { kind: 'fire', event: 'connect', ifAccepted: false });
  // The adapter's earlier sockets: the open's is slot 11.
  for (let i = 0; i < 10; i++) core.newSlot();
  core.handle('connect');
  // send_connect is the core's own step: what it decided comes out in its place.
  const sent = drain(core, clock.now());
  assert.deepEqual(sent[0], { kind: 'transition', event: 'connect', from: 'CLOSED', to: 'CONNECT_SENT' });
  return { core, hello, sent: openCommands(sent.slice(1)) };
}

/** The server's answer to `hello`, built by the test (in-band: also the whole CONNECT_ACK frame body). */
function answer(hello: ClientHello, inband: boolean, window = 32_768): ReturnType<typeof buildConnectAck> & { frame: Buffer } {
  const ackPrefix = inband ? connectAckFramePrefix(SERVER_CONTROL_PORT) : undefined;
  const ack = buildConnectAck({ connect: hello.message, connectBody: hello.body, serverHalf: SERVER_HALF, server: SERVER, redirectorPort: SERVER_REDIRECTOR_PORT, window, ackPrefix });
  return { ...ack, frame: encodeConnectAckFrame(SERVER_CONTROL_PORT, ack.body) };
}

/** A server core for `hello` as the adapter builds one (its open started at `clock.now()`), and the CONNECT_ACK it answered with. */
function serverFor(clock: ManualClock, hello: ClientHello, inband: boolean): { core: ConnectionCore; reply: Buffer } {
  const core = new ConnectionCore({
    ...serverEnd(hello.message, SERVER_HALF, { ip: '10.0.0.1', controlPort: 3000 }),
    localAgent: SERVER.id,
    send: new SendBuffer(1 << 16),
    recv: new ReceiveBuffer(1 << 16),
    reconnectLimitMs: 30_000,
    random: (n) => Buffer.alloc(n, 7),
  });
  // The core's startServer: the open answers the CONNECT, and recv_connect takes the end to CONNECT_ACKED.
  const reply = core.startServer(
    { connect: hello.message, connectBody: hello.body, server: SERVER, redirectorPort: SERVER_REDIRECTOR_PORT, window: 32_768, inband: inband ? { controlPort: SERVER_CONTROL_PORT, slot: 5 } : undefined, crypto },
    clock.now(),
  );
  apply(core, clock.now());
  assert.equal(core.state, 'CONNECT_ACKED');
  return { core, reply };
}

/** A server end in CONNECT_ACKED for a client's CONNECT; `ack`: what the client derived from its CONNECT_ACK. */
function serverHalfOpen(clock: ManualClock, inband: boolean, secure = true): { core: ConnectionCore; hello: ClientHello; ack: ReturnType<typeof acceptConnectAck> } {
  const hello = buildConnect({ secure, clientHalf: CLIENT_HALF, client: CLIENT, toAgent: SERVER.id, redirectorPort: 3001, window: 1 << 16, inbandControlPort: inband ? 3000 : undefined });
  const { core, reply } = serverFor(clock, hello, inband);
  const ack = inband
    ? acceptConnectAck({ hello, ack: decodeConnectAckFrame(reply).ack, expectedServer: SERVER.id, ackPrefix: reply.subarray(0, 3) })
    : acceptConnectAck({ hello, ack: decodeConnectAck(reply), expectedServer: SERVER.id });
  return { core, hello, ack };
}

/**
 * The handshake deadline of `core` is due at `now`: taken out of the table as the core's
 * handleTimeout does, for a test of the open's own rule (`handshakeExpired`).
 */
function handshakeDue(core: ConnectionCore, now: number): Expiry {
  const at = core.nextDeadline();
  assert.ok(core.hasDeadline('handshake') && at !== undefined && at <= now, `the handshake deadline is due at ${now}`);
  core.cancelDeadline('handshake');
  return { name: 'handshake', slot: 0, at };
}

function failedWith(cmds: OpenCommand[]): FerryError {
  const f = cmds.find((c) => c.kind === 'open_failed');
  assert.ok(f && f.kind === 'open_failed', `expected open_failed, got ${JSON.stringify(cmds.map((c) => c.kind))}`);
  return f.err;
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FerryError && e.code === code);
}

test('open, client: the CONNECT names both agents, our half of the id, our ports and first window (in-band: in a frame with our control port)', () => {
  const clock = new ManualClock();
  for (const inband of [true, false]) {
    const { hello, sent } = clientOpening(clock, inband);
    const [c] = sent;
    const bytes = c?.kind === 'dial' ? c.first! : c?.kind === 'request' ? c.body : Buffer.alloc(0);
    assert.deepEqual(bytes, hello.body);
    const connect = inband ? decodeConnectFrame(bytes).connect : decodeConnect(bytes);
    if (inband) assert.equal(decodeConnectFrame(bytes).controlPort, 3000);
    assert.deepEqual(connect.clientHalf, CLIENT_HALF);
    assert.equal(idFromBytes(connect.fromAgent), CLIENT.id);
    assert.equal(idFromBytes(connect.toAgent), SERVER.id);
    assert.equal(connect.redirectorPort, 3001);
    assert.equal(connect.window, 1 << 16);
    assert.equal(connect.secure, true);
  }
});

test('open, server: a verified CONNECT makes a LISTEN end for the client\'s agent and address, and its CONNECT_ACK fixes keys, window and deadline', () => {
  const clock = new ManualClock();
  clock.advance(500);
  const hello = buildConnect({ secure: true, clientHalf: CLIENT_HALF, client: CLIENT, toAgent: SERVER.id, redirectorPort: 3001, window: 20_000, inbandControlPort: 3000 });
  const end = serverEnd(hello.message, SERVER_HALF, { ip: '10.0.0.1', controlPort: 3000 });
  assert.deepEqual(end, {
    state: 'LISTEN',
    role: 'server',
    peerAgent: CLIENT.id,
    connectionId: Buffer.concat([CLIENT_HALF, SERVER_HALF]),
    peer: { ip: '10.0.0.1', controlPort: 3000, redirectorPort: 3001, epoch: 0 },
    secure: true,
  });
  const { core, reply } = serverFor(clock, hello, true);
  assert.equal(core.state, 'CONNECT_ACKED');
  // In-band: the frame names our control port, and its prefix is under the transcript (else the client's check fails).
  const frame = decodeConnectAckFrame(reply);
  assert.equal(frame.controlPort, SERVER_CONTROL_PORT);
  assert.deepEqual(frame.ack.serverHalf, SERVER_HALF);
  assert.equal(frame.ack.redirectorPort, SERVER_REDIRECTOR_PORT);
  assert.equal(frame.ack.window, 32_768);
  const accepted = acceptConnectAck({ hello, ack: frame.ack, expectedServer: SERVER.id, ackPrefix: reply.subarray(0, 3) });
  assert.ok(core.keys && accepted.keys && core.keys.master.equals(accepted.keys.master));
  assert.equal(core.send.peerLimit, 20_000, 'the client\'s window, from its CONNECT');
  assert.equal(core.recv.edge, 32_768, 'the window we announced');
  assert.equal(core.nextDeadline(), 500 + HANDSHAKE_MS);
  assert.equal(core.open.openingSlot, 5);
  // By datagram: the bare CONNECT_ACK body.
  const udp = buildConnect({ secure: true, clientHalf: CLIENT_HALF, client: CLIENT, toAgent: SERVER.id, redirectorPort: 3001, window: 20_000 });
  const plain = serverFor(clock, udp, false);
  assert.doesNotThrow(() => acceptConnectAck({ hello: udp, ack: decodeConnectAck(plain.reply), expectedServer: SERVER.id }));
  assert.equal(plain.core.open.openingSlot, undefined);
  assert.equal(plain.core.open.inband, false);
});

test('open, in-band client: CONNECT goes as the first frame of a dial to the peer\'s redirector, with a handshake deadline', () => {
  const clock = new ManualClock();
  clock.advance(1000);
  const { core, hello, sent } = clientOpening(clock, true);
  assert.deepEqual(sent, [{ kind: 'dial', slot: 11, ip: SERVER_AT.ip, port: SERVER_AT.redirectorPort, first: hello.body }]);
  assert.equal(core.open.openingSlot, 11);
  assert.equal(core.nextDeadline(), 1000 + HANDSHAKE_MS);
  // No open dials ahead in-band: the CONNECT's own socket is the data socket.
  assert.deepEqual(core.open.begin().map((c) => c.kind), ['fire']);
});

test('open, control-channel client: dials ahead, then the CONNECT request to the peer\'s control port, with no deadline of its own', () => {
  const clock = new ManualClock();
  const { core, hello, sent } = clientOpening(clock, false);
  const ahead = core.open.begin()[0];
  assert.ok(ahead?.kind === 'dial' && ahead.ahead === true);
  assert.deepEqual([ahead.ip, ahead.port, ahead.first], [SERVER_AT.ip, SERVER_AT.redirectorPort, undefined], 'dialled ahead: nothing sent yet');
  assert.deepEqual(sent, [{ kind: 'request', id: 1, purpose: 'connect', to: '10.0.0.2:4000', type: MessageType.CONNECT, body: hello.body, opts: {}, cancellable: true }]);
  assert.equal(core.open.connectRequest, 1);
  // The request's tries bound it: a second deadline would fail an open the channel still retries.
  assert.equal(core.nextDeadline(), undefined);
});

test('open, control-channel client: a verified CONNECT_ACK sets keys, id, window and ports, then indexes and confirms', () => {
  const clock = new ManualClock();
  const { core, hello } = clientOpening(clock, false);
  const ack = answer(hello, false, 12_345);
  const cmds = core.open.connectAnswered(1, { type: MessageType.CONNECT_ACK, body: ack.body });
  assert.deepEqual(cmds, [{ kind: 'open_indexed' }, { kind: 'fire', event: 'recv_connect_ack', ifAccepted: false }]);
  assert.deepEqual(core.connectionId, Buffer.concat([CLIENT_HALF, SERVER_HALF]));
  assert.ok(core.keys && ack.keys && core.keys.master.equals(ack.keys.master), 'the keys both ends derived');
  assert.equal(core.send.peerLimit, 12_345);
  // A datagram open keeps the control port it sent to; the redirector port is the server's word.
  assert.deepEqual(core.path.peer, { ...SERVER_AT, redirectorPort: SERVER_REDIRECTOR_PORT });
  core.handle('recv_connect_ack');
  const steps = drain(core, 0);
  assert.deepEqual(steps.map((c) => (c.kind === 'act' ? c.action : c.kind)), ['transition', 'open_oneway', 'dial', 'established']);
  // send_confirm: the client's MAC over the transcript, as a one-way datagram to the control port.
  const confirm = steps[1];
  assert.ok(confirm && confirm.kind === 'open_oneway');
  assert.equal(confirm.to, '10.0.0.2:4000');
  assert.equal(confirm.type, MessageType.CONNECT_CONFIRM);
  const c = decodeConnectConfirm(confirm.body);
  assert.deepEqual(c.connectionId, core.connectionId);
  assert.ok(verifyClientFinished(ack.keys, ack.transcript, c.mac));
  // dial: the data socket, dialled (or the one dialled ahead) to the redirector port the server named.
  const dial = steps[2];
  assert.ok(dial?.kind === 'dial');
  assert.deepEqual([dial.ip, dial.port, dial.first, dial.ahead], [SERVER_AT.ip, SERVER_REDIRECTOR_PORT, undefined, undefined]);
  // Its HELLO is built once the adapter has the socket: an open HELLO, echoing no challenge.
  core.dialStarted(dial.slot);
  const [deadline, ours] = drain(core, 0);
  assert.deepEqual(deadline, { kind: 'deadline', name: 'hello', slot: dial.slot, ms: limit('HELLO_TIMEOUT_MS') });
  assert.ok(ours?.kind === 'send' && ours.slot === dial.slot && ours.frame.type === FrameType.HELLO && ours.frame.kind === 'open');
  assert.deepEqual(ours.frame.challenge, Buffer.alloc(16));
});

test('open, control-channel client: an answer to another request, or after the open moved on, changes nothing', () => {
  const clock = new ManualClock();
  const { core, hello } = clientOpening(clock, false);
  const ack = answer(hello, false);
  assert.deepEqual(core.open.connectAnswered(2, { type: MessageType.CONNECT_ACK, body: ack.body }), []);
  assert.deepEqual(core.open.connectFailed(2, new FerryError('FERRY_ERR_CONTROL_TIMEOUT')), []);
  assert.deepEqual(core.connectionId, Buffer.concat([CLIENT_HALF, Buffer.alloc(8)]), 'nothing taken from a stale answer');
  core.handle('close');
  apply(core, 0);
  assert.equal(core.state, 'CLOSED');
  assert.deepEqual(core.open.connectAnswered(1, { type: MessageType.CONNECT_ACK, body: ack.body }), []);
  assert.deepEqual(core.open.connectFailed(1, new FerryError('FERRY_ERR_CONTROL_TIMEOUT')), []);
});

test('open, control-channel client: a wrong reply type, a forged ACK or the request\'s failure fail the open, typed', () => {
  const clock = new ManualClock();
  {
    const { core, hello } = clientOpening(clock, false);
    const ack = answer(hello, false);
    assert.equal(failedWith(core.open.connectAnswered(1, { type: MessageType.SUS, body: ack.body })).code, 'FERRY_ERR_MALFORMED_DATAGRAM');
  }
  {
    const { core, hello } = clientOpening(clock, false);
    // An ACK signed by someone else than the agent asked for.
    const forged = buildConnectAck({ connect: hello.message, connectBody: hello.body, serverHalf: SERVER_HALF, server: Identity.generate(), redirectorPort: 1, window: 1 });
    assert.equal(failedWith(core.open.connectAnswered(1, { type: MessageType.CONNECT_ACK, body: forged.body })).code, 'FERRY_ERR_IDENTITY_MISMATCH');
    assert.equal(core.keys, undefined);
  }
  {
    const { core } = clientOpening(clock, false);
    assert.equal(failedWith(core.open.connectFailed(1, new FerryError('FERRY_ERR_NOT_LISTENING'))).code, 'FERRY_ERR_NOT_LISTENING');
  }
  {
    const { core } = clientOpening(clock, false);
    // Whatever else failed is still a typed error.
    assert.equal(failedWith(core.open.connectFailed(1, new Error('boom'))).code, 'FERRY_ERR_INTERNAL');
  }
});

test('open, in-band client: the CONNECT_ACK frame names the server\'s control port; confirm and data socket stay on the opening slot', () => {
  const clock = new ManualClock();
  const { core, hello } = clientOpening(clock, true);
  const ack = answer(hello, true);
  assert.deepEqual(core.open.openingFrame(11, ack.frame), [{ kind: 'open_indexed' }, { kind: 'fire', event: 'recv_connect_ack', ifAccepted: false }]);
  assert.deepEqual(core.path.peer, { ...SERVER_AT, controlPort: SERVER_CONTROL_PORT, redirectorPort: SERVER_REDIRECTOR_PORT });
  core.handle('recv_connect_ack');
  const [confirm, attach] = openCommands(drain(core, clock.now()));
  assert.ok(confirm && confirm.kind === 'open_send_raw');
  assert.equal(confirm.slot, 11);
  assert.ok(verifyClientFinished(ack.keys, ack.transcript, decodeConnectConfirmFrame(confirm.bytes)), 'a CONNECT_CONFIRM frame with the client\'s key confirmation');
  // The opening socket becomes the data socket, the client sending under c2s.
  assert.deepEqual(attach, { kind: 'open_attach', slot: 11, keys: { send: ack.open!.c2s, receive: ack.open!.s2c } });
  assert.equal(core.open.openingSlot, undefined);
  core.open.established(true);
  assert.equal(core.nextDeadline(), undefined, 'established: the handshake deadline is gone');
});

test('open, in-band client: a REJECT fails the open with its code and drops the socket; a frame after the ACK or from another slot is refused', () => {
  const clock = new ManualClock();
  {
    const { core } = clientOpening(clock, true);
    const reject = encodeFrameBody({ type: FrameType.REJECT, wireCode: 22, detail: 'no server socket' });
    const cmds = core.open.openingFrame(11, reject);
    assert.deepEqual(cmds[0], { kind: 'close', slot: 11 });
    assert.equal(failedWith(cmds).code, 'FERRY_ERR_NOT_LISTENING');
    assert.equal(core.open.openingSlot, undefined);
  }
  {
    const { core, hello } = clientOpening(clock, true);
    throwsCode(() => core.open.openingFrame(12, answer(hello, true).frame), 'FERRY_ERR_MALFORMED_FRAME');
    core.open.openingFrame(11, answer(hello, true).frame);
    core.handle('recv_connect_ack');
    apply(core, 0);
    throwsCode(() => core.open.openingFrame(11, answer(hello, true).frame), 'FERRY_ERR_MALFORMED_FRAME');
  }
  {
    // A bad key confirmation from the server: BAD_MAC, and the socket goes.
    const { core, hello } = clientOpening(clock, true);
    const frame = answer(hello, true).frame;
    frame[frame.length - 1]! ^= 1;
    const cmds = core.open.openingFrame(11, frame);
    assert.equal(cmds[0]?.kind, 'close');
    assert.equal(failedWith(cmds).code, 'FERRY_ERR_BAD_MAC');
  }
});

test('open, in-band client: a socket that closes, or a dial that throws, before the ACK fails the open once, naming where and why', () => {
  const clock = new ManualClock();
  {
    const { core } = clientOpening(clock, true);
    assert.deepEqual(core.open.openingClosed(12, undefined), [], 'another slot');
    const err = failedWith(core.open.openingClosed(11, undefined, { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }));
    assert.equal(err.code, 'FERRY_ERR_PEER_UNREACHABLE');
    assert.match(err.message, /10\.0\.0\.2:4001 closed before CONNECT_ACK: ECONNREFUSED/);
    assert.deepEqual(core.open.openingClosed(11, undefined), [], 'once');
  }
  {
    const { core } = clientOpening(clock, true);
    // Closed with the reason the socket gave (a frame it refused).
    assert.equal(failedWith(core.open.openingClosed(11, new FerryError('FERRY_ERR_FRAME_TOO_LARGE'))).code, 'FERRY_ERR_FRAME_TOO_LARGE');
  }
  {
    const { core } = clientOpening(clock, true);
    const err = failedWith(core.open.dialFailed(11, new Error('EINVAL')));
    assert.equal(err.code, 'FERRY_ERR_PEER_UNREACHABLE');
    assert.match(err.message, /cannot dial 10\.0\.0\.2:4001: Error: EINVAL/);
    assert.deepEqual(core.open.dialFailed(11, new Error('again')), []);
  }
});

test('open, client: the handshake deadline fails the open HANDSHAKE_TIMEOUT, only while it is still opening', () => {
  const clock = new ManualClock();
  const { core } = clientOpening(clock, true);
  clock.advance(HANDSHAKE_MS - 1);
  assert.equal(core.handleTimeout(clock.now()), undefined);
  clock.advance(1);
  const e = handshakeDue(core, clock.now());
  assert.equal(failedWith(core.open.handshakeExpired(e, clock.now(), true)).code, 'FERRY_ERR_HANDSHAKE_TIMEOUT');
  core.handle('close');
  apply(core, 0);
  assert.deepEqual(core.open.handshakeExpired(e, clock.now(), true), []);
});

test('open, in-band server: the client\'s CONNECT_CONFIRM on the opening slot attaches it under s2c; a bad one or another slot is refused', () => {
  const clock = new ManualClock();
  const { core, ack } = serverHalfOpen(clock, true);
  assert.equal(core.nextDeadline(), HANDSHAKE_MS, 'the client must confirm within a handshake time');
  const mac = clientFinished(ack.keys, ack.transcript);
  const frame = encodeConnectConfirmFrame(mac);
  throwsCode(() => core.open.openingFrame(6, frame), 'FERRY_ERR_ILLEGAL_TRANSITION');
  const bad = Buffer.from(frame);
  bad[5]! ^= 1;
  throwsCode(() => core.open.openingFrame(5, bad), 'FERRY_ERR_BAD_MAC');
  assert.deepEqual(core.open.openingFrame(5, frame), [{ kind: 'open_attach', slot: 5, keys: { send: ack.open!.s2c, receive: ack.open!.c2s } }]);
  // Confirmed on its socket: a second confirmation (or one by datagram) is refused.
  throwsCode(() => core.open.openingFrame(5, frame), 'FERRY_ERR_ILLEGAL_TRANSITION');
  throwsCode(() => core.open.confirmDatagram(mac), 'FERRY_ERR_ILLEGAL_TRANSITION');
});

test('open, in-band: a client and a server core complete the handshake with each other, each sealing under the other\'s receive key', () => {
  const clock = new ManualClock();
  const { core: client, hello } = clientOpening(clock, true);
  const { core: server, reply } = serverFor(clock, hello, true);
  client.open.openingFrame(11, reply);
  client.handle('recv_connect_ack');
  const [confirm, clientAttach] = openCommands(drain(client, 0));
  assert.ok(confirm && confirm.kind === 'open_send_raw');
  const [serverAttach] = server.open.openingFrame(5, confirm.bytes);
  assert.ok(serverAttach?.kind === 'open_attach' && clientAttach?.kind === 'open_attach');
  assert.deepEqual(serverAttach.keys?.send, clientAttach.keys?.receive);
  assert.deepEqual(serverAttach.keys?.receive, clientAttach.keys?.send);
});

test('open, server: the half-open\'s deadline is extended once while its socket is up, then it times out', () => {
  const clock = new ManualClock();
  const { core } = serverHalfOpen(clock, true);
  clock.advance(HANDSHAKE_MS + 250);
  const first = handshakeDue(core, clock.now());
  assert.deepEqual(core.open.handshakeExpired(first, clock.now(), true), [{ kind: 'log', event: 'handshake_deadline_extended', fields: { lateMs: 250 } }]);
  assert.equal(core.nextDeadline(), clock.now() + HANDSHAKE_MS, 'one more handshake time, from now');
  clock.advance(HANDSHAKE_MS);
  const second = handshakeDue(core, clock.now());
  assert.deepEqual(core.open.handshakeExpired(second, clock.now(), true), [{ kind: 'fire', event: 'timeout', ifAccepted: true }], 'only once');
  assert.equal(core.nextDeadline(), undefined);
});

test('open, server: the core acts on the handshake deadline itself, asking the bound sockets whether the opening socket is up', () => {
  const clock = new ManualClock();
  const up = new Set<number>([5]);
  const { core } = serverHalfOpen(clock, true);
  core.bindSockets({ isOpen: (slot) => slot !== undefined && up.has(slot) , remoteAddress: () => undefined });
  clock.advance(HANDSHAKE_MS);
  assert.equal(core.handleTimeout(clock.now()), undefined);
  assert.deepEqual(drain(core, clock.now()).map((c) => c.kind === 'log' && c.event), ['handshake_deadline_extended'], 'slot 5 is up: one more handshake time');
  up.delete(5);
  clock.advance(HANDSHAKE_MS);
  assert.equal(core.handleTimeout(clock.now()), undefined);
  const end = drain(core, clock.now()).filter((c) => c.kind !== 'transition');
  assert.deepEqual(end, [{ kind: 'close', slot: 5 }, { kind: 'ended', err: end[1]?.kind === 'ended' ? end[1].err : undefined }], 'extended once: the half-open times out, its opening socket closed');
  assert.equal(core.state, 'CLOSED');
});

test('open, server: a half-open whose socket is gone is not extended (nor a control-channel one)', () => {
  const clock = new ManualClock();
  for (const inband of [true, false]) {
    const { core } = serverHalfOpen(clock, inband);
    clock.advance(HANDSHAKE_MS);
    const e = handshakeDue(core, clock.now());
    // Control-channel: no opening socket at all, whatever the adapter says.
    assert.deepEqual(core.open.handshakeExpired(e, clock.now(), !inband), [{ kind: 'fire', event: 'timeout', ifAccepted: true }]);
  }
});

test('open, server: a half-open whose socket was lost without a refusal is extended once, so the client\'s RES can still confirm it', () => {
  const clock = new ManualClock();
  const { core } = serverHalfOpen(clock, true);
  clock.advance(HANDSHAKE_MS - 8); // a pause used up most of the handshake time
  core.open.openingClosed(5, undefined);
  clock.advance(8);
  const first = handshakeDue(core, clock.now());
  assert.deepEqual(core.open.handshakeExpired(first, clock.now(), false), [{ kind: 'log', event: 'handshake_deadline_extended', fields: { lateMs: 0 } }]);
  assert.equal(core.nextDeadline(), clock.now() + HANDSHAKE_MS, 'one more handshake time for the client\'s RES');
  clock.advance(50);
  core.handle('recv_res');
  assert.ok(apply(core, clock.now()).includes('confirmed'));
  assert.equal(core.state, 'RES_ACKED', 'the RES 50 ms later confirms the half-open');
});

test('open, server: a half-open whose extended deadline passes unconfirmed times out (only once extended)', () => {
  const clock = new ManualClock();
  const { core } = serverHalfOpen(clock, true);
  core.open.openingClosed(5, undefined);
  clock.advance(HANDSHAKE_MS);
  const first = handshakeDue(core, clock.now());
  assert.equal(core.open.handshakeExpired(first, clock.now(), false)[0]?.kind, 'log');
  clock.advance(HANDSHAKE_MS);
  const second = handshakeDue(core, clock.now());
  assert.deepEqual(core.open.handshakeExpired(second, clock.now(), false), [{ kind: 'fire', event: 'timeout', ifAccepted: true }]);
});

test('open, server: a half-open that took the client\'s RES is opened (confirmed): no handshake deadline; a resume that does not finish returns it to SUSPENDED', () => {
  const clock = new ManualClock();
  const { core } = serverHalfOpen(clock, true);
  core.open.openingClosed(5, undefined);
  core.handle('recv_res');
  const actions = apply(core, clock.now());
  assert.ok(actions.includes('confirmed'), `the host is told (${actions.join(', ')})`);
  assert.equal(core.state, 'RES_ACKED');
  // Seed 80062219: before, the handshake deadline ended it here and the client, ESTABLISHED, failed PEER_ABORTED.
  for (let i = 0; i < 10 && core.state === 'RES_ACKED'; i++) {
    clock.advance(HANDSHAKE_MS / 4);
    assert.equal(core.hasDeadline('handshake'), false);
    core.handleTimeout(clock.now());
    apply(core, clock.now());
  }
  assert.equal(core.state, 'SUSPENDED', 'the resume\'s deadline passed: suspended, waiting for the next RES');
  core.handle('recv_res');
  assert.ok(!apply(core, clock.now()).includes('confirmed'), 'confirmed once');
  assert.equal(core.state, 'RES_ACKED');
});

test('open, in-band server: an opening socket lost without a refusal keeps the half-open; a refusal closes it with that error', () => {
  const clock = new ManualClock();
  {
    const { core } = serverHalfOpen(clock, true);
    assert.deepEqual(core.open.openingClosed(5, undefined), [{ kind: 'log', event: 'open_socket_lost', fields: { state: 'CONNECT_ACKED' } }]);
    assert.equal(core.nextDeadline(), HANDSHAKE_MS, 'it waits for the client\'s RES until its deadline');
    assert.equal(core.open.openingSlot, undefined);
  }
  {
    const { core } = serverHalfOpen(clock, true);
    const err = new FerryError('FERRY_ERR_MALFORMED_FRAME', 'junk');
    assert.deepEqual(core.open.openingClosed(4, err), [], 'another slot');
    assert.deepEqual(core.open.openingClosed(5, err), [
      { kind: 'open_refused', err },
      { kind: 'fire', event: 'close', ifAccepted: true },
    ]);
  }
});

test('open, control-channel server: the CONNECT_CONFIRM datagram confirms once it verifies; in-band or after the transcript went it does not', () => {
  const clock = new ManualClock();
  const { core, ack } = serverHalfOpen(clock, false);
  const mac = clientFinished(ack.keys, ack.transcript);
  throwsCode(() => core.open.confirmDatagram(Buffer.alloc(32)), 'FERRY_ERR_BAD_MAC');
  assert.deepEqual(core.open.confirmDatagram(mac), [{ kind: 'fire', event: 'recv_confirm', ifAccepted: false }]);
  core.handle('recv_confirm');
  apply(core, 0);
  // Confirmed before its data socket came: the transcript stays (a repeat still verifies).
  core.open.established(false);
  assert.equal(core.nextDeadline(), undefined);
  assert.deepEqual(core.open.confirmDatagram(mac), [{ kind: 'fire', event: 'recv_confirm', ifAccepted: false }]);
  throwsCode(() => core.open.confirmDatagram(Buffer.alloc(32)), 'FERRY_ERR_BAD_MAC');
  // The server keeps the transcript when its data socket attaches (a CONFIRM may still come)...
  core.open.socketEstablished();
  throwsCode(() => core.open.confirmDatagram(Buffer.alloc(32)), 'FERRY_ERR_BAD_MAC');
  // ...and drops it once established with a socket: a late CONFIRM is then answered by nothing.
  core.open.established(true);
  assert.deepEqual(core.open.confirmDatagram(Buffer.alloc(32)), []);
});

test('open, control-channel server: a CONNECT_CONFIRM outside the open is refused with the state\'s rejection', () => {
  const clock = new ManualClock();
  const { core, ack } = serverHalfOpen(clock, false);
  core.handle('close');
  apply(core, 0);
  throwsCode(() => core.open.confirmDatagram(clientFinished(ack.keys, ack.transcript)), 'FERRY_ERR_CONNECTION_CLOSED');
  const other = serverHalfOpen(clock, false);
  other.core.open.established(true);
  throwsCode(() => other.core.open.confirmDatagram(Buffer.alloc(32)), 'FERRY_ERR_ILLEGAL_TRANSITION');
});

test('open, control-channel client, security off: the confirmation is all zeros (nothing to prove without keys)', () => {
  const clock = new ManualClock();
  const { core, hello } = clientOpening(clock, false, false);
  core.open.connectAnswered(1, { type: MessageType.CONNECT_ACK, body: answer(hello, false).body });
  const [confirm] = core.open.sendConfirm();
  assert.ok(confirm && confirm.kind === 'open_oneway');
  assert.deepEqual(decodeConnectConfirm(confirm.body).mac, Buffer.alloc(32));
});

test('open, through the core\'s queue: an input\'s commands come out first, outside any row; the event it hands in follows as a row, the core\'s own steps in their actions\' places', () => {
  const clock = new ManualClock();
  // The application's open(): dial ahead (an input's command), then the table's connect.
  const fresh = newCore('client', 'CLOSED', true);
  fresh.open.startClient({ inband: false, client: CLIENT, redirectorPort: 3001, controlPort: 3000, window: 1 << 16, crypto });
  fresh.beginOpen();
  const seen: [string, boolean][] = [];
  for (let c = fresh.poll(0); c; c = fresh.poll(0)) seen.push([c.kind === 'act' ? c.action : c.kind, fresh.inRow]);
  assert.deepEqual(seen, [['dial', false], ['transition', true], ['request', true]]);
  // A verified CONNECT_ACK: indexed first, then the row of recv_connect_ack, its steps as commands.
  const { core, hello } = clientOpening(clock, false);
  core.connectAnswered(1, { type: MessageType.CONNECT_ACK, body: answer(hello, false).body });
  assert.equal(core.state, 'CONNECT_SENT', 'the event waits until the input\'s commands are out');
  const first = core.poll(0);
  assert.deepEqual([first, core.inRow], [{ kind: 'open_indexed' }, false]);
  const rest: [string, boolean][] = [];
  for (let c = core.poll(0); c; c = core.poll(0)) rest.push([c.kind === 'act' ? c.action : c.kind, core.inRow]);
  assert.deepEqual(rest, [['transition', true], ['open_oneway', true], ['dial', true], ['established', true]]);
  // A stale answer queues nothing.
  core.connectFailed(1, new FerryError('FERRY_ERR_CONTROL_TIMEOUT'));
  assert.equal(core.poll(0), undefined);
});

test('open, through the core\'s queue: a step is decided when its turn comes, after the row\'s earlier commands were carried out', () => {
  const clock = new ManualClock();
  const core = newCore('client', 'CLOSED', true);
  core.open.startClient({ inband: true, client: CLIENT, redirectorPort: 3001, controlPort: 3000, window: 1 << 16, crypto });
  core.handle('connect');
  assert.equal(core.poll(0)?.kind, 'transition');
  assert.equal(core.nextDeadline(), undefined, 'send_connect not decided yet');
  // The adapter carried out the transition meanwhile; the dial's deadline counts from the step's turn.
  const dial = core.poll(40);
  assert.ok(dial?.kind === 'dial' && dial.first !== undefined);
  assert.equal(core.nextDeadline(), 40 + HANDSHAKE_MS);
  // The handshake deadline passes: the failure is an input's command, its timeout a row after it.
  clock.advance(40 + HANDSHAKE_MS);
  assert.equal(core.handleTimeout(clock.now()), undefined, 'the core acts on the handshake deadline itself');
  // The core carries out the open's failure itself: the error kept, the line logged, then the timeout's row.
  const failed = core.poll(clock.now());
  assert.ok(failed?.kind === 'log' && failed.level === 'warn' && failed.event === 'open_failed' && !core.inRow);
  assert.equal(core.intent.closedError?.code, 'FERRY_ERR_HANDSHAKE_TIMEOUT');
  const timeout = drain(core, clock.now());
  assert.deepEqual(timeout.map((c) => c.kind), ['transition', 'close', 'ended'], 'the opening socket closes at the end');
  assert.deepEqual([timeout[0]?.kind === 'transition' && timeout[0].to, timeout[2]?.kind === 'ended' && timeout[2].err?.code], ['CLOSED', 'FERRY_ERR_HANDSHAKE_TIMEOUT']);
  // A server's refused opening socket: counted (an input's), then the close the table applies (stale if closed meanwhile).
  const { core: server } = serverHalfOpen(clock, true);
  const err = new FerryError('FERRY_ERR_MALFORMED_FRAME', 'junk');
  server.handle('timeout');
  server.openingClosed(5, err);
  const refused = drain(server, clock.now());
  assert.deepEqual(refused.map((c) => c.kind), ['count_refusal', 'transition', 'ended', 'stale']);
  assert.equal(refused[2]?.kind === 'ended' && refused[2].err, err, 'the half-open closes with the refusal');
  // A refused CONNECT_CONFIRM queues nothing: the error is the answer.
  throwsCode(() => server.confirmDatagram(Buffer.alloc(32)), 'FERRY_ERR_ILLEGAL_TRANSITION');
  assert.equal(server.poll(clock.now()), undefined);
});

test('open, control-channel client: the CONNECT is one of our requests: its reply, given to the core by its id, is the open\'s; a reply to another id is not', () => {
  const clock = new ManualClock();
  const { core, hello, sent } = clientOpening(clock, false);
  const connect = sent[0];
  assert.ok(connect?.kind === 'request' && connect.purpose === 'connect' && connect.cancellable);
  core.replied(connect.id + 1, { type: MessageType.CONNECT_ACK, body: answer(hello, false).body }, 0);
  assert.deepEqual(drain(core, 0), [], 'no request of ours has that id');
  core.replied(connect.id, { type: MessageType.CONNECT_ACK, body: answer(hello, false).body }, 0);
  assert.deepEqual(drain(core, 0).map((c) => (c.kind === 'act' ? c.action : c.kind)), ['open_indexed', 'transition', 'open_oneway', 'dial', 'established']);
  assert.equal(core.state, 'ESTABLISHED');
  // Its failure, the same way: a CONNECT refused by the peer fails the open with the peer's code.
  const other = clientOpening(clock, false);
  const id = (other.sent[0] as { id: number }).id;
  other.core.requestFailed(id, new FerryError('FERRY_ERR_NOT_LISTENING'), 0);
  drain(other.core, 0);
  assert.equal(other.core.state, 'CLOSED');
  assert.equal(other.core.intent.closedError?.code, 'FERRY_ERR_NOT_LISTENING');
});

test('open, control-channel client: a connection that ends while its CONNECT is out cancels the CONNECT, after its sockets close and before ended', () => {
  const clock = new ManualClock();
  const { core, sent } = clientOpening(clock, false);
  const id = (sent[0] as { id: number }).id;
  // The open's data socket dialled ahead (slot 12) and never taken.
  core.open.begin();
  core.handle('close');
  const out = drain(core, 0).map((c) => (c.kind === 'cancel' ? `cancel:${c.id}` : c.kind));
  assert.deepEqual(out.slice(-3), ['close', `cancel:${id}`, 'ended']);
  assert.equal(core.open.connectRequest, undefined);
  // Answered before the end: nothing left to cancel.
  const answered = clientOpening(clock, false);
  const aid = (answered.sent[0] as { id: number }).id;
  answered.core.replied(aid, { type: MessageType.CONNECT_ACK, body: answer(answered.hello, false).body }, 0);
  drain(answered.core, 0);
  answered.core.handle('close');
  assert.ok(drain(answered.core, 0).every((c) => c.kind !== 'cancel' || c.id !== aid));
});
