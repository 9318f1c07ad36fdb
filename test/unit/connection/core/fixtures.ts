/**
 * The connection core the unit tests of `connection/core/` start from: a client's end of a plain
 * connection in `state`, with fresh 64 KiB buffers and a 30 s reconnect limit. `extra` overrides
 * any field (role, keys, connection id, random…).
 */
import { ConnectionCore, type CoreCommand, type CoreInit } from '../../../../src/connection/core/index.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import type { State } from '../../../../src/connection/state-machine.js';
import type { AgentId } from '../../../../src/identity/index.js';

/** A core in `state`; `random` gives bytes of 7 unless `extra` names another source. */
export function coreIn(state: State, extra: Partial<CoreInit> = {}): ConnectionCore {
  return new ConnectionCore({
    state,
    role: 'client',
    localAgent: 'a'.repeat(32) as AgentId,
    peerAgent: 'b'.repeat(32) as AgentId,
    connectionId: Buffer.alloc(16, 1),
    secure: false,
    peer: { ip: '127.0.0.1', controlPort: 1000, redirectorPort: 1001, epoch: 0 },
    send: new SendBuffer(1 << 16),
    recv: new ReceiveBuffer(1 << 16),
    reconnectLimitMs: 30_000,
    random: (n) => Buffer.alloc(n, 7),
    ...extra,
  });
}

/** A source of distinct random fills (`first`, `first + 1`, …): a test can tell which challenge a message carries. */
export function countingRandom(first = 1): (n: number) => Buffer {
  let fill = first - 1;
  return (n) => Buffer.alloc(n, ++fill);
}

/** Every command the core has for us at `now`, in order (what the adapter's drive loop carries out). */
export function pollAll(c: ConnectionCore, now = 0): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let x = c.poll(now); x; x = c.poll(now)) out.push(x);
  return out;
}
