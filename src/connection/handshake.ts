/**
 * The open handshake's cryptography, without I/O: a SIGMA-style signed Diffie-Hellman.
 *
 *   CONNECT      C -> S  half_C, ids, key_C, eph_C, Sig_C("ferry/1 client sig" || CONNECT fields)
 *   CONNECT_ACK  S -> C  half_S, key_S, eph_S, Sig_S("ferry/1 server sig" || TH),
 *                        MAC(confirmS, "ferry/1 server finished" || TH)
 *   CONNECT_CONFIRM C -> S  MAC(confirmC, "ferry/1 client finished" || TH)
 *   TH = SHA-256(CONNECT body || CONNECT_ACK fields before its signature)
 *
 * Each side signs a transcript that contains its own ephemeral key and both identities; each
 * proves it derived the key with a MAC over TH (key confirmation). A replayed CONNECT yields
 * only a half-open endpoint that expires, since no one can produce the client's confirmation
 * without eph_C's private key. An id is the hash of the key that signs, so a key that does not
 * hash to the claimed AgentId is refused before the signature is checked.
 */
import { createHash } from 'node:crypto';
import {
  deriveOpenKeys,
  equalBytes,
  freshBytes,
  generateEphemeral,
  hmac,
  idOfPublicKey,
  idToBytes,
  verifySignature,
  x25519,
  type AgentId,
  type ConnectionKeys,
  type SessionKeys,
  type Identity,
} from '../identity/index.js';
import { FerryError } from '../util/index.js';
// The control MAC lives with the rest of control authentication (core/control-auth.ts).
export { controlMac, verifyControlMac } from './core/control-auth.js';
import {
  connectAckHead,
  connectSigned,
  encodeConnect,
  encodeConnectAck,
  encodeConnectFrame,
  helloAckMacInput,
  helloMacInput,
  type Connect,
  type ConnectAck,
  type Hello,
  type HelloAck,
} from '../wire/index.js';

const CLIENT_SIG = Buffer.from('ferry/1 client sig');
const SERVER_SIG = Buffer.from('ferry/1 server sig');
const SERVER_FIN = Buffer.from('ferry/1 server finished');
const CLIENT_FIN = Buffer.from('ferry/1 client finished');
const ZERO_MAC = Buffer.alloc(32);

// The client's view of an open in progress is the open's (core/open.ts): it holds it until both confirmed.
import type { ClientHello } from './core/open.js';
export type { ClientHello } from './core/open.js';

/** Build a CONNECT (signed when secure). */
export function buildConnect(a: {
  secure: boolean;
  clientHalf: Buffer;
  client: Identity;
  toAgent: AgentId;
  redirectorPort: number;
  window: number;
  /** In-band open: the client host's control port; `body` is then the CONNECT frame body. */
  inbandControlPort?: number | undefined;
}): ClientHello {
  const ephemeral = a.secure ? generateEphemeral() : undefined;
  const unsigned = {
    secure: a.secure,
    clientHalf: a.clientHalf,
    fromAgent: idToBytes(a.client.id),
    toAgent: idToBytes(a.toAgent),
    clientAgentKey: a.client.publicRaw,
    redirectorPort: a.redirectorPort,
    window: a.window,
    ephemeral: ephemeral ? ephemeral.publicRaw : Buffer.alloc(0),
  };
  const signature = a.secure ? a.client.sign(Buffer.concat([CLIENT_SIG, connectSigned(unsigned)])) : Buffer.alloc(0);
  const message: Connect = { ...unsigned, signature };
  const body = encodeConnect(message);
  return { body: a.inbandControlPort === undefined ? body : encodeConnectFrame(a.inbandControlPort, body), message, ephemeral };
}

/**
 * Check a CONNECT's identity and signature. The key must hash to the claimed client id
 * (FERRY_ERR_IDENTITY_MISMATCH) and the signature must verify (FERRY_ERR_BAD_SIGNATURE).
 * A host that requires security refuses an unsigned CONNECT (FERRY_ERR_SECURITY_REQUIRED).
 */
export function verifyConnect(c: Connect, requireSecure: boolean): void {
  if (requireSecure && !c.secure) throw new FerryError('FERRY_ERR_SECURITY_REQUIRED', 'this host requires signed, encrypted connections');
  // Even without security the key must hash to the claimed id, so that ids stay honest.
  if (!equalBytes(idToBytes(idOfPublicKey(c.clientAgentKey)), c.fromAgent)) {
    throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', 'CONNECT client key does not hash to its agent id');
  }
  if (c.secure && !verifySignature(c.clientAgentKey, Buffer.concat([CLIENT_SIG, connectSigned(c)]), c.signature)) {
    throw new FerryError('FERRY_ERR_BAD_SIGNATURE', 'CONNECT signature does not verify');
  }
}

const NO_PREFIX = Buffer.alloc(0);

/**
 * TH = SHA-256(CONNECT bytes || CONNECT_ACK bytes before the signature). In-band, the CONNECT
 * bytes are the whole CONNECT frame body and the ACK's start with its frame prefix (type and
 * control port), so both control ports are bound too, and an in-band transcript can never equal a
 * UDP one (a frame body starts with type 8, a CONNECT body with its flags, 0 or 1).
 */
function transcriptHash(connectBody: Buffer, ackPrefix: Buffer, ackHead: Buffer): Buffer {
  return createHash('sha256').update(connectBody).update(ackPrefix).update(ackHead).digest();
}

/** The server's answer to a verified CONNECT: the ACK body, the keys and the transcript hash. */
export function buildConnectAck(a: {
  connect: Connect;
  connectBody: Buffer;
  serverHalf: Buffer;
  server: Identity;
  redirectorPort: number;
  window: number;
  /** In-band: the CONNECT_ACK frame's prefix (it enters the transcript). */
  ackPrefix?: Buffer | undefined;
}): { body: Buffer; keys: ConnectionKeys | undefined; transcript: Buffer; open: SessionKeys | undefined } {
  const secure = a.connect.secure;
  const ephemeral = secure ? generateEphemeral() : undefined;
  const head = {
    secure,
    serverHalf: a.serverHalf,
    serverAgentKey: a.server.publicRaw,
    redirectorPort: a.redirectorPort,
    window: a.window,
    ephemeral: ephemeral ? ephemeral.publicRaw : Buffer.alloc(0),
  };
  const th = transcriptHash(a.connectBody, a.ackPrefix ?? NO_PREFIX, connectAckHead(head));
  if (!ephemeral) {
    return { body: encodeConnectAck({ ...head, signature: Buffer.alloc(0), mac: Buffer.alloc(0) }), keys: undefined, transcript: th, open: undefined };
  }
  const cid = Buffer.concat([a.connect.clientHalf, a.serverHalf]);
  const { keys, open } = deriveOpenKeys(x25519(ephemeral.privateKey, a.connect.ephemeral), cid, th);
  const signature = a.server.sign(Buffer.concat([SERVER_SIG, th]));
  const mac = hmac(keys.confirmServer, SERVER_FIN, th);
  return { body: encodeConnectAck({ ...head, signature, mac }), keys, transcript: th, open };
}

/**
 * The client's check of a CONNECT_ACK: identity, signature, then key confirmation.
 * Returns the connection keys (undefined without security) and the transcript hash.
 */
export function acceptConnectAck(a: {
  hello: ClientHello;
  ack: ConnectAck;
  expectedServer: AgentId;
  /** In-band: the CONNECT_ACK frame's prefix as received. */
  ackPrefix?: Buffer | undefined;
}): { keys: ConnectionKeys | undefined; transcript: Buffer; open: SessionKeys | undefined } {
  const { ack, hello } = a;
  if (ack.secure !== hello.message.secure) throw new FerryError('FERRY_ERR_SECURITY_REQUIRED', 'CONNECT_ACK security flag differs from the CONNECT');
  if (idOfPublicKey(ack.serverAgentKey) !== a.expectedServer) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', 'server key does not hash to the agent we asked for');
  const th = transcriptHash(hello.body, a.ackPrefix ?? NO_PREFIX, connectAckHead(ack));
  if (!hello.ephemeral) return { keys: undefined, transcript: th, open: undefined };
  if (!verifySignature(ack.serverAgentKey, Buffer.concat([SERVER_SIG, th]), ack.signature)) {
    throw new FerryError('FERRY_ERR_BAD_SIGNATURE', 'CONNECT_ACK signature does not verify');
  }
  const cid = Buffer.concat([hello.message.clientHalf, ack.serverHalf]);
  const { keys, open } = deriveOpenKeys(x25519(hello.ephemeral.privateKey, ack.ephemeral), cid, th);
  if (!equalBytes(hmac(keys.confirmServer, SERVER_FIN, th), ack.mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'server key confirmation failed');
  return { keys, transcript: th, open };
}

/** The client's key confirmation carried by CONNECT_CONFIRM. */
export function clientFinished(keys: ConnectionKeys | undefined, th: Buffer): Buffer {
  return keys ? hmac(keys.confirmClient, CLIENT_FIN, th) : ZERO_MAC;
}

/** Verify the client's key confirmation (always true without security). */
export function verifyClientFinished(keys: ConnectionKeys | undefined, th: Buffer, mac: Buffer): boolean {
  return keys ? equalBytes(hmac(keys.confirmClient, CLIENT_FIN, th), mac) : true;
}

/** MAC of a HELLO. */
export function helloMac(keys: ConnectionKeys | undefined, h: Omit<Hello, 'mac' | 'type'>): Buffer {
  return keys ? hmac(keys.control, helloMacInput(h)) : ZERO_MAC;
}

/** MAC of a HELLO_ACK, bound to the dialer's nonce (the dialer's challenge to the acceptor). */
export function helloAckMac(keys: ConnectionKeys | undefined, a: Omit<HelloAck, 'mac' | 'type'>, dialerNonce: Buffer): Buffer {
  return keys ? hmac(keys.control, helloAckMacInput(a), dialerNonce) : ZERO_MAC;
}

/** A fresh random value (nonces, challenges, id halves). */
export function fresh(n: number): Buffer {
  return freshBytes(n);
}
