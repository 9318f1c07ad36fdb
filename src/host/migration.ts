/**
 * The host-to-host migration channel: a mutually authenticated, sealed TCP channel between the
 * source host and the destination's redirector, and the five steps of the HIP paper's
 * migration protocol run over it (see docs/PROTOCOL.md, "Migration").
 *
 * Handshake (signed Diffie-Hellman between host keys, both sides signing, both confirming):
 *   TH     = SHA-256(MIG_HELLO body || MIG_HELLO_ACK head)
 *   master = HKDF(X25519(eph_S, eph_D), salt = nonce_S || nonce_D, "ferry/1 master" || TH)
 *   D signs "ferry/1 migration dest" || TH and MACs under confirmServer;
 *   S signs "ferry/1 migration source" || TH || Sig_D and MACs under confirmClient.
 * Then every frame is AES-256-GCM sealed with per-direction keys from the two nonces.
 */
import { createHash } from 'node:crypto';
import {
  deriveConnectionKeys,
  deriveSessionKeys,
  equalBytes,
  freshBytes,
  generateEphemeral,
  hmac,
  idOfPublicKey,
  verifySignature,
  x25519,
  FrameOpener,
  FrameSealer,
  type ConnectionKeys,
  type HostId,
  type Identity,
} from '../identity/index.js';
import type { StreamSocket } from '../connection/index.js';
import { FerryError, isFerryError, limit, type Clock } from '../util/index.js';
import {
  FrameDecoder,
  MigrationFrame,
  decodeMigFinish,
  decodeMigHello,
  decodeMigHelloAck,
  decodeMigStep,
  encodeMigFinish,
  encodeMigHello,
  encodeMigHelloAck,
  encodeMigStep,
  lengthPrefix,
  migHelloAckHead,
  NONCE_BYTES,
} from '../wire/index.js';

const DEST_SIG = Buffer.from('ferry/1 migration dest');
const SOURCE_SIG = Buffer.from('ferry/1 migration source');
const DEST_FIN = Buffer.from('ferry/1 migration dest finished');
const SOURCE_FIN = Buffer.from('ferry/1 migration source finished');
const AEAD_TAG = 16;

/** A framed, sealed migration channel (either side). */
export class MigrationChannel {
  private readonly decoder = new FrameDecoder();
  private readonly frames: Buffer[] = [];
  /** Bytes in `frames`; above queueLimit() the socket is paused until they are taken. */
  private queuedBytes = 0;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: FerryError) => void } | undefined;
  private failed: FerryError | undefined;
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  /** The authenticated peer host's raw public key and id. */
  peerHostKey: Buffer = Buffer.alloc(0);
  peerHostId: HostId = '' as HostId;

  private constructor(
    private readonly socket: StreamSocket,
    private readonly clock: Clock,
  ) {
    // Steps are small writes that each wait on the peer's answer: without this, Nagle holds the
    // second of two back-to-back steps until the peer's delayed ACK (about 40 ms on Linux).
    socket.setNoDelay?.(true);
    socket.on('data', (c: Buffer) => this.onData(c));
    // Keep the socket's own error (ECONNREFUSED, ETIMEDOUT…) as the cause: the operator sees it.
    socket.on('error', (cause: Error) => this.fail(new FerryError('FERRY_ERR_ABORTED', `migration channel socket error: ${cause.message}`, { cause })));
    socket.on('close', () => this.fail(new FerryError('FERRY_ERR_ABORTED', 'migration channel closed')));
  }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    try {
      // Frames are kept as they came and opened when consumed: the first sealed frame can arrive
      // in the same read as the handshake frame before it, i.e. before the keys are known.
      for (let f = this.decoder.next(); f; f = this.decoder.next()) {
        this.frames.push(Buffer.from(f));
        this.queuedBytes += f.length;
      }
      // Backpressure: a peer that sends faster than the steps are taken waits in TCP, not here.
      if (this.queuedBytes > queueLimit()) this.socket.pause();
    } catch (err) {
      this.fail(isFerryError(err) ? err : new FerryError('FERRY_ERR_MALFORMED_FRAME', String(err)));
      return;
    }
    this.flush();
  }

  /**
   * The next queued frame's body, opened when the channel is sealed by now. A frame that does not
   * open fails the channel, and the error is thrown to the caller too.
   */
  private take(): Buffer {
    const frame = this.frames.shift()!;
    this.queuedBytes -= frame.length;
    if (this.queuedBytes <= queueLimit() / 2 && this.socket.isPaused()) this.socket.resume();
    try {
      return this.opener ? Buffer.from(this.opener.open(lengthPrefix(frame.length), frame)) : frame;
    } catch (err) {
      const e = isFerryError(err) ? err : new FerryError('FERRY_ERR_MALFORMED_FRAME', String(err));
      this.fail(e);
      throw e;
    }
  }

  private flush(): void {
    if (this.waiter && this.frames.length > 0) {
      const w = this.waiter;
      this.waiter = undefined;
      try {
        w.resolve(this.take());
      } catch (err) {
        w.reject(err as FerryError);
      }
    }
  }

  private fail(err: FerryError): void {
    if (this.failed) return;
    this.failed = err;
    this.socket.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  /** The next frame body, within `timeoutMs`. */
  private next(timeoutMs = limit('MIGRATION_STEP_TIMEOUT_MS')): Promise<Buffer> {
    if (this.frames.length > 0) {
      try {
        return Promise.resolve(this.take());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const t = this.clock.setTimer(timeoutMs, () => this.fail(new FerryError('FERRY_ERR_HANDSHAKE_TIMEOUT', 'migration peer did not answer in time')));
      this.waiter = {
        resolve: (b) => (t.cancel(), resolve(b)),
        reject: (e) => (t.cancel(), reject(e)),
      };
    });
  }

  private writeFrame(body: Buffer): void {
    if (this.failed) throw this.failed;
    if (!this.sealer) {
      this.socket.write(Buffer.concat([lengthPrefix(body.length), body]));
      return;
    }
    const prefix = lengthPrefix(body.length + AEAD_TAG);
    this.socket.write(Buffer.concat([prefix, ...this.sealer.sealParts(prefix, [body])]));
  }

  /** Send one step; `payload` is the body its codec encoded (wire/migration-steps.ts). */
  send(step: number, payload: Buffer): void {
    if (payload.length > limit('MAX_FRAME_PAYLOAD')) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `migration step payload of ${payload.length} bytes`);
    this.writeFrame(encodeMigStep(step, payload));
  }

  /** Receive the next step; `expect` lists the steps allowed here (others are a protocol error). */
  async recv(expect: number[], timeoutMs?: number): Promise<{ step: number; payload: Buffer }> {
    const { step, payload } = decodeMigStep(await this.next(timeoutMs));
    if (!expect.includes(step)) throw new FerryError('FERRY_ERR_MALFORMED_FRAME', `migration step ${step} where ${expect.join('/')} was expected`);
    return { step, payload };
  }

  /** Close the channel. */
  close(): void {
    this.failed ??= new FerryError('FERRY_ERR_ABORTED', 'migration channel closed');
    this.socket.end();
  }

  /** Fault injection for tests: cut the TCP connection now. */
  cut(): void {
    this.socket.destroy();
  }

  /**
   * Source side: open the channel on a dialed socket and authenticate both hosts. When
   * `expect` is given, the destination must prove that host id.
   */
  static async open(socket: StreamSocket, self: Identity, clock: Clock, expect?: HostId, random: (n: number) => Buffer = freshBytes): Promise<MigrationChannel> {
    const ch = new MigrationChannel(socket, clock);
    return ch.handshake(() => MigrationChannel.sourceHandshake(ch, self, expect, random));
  }

  private static async sourceHandshake(ch: MigrationChannel, self: Identity, expect: HostId | undefined, random: (n: number) => Buffer): Promise<MigrationChannel> {
    const eph = generateEphemeral();
    const nonceS = random(NONCE_BYTES);
    const hello = encodeMigHello({ sourceHostKey: self.publicRaw, ephemeral: eph.publicRaw, nonce: nonceS });
    ch.writeFrame(hello);
    const ack = decodeMigHelloAck(await ch.next());
    const th = createHash('sha256').update(hello).update(migHelloAckHead(ack)).digest();
    const destId = idOfPublicKey(ack.destinationHostKey) as unknown as HostId;
    if (expect && destId !== expect) throw new FerryError('FERRY_ERR_IDENTITY_MISMATCH', `destination proved host ${destId}, expected ${expect}`);
    if (!verifySignature(ack.destinationHostKey, Buffer.concat([DEST_SIG, th]), ack.signature)) throw new FerryError('FERRY_ERR_BAD_SIGNATURE', 'destination host signature');
    const keys = deriveConnectionKeys(x25519(eph.privateKey, ack.ephemeral), Buffer.concat([nonceS, ack.nonce]), th);
    if (!equalBytes(hmac(keys.confirmServer, DEST_FIN, th), ack.mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'destination key confirmation');
    const sig = self.sign(Buffer.concat([SOURCE_SIG, th, ack.signature]));
    ch.writeFrame(encodeMigFinish({ signature: sig, mac: hmac(keys.confirmClient, SOURCE_FIN, th, sig) }));
    ch.startSealing(keys, nonceS, ack.nonce, 'source');
    ch.peerHostKey = Buffer.from(ack.destinationHostKey);
    ch.peerHostId = destId;
    return ch;
  }

  /**
   * Destination side: the redirector read a MIG_HELLO first frame (`helloBody`); answer it and
   * authenticate the source. `rest` is what the redirector read past that frame.
   */
  static async accept(socket: StreamSocket, helloBody: Buffer, rest: Buffer, self: Identity, clock: Clock, random: (n: number) => Buffer = freshBytes): Promise<MigrationChannel> {
    const ch = new MigrationChannel(socket, clock);
    if (rest.length > 0) ch.onData(rest);
    return ch.handshake(() => MigrationChannel.destinationHandshake(ch, helloBody, self, random));
  }

  /** Run a handshake; if it fails, the socket goes with it (nothing more is read or buffered). */
  private async handshake(run: () => Promise<MigrationChannel>): Promise<MigrationChannel> {
    try {
      return await run();
    } catch (err) {
      this.fail(isFerryError(err) ? err : new FerryError('FERRY_ERR_MALFORMED_FRAME', String(err)));
      throw err;
    }
  }

  private static async destinationHandshake(ch: MigrationChannel, helloBody: Buffer, self: Identity, random: (n: number) => Buffer): Promise<MigrationChannel> {
    const hello = decodeMigHello(helloBody);
    const eph = generateEphemeral();
    const nonceD = random(NONCE_BYTES);
    const head = { destinationHostKey: self.publicRaw, ephemeral: eph.publicRaw, nonce: nonceD };
    const th = createHash('sha256').update(helloBody).update(migHelloAckHead(head)).digest();
    const keys = deriveConnectionKeys(x25519(eph.privateKey, hello.ephemeral), Buffer.concat([hello.nonce, nonceD]), th);
    const signature = self.sign(Buffer.concat([DEST_SIG, th]));
    ch.writeFrame(encodeMigHelloAck({ ...head, signature, mac: hmac(keys.confirmServer, DEST_FIN, th) }));
    const fin = decodeMigFinish(await ch.next());
    if (!verifySignature(hello.sourceHostKey, Buffer.concat([SOURCE_SIG, th, signature]), fin.signature)) throw new FerryError('FERRY_ERR_BAD_SIGNATURE', 'source host signature');
    if (!equalBytes(hmac(keys.confirmClient, SOURCE_FIN, th, fin.signature), fin.mac)) throw new FerryError('FERRY_ERR_BAD_MAC', 'source key confirmation');
    ch.startSealing(keys, hello.nonce, nonceD, 'destination');
    ch.peerHostKey = Buffer.from(hello.sourceHostKey);
    ch.peerHostId = idOfPublicKey(hello.sourceHostKey) as unknown as HostId;
    return ch;
  }

  private startSealing(keys: ConnectionKeys, nonceS: Buffer, nonceD: Buffer, side: 'source' | 'destination'): void {
    const s = deriveSessionKeys(keys.master, nonceS, nonceD);
    this.sealer = new FrameSealer(side === 'source' ? s.c2s : s.s2c);
    this.opener = new FrameOpener(side === 'source' ? s.s2c : s.c2s);
  }
}

/** Whether a first-frame body opens a migration channel (rather than a data socket). */
export function isMigrationHello(body: Buffer): boolean {
  return body.length > 0 && body[0] === MigrationFrame.MIG_HELLO;
}

/** Received frames a channel holds before it stops reading: four of the largest. */
function queueLimit(): number {
  return 4 * limit('MAX_FRAME_PAYLOAD');
}
