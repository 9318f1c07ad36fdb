/**
 * Merkle hash trees as RFC 9162 §2.1 (Certificate Transparency v2) defines them, over SHA-256:
 *
 *   leaf hash = SHA-256(0x00 || leaf data)          interior = SHA-256(0x01 || left || right)
 *   MTH(D[n]) splits at k, the largest power of two below n: the left subtree is always full.
 *
 * The 0x00 / 0x01 prefixes keep a leaf from ever hashing like an interior node (no second
 * preimage by reinterpreting a node as a leaf). A host signs one root for many resume messages and
 * each carries its audit path (docs/PROTOCOL.md §4.4). No I/O, no state.
 */
import { createHash } from 'node:crypto';
import { FerryError } from '../util/index.js';

/** SHA-256 output length: every leaf, node and path entry. */
export const MERKLE_HASH_BYTES = 32;

const LEAF_PREFIX = Buffer.of(0x00);
const NODE_PREFIX = Buffer.of(0x01);
/** Sizes and indices stay below 2^31 so the bit arithmetic of the verifier is exact. */
const MAX_TREE_SIZE = 2 ** 31 - 1;

/** The hash of one leaf: SHA-256(0x00 || data). */
export function merkleLeafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

/** The hash of an interior node: SHA-256(0x01 || left || right). */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** A tree built over leaf hashes: its root, and each leaf's audit path (nearest sibling first). */
export interface MerkleTree {
  readonly root: Buffer;
  readonly paths: readonly (readonly Buffer[])[];
}

/**
 * The tree over `leaves` (leaf hashes, at least one): the root MTH(D[n]) and PATH(m, D[n]) for
 * every m, in one pass (each level's sibling is pushed once per leaf below it: O(n log n)).
 */
export function merkleTree(leaves: readonly Buffer[]): MerkleTree {
  if (leaves.length < 1 || leaves.length > MAX_TREE_SIZE) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `a Merkle tree of ${leaves.length} leaves`);
  const paths: Buffer[][] = leaves.map(() => []);
  const build = (lo: number, hi: number): Buffer => {
    if (hi - lo === 1) return leaves[lo]!;
    const k = largestPowerOfTwoBelow(hi - lo);
    const left = build(lo, lo + k);
    const right = build(lo + k, hi);
    // Deeper siblings were pushed by the calls above: a path runs from the leaf up to the root.
    for (let i = lo; i < lo + k; i++) paths[i]!.push(right);
    for (let i = lo + k; i < hi; i++) paths[i]!.push(left);
    return merkleNodeHash(left, right);
  };
  return { root: build(0, leaves.length), paths };
}

/**
 * The root that the audit path `path` proves leaf `index` of a tree of `size` leaves hashes to,
 * or undefined when the path cannot be one of that tree (RFC 9162 §2.1.3.2: too short, too long,
 * or an index outside the tree). The caller compares the root with a signed one.
 */
export function merkleRootFromPath(index: number, size: number, leaf: Uint8Array, path: readonly Uint8Array[]): Buffer | undefined {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size || size > MAX_TREE_SIZE) return undefined;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of path) {
    if (sn === 0) return undefined; // more path than tree
    if ((fn & 1) === 1 || fn === sn) {
      r = merkleNodeHash(p, r);
      // The last node of a level with no right sibling is promoted: skip the levels it climbs alone.
      while ((fn & 1) === 0 && fn !== 0) {
        fn >>>= 1;
        sn >>>= 1;
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn >>>= 1;
    sn >>>= 1;
  }
  return sn === 0 ? r : undefined; // sn > 0: less path than tree
}

/** The length of every audit path in a tree of `size` leaves is at most this: ceil(log2(size)). */
export function merkleDepth(size: number): number {
  let d = 0;
  while (2 ** d < size) d++;
  return d;
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
