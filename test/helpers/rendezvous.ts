/**
 * Test support for tests that play hosts against real `ferry rendezvous` processes: start nodes
 * (over one store), RendezvousClients signing as host keys, and location entries with a fresh
 * delegation chain. Shared by the forged-registration and DEREGISTER tests.
 */
import { Identity, freshChain } from '../../src/identity/index.js';
import { RendezvousClient, type LocationEntry } from '../../src/location/index.js';
import { isFerryError, type ErrorCode } from '../../src/util/index.js';
import type { Proc, Processes } from './processes.js';

/** The ready line of `ferry rendezvous`: its address and port. */
export const RENDEZVOUS_READY = /ferry rendezvous ready on (\S+):(\d+) /;

/** Start `n` `ferry rendezvous` nodes (over `store`, e.g. a redis:// URL; default memory). */
export async function startRendezvousNodes(procs: Processes, n: number, store?: string): Promise<{ nodes: Proc[]; addresses: string[] }> {
  const nodes: Proc[] = [];
  for (let i = 0; i < n; i++) nodes.push(await procs.start(['rendezvous', '--port', '0', ...(store ? ['--store', store] : [])], RENDEZVOUS_READY));
  return { nodes, addresses: nodes.map((p) => `${p.ready[1]}:${p.ready[2]}`) };
}

/** For `assert.rejects`: the error is a FerryError with code `c`. */
export const refusedWith =
  (c: ErrorCode) =>
  (err: unknown): boolean =>
    isFerryError(err, c);

/** RendezvousClients without a lookup cache, each signing as the host key it is given; closed together. */
export class RendezvousClients {
  private readonly clients: RendezvousClient[] = [];

  /** A client of `server` (signing as `signer`, a host key, if given). */
  async via(server: string, signer?: Identity): Promise<RendezvousClient> {
    const c = await RendezvousClient.connect({ server, cacheTtlMs: 0, ...(signer ? { signer } : {}) });
    this.clients.push(c);
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}

/**
 * `agent` registered by host `host` at `epoch` on 127.0.0.1 (redirector 5000), with a fresh chain
 * signed by `chainKey` (default the agent's: a forged one otherwise) valid from `at`.
 */
export function locationEntry(agent: Identity, host: Identity, epoch: number, opts: { controlPort?: number; chainKey?: Identity; at?: number } = {}): LocationEntry {
  return {
    agent: agent.id,
    hostId: host.id,
    ip: '127.0.0.1',
    controlPort: opts.controlPort ?? 4000,
    redirectorPort: 5000,
    epoch,
    agentKey: agent.publicRaw,
    chain: freshChain(opts.chainKey ?? agent, host.publicRaw, epoch, opts.at ?? Date.now()),
  };
}
