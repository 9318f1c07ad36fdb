/**
 * A roaming host's own address: which one it registers, and when that changes (a laptop that
 * changes networks, a namespace that is re-addressed). The host binds the wildcard address, so
 * its ports keep working whatever the address; what it must notice is that the address it told
 * the rendezvous and its peers is gone.
 *
 * We poll the interface list (`os.networkInterfaces()`, one getifaddrs call) every
 * ADDRESS_POLL_MS rather than react to failed sends: a host whose address vanished sees no error
 * at all (its TCP sockets stall, its UDP datagrams from the wildcard leave from whatever address
 * the kernel picks), and Node offers no netlink notifications. The choice is a pure function of
 * the list, so it is tested without a network.
 */
import { networkInterfaces } from 'node:os';
import { limit, systemClock, type Clock, type Logger, type TimerHandle, silentLogger } from '../util/index.js';

/** One address of an interface, as `os.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  address: string;
  family: string;
  internal: boolean;
}

/** The interface list: name → addresses. */
export type InterfaceList = Record<string, InterfaceAddress[] | undefined>;

/**
 * The address a roaming host should register, given the interfaces now and the one it has:
 * the current one while it is still there; otherwise an external IPv4 address, from the same
 * interface first (a new lease on the same network card), else from any interface (another
 * network); undefined when there is none (between networks: wait).
 */
export function chooseAddress(list: InterfaceList, current: string | undefined): string | undefined {
  const usable = Object.entries(list).flatMap(([name, addrs]) => (addrs ?? []).filter((a) => !a.internal && (a.family === 'IPv4' || (a.family as unknown) === 4)).map((a) => ({ name, address: a.address })));
  if (current !== undefined && usable.some((u) => u.address === current)) return current;
  const was = current === undefined ? undefined : Object.entries(list).find(([, addrs]) => (addrs ?? []).some((a) => a.address === current))?.[0];
  return (usable.find((u) => u.name === was) ?? usable[0])?.address;
}

/** Options of {@link AddressWatch}. */
export interface AddressWatchOptions {
  /** The interface list (default `os.networkInterfaces`). */
  interfaces?: () => InterfaceList;
  clock?: Clock;
  /** How often to look (default ADDRESS_POLL_MS). */
  pollMs?: number;
  logger?: Logger;
}

/**
 * Follows a roaming host's address: `current` is the one to register; `onChange(next, previous)`
 * runs when it had to be replaced (the previous one is gone and another is there). One timer.
 */
export class AddressWatch {
  private cur: string | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  private readonly interfaces: () => InterfaceList;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly log: Logger;
  /** Whether the last look found no usable address (logged once per gap). */
  private gap = false;

  constructor(
    private readonly onChange: (next: string, previous: string) => void,
    opts: AddressWatchOptions = {},
  ) {
    this.interfaces = opts.interfaces ?? (networkInterfaces as () => InterfaceList);
    this.clock = opts.clock ?? systemClock;
    this.pollMs = opts.pollMs ?? limit('ADDRESS_POLL_MS');
    this.log = opts.logger ?? silentLogger;
    this.cur = chooseAddress(this.interfaces(), undefined);
  }

  /** The address to register now (undefined: the host has no external IPv4 address). */
  get current(): string | undefined {
    return this.cur;
  }

  /** Start polling. */
  start(): this {
    this.schedule();
    return this;
  }

  /** Look once now (also what each poll does). */
  check(): void {
    const next = chooseAddress(this.interfaces(), this.cur);
    if (next === undefined) {
      if (!this.gap) this.log.info('address_gone', { address: this.cur });
      this.gap = true;
      return;
    }
    this.gap = false;
    if (next === this.cur) return;
    const previous = this.cur;
    this.cur = next;
    if (previous !== undefined) this.onChange(next, previous);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(this.pollMs, () => {
      this.timer = undefined;
      this.check();
      this.schedule();
    });
  }
}
