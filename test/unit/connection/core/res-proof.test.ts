/**
 * Our RES datagram as the core decides it, with no signer, socket or timer: unproved at once, or
 * (from a new location, security on) handed to the host's batch signer through `sign_res` when
 * this host has a proof that fits; the RES built at the flush with its counter (`resToSign`), sent
 * when signed (`resSigned`), or failed (`resUnsigned`: logged, and the attempt ends if it is still
 * ours). A RES whose resume is over before the flush is neither built nor sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionCore, CoreCommand, CoreInit, OwnProof, RequestCommand } from '../../../../src/connection/core/index.js';
import { connectionKeysFromMaster, type ConnectionKeys } from '../../../../src/identity/index.js';
import { FerryError, limit } from '../../../../src/util/index.js';
import { MessageType, RESUME_FLAG_PROOF, decodeConnControl, type ResumeProof } from '../../../../src/wire/index.js';
import { coreIn } from './fixtures.js';

const KEYS: ConnectionKeys = connectionKeysFromMaster(Buffer.alloc(32, 3));
const FITS: OwnProof = { chain: [0, 0] };
const TOO_LONG: OwnProof = { chain: new Array<number>(limit('RESUME_PROOF_MAX_LINKS') + 1).fill(0) };
/** A stand-in for the signer's proof: the core only carries it into the RES. */
const SIGNED = { hostKey: Buffer.alloc(32, 1), chain: [], treeSize: 1, leafIndex: 0, path: [], signature: Buffer.alloc(64, 2) } as unknown as ResumeProof;

/** A secure core in RES_SENT whose host has `proof` for our agent; `prove`: the peer has not seen us prove where we are. */
function resuming(proof: OwnProof | undefined, prove = true, extra: Partial<CoreInit> = {}): { core: ConnectionCore; asked: string[] } {
  const asked: string[] = [];
  const core = coreIn('RES_SENT', {
    keys: KEYS,
    secure: true,
    ownProof: (agent) => {
      asked.push(agent);
      return proof;
    },
    ...extra,
  });
  if (prove) core.path.proveOurLocation();
  return { core, asked };
}

function drain(core: ConnectionCore, now = 0): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push(c);
  return out;
}

test('RES datagram: with nothing to prove it goes at once, unproved, and the host\'s proof is not asked for', () => {
  const { core, asked } = resuming(FITS, false);
  const [c, ...rest] = core.resumeByDatagram(5);
  assert.deepEqual(rest, []);
  assert.ok(c?.kind === 'request' && c.type === MessageType.RES);
  assert.equal(decodeConnControl(c.body, c.type).proof, undefined);
  assert.deepEqual(asked, []);
  const plain = coreIn('RES_SENT', { ownProof: () => assert.fail('security off: no proof') });
  plain.path.proveOurLocation();
  assert.equal(plain.resumeByDatagram(5)[0]?.kind, 'request', 'security off: never proved');
});

test('RES datagram: from a new location with a proof that fits, sign_res; built at the flush with its counter, sent with the signature once', () => {
  const { core, asked } = resuming(FITS);
  const out = core.resumeByDatagram(5);
  assert.deepEqual(asked, ['a'.repeat(32)]);
  assert.equal(out.length, 1);
  const sign = out[0]!;
  assert.ok(sign.kind === 'sign_res');
  assert.equal(core.control.resCurrent(sign.id), true, 'the RES is ours from now on');
  const m = core.resToSign(sign.id);
  assert.ok(m, 'built at the flush');
  assert.equal(m.reason & RESUME_FLAG_PROOF, RESUME_FLAG_PROOF, 'flagged as proved, under the MAC');
  assert.equal(core.poll(5), undefined, 'nothing goes before the signature');
  core.resSigned(sign.id, SIGNED, 9);
  const sent = drain(core, 9);
  assert.equal(sent.length, 1);
  const req = sent[0] as RequestCommand;
  assert.equal(req.kind, 'request');
  assert.equal(req.id, sign.id);
  assert.equal(core.inRow, false, 'an input\'s command');
  const wire = decodeConnControl(req.body, req.type);
  assert.equal(wire.counter, m.counter);
  assert.deepEqual(wire.proof?.signature, SIGNED.signature);
  core.resSigned(sign.id, SIGNED, 10);
  assert.equal(core.poll(10), undefined, 'sent once');
});

test('RES datagram: without a proof, or with one too long for a RES, the line says why and the RES goes unproved at once', () => {
  for (const [proof, event] of [
    [undefined, 'resume_no_proof'],
    [TOO_LONG, 'resume_proof_too_long'],
  ] as const) {
    const { core } = resuming(proof);
    const out = core.resumeByDatagram(5);
    assert.deepEqual(
      out.map((c) => c.kind),
      ['log', 'request'],
    );
    assert.ok(out[0]?.kind === 'log' && out[0].event === event);
    const req = out[1] as RequestCommand;
    assert.equal(decodeConnControl(req.body, req.type).reason & RESUME_FLAG_PROOF, 0);
  }
});

test('RES datagram: a resume over before the flush is neither built nor sent', () => {
  const { core } = resuming(FITS);
  const sign = core.resumeByDatagram(5)[0]!;
  assert.ok(sign.kind === 'sign_res');
  core.handle('suspend');
  drain(core);
  assert.equal(core.control.resCurrent(sign.id), false, 'cancelled by the suspend');
  assert.equal(core.resToSign(sign.id), undefined);
  core.resSigned(sign.id, SIGNED, 9);
  assert.equal(core.poll(9), undefined);
});

test('RES datagram: a RES the signer failed is logged; it ends the attempt (timeout) only while it is still ours', () => {
  const { core } = resuming(FITS);
  const sign = core.resumeByDatagram(5)[0]!;
  assert.ok(sign.kind === 'sign_res');
  core.resToSign(sign.id);
  core.resUnsigned(sign.id, new FerryError('FERRY_ERR_INTERNAL', 'sign failed'));
  const out = drain(core);
  assert.ok(out[0]?.kind === 'log' && out[0].level === 'warn' && out[0].event === 'resume_unsent');
  assert.equal(out[0].fields['code'], 'FERRY_ERR_INTERNAL');
  assert.deepEqual(out[1], { kind: 'transition', event: 'timeout', from: 'RES_SENT', to: 'SUSPENDED' });
  const late = resuming(FITS).core;
  const s2 = late.resumeByDatagram(5)[0]!;
  assert.ok(s2.kind === 'sign_res');
  late.control.cancelRes();
  late.resUnsigned(s2.id, new Error('late'));
  assert.deepEqual(
    drain(late).map((c) => c.kind),
    ['log'],
    'no longer ours: only logged',
  );
  assert.equal(late.state, 'RES_SENT');
});
