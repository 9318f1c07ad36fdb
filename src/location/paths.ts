/**
 * The control addresses the rendezvous has seen prove that they receive (a PATH_RESPONSE echoed
 * its PATH_CHALLENGE), and until when. Pure: time is passed in.
 *
 * A registration's locator is only a claim: the host's signature binds it to the host's key, not
 * to the host's reach, so anyone with a key of their own can register someone else's address.
 * Relaying to such an address would make the rendezvous a reflector (each RELAY sent on, with
 * retransmissions: about 5x the bytes, toward a victim who never spoke). So the rendezvous relays
 * only to an address in this table, and proves a new one first, within the 3x budget of the
 * request that asked (RFC 9000 §8: an address is validated before more than 3x is sent there).
 */
import { limit, setBounded } from '../util/index.js';

/** Bounds of a {@link ProvenAddresses}; each defaults to its row in LIMITS. */
export interface ProvenAddressLimits {
  readonly maxEntries: number;
  readonly ttlMs: number;
}

/** Proven `ip:port` control addresses, oldest forgotten first. */
export class ProvenAddresses {
  /** address -> proven until (monotonic ms); Map order is proof order, as re-proving re-inserts. */
  private readonly until = new Map<string, number>();
  private readonly limits: ProvenAddressLimits;

  constructor(limits: Partial<ProvenAddressLimits> = {}) {
    this.limits = { maxEntries: limit('LOCATOR_PROOF_ENTRIES'), ttlMs: limit('LOCATOR_PROOF_TTL_MS'), ...limits };
  }

  /** Addresses held (some may have lapsed). */
  get size(): number {
    return this.until.size;
  }

  /** Whether `address` proved itself less than the proof lifetime ago. */
  has(now: number, address: string): boolean {
    const t = this.until.get(address);
    if (t === undefined) return false;
    if (t > now) return true;
    this.until.delete(address);
    return false;
  }

  /**
   * `address` echoed a challenge now. When the table is full the oldest proof goes: its address
   * only pays one more challenge round trip on its next relay (attackers can prove only
   * addresses they receive at, so filling the table costs them that many real sockets).
   */
  add(now: number, address: string): void {
    this.until.delete(address);
    setBounded(this.until, address, now + this.limits.ttlMs, this.limits.maxEntries);
  }
}
