/**
 * Location proofs of RES / RES_ACK (docs/DELEGATION.md, PROTOCOL.md §4.4), signed in batches.
 *
 * When an agent with N connections lands, each endpoint sends a RES that must prove the new host
 * speaks for the agent. Instead of N Ed25519 signatures (and N verifications at the peers), the
 * host signs once: the RES built in one turn become the leaves of a Merkle tree (RFC 9162 §2.1),
 * the host signs "ferry/1 resume batch" || tree size || root, and each RES carries its leaf index
 * and audit path. A verifier rebuilds the root from its own RES and remembers verified roots, so
 * the other RES of the batch cost a few SHA-256 instead of an Ed25519 verify.
 *
 *   leaf data = "ferry/1 resume" || head, MAC, host key, chain   (resumeSigned: the bytes one
 *                                                                 signature used to cover)
 *
 * The root signature authorizes exactly the messages whose leaves are in the tree. No I/O: the
 * batch is flushed through an injected `defer` (a microtask by default).
 */
import { equalBytes, merkleLeafHash, merkleRootFromPath, merkleTree, verifyChain, encodeChain, idOfPublicKey, verifySignature, type AgentId, type DelegationChain, type Representative } from '../identity/index.js';
import { FerryError, limit, setBounded } from '../util/index.js';
import { resumeProofMaxDepth, resumeRootSigned, resumeSigned, type ConnControl, type ConnControlHead, type ResumeProof } from '../wire/index.js';

/** Leaf label: the bytes a single host signature covered before batches (now hashed, never signed). */
const RESUME_LEAF = Buffer.from('ferry/1 resume');
/**
 * Host signature over a batch root. Differs from "ferry/1 register" at byte 10 and from the other
 * labels by byte 8; "ferry/1 resume" alone is never signed any more, so its being a prefix of this
 * one cannot make one message pass for the other.
 */
const RESUME_ROOT_SIG = Buffer.from('ferry/1 resume batch');

/** A RES / RES_ACK (head and MAC) and the chain its proof carries: one leaf of a batch. */
export interface ResumeLeaf {
  readonly m: ConnControlHead & { mac: Buffer };
  readonly chain: DelegationChain;
}

/**
 * A RES waiting for the next batch. At the flush, in one synchronous run for the whole batch, the
 * signer asks it to `build` its message (the endpoint takes its control counter and MACs it then,
 * or returns undefined if its resume was cancelled or superseded meanwhile), signs the tree of all
 * leaves, and hands it its proof to `send` at once: nothing of the same endpoint can be built and
 * sent between its counter and its datagram, so counters still reach the peer in order.
 */
export interface PendingResume {
  readonly chain: DelegationChain;
  build(): (ConnControlHead & { mac: Buffer }) | undefined;
  send(proof: ResumeProof): void;
  /** `build`, the signature or `send` threw: the endpoint treats it as an unanswered RES. */
  fail(err: unknown): void;
}

/** What a host lends an endpoint to prove that it speaks for the endpoint's agent (docs/DELEGATION.md). */
export interface LocationProof {
  /** Delegation chain from the agent key to the host key (`signer.hostKey`). */
  readonly chain: DelegationChain;
  /** The host's batch signer: one per host, shared by every agent on it. */
  readonly signer: ResumeSigner;
}

/** One per host: signs resume proofs, one Ed25519 signature per batch. */
export class ResumeSigner {
  /** Roots signed and leaves under them, for tests and metrics. */
  readonly stats = { roots: 0, leaves: 0 };
  // Drained at every flush, and only endpoints of this host enqueue (one RES each per resume):
  // bounded by the host's connections (MAX_CONNECTIONS).
  private queue: PendingResume[] = [];

  /**
   * @param hostKey the host's raw Ed25519 public key
   * @param signRoot signs with the host key
   * @param defer runs the flush after the current synchronous run (default: a microtask, so every
   *   endpoint that `Host.attachAgent` starts in one loop lands in one batch)
   */
  constructor(
    readonly hostKey: Buffer,
    private readonly signRoot: (message: Buffer) => Buffer,
    private readonly defer: (fn: () => void) => void = queueMicrotask,
  ) {}

  /**
   * Sign `leaves` now, in as few trees as the datagram size allows (a tree's paths must fit the
   * RES of its longest chain: `resumeProofMaxDepth`), and return each leaf's proof, in order.
   * A single leaf is a batch of one: no path.
   */
  sign(leaves: readonly ResumeLeaf[]): ResumeProof[] {
    const proofs: ResumeProof[] = new Array<ResumeProof>(leaves.length);
    const byDepth = new Map<number, number[]>();
    leaves.forEach((l, i) => {
      const d = resumeProofMaxDepth(l.chain.length);
      const members = byDepth.get(d);
      if (members) members.push(i);
      else byDepth.set(d, [i]);
    });
    for (const [depth, members] of byDepth) {
      for (let at = 0; at < members.length; at += 2 ** depth) this.signTree(leaves, members.slice(at, at + 2 ** depth), proofs);
    }
    return proofs;
  }

  /** Register a RES for the next flush (see {@link PendingResume}). */
  enqueue(p: PendingResume): void {
    this.queue.push(p);
    if (this.queue.length === 1) this.defer(() => this.flush());
  }

  private signTree(leaves: readonly ResumeLeaf[], members: number[], out: ResumeProof[]): void {
    const tree = merkleTree(members.map((i) => resumeLeafHash(leaves[i]!.m, this.hostKey, leaves[i]!.chain)));
    const signature = this.signRoot(Buffer.concat([RESUME_ROOT_SIG, resumeRootSigned(members.length, tree.root)]));
    this.stats.roots++;
    this.stats.leaves += members.length;
    members.forEach((i, j) => {
      out[i] = { hostKey: this.hostKey, chain: leaves[i]!.chain, treeSize: members.length, leafIndex: j, path: [...tree.paths[j]!], signature };
    });
  }

  private flush(): void {
    // A fail() that throws (a user's 'state' listener) must not strand the rest of the batch:
    // every RES built here has taken its counter and is either sent or failed; the first such
    // error is thrown once the batch is done.
    let thrown: { err: unknown } | undefined;
    const fail = (p: PendingResume, err: unknown): void => {
      try {
        p.fail(err);
      } catch (e) {
        thrown ??= { err: e };
      }
    };
    const pending = this.queue;
    this.queue = []; // a RES enqueued from inside the flush goes to the next one
    const built: { p: PendingResume; m: ConnControlHead & { mac: Buffer } }[] = [];
    for (const p of pending) {
      try {
        const m = p.build();
        if (m) built.push({ p, m });
      } catch (err) {
        fail(p, err);
      }
    }
    if (built.length > 0) this.signAndSend(built, fail);
    if (thrown) throw thrown.err;
  }

  private signAndSend(built: { p: PendingResume; m: ConnControlHead & { mac: Buffer } }[], fail: (p: PendingResume, err: unknown) => void): void {
    let proofs: ResumeProof[];
    try {
      proofs = this.sign(built.map(({ p, m }) => ({ m, chain: p.chain })));
    } catch (err) {
      for (const { p } of built) fail(p, err);
      return;
    }
    built.forEach(({ p }, i) => {
      try {
        p.send(proofs[i]!);
      } catch (err) {
        fail(p, err);
      }
    });
  }
}

/** The proof for a RES_ACK (answered synchronously) or a single RES: a batch of one. */
export function signResume(m: ConnControlHead & { mac: Buffer }, by: LocationProof): ResumeProof {
  return by.signer.sign([{ m, chain: by.chain }])[0]!;
}

function resumeLeafHash(m: ConnControlHead & { mac: Buffer }, hostKey: Buffer, chain: DelegationChain): Buffer {
  return merkleLeafHash(Buffer.concat([RESUME_LEAF, resumeSigned({ ...m, proof: { hostKey, chain } })]));
}

/** Verified chains, keyed by agent and encoded chain: an agent's connections all present one. */
const verdicts = new Map<string, { rep: Representative; from: number }>();
const VERDICT_CACHE_ENTRIES = 1024;

function verifyChainCached(agent: AgentId, chain: DelegationChain, now: number): Representative {
  const skew = limit('CLOCK_SKEW_MS');
  const k = `${agent}:${encodeChain(chain).toString('base64')}`;
  const hit = verdicts.get(k);
  // A cached verdict still has to hold now: the last link unexpired, no link from the future.
  if (hit && now >= hit.from && now <= hit.rep.notAfter + skew) return hit.rep;
  // The root must be the key the AgentId is the hash of (verifyChain checks the hash first).
  const rep = verifyChain(agent, chain[0]!.issuer, chain, now, { maxLinks: limit('RESUME_PROOF_MAX_LINKS') });
  setBounded(verdicts, k, { rep, from: Math.max(...chain.map((c) => c.notBefore)) - skew }, VERDICT_CACHE_ENTRIES);
  return rep;
}

/**
 * Batch roots whose host signature verified, keyed by host key, tree size and root, with that
 * signature. Only verified entries go in, and a hit must present the same signature bytes (else
 * it is verified in full), so a RES carrying another batch's signature is never let through by
 * the cache. A verified root stays verified: no expiry, oldest dropped at the limit.
 */
const roots = new Map<string, Buffer>();
const rootStats = { verified: 0, cached: 0 };

/** Root signatures verified with Ed25519 and accepted from the cache, since the process started. */
export function resumeRootStats(): { verified: number; cached: number } {
  return { ...rootStats };
}

function rootSignedBy(p: ResumeProof, root: Buffer): boolean {
  const k = `${p.hostKey.toString('base64')}:${p.treeSize}:${root.toString('base64')}`;
  const hit = roots.get(k);
  if (hit && equalBytes(hit, p.signature)) {
    rootStats.cached++;
    return true;
  }
  if (!verifySignature(p.hostKey, Buffer.concat([RESUME_ROOT_SIG, resumeRootSigned(p.treeSize, root)]), p.signature)) return false;
  rootStats.verified++;
  setBounded(roots, k, Buffer.from(p.signature), limit('RESUME_ROOT_CACHE_ENTRIES'));
  return true;
}

/**
 * Check the proof carried by a RES / RES_ACK from `peerAgent`: the chain's last subject is the
 * key that signed (FERRY_ERR_RESUME_HOST_MISMATCH), its epoch is not below `minEpoch`, the last
 * one accepted from this peer (FERRY_ERR_STALE_EPOCH), the chain roots in `peerAgent` and holds at
 * wall time `now` (verifyChain's codes), and this message is a leaf of a tree whose root the host
 * signed (FERRY_ERR_BAD_SIGNATURE). Cheap checks first, as at the rendezvous. Returns who speaks
 * for the peer, and at which epoch.
 */
export function verifyResumeProof(m: ConnControl, peerAgent: AgentId, minEpoch: number, now: number): Representative {
  const p = m.proof;
  if (!p) throw new FerryError('FERRY_ERR_RESUME_UNPROVEN', 'no location proof');
  const last = p.chain[p.chain.length - 1];
  if (!last) throw new FerryError('FERRY_ERR_CHAIN_TRUNCATED', 'empty delegation chain');
  if (!last.subject.equals(p.hostKey)) {
    throw new FerryError('FERRY_ERR_RESUME_HOST_MISMATCH', `the chain names host ${idOfPublicKey(last.subject)}, the resume is signed by ${idOfPublicKey(p.hostKey)}`);
  }
  if (last.epoch < minEpoch) throw new FerryError('FERRY_ERR_STALE_EPOCH', `delegation epoch ${last.epoch} is below ${minEpoch}, the last accepted from this peer`);
  const rep = verifyChainCached(peerAgent, p.chain, now);
  // The leaf is rebuilt from this very message: a proof lifted from another RES, or a path or
  // index that does not lead from this leaf to a signed root, ends here.
  const root = merkleRootFromPath(p.leafIndex, p.treeSize, resumeLeafHash(m, p.hostKey, p.chain), p.path);
  if (!root) throw new FerryError('FERRY_ERR_BAD_SIGNATURE', `an audit path of ${p.path.length} hashes cannot place leaf ${p.leafIndex} in a batch of ${p.treeSize}`);
  if (!rootSignedBy(p, root)) throw new FerryError('FERRY_ERR_BAD_SIGNATURE', 'the host signature over the resume batch does not verify');
  return rep;
}
