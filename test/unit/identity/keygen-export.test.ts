/**
 * No key produced by generateKeyPair(Sync) is ever passed to KeyObject.export(): on Node 20 that
 * can freeze the process. export() holds the key's mutex while it allocates; a GC in that
 * allocation may finalize the (already unreferenced) generation job, whose ~KeyPairGenConfig takes
 * the same mutex: the main thread waits on itself forever (found by the exactly-once property
 * test: main thread in futex_wait under ExportJWKEdKey -> GC -> ~KeyGenJob -> uv_mutex_lock).
 * The timing cannot be forced, so this pins the pattern instead: ephemeral X25519 keys get their
 * public half from the generation job itself, identities are imported from a random seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { KeyObject } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { Identity, generateEphemeral, x25519 } from '../../../src/identity/index.js';

/** Run `fn` with generateKeyPairSync and KeyObject.export watched: exports of generated keys. */
function watch(fn: () => void): { generated: number; exportsOfGenerated: number } {
  const generated = new WeakSet<object>();
  let count = 0;
  let bad = 0;
  // export() is overridden by the public and private key classes: watch each prototype.
  const sample = crypto.generateKeyPairSync('x25519');
  const protos = [...new Set([KeyObject.prototype, Object.getPrototypeOf(sample.publicKey) as object, Object.getPrototypeOf(sample.privateKey) as object])] as { export: (...a: unknown[]) => unknown }[];
  const originals = protos.map((p) => (Object.prototype.hasOwnProperty.call(p, 'export') ? p.export : undefined));
  // Patched on the CommonJS object, then synced into the ESM namespace that src/ imports from.
  const origGen = crypto.generateKeyPairSync;
  const spy = function (this: unknown, ...args: unknown[]) {
    const pair = (origGen as (...a: unknown[]) => { privateKey: unknown; publicKey: unknown }).apply(this, args);
    count++;
    for (const k of [pair.privateKey, pair.publicKey]) if (k instanceof KeyObject) generated.add(k);
    return pair;
  };
  protos.forEach((p, i) => {
    const orig = originals[i];
    if (!orig) return;
    p.export = function (this: KeyObject, ...args: unknown[]) {
      if (generated.has(this)) bad++;
      return orig.apply(this, args);
    };
  });
  (crypto as { generateKeyPairSync: unknown }).generateKeyPairSync = spy;
  syncBuiltinESMExports();
  try {
    fn();
  } finally {
    protos.forEach((p, i) => {
      if (originals[i]) p.export = originals[i]!;
    });
    (crypto as { generateKeyPairSync: unknown }).generateKeyPairSync = origGen;
    syncBuiltinESMExports();
  }
  return { generated: count, exportsOfGenerated: bad };
}

test('an ephemeral X25519 key is never exported after generation; its public half still agrees', () => {
  let a = generateEphemeral();
  const w = watch(() => {
    a = generateEphemeral();
    const b = generateEphemeral();
    assert.deepEqual(x25519(a.privateKey, b.publicRaw), x25519(b.privateKey, a.publicRaw));
    assert.equal(a.publicRaw.length, 32);
  });
  assert.equal(w.generated, 2, 'the spy saw both generations');
  assert.equal(w.exportsOfGenerated, 0);
});

test('a fresh identity is imported from a random seed (no generated key to export)', () => {
  const w = watch(() => {
    const id = Identity.generate();
    assert.equal(id.seed().length, 32);
    assert.deepEqual(Identity.fromSeed(id.seed()).publicRaw, id.publicRaw);
    assert.equal(Identity.fromSeed(id.seed()).id, id.id);
  });
  assert.equal(w.generated, 0, 'Identity.generate does not use generateKeyPairSync');
  assert.equal(w.exportsOfGenerated, 0);
});
