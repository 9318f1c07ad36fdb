/**
 * Batch-signed location proofs (src/connection/resume-proof.ts, PROTOCOL.md §4.4):
 * - a batch of N RES costs the host one signature; every proof survives the codec and verifies;
 *   the verifier checks the root's signature once and takes the other N-1 from its cache;
 * - refused with BAD_SIGNATURE: a proof lifted into another RES (of the batch or not), a flipped
 *   path byte, another index or size (the size is signed with the root: even when the path
 *   rebuilds the same root under it), another batch's signature on a genuine leaf and path
 *   (whether or not its root is cached), a root signed by another key; a refusal caches nothing;
 * - the flush: every RES of a turn is built, then signed together, then sent, in one run; a RES
 *   whose resume was cancelled builds nothing and takes no leaf; one that throws fails alone; one
 *   enqueued during a flush waits for the next;
 * - trees are sized so every RES fits a datagram: 5-link chains go 32 to a tree, 6-link ones alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ResumeSigner, resumeRootStats, signResume, verifyResumeProof, type PendingResume } from '../../../src/connection/index.js';
import { Identity, extendChain, freshChain, type DelegationChain } from '../../../src/identity/index.js';
import { isFerryError, limit } from '../../../src/util/index.js';
import { DATAGRAM_HEADER_BYTES, MessageType, NONCE_BYTES, RESUME_FLAG_PROOF, decodeConnControl, encodeConnControl, type ConnControl } from '../../../src/wire/index.js';

const NOW = Date.now();
const agent = Identity.generate();
const host = Identity.generate();
const chain = freshChain(agent, host.publicRaw, 3, NOW);

/** A RES head and MAC (the MAC's value does not matter here: the endpoint checks it, not the proof). */
function res(counter: number): ConnControl {
  return { type: MessageType.RES, connectionId: randomBytes(16), senderRole: 'client', counter, reason: RESUME_FLAG_PROOF, redirectorPort: 4000, challenge: randomBytes(NONCE_BYTES), mac: randomBytes(32) };
}

/** Sign `ms` as one batch with a fresh signer of `host` and return the messages with their proofs, through the codec. */
function batch(ms: ConnControl[], by = new ResumeSigner(host.publicRaw, (x) => host.sign(x)), c: DelegationChain = chain): ConnControl[] {
  const proofs = by.sign(ms.map((m) => ({ m, chain: c })));
  return ms.map((m, i) => decodeConnControl(encodeConnControl({ ...m, proof: proofs[i]! }), MessageType.RES));
}

const verify = (m: ConnControl): void => void verifyResumeProof(m, agent.id, 0, NOW);
const badSignature = (e: unknown): boolean => isFerryError(e, 'FERRY_ERR_BAD_SIGNATURE');

test('a batch of N costs one host signature; every proof verifies, and the verifier checks one root signature', () => {
  for (const n of [1, 2, 3, 7, 8, 50, 70]) {
    const signer = new ResumeSigner(host.publicRaw, (x) => host.sign(x));
    const signed = batch(Array.from({ length: n }, (_, i) => res(i + 1)), signer);
    assert.deepEqual(signer.stats, { roots: 1, leaves: n });
    const before = resumeRootStats();
    signed.forEach((m, i) => {
      assert.equal(m.proof!.treeSize, n);
      assert.equal(m.proof!.leafIndex, i);
      assert.ok(m.proof!.path.length <= Math.ceil(Math.log2(n)));
      verify(m);
    });
    const after = resumeRootStats();
    assert.equal(after.verified - before.verified, 1, `one Ed25519 verify for ${n}`);
    assert.equal(after.cached - before.cached, n - 1);
    // The same batch again: all from the cache.
    signed.forEach(verify);
    assert.equal(resumeRootStats().verified, after.verified);
  }
  // A batch of one (a RES_ACK) has no path.
  const one = signResume(res(1), { chain, signer: new ResumeSigner(host.publicRaw, (x) => host.sign(x)) });
  assert.deepEqual([one.treeSize, one.leafIndex, one.path.length], [1, 0, 0]);
});

test('a lifted proof, a tampered path, another index or size, another batch\'s signature or another key: BAD_SIGNATURE, nothing cached', () => {
  const [a, b, c, d, e] = batch([res(1), res(2), res(3), res(4), res(5)]) as [ConnControl, ConnControl, ConnControl, ConnControl, ConnControl];
  const other = batch([res(1), res(2), res(3), res(4), res(5)]); // same size, another root
  const stranger = res(9); // never in any tree
  const refused = (what: string, m: ConnControl): void => {
    const before = resumeRootStats();
    assert.throws(() => verify(m), badSignature, what);
    assert.equal(resumeRootStats().cached, before.cached, `${what}: not let through by the cache`);
  };
  const p = a.proof!;
  // Not yet cached: each fails at the signature (or the path's shape).
  refused('a proof lifted into another RES of the batch', { ...b, proof: p });
  refused('a proof lifted into a RES that is in no tree', { ...stranger, proof: p });
  refused('a path byte flipped', { ...a, proof: { ...p, path: p.path.map((h, i) => (i === 1 ? Buffer.from(h.map((x, j) => (j === 7 ? x ^ 1 : x))) : h)) } });
  refused('another index', { ...a, proof: { ...p, leafIndex: 1 } });
  refused('another batch\'s signature', { ...a, proof: { ...p, signature: other[0]!.proof!.signature } });
  const impostor = Identity.generate();
  refused('a root signed by another key', batch([res(1)], new ResumeSigner(host.publicRaw, (x) => impostor.sign(x)))[0]!);
  // Leaf 0 of 5 and of 6 rebuild the same root from the same path: the signature covers the size.
  refused('another size, same root', { ...a, proof: { ...p, treeSize: 6 } });
  const before = resumeRootStats();
  verify(e); // now the root is cached
  assert.equal(resumeRootStats().verified, before.verified + 1);
  refused('another size, same root, root cached', { ...a, proof: { ...p, treeSize: 6 } });
  refused('another batch\'s signature, root cached', { ...c, proof: { ...c.proof!, signature: other[2]!.proof!.signature } });
  refused('a lifted proof, root cached', { ...stranger, proof: d.proof! });
  // The genuine ones still pass.
  for (const m of [a, b, c, d]) verify(m);
});

test('the flush builds every RES of the turn, signs them once and sends each at once; a cancelled one builds nothing', () => {
  let flush: (() => void) | undefined;
  const signer = new ResumeSigner(host.publicRaw, (x) => host.sign(x), (fn) => {
    assert.equal(flush, undefined, 'one flush scheduled at a time');
    flush = fn;
  });
  const events: string[] = [];
  const sent = new Map<string, ConnControl>();
  let counter = 0;
  const pending = (name: string, opts: { cancelled?: boolean; throws?: boolean } = {}): PendingResume => {
    let m: ConnControl | undefined;
    return {
      chain,
      build: () => {
        events.push(`build ${name}`);
        if (opts.throws) throw new Error('encoder bug');
        if (opts.cancelled) return undefined;
        return (m = res(++counter));
      },
      send: (proof) => {
        events.push(`send ${name}`);
        sent.set(name, { ...m!, proof });
      },
      fail: (err) => events.push(`fail ${name}: ${(err as Error).message}`),
    };
  };
  for (const name of ['a', 'b', 'c', 'd']) signer.enqueue(pending(name, { cancelled: name === 'b', throws: name === 'd' }));
  assert.deepEqual(events, [], 'nothing is built before the flush (no counter taken)');
  const run = flush!;
  flush = undefined;
  run();
  assert.deepEqual(events, ['build a', 'build b', 'build c', 'build d', 'fail d: encoder bug', 'send a', 'send c']);
  assert.deepEqual(signer.stats, { roots: 1, leaves: 2 });
  assert.deepEqual([...sent.values()].map((m) => [m.counter, m.proof!.treeSize, m.proof!.leafIndex]), [[1, 2, 0], [2, 2, 1]]);
  for (const m of sent.values()) verify(decodeConnControl(encodeConnControl(m), MessageType.RES));

  // A RES enqueued while a flush sends waits for its own flush.
  events.length = 0;
  const first = pending('e');
  signer.enqueue({ ...first, send: (proof) => (first.send(proof), signer.enqueue(pending('f'))) });
  const again = flush!;
  flush = undefined;
  again();
  assert.deepEqual(events, ['build e', 'send e']);
  assert.ok(flush, 'a second flush was scheduled');
  (flush as () => void)();
  assert.deepEqual(events, ['build e', 'send e', 'build f', 'send f']);
  assert.deepEqual(signer.stats, { roots: 3, leaves: 4 });
});

test('a fail() that throws does not strand the rest of the batch; its error is thrown once the batch is done', () => {
  let flush: (() => void) | undefined;
  const signer = new ResumeSigner(host.publicRaw, (x) => host.sign(x), (fn) => (flush = fn));
  const events: string[] = [];
  // A: its send throws, then its fail() throws too (as a user's 'state' listener might).
  signer.enqueue({
    chain,
    build: () => res(1),
    send: () => {
      throw new Error('send A');
    },
    fail: () => {
      events.push('fail A');
      throw new Error('listener');
    },
  });
  signer.enqueue({ chain, build: () => (events.push('build B'), res(2)), send: () => events.push('send B'), fail: () => events.push('fail B') });
  assert.throws(() => flush!(), /listener/, 'the listener error is not swallowed');
  assert.deepEqual(events, ['build B', 'fail A', 'send B'], 'B is sent although A failed loudly');
});

test('trees are cut so every RES fits a datagram: 5-link chains 32 to a tree, 6-link chains alone', () => {
  // agent -> hop 0 -> ... -> host: the last subject is the host that signs.
  const hops = Array.from({ length: 5 }, () => Identity.generate());
  const chainOf = (links: number): DelegationChain => {
    const subjects = [...hops.slice(0, links - 1).map((h) => h.publicRaw), host.publicRaw];
    let c = freshChain(agent, subjects[0]!, 1, NOW);
    for (let i = 1; i < links; i++) c = extendChain(c, hops[i - 1]!, subjects[i]!, 1 + i, 3_600_000, NOW);
    return c;
  };
  const five = chainOf(5);
  const signer = new ResumeSigner(host.publicRaw, (x) => host.sign(x));
  const ms = Array.from({ length: 70 }, (_, i) => res(i + 1));
  const proofs = signer.sign(ms.map((m) => ({ m, chain: five })));
  assert.deepEqual(signer.stats, { roots: 3, leaves: 70 });
  assert.deepEqual([...new Set(proofs.map((p) => p.treeSize))], [32, 6]);
  ms.forEach((m, i) => {
    const body = encodeConnControl({ ...m, proof: proofs[i]! });
    assert.ok(DATAGRAM_HEADER_BYTES + body.length <= limit('MAX_DATAGRAM_BYTES'), `${body.length} bytes`);
    verify(decodeConnControl(body, MessageType.RES));
  });
  const sixLinks = chainOf(6);
  assert.equal(sixLinks.length, 6);
  const lone = new ResumeSigner(host.publicRaw, (x) => host.sign(x));
  const single = lone.sign(ms.slice(0, 3).map((m) => ({ m, chain: sixLinks })));
  assert.deepEqual(lone.stats, { roots: 3, leaves: 3 });
  assert.ok(single.every((p) => p.treeSize === 1 && p.path.length === 0));
});
