/**
 * Reassembly of REGISTER bodies sent as REGISTER_PART fragments (a delegation chain of 7 or 8
 * links does not fit one 1200-byte datagram). Pure: time is passed in.
 *
 * The sender sends fragments one at a time, each after the previous one was answered (the
 * control channel retransmits and suppresses duplicates), so they arrive in order and a gap is a
 * protocol error, not reordering. An upload is named by the sender's address and a random id,
 * so nobody elsewhere can add to it without spoofing the address and guessing 64 bits. Bounds:
 * REGISTER_MAX_UPLOADS uploads, at most REGISTER_UPLOADS_PER_SOURCE of them from one source IP
 * (a newcomer beyond a share, or in a full table, takes the idlest upload of the source holding
 * the most: one address sending first fragments cannot lock every long registration out),
 * REGISTER_MAX_BYTES each, REGISTER_UPLOAD_TTL_MS from the first fragment.
 */
import { FerryError, SourceSlots, limit } from '../util/index.js';
import { parseAddress } from '../control/index.js';
import type { RegisterPart } from '../wire/index.js';

/** Bounds of an {@link UploadTable}; each defaults to its row in LIMITS. */
export interface UploadLimits {
  readonly maxUploads: number;
  readonly perSource: number;
  readonly ttlMs: number;
}

interface Upload {
  /** The sender's IP: its share of the table. */
  readonly source: string;
  readonly count: number;
  readonly totalLength: number;
  readonly startedAt: number;
  readonly fragments: Buffer[];
  received: number;
}

function broken(why: string): FerryError {
  return new FerryError('FERRY_ERR_UPLOAD_BROKEN', `REGISTER_PART: ${why}`);
}

/** Uploads in progress. */
export class UploadTable {
  /** Insertion order is start order, and every upload has the same lifetime: oldest first. */
  private readonly uploads = new Map<string, Upload>();
  private readonly limits: UploadLimits;
  private readonly slots: SourceSlots<string>;

  constructor(limits: Partial<UploadLimits> = {}) {
    this.limits = { maxUploads: limit('REGISTER_MAX_UPLOADS'), perSource: limit('REGISTER_UPLOADS_PER_SOURCE'), ttlMs: limit('REGISTER_UPLOAD_TTL_MS'), ...limits };
    this.slots = new SourceSlots(this.limits.maxUploads, this.limits.perSource);
  }

  /** Uploads in progress. */
  get size(): number {
    return this.uploads.size;
  }

  /**
   * Take one fragment from `from`. Returns the whole REGISTER body when this fragment completes
   * it, else undefined.
   *
   * @throws FerryError `FERRY_ERR_UPLOAD_BROKEN` for a fragment out of order, of an unknown or
   *   expired upload, disagreeing with the first fragment's count or length, or overrunning the
   *   announced length (the upload is dropped: the sender starts again with a new id);
   *   `FERRY_ERR_LIMIT_EXCEEDED` for a new upload when REGISTER_MAX_UPLOADS are in progress.
   */
  part(now: number, from: string, p: RegisterPart): Buffer | undefined {
    this.expire(now);
    const key = `${from}/${p.uploadId.toString('hex')}`;
    let u = this.uploads.get(key);
    if (p.index === 0) {
      if (u) {
        this.drop(key, u);
        throw broken('a second first fragment for one upload');
      }
      const source = parseAddress(from).ip;
      const slot = this.slots.admit(source, key);
      if (!slot.admitted) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `no REGISTER uploads allowed (REGISTER_MAX_UPLOADS ${this.limits.maxUploads})`);
      // The evicted sender's next fragment finds no upload (UPLOAD_BROKEN) and starts again.
      if (slot.evicted !== undefined) this.uploads.delete(slot.evicted);
      u = { source, count: p.count, totalLength: p.totalLength, startedAt: now, fragments: [], received: 0 };
      this.uploads.set(key, u);
    } else if (!u) {
      throw broken(`fragment ${p.index} of an unknown or expired upload`);
    } else {
      this.slots.touch(u.source, key);
    }
    const up = u;
    const fail = (why: string): never => {
      this.drop(key, up);
      throw broken(why);
    };
    if (p.count !== u.count || p.totalLength !== u.totalLength) fail('count or length differs from the first fragment');
    if (p.index !== u.fragments.length) fail(`fragment ${p.index} where ${u.fragments.length} was expected`);
    if (u.received + p.fragment.length > u.totalLength) fail(`fragments overrun the announced ${u.totalLength} bytes`);
    // Copy: the fragment is a view into a datagram buffer that may be reused.
    u.fragments.push(Buffer.from(p.fragment));
    u.received += p.fragment.length;
    if (p.index < u.count - 1) return undefined;
    this.drop(key, u);
    if (u.received !== u.totalLength) throw broken(`${u.received} bytes received, ${u.totalLength} announced`);
    return Buffer.concat(u.fragments, u.totalLength);
  }

  private drop(key: string, u: Upload): void {
    this.uploads.delete(key);
    this.slots.release(u.source, key);
  }

  private expire(now: number): void {
    for (const [key, u] of this.uploads) {
      if (now - u.startedAt < this.limits.ttlMs) break;
      this.drop(key, u);
    }
  }
}
