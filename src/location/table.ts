/**
 * The location service interface and its in-process implementation. An agent's location is
 * `AgentId -> (HostId, locator, epoch)`; the epoch grows by one per move and an update with a
 * stale epoch is refused, so a delayed registration can never point peers backwards.
 * `RendezvousClient` (client.ts) implements the same interface over the network, against a
 * `RendezvousServer` (server.ts).
 */
import type { AgentId, DelegationChain, Identity } from '../identity/index.js';
import { FerryError, type Clock, systemClock } from '../util/index.js';

/** Where an agent is. */
export interface LocationEntry {
  readonly agent: AgentId;
  readonly hostId: string;
  readonly ip: string;
  readonly controlPort: number;
  readonly redirectorPort: number;
  readonly epoch: number;
  /**
   * Raw Ed25519 public key of the agent (hashes to `agent`). Needed with `chain`, which is
   * verified against it.
   */
  readonly agentKey?: Uint8Array;
  /**
   * Delegation chain from the agent key to the host named by `hostId` (its last subject), at
   * `epoch` (its last link's): the proof a rendezvous asks for before it stores the entry
   * (docs/DELEGATION.md, docs/PROTOCOL.md §12).
   */
  readonly chain?: DelegationChain;
}

/** Per-call options of {@link LocationService.register}. */
export interface RegisterOptions {
  /**
   * The registering host's identity, whose key is the chain's last subject: a networked
   * rendezvous wants the registration signed by it, which binds the locator to the proven host.
   * Defaults to the signer the service was configured with, if any.
   */
  readonly signer?: Identity;
}

/**
 * What a deregistration names: the entry its host holds, as that host registered it (agent, host,
 * epoch, and the chain it registered, which names that one registration).
 */
export type HeldEntry = Pick<LocationEntry, 'agent' | 'hostId' | 'epoch' | 'chain'>;

/** The location service, as hosts use it. Async so a networked rendezvous can implement it. */
export interface LocationService {
  /** Register a location; refused with FERRY_ERR_STALE_EPOCH unless `epoch` exceeds the current one. */
  register(entry: LocationEntry, options?: RegisterOptions): Promise<void>;
  /**
   * Remove the entry this host holds for an agent that ended here or that it stops holding (a
   * graceful stop). Resolves true if removed, false if there was none; refused with
   * FERRY_ERR_NOT_HOLDER when the current entry is another host's, epoch's or registration's (the
   * agent moved on, or was registered again), which it keeps. Optional: a service without it
   * leaves entries behind, as a killed host does.
   */
  deregister?(entry: HeldEntry, options?: RegisterOptions): Promise<boolean>;
  /** The current location, if any. */
  lookup(agent: AgentId): Promise<LocationEntry | undefined>;
  /**
   * The epoch of `agent`'s entry removed last by a deregistration, as the latest {@link lookup}
   * that found none learned it (a service that keeps tombstones): a launch registers above it.
   */
  removedEpoch?(agent: AgentId): number | undefined;
  /** Forget a cached location of `agent`, so the next lookup asks (a service that caches). */
  invalidate?(agent: AgentId): void;
  /**
   * The location once its epoch exceeds `newerThan`, waiting up to `waitMs` for a registration;
   * after the wait, whatever is current (possibly the same or undefined).
   */
  watch(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined>;
}

/**
 * Whether `entry` names exactly what `current` holds (host, locator, epoch): a registration sent
 * again (its answer was lost, or the node that stored it died before answering). A directory
 * acknowledges it without a write, so a move commits exactly once instead of being told
 * STALE_EPOCH for its own commit.
 */
export function sameRegistration(entry: Pick<LocationEntry, 'hostId' | 'ip' | 'controlPort' | 'redirectorPort' | 'epoch'>, current: LocationEntry): boolean {
  return entry.epoch === current.epoch && entry.hostId === current.hostId && entry.ip === current.ip && entry.controlPort === current.controlPort && entry.redirectorPort === current.redirectorPort;
}

/** In-memory location table shared by the hosts of one process (the single-machine default). */
export class MemoryLocationTable implements LocationService {
  private readonly entries = new Map<AgentId, LocationEntry>();
  private readonly watchers = new Map<AgentId, Set<(e: LocationEntry) => void>>();

  constructor(private readonly clock: Clock = systemClock) {}

  async register(entry: LocationEntry): Promise<void> {
    const cur = this.entries.get(entry.agent);
    if (cur && sameRegistration(entry, cur)) return; // sent again: acknowledged, as a rendezvous does
    if (cur && entry.epoch <= cur.epoch) {
      throw new FerryError('FERRY_ERR_STALE_EPOCH', `epoch ${entry.epoch} ≤ registered ${cur.epoch} for ${entry.agent}`);
    }
    this.entries.set(entry.agent, { ...entry });
    for (const w of this.watchers.get(entry.agent) ?? []) w(entry);
  }

  async deregister(entry: HeldEntry): Promise<boolean> {
    const cur = this.entries.get(entry.agent);
    if (!cur) return false;
    if (cur.hostId !== entry.hostId || cur.epoch !== entry.epoch) {
      throw new FerryError('FERRY_ERR_NOT_HOLDER', `${entry.agent} is registered by host ${cur.hostId} at epoch ${cur.epoch}, not by ${entry.hostId} at ${entry.epoch}`);
    }
    this.entries.delete(entry.agent);
    return true;
  }

  async lookup(agent: AgentId): Promise<LocationEntry | undefined> {
    return this.entries.get(agent);
  }

  watch(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined> {
    const cur = this.entries.get(agent);
    if ((cur && cur.epoch > newerThan) || waitMs <= 0) return Promise.resolve(cur);
    return new Promise((resolve) => {
      let set = this.watchers.get(agent);
      if (!set) this.watchers.set(agent, (set = new Set()));
      const done = (e: LocationEntry | undefined): void => {
        timer.cancel();
        set!.delete(onEntry);
        if (set!.size === 0) this.watchers.delete(agent);
        resolve(e);
      };
      const onEntry = (e: LocationEntry): void => {
        if (e.epoch > newerThan) done(e);
      };
      set.add(onEntry);
      const timer = this.clock.setTimer(waitMs, () => done(this.entries.get(agent)));
    });
  }

  /** Number of registered agents. */
  get size(): number {
    return this.entries.size;
  }
}
