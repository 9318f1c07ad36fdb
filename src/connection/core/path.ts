/**
 * Path validation of one connection end: where the peer is (its proven address and a candidate
 * learned from an authenticated RES), the path challenges we issued and the one the peer issued
 * us, where the peer last proved itself with a location proof and at which delegation epoch, and
 * whether a RES of ours must carry or ask for a proof. Pure: randomness comes in through the
 * injected `random`, proofs are verified by the caller (this file only says when one is needed and
 * records what was accepted).
 *
 * A peer's address changes only on authenticated, newer traffic, after path validation (STYLE.md
 * §10, in the manner of quic-go's path manager): a fresh RES from elsewhere makes the address a
 * candidate; it becomes the peer's address once a data socket there is proven (our dial answered
 * by HELLO_ACK under the connection key, or the peer's HELLO from that IP echoing a challenge we
 * sent). A challenge is redeemed once; at most {@link MAX_CHALLENGES} are outstanding.
 */
import { equalBytes } from '../../identity/index.js';
import { FerryError } from '../../util/index.js';
import { formatAddress } from '../../control/index.js';
import { DATAGRAM_HEADER_BYTES, NONCE_BYTES, RESUME_PROOF_WANTED_MIN_DATAGRAM } from '../../wire/index.js';
import type { PeerLocator, ProvenLocation } from '../checkpoint.js';

/** Outstanding path challenges kept per endpoint (RES and RES_ACK each issue one); the oldest goes first. */
export const MAX_CHALLENGES = 4;

const ZERO_CHALLENGE = Buffer.alloc(NONCE_BYTES);

/** An IPv4-mapped IPv6 address in its IPv4 form (a dual-stack socket's view of an IPv4 peer). */
export function unmappedIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** The same IP, whether or not one side sees it IPv4-mapped. */
export function sameIp(a: string, b: string): boolean {
  const norm = (s: string): string => (s.startsWith('::ffff:') ? s.slice(7) : s);
  return norm(a) === norm(b);
}

/** Same control address and redirector port. */
export function sameLocation(a: ProvenLocation, b: ProvenLocation): boolean {
  return a.controlPort === b.controlPort && a.redirectorPort === b.redirectorPort && sameIp(a.ip, b.ip);
}

/**
 * Anti-amplification: the padding a RES body of `bodyLength` bytes needs. A RES that asks for the
 * peer's proof pays for it: the RES_ACK that carries one (up to RESUME_PROOF_MAX_LINKS links) must
 * stay within AMPLIFICATION_FACTOR times what was received (PROTOCOL.md §8.4).
 */
export function proofWantedPadding(bodyLength: number, wantProof: boolean): number {
  return wantProof ? Math.max(0, RESUME_PROOF_WANTED_MIN_DATAGRAM - DATAGRAM_HEADER_BYTES - bodyLength) : 0;
}

/** What path validation starts from: the peer's address, and (after a move) what was proven. */
export interface PathInit {
  readonly peer: PeerLocator;
  /** Where the peer last proved itself (default: `peer`, as at an open). */
  readonly proven?: ProvenLocation | undefined;
  readonly peerEpoch?: number | undefined;
  /** `n` random bytes (path challenges). */
  readonly random: (n: number) => Buffer;
}

/** The addresses, challenges and location proofs of one connection end. */
export class PathValidation {
  private current: PeerLocator;
  private pending: PeerLocator | undefined;
  private provenAt: ProvenLocation;
  private epoch: number;
  private theirChallenge: Buffer = ZERO_CHALLENGE;
  private readonly ours: Buffer[] = [];
  private readonly random: (n: number) => Buffer;
  private prove = false;
  private ask = false;
  private awaiting = false;

  constructor(init: PathInit) {
    this.current = init.peer;
    const p = init.proven ?? init.peer;
    this.provenAt = { ip: p.ip, controlPort: p.controlPort, redirectorPort: p.redirectorPort };
    this.epoch = init.peerEpoch ?? 0;
    this.random = init.random;
  }

  /** The peer's address: where control requests go and (without a candidate) where we dial. */
  get peer(): PeerLocator {
    return this.current;
  }

  /** An address learned from an authenticated, fresh RES, not yet proven by a data socket. */
  get candidate(): PeerLocator | undefined {
    return this.pending;
  }

  /** Where the peer last proved itself: at open, or by a verified location proof. */
  get proven(): ProvenLocation {
    return this.provenAt;
  }

  /** Highest delegation epoch accepted from the peer: a proof below it is stale. */
  get peerEpoch(): number {
    return this.epoch;
  }

  /** The peer's last challenge: our resume HELLO echoes it. */
  get peerChallenge(): Buffer {
    return this.theirChallenge;
  }

  /** Landed here since the peer last accepted our proof: our RES carries one. */
  get mustProve(): boolean {
    return this.prove;
  }

  /** Our outstanding RES asked for a proof not yet verified: a resume HELLO waits for it. */
  get awaitingProof(): boolean {
    return this.awaiting;
  }

  /** Where our resume dials: the candidate if there is one (that is what the dial proves). */
  dialTarget(): PeerLocator {
    return this.pending ?? this.current;
  }

  /** The open told us the server's own ports (under its signature): that is where it proved itself. */
  opened(ports: { controlPort: number; redirectorPort: number }): void {
    this.current.controlPort = ports.controlPort;
    this.current.redirectorPort = ports.redirectorPort;
    this.provenAt = { ip: this.current.ip, controlPort: ports.controlPort, redirectorPort: ports.redirectorPort };
  }

  /** A fresh challenge for a RES or RES_ACK of ours (the oldest outstanding one goes past MAX_CHALLENGES). */
  issueChallenge(): Buffer {
    const c = this.random(NONCE_BYTES);
    this.ours.push(c);
    if (this.ours.length > MAX_CHALLENGES) this.ours.shift();
    return c;
  }

  /**
   * A resume HELLO echoes `challenge`: it must be one we issued and have not seen answered, which
   * only the holder of the connection key at the address we sent it to could have seen. Redeemed
   * once; throws FERRY_ERR_PATH_UNVALIDATED otherwise.
   */
  redeemChallenge(challenge: Buffer): void {
    // Constant-time: a challenge is what a stranger would have to guess.
    const i = this.ours.findIndex((c) => equalBytes(c, challenge));
    if (i < 0) throw new FerryError('FERRY_ERR_PATH_UNVALIDATED', 'HELLO does not answer an outstanding challenge');
    this.ours.splice(i, 1);
  }

  /**
   * An authenticated, fresh RES from `from` naming `redirectorPort`, with the peer's challenge. The
   * peer's own address only updates its redirector port; another address becomes the candidate
   * (at the epoch its proof showed, if any) until a data socket there proves it.
   */
  resReceived(from: { ip: string; port: number }, redirectorPort: number, challenge: Buffer, provenEpoch: number | undefined): void {
    if (from.ip === this.current.ip && from.port === this.current.controlPort) {
      this.current.redirectorPort = redirectorPort;
      this.pending = undefined;
    } else {
      this.pending = { ip: from.ip, controlPort: from.port, redirectorPort, epoch: Math.max(this.current.epoch, provenEpoch ?? 0) };
    }
    this.theirChallenge = challenge;
  }

  /** Our RES to `target` was answered (its RES_ACK verified): the peer is there now. */
  resAckReceived(target: PeerLocator, redirectorPort: number, challenge: Buffer, proved: boolean): void {
    // The peer verified our proof before it answered.
    if (proved) this.prove = false;
    this.theirChallenge = challenge;
    target.redirectorPort = redirectorPort;
    // A candidate learned from an earlier RES elsewhere (never proven: its dial was cut short) is
    // stale, and dialing it would fail on every attempt while every RES here succeeds.
    if (this.pending && this.pending !== target) this.pending = undefined;
  }

  /** Our dial to `target` was answered under the connection key: a candidate there is proven. */
  dialAnswered(target: PeerLocator): void {
    if (this.pending !== target) return;
    this.current = { ...target, epoch: Math.max(target.epoch, this.current.epoch) };
    this.pending = undefined;
  }

  /** The peer's resume HELLO (its challenge redeemed) came from `remoteIp`: a candidate there is proven. */
  helloAccepted(remoteIp: string | undefined): void {
    if (!this.pending || remoteIp === undefined || !sameIp(remoteIp, this.pending.ip)) return;
    this.current = { ...this.pending, epoch: Math.max(this.pending.epoch, this.current.epoch) };
    this.pending = undefined;
  }

  /** The location service named `loc`: taken when it is another address or a newer epoch. Returns whether it was. */
  located(loc: PeerLocator | undefined): boolean {
    if (!loc || (loc.ip === this.current.ip && loc.controlPort === this.current.controlPort && loc.epoch <= this.current.epoch)) return false;
    this.current = loc;
    this.pending = undefined;
    return true;
  }

  /** Whether our RES to `target` asks for the peer's proof: it is not where the peer proved itself, or it was told to. */
  wantsProof(secure: boolean, target: PeerLocator = this.current): boolean {
    return secure && (this.ask || !sameLocation(target, this.provenAt));
  }

  /** Our RES went out asking (or not) for a proof: a resume HELLO waits for its verification. */
  resSent(wantProof: boolean): void {
    this.awaiting = wantProof;
  }

  /** No verified proof is awaited any more (the resume it belonged to is over, or none was asked). */
  stopAwaiting(): void {
    this.awaiting = false;
  }

  /**
   * A RES from `here`: whether its proof must be verified (true), or none is needed (false: from
   * where the peer last proved itself, or security off). Throws FERRY_ERR_RESUME_UNPROVEN for a
   * RES from elsewhere without one. A proof that is present is always checked.
   */
  resProofNeeded(secure: boolean, here: ProvenLocation, hasProof: boolean): boolean {
    if (!secure) return false; // security off: nothing is proven (PROTOCOL.md §9)
    if (hasProof) return true;
    if (sameLocation(here, this.provenAt)) return false;
    throw new FerryError(
      'FERRY_ERR_RESUME_UNPROVEN',
      `RES from ${formatAddress(here.ip, here.controlPort)} (redirector ${here.redirectorPort}) without a location proof; the peer last proved itself at ${formatAddress(this.provenAt.ip, this.provenAt.controlPort)} (redirector ${this.provenAt.redirectorPort})`,
    );
  }

  /**
   * The RES_ACK from `here` to a RES of ours (`wanted`: it asked for a proof): whether its proof
   * must be verified. Throws FERRY_ERR_RESUME_UNPROVEN when a proof was wanted and is missing, or
   * when the peer's proven address names another redirector port without one (the next RES then
   * asks for a proof).
   */
  resAckProofNeeded(secure: boolean, here: ProvenLocation, hasProof: boolean, wanted: boolean): boolean {
    if (!secure) return false;
    if (hasProof) return true;
    if (wanted) throw new FerryError('FERRY_ERR_RESUME_UNPROVEN', `RES_ACK from ${formatAddress(here.ip, here.controlPort)}, where the peer has not proven itself, without a location proof`);
    if (!sameLocation(here, this.provenAt)) {
      this.ask = true;
      throw new FerryError('FERRY_ERR_RESUME_UNPROVEN', `RES_ACK names redirector port ${here.redirectorPort}, not the proven ${this.provenAt.redirectorPort}, without a location proof`);
    }
    return false;
  }

  /** A verified proof: the peer speaks from `at`, at delegation epoch `epoch` or later. */
  proofAccepted(epoch: number, at: ProvenLocation): void {
    this.epoch = Math.max(this.epoch, epoch);
    this.provenAt = { ip: at.ip, controlPort: at.controlPort, redirectorPort: at.redirectorPort };
    this.ask = false;
    this.awaiting = false;
  }

  /** Resumed: the peer accepted our location (or did not need a proof of it), and we its. */
  resumed(): void {
    this.prove = false;
    this.ask = false;
  }

  /**
   * We are somewhere the peer has not seen us prove ourselves (landed from a checkpoint, or our
   * host's address changed): our next RES carries a location proof, until the peer accepts one.
   */
  proveOurLocation(): void {
    this.prove = true;
  }
}
