/**
 * Whether a dial from a host bound to one address must bind that address before it connects.
 *
 * A host bound to a specific IP dials from it, so that a peer reading our address off the TCP
 * socket (the in-band open, a resume's candidate) reaches our control port there. Binding the
 * source before `connect()` has a cost that grows with the sockets on the machine: `bind(ip, 0)`
 * must find a local port no other socket holds, TIME_WAIT ones included, while a plain
 * `connect()` may reuse any port whose 4-tuple is free. Measured here with ~12 000 sockets in
 * TIME_WAIT (a few moves of 1000 connections leave that many): 1000 connects to loopback took
 * 0.7–1.8 s with the bind and 33–57 ms without. Linux's IP_BIND_ADDRESS_NO_PORT would defer the
 * port choice, but Node does not expose it.
 *
 * Most of the time the kernel would pick our address anyway. This asks it once per destination:
 * a UDP socket `connect()` sends nothing and leaves the source address the routing table chose
 * in `address()`. When that is the bound address, dials to that destination skip the bind; until
 * the answer is in, and whenever it differs, they bind as before. Answers are kept
 * `SOURCE_ROUTE_TTL_MS` (routes change rarely; a stale answer at worst costs the bind, or for that
 * long lets a dial leave from the address the route now prefers) and at most
 * `SOURCE_ROUTE_ENTRIES` destinations.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { limit, setBounded, type Clock } from '../util/index.js';

interface Answer {
  /** The kernel's source for this destination is the bound address. */
  readonly same: boolean;
  readonly until: number;
}

/** Per-destination answers to "would the kernel dial from our bound address?". */
export class SourceRoutes {
  private readonly answers = new Map<string, Answer>();
  private readonly asking = new Set<string>();

  constructor(
    /** The host's own address: the one a dial binds when the kernel would not pick it. */
    readonly boundIp: string,
    private readonly clock: Clock,
  ) {}

  /** Whether a dial to `ip` must bind `boundIp` first; asks the kernel in the background when it does not know. */
  mustBind(ip: string): boolean {
    const a = this.answers.get(ip);
    if (a && a.until > this.clock.now()) return !a.same;
    this.ask(ip);
    return true;
  }

  /** Resolves once no question is outstanding (tests). */
  async settled(): Promise<void> {
    while (this.asking.size > 0) await new Promise((r) => setTimeout(r, 1));
  }

  private ask(ip: string): void {
    // A few questions at a time: each holds a UDP socket (a descriptor) while the kernel answers,
    // and a move to peers on many hosts would otherwise open one per host at once.
    if (this.asking.has(ip) || this.asking.size >= limit('SOURCE_ROUTE_LOOKUPS')) return;
    this.asking.add(ip);
    const sock = createSocket(isIPv6(ip) ? 'udp6' : 'udp4');
    const done = (same: boolean | undefined): void => {
      this.asking.delete(ip);
      sock.close();
      if (same === undefined) return;
      setBounded(this.answers, ip, { same, until: this.clock.now() + limit('SOURCE_ROUTE_TTL_MS') }, limit('SOURCE_ROUTE_ENTRIES'));
    };
    sock.on('error', () => done(undefined));
    // Port 9 (discard): nothing is sent, connect() on UDP only chooses the route and the source.
    sock.connect(9, ip, (err?: Error) => {
      if (err) return done(undefined);
      let local: string;
      try {
        local = sock.address().address;
      } catch {
        return done(undefined);
      }
      done(plain(local) === plain(this.boundIp));
    });
  }
}

/** An IPv4-mapped IPv6 address in its IPv4 form. */
function plain(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
