/**
 * The `--ip` option of a host process, shared by `ferry host` and `ferry tunnel`: a fixed address,
 * or `auto` for a roaming host (a laptop) that binds the wildcard, registers its current external
 * IPv4 address and follows it (AddressWatch → Host.changeAddress; docs/TUNNEL.md "A host that
 * changes its address", PROTOCOL.md §6.8). Wiring only.
 */
import { AddressWatch, type Host } from '../host/index.js';
import type { Logger } from '../util/index.js';

/** What `--ip` resolved to. */
export interface HostAddress {
  /** The address registered and told to peers (for `auto`, the one the host has at start). */
  readonly ip: string;
  /** The address to bind the host's ports (and an embedded rendezvous) to: the wildcard when roaming. */
  readonly bind: string;
  /** `--ip auto`. */
  readonly roaming: boolean;
  /**
   * Follow this host's address from now on (nothing unless roaming); `changed` is told each new
   * address once the host took it (to rewrite what the process published, such as host.json).
   */
  follow(host: Host, changed?: (ip: string) => void): void;
  /** Stop following (before the host closes). */
  stop(): void;
}

/**
 * Resolve `--ip` (`undefined` means `fallback`). For `auto`, fails (through `fail`) when the
 * machine has no external IPv4 address to register.
 */
export function hostAddress(flag: string | undefined, fallback: string, logger: Logger, fail: (msg: string) => never): HostAddress {
  if (flag !== 'auto') {
    const ip = flag ?? fallback;
    return { ip, bind: ip, roaming: false, follow: () => undefined, stop: () => undefined };
  }
  let host: Host | undefined;
  let told: ((ip: string) => void) | undefined;
  const watch = new AddressWatch(
    (next) => {
      if (!host) return;
      host.changeAddress(next);
      told?.(next);
    },
    { logger },
  );
  const ip = watch.current;
  if (ip === undefined) fail('--ip auto: this host has no external IPv4 address');
  return {
    ip,
    bind: '0.0.0.0',
    roaming: true,
    follow(h: Host, changed?: (ip: string) => void): void {
      host = h;
      told = changed;
      watch.start();
    },
    stop(): void {
      watch.stop();
    },
  };
}
