/**
 * Merkle trees (src/identity/merkle.ts) against RFC 9162 §2.1:
 * - the reference vectors of Certificate Transparency (RFC 6962, whose tree hash RFC 9162 keeps):
 *   roots of sizes 1..8 over the eight CT test leaves, and four published audit paths;
 * - a naive implementation written straight from the RFC's recursive MTH and PATH definitions
 *   agrees with the one-pass builder on every root and path, for every size 1..70;
 * - every path verifies (§2.1.3.2) for every index of every size 1..70, and a path with one byte
 *   flipped, another leaf, a wrong index, a path one hash too long or too short, an index outside
 *   the tree, or a size beyond the arithmetic is refused. (A wrong size can rebuild the same root:
 *   the size is bound by the host signature, test/unit/connection/resume-proof.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { merkleDepth, merkleLeafHash, merkleNodeHash, merkleRootFromPath, merkleTree } from '../../../src/identity/index.js';
import { isFerryError } from '../../../src/util/index.js';

const hex = (b: Buffer): string => b.toString('hex');
const unhex = (h: string): Buffer => Buffer.from(h, 'hex');

// Leaves and roots from Certificate Transparency's merkle tree tests (RFC 6962 test data).
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
/** Published audit paths: (0-based leaf index, tree size, path). */
const CT_PATHS: [number, number, string[]][] = [
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];

// The RFC's definitions, literally: MTH(D[n]) and PATH(m, D[n]) over leaf *data*, with SHA-256.
const sha = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
const splitAt = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1); // largest power of 2 < n
function naiveMth(d: Buffer[]): Buffer {
  if (d.length === 1) return sha(Buffer.of(0), d[0]!);
  const k = splitAt(d.length);
  return sha(Buffer.of(1), naiveMth(d.slice(0, k)), naiveMth(d.slice(k)));
}
function naivePath(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  const k = splitAt(d.length);
  return m < k ? [...naivePath(m, d.slice(0, k)), naiveMth(d.slice(k))] : [...naivePath(m - k, d.slice(k)), naiveMth(d.slice(0, k))];
}

const dataOf = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => Buffer.from(`leaf ${i} of ${n}`));

test('RFC 6962 reference roots for sizes 1..8 and the published audit paths', () => {
  const leaves = CT_LEAVES.map(merkleLeafHash);
  for (let n = 1; n <= 8; n++) assert.equal(hex(merkleTree(leaves.slice(0, n)).root), CT_ROOTS[n - 1], `size ${n}`);
  for (const [index, size, path] of CT_PATHS) {
    const tree = merkleTree(leaves.slice(0, size));
    assert.deepEqual(tree.paths[index]!.map(hex), path, `path of ${index} in ${size}`);
    assert.equal(hex(merkleRootFromPath(index, size, leaves[index]!, path.map(unhex))!), CT_ROOTS[size - 1]);
  }
  // The naive definitions agree with the vectors too (so they can judge the larger sizes below).
  for (let n = 1; n <= 8; n++) assert.equal(hex(naiveMth(CT_LEAVES.slice(0, n))), CT_ROOTS[n - 1]);
});

test('every root and audit path of sizes 1..70 matches the RFC definitions, and every path verifies', () => {
  for (let n = 1; n <= 70; n++) {
    const data = dataOf(n);
    const tree = merkleTree(data.map(merkleLeafHash));
    assert.deepEqual(tree.root, naiveMth(data), `root of ${n}`);
    for (let m = 0; m < n; m++) {
      const path = tree.paths[m]!;
      assert.deepEqual(path, naivePath(m, data), `path of ${m} in ${n}`);
      assert.ok(path.length <= merkleDepth(n));
      assert.deepEqual(merkleRootFromPath(m, n, merkleLeafHash(data[m]!), path), tree.root, `verify ${m} of ${n}`);
    }
  }
});

test('a flipped path byte, another leaf, a wrong index, a path too long or short, or an index outside the tree is refused', () => {
  for (let n = 1; n <= 70; n++) {
    const data = dataOf(n);
    const tree = merkleTree(data.map(merkleLeafHash));
    for (let m = 0; m < n; m++) {
      const leaf = merkleLeafHash(data[m]!);
      const path = tree.paths[m]!;
      const ok = (index: number, size: number, p: readonly Buffer[], l = leaf): boolean => merkleRootFromPath(index, size, l, p)?.equals(tree.root) === true;
      // Each byte position class of each hash: first, middle, last.
      for (let h = 0; h < path.length; h++) {
        for (const at of [0, 15, 31]) {
          const bad = path.map((x) => Buffer.from(x));
          bad[h]![at]! ^= 0x01;
          assert.equal(ok(m, n, bad), false, `flipped byte ${at} of hash ${h}, leaf ${m} of ${n}`);
        }
      }
      const flipped = Buffer.from(leaf);
      flipped[0]! ^= 0x80;
      assert.equal(ok(m, n, path, flipped), false, 'another leaf');
      for (let other = 0; other < n; other++) if (other !== m) assert.equal(ok(other, n, path), false, `index ${other} for leaf ${m} of ${n}`);
      // (A wrong size whose levels line up the same way, leaf 0 of 5 or of 6, rebuilds the same root:
      // the size is bound by the host signature over (size, root), tested with the resume proofs.)
      assert.equal(merkleRootFromPath(m, n, leaf, [...path, Buffer.alloc(32)]), undefined, 'one hash too many');
      if (path.length > 0) assert.equal(ok(m, n, path.slice(0, -1)), false, 'one hash too few');
      assert.equal(merkleRootFromPath(n, n, leaf, path), undefined, 'index = size');
    }
  }
  assert.equal(merkleRootFromPath(0, 0, Buffer.alloc(32), []), undefined, 'empty tree');
  assert.equal(merkleRootFromPath(-1, 4, Buffer.alloc(32), []), undefined, 'negative index');
  assert.equal(merkleRootFromPath(0.5, 4, Buffer.alloc(32), []), undefined, 'fractional index');
  assert.equal(merkleRootFromPath(0, 2 ** 31, Buffer.alloc(32), []), undefined, 'size beyond 32-bit arithmetic');
  assert.equal(merkleRootFromPath(0, 2 ** 32 + 1, Buffer.alloc(32), Array.from({ length: 33 }, () => Buffer.alloc(32))), undefined);
});

test('a batch of one is its leaf hash with no path; a leaf never hashes like a node; no empty tree', () => {
  const leaf = merkleLeafHash(Buffer.from('only'));
  const one = merkleTree([leaf]);
  assert.deepEqual(one.root, leaf);
  assert.deepEqual(one.paths, [[]]);
  assert.deepEqual(merkleRootFromPath(0, 1, leaf, []), leaf);
  // Domain separation: the 64 bytes of two children, hashed as a leaf, are not their parent.
  const [a, b] = [merkleLeafHash(Buffer.of(1)), merkleLeafHash(Buffer.of(2))];
  assert.notDeepEqual(merkleLeafHash(Buffer.concat([a, b])), merkleNodeHash(a, b));
  assert.throws(() => merkleTree([]), (e: unknown) => isFerryError(e, 'FERRY_ERR_INVALID_ARGUMENT'));
  assert.deepEqual([1, 2, 3, 4, 5, 8, 9, 1000, 2 ** 20].map(merkleDepth), [0, 1, 2, 2, 3, 3, 4, 10, 20]);
});
