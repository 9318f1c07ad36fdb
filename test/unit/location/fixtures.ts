/**
 * Shared fixtures of the location tests: deterministic keys, chains and registrations, and an
 * error matcher. Wall time is a fixed constant; nothing here reads a clock.
 */
import { Identity, extendChain, freshChain, type DelegationChain } from '../../../src/identity/index.js';
import { isFerryError, type ErrorCode } from '../../../src/util/index.js';
import { registerSigned, type Register } from '../../../src/wire/index.js';
import type { LocationEntry } from '../../../src/location/index.js';

/** A predicate for `assert.throws`/`rejects`: a FerryError with `code`. */
export const ferry = (code: ErrorCode) => (err: unknown): boolean => isFerryError(err, code);

/** A fixed wall time (Unix ms). */
export const T0 = 1_700_000_000_000;
export const HOUR = 3_600_000;

const seed = (n: number): Buffer => Buffer.alloc(32, n);
export const agent = Identity.fromSeed(seed(1));
export const otherAgent = Identity.fromSeed(seed(2));
export const mallory = Identity.fromSeed(seed(3));
export const hosts = Array.from({ length: 12 }, (_, i) => Identity.fromSeed(seed(10 + i)));
export const host = (i: number): Identity => hosts[i]!;

/**
 * A chain of `n` links: the agent delegates to host 0 at epoch 1, then host i-1 to host i a
 * minute later each (epoch i+1). Its subject is host(n-1), at epoch n.
 */
export function chainOf(n: number, t0 = T0, who: Identity = agent): DelegationChain {
  let chain = freshChain(who, host(0).publicRaw, 1, t0, HOUR);
  for (let i = 1; i < n; i++) chain = extendChain(chain, host(i - 1), host(i).publicRaw, i + 1, HOUR, t0 + i * 60_000, { maxLinks: Math.max(n, 8) });
  return chain;
}

/** An unsigned registration of `agent` at host `h`, epoch `epoch`, with `chain`. */
export function registration(chain: DelegationChain | undefined, h: Identity, epoch: number, ip = '127.0.0.1'): Omit<Register, 'signature'> {
  return {
    agent: agent.id,
    hostId: h.id,
    ip,
    controlPort: 4000 + epoch,
    redirectorPort: 5000 + epoch,
    epoch,
    ...(chain ? { agentKey: Buffer.from(agent.publicRaw), chain } : {}),
  };
}

/** Sign a registration as host `signer` does. */
export function signed(reg: Omit<Register, 'signature'>, signer: Identity): Register {
  return { ...reg, signature: signer.sign(registerSigned(reg)) };
}

/** A proven REGISTER: a fresh 1-link chain from the agent to host `h` at `epoch`, signed by `h`. */
export function provenRegister(h: Identity, epoch: number, now = T0): Register {
  return signed(registration(freshChain(agent, h.publicRaw, epoch, now, HOUR), h, epoch), h);
}

/** The LocationEntry form of a proven registration (what a host passes to `register`). */
export function provenEntry(h: Identity, epoch: number, now = T0, who: Identity = agent): LocationEntry {
  return {
    agent: who.id,
    hostId: h.id,
    ip: '127.0.0.1',
    controlPort: 4000 + epoch,
    redirectorPort: 5000 + epoch,
    epoch,
    agentKey: who.publicRaw,
    chain: freshChain(who, h.publicRaw, epoch, now, HOUR),
  };
}
