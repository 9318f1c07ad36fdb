/**
 * Host-to-host migration channel frames. They travel on the destination's redirector port (the
 * one TCP port a host has), told apart from a data socket's HELLO by the first frame's type.
 *
 *   MIG_HELLO      S -> D  plaintext: version, source host key, ephemeral X25519 key, nonce
 *   MIG_HELLO_ACK  D -> S  plaintext: destination host key, ephemeral, nonce, Sig_D(TH), MAC
 *   MIG_FINISH     S -> D  plaintext: Sig_S(TH), MAC                      (mutual authentication)
 *   MIG_STEP       both    sealed: u8 step | payload                     (the five steps)
 *
 * Step payloads are small JSON objects validated field by field (they are host-to-host control
 * data, not per-byte traffic); the checkpoint, which can be large, is streamed in CHECKPOINT_PART
 * steps of raw bytes and bounded by MAX_CHECKPOINT_BYTES. Layouts: docs/PROTOCOL.md §migration.
 */
import { FerryError } from '../util/index.js';
import { Reader, Writer } from './bytes.js';
import { NONCE_BYTES } from './frames.js';

/** Frame types of the migration channel (disjoint from data-socket frame types). */
export const MigrationFrame = {
  MIG_HELLO: 16,
  MIG_HELLO_ACK: 17,
  MIG_FINISH: 18,
  MIG_STEP: 19,
} as const;

/** The steps (HIP paper §4: delegate, peers, connection ids, confirm, checkpoint) and outcomes. */
export const MigrationStep = {
  DELEGATE: 1,
  PEERS: 2,
  CONNECTION_IDS: 3,
  CONFIRM: 4,
  CHECKPOINT_PART: 5,
  CHECKPOINT_END: 6,
  COMMITTED: 7,
  ABORT: 8,
} as const;

/** Version of the migration channel. */
export const MIGRATION_VERSION = 1;

const KEY = 32;
const SIG = 64;
const MAC = 32;
const M = 'FERRY_ERR_MALFORMED_FRAME' as const;

/** MIG_HELLO: the source host opens a migration channel. */
export interface MigHello {
  sourceHostKey: Buffer;
  ephemeral: Buffer;
  nonce: Buffer;
}

/** MIG_HELLO_ACK: the destination's identity, ephemeral key, signature and key confirmation. */
export interface MigHelloAck {
  destinationHostKey: Buffer;
  ephemeral: Buffer;
  nonce: Buffer;
  signature: Buffer;
  mac: Buffer;
}

/** MIG_FINISH: the source's signature and key confirmation. */
export interface MigFinish {
  signature: Buffer;
  mac: Buffer;
}

/** Encode a MIG_HELLO body (type byte included). */
export function encodeMigHello(h: MigHello): Buffer {
  return new Writer().u8(MigrationFrame.MIG_HELLO).u8(MIGRATION_VERSION).fixed(h.sourceHostKey, KEY, 'sourceHostKey').fixed(h.ephemeral, KEY, 'ephemeral').fixed(h.nonce, NONCE_BYTES, 'nonce').finish();
}

/** Decode a MIG_HELLO body, strictly. */
export function decodeMigHello(body: Buffer): MigHello {
  const r = new Reader(body, M);
  if (r.u8('type') !== MigrationFrame.MIG_HELLO) throw new FerryError(M, 'not a MIG_HELLO');
  const v = r.u8('version');
  if (v !== MIGRATION_VERSION) throw new FerryError('FERRY_ERR_UNSUPPORTED_VERSION', `migration version ${v}`);
  const h = { sourceHostKey: r.bytes(KEY, 'sourceHostKey'), ephemeral: r.bytes(KEY, 'ephemeral'), nonce: r.bytes(NONCE_BYTES, 'nonce') };
  r.end('MIG_HELLO');
  return h;
}

/** The MIG_HELLO_ACK fields before signature and MAC (they enter the transcript). */
export function migHelloAckHead(a: Pick<MigHelloAck, 'destinationHostKey' | 'ephemeral' | 'nonce'>): Buffer {
  return new Writer().u8(MigrationFrame.MIG_HELLO_ACK).fixed(a.destinationHostKey, KEY, 'destinationHostKey').fixed(a.ephemeral, KEY, 'ephemeral').fixed(a.nonce, NONCE_BYTES, 'nonce').finish();
}

/** Encode a MIG_HELLO_ACK body. */
export function encodeMigHelloAck(a: MigHelloAck): Buffer {
  return Buffer.concat([migHelloAckHead(a), new Writer().fixed(a.signature, SIG, 'signature').fixed(a.mac, MAC, 'mac').finish()]);
}

/** Decode a MIG_HELLO_ACK body, strictly. */
export function decodeMigHelloAck(body: Buffer): MigHelloAck {
  const r = new Reader(body, M);
  if (r.u8('type') !== MigrationFrame.MIG_HELLO_ACK) throw new FerryError(M, 'not a MIG_HELLO_ACK');
  const a = { destinationHostKey: r.bytes(KEY, 'destinationHostKey'), ephemeral: r.bytes(KEY, 'ephemeral'), nonce: r.bytes(NONCE_BYTES, 'nonce'), signature: r.bytes(SIG, 'signature'), mac: r.bytes(MAC, 'mac') };
  r.end('MIG_HELLO_ACK');
  return a;
}

/** Encode a MIG_FINISH body. */
export function encodeMigFinish(f: MigFinish): Buffer {
  return new Writer().u8(MigrationFrame.MIG_FINISH).fixed(f.signature, SIG, 'signature').fixed(f.mac, MAC, 'mac').finish();
}

/** Decode a MIG_FINISH body, strictly. */
export function decodeMigFinish(body: Buffer): MigFinish {
  const r = new Reader(body, M);
  if (r.u8('type') !== MigrationFrame.MIG_FINISH) throw new FerryError(M, 'not a MIG_FINISH');
  const f = { signature: r.bytes(SIG, 'signature'), mac: r.bytes(MAC, 'mac') };
  r.end('MIG_FINISH');
  return f;
}

/** Encode a step (inside a sealed MIG_STEP frame): u8 MIG_STEP | u8 step | payload. */
export function encodeMigStep(step: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.of(MigrationFrame.MIG_STEP, step), payload]);
}

/** Decode a step; the payload is a subarray. Unknown steps are refused. */
export function decodeMigStep(body: Buffer): { step: number; payload: Buffer } {
  const r = new Reader(body, M);
  if (r.u8('type') !== MigrationFrame.MIG_STEP) throw new FerryError(M, 'not a MIG_STEP');
  const step = r.u8('step');
  if (step < MigrationStep.DELEGATE || step > MigrationStep.ABORT) throw new FerryError('FERRY_ERR_UNKNOWN_TYPE', `migration step ${step}`);
  return { step, payload: r.rest() };
}
