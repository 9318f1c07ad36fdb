/**
 * Control authentication of one connection end: the counters of SUS, RES and CLS and their
 * answers, the MAC that covers them, the replay window, and the cached reply of the last request.
 * Pure: no clock, no socket; the endpoint asks it what a request or a reply comes to and carries
 * out the answer.
 *
 * The order of the checks is the security argument (PROTOCOL.md §4.3): the MAC first, so a forgery
 * changes nothing and learns nothing; then the counter, so a replay changes nothing; then (the
 * caller) the location proof and the transition table. A request's counter becomes the floor only
 * once the caller {@link ControlAuth.accept}s it: a RES refused for its proof leaves the window
 * where it was. A retransmission (same counter, same MAC, same address) of the request last
 * accepted gets the reply it got, byte for byte, and changes nothing; the same counter from
 * another address is a replay (a copy sent from elsewhere would carry our fresh path challenge to
 * an unproven address).
 */
import { equalBytes, hmac, type ConnectionKeys } from '../../identity/index.js';
import { FerryError } from '../../util/index.js';
import { MessageType, connControlMacInput, decodeConnControl, type ConnControl, type ConnControlHead, type Role } from '../../wire/index.js';

const ZERO_MAC = Buffer.alloc(32);

/** MAC of a SUS/RES/CLS or its reply under the connection's control key (zeros without security). */
export function controlMac(keys: ConnectionKeys | undefined, m: ConnControlHead): Buffer {
  return keys ? hmac(keys.control, connControlMacInput(m)) : ZERO_MAC;
}

/** Verify a connection-control MAC (always true without security). */
export function verifyControlMac(keys: ConnectionKeys | undefined, m: ConnControl): boolean {
  return keys ? equalBytes(controlMac(keys, m), m.mac) : true;
}

/** What an authenticated request comes to: new (go on), or a retransmission (answer as before). */
export type Admission = { readonly kind: 'fresh' } | { readonly kind: 'retransmission'; readonly reply: Buffer | FerryError };

/** The name of a control message type, for error details. */
export function controlTypeName(t: number): string {
  return (Object.entries(MessageType).find(([, v]) => v === t)?.[0] ?? `type ${t}`) as string;
}

/** The counters and the cached reply of one end's control requests. */
export class ControlAuth {
  private ours: number;
  private theirs: number;
  private last: { counter: number; mac: Buffer; from: string; reply: Buffer | FerryError } | undefined;

  /** `sent`: our last request's counter; `received`: the peer's highest accepted (from a checkpoint, or 0). */
  constructor(init: { sent?: number; received?: number } = {}) {
    this.ours = init.sent ?? 0;
    this.theirs = init.received ?? 0;
  }

  /** Our last request's counter (travels in the checkpoint). */
  get sent(): number {
    return this.ours;
  }

  /** The peer's highest accepted counter: anything at or below it is a replay (travels in the checkpoint). */
  get received(): number {
    return this.theirs;
  }

  /**
   * Our next request, MAC'd: it takes the next counter, so it must be sent before another is
   * built (the peer refuses a counter at or below one it accepted).
   */
  request(keys: ConnectionKeys | undefined, head: Omit<ConnControlHead, 'counter'>): ConnControl {
    const m = { ...head, counter: ++this.ours };
    return { ...m, mac: controlMac(keys, m) };
  }

  /** A reply to the peer's request, MAC'd (its counter is the request's). */
  reply(keys: ConnectionKeys | undefined, head: ConnControlHead): ConnControl {
    return { ...head, mac: controlMac(keys, head) };
  }

  /**
   * A request from `from`: MAC first, then the counter. Throws FERRY_ERR_BAD_MAC or
   * FERRY_ERR_REPLAYED_CONTROL (nothing changed); returns the cached answer of a retransmission,
   * or `fresh` (nothing recorded yet: {@link accept} it once the caller's own checks pass).
   */
  admit(keys: ConnectionKeys | undefined, m: ConnControl, from: string): Admission {
    if (!verifyControlMac(keys, m)) throw new FerryError('FERRY_ERR_BAD_MAC', `${controlTypeName(m.type)} MAC does not verify`);
    if (m.counter > this.theirs) return { kind: 'fresh' };
    const last = this.last;
    if (last && m.counter === last.counter && last.from === from && equalBytes(m.mac, last.mac)) return { kind: 'retransmission', reply: last.reply };
    throw new FerryError('FERRY_ERR_REPLAYED_CONTROL', `${controlTypeName(m.type)} counter ${m.counter} ≤ ${this.theirs}`);
  }

  /** The fresh request `m` passed the caller's checks: its counter is the floor from now on. */
  accept(m: ConnControl): void {
    this.theirs = Math.max(this.theirs, m.counter);
  }

  /** What we answered an accepted request from `from` (a reply or a refusal): its retransmissions get the same. */
  remember(m: ConnControl, from: string, reply: Buffer | FerryError): void {
    this.last = { counter: m.counter, mac: m.mac, from, reply };
  }

  /**
   * Verify a reply to our request `counter` of the connection `connectionId`: its type, the echoed
   * counter and connection id, and that the peer's role (`senderRole`) sent it
   * (FERRY_ERR_MALFORMED_DATAGRAM), then its MAC (FERRY_ERR_BAD_MAC). One control key MACs both
   * directions, so the role byte under the MAC is what tells the peer's reply from one of our own:
   * without the check, our own reply to the peer's crossing request with the same counter (both
   * ends count from the same start), reflected back to us by anyone on the path, answered our
   * request (a SUS_ACK, RES_ACK or CLS_ACK we wrote, naming our own redirector port and challenge).
   */
  checkReply(keys: ConnectionKeys | undefined, reply: { type: number; body: Buffer }, expect: { type: number; counter: number; connectionId: Buffer; senderRole: Role }): ConnControl {
    const m = decodeConnControl(reply.body, reply.type);
    if (m.type !== expect.type || m.counter !== expect.counter || !m.connectionId.equals(expect.connectionId) || m.senderRole !== expect.senderRole) {
      throw new FerryError('FERRY_ERR_MALFORMED_DATAGRAM', 'reply does not match its request');
    }
    if (!verifyControlMac(keys, m)) throw new FerryError('FERRY_ERR_BAD_MAC', 'reply MAC');
    return m;
  }
}
