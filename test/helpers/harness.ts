/**
 * Test harness: hosts on loopback sharing one in-process location table, and a byte-stream
 * checker that follows a connection across moves (old socket objects end, new ones continue).
 */
import { createHash } from 'node:crypto';
import { Host, type HostOptions } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import type { AgentSocket } from '../../src/connection/index.js';

/** Start `n` hosts on 127.0.0.1 sharing one location table. */
export async function startHosts(n: number, opts: Partial<HostOptions> = {}): Promise<{ hosts: Host[]; location: MemoryLocationTable; close(): Promise<void> }> {
  const location = new MemoryLocationTable();
  const hosts: Host[] = [];
  for (let i = 0; i < n; i++) hosts.push(await Host.start({ location, name: `h${i}`, ...opts }));
  return { hosts, location, close: async () => void (await Promise.all(hosts.map((h) => h.close()))) };
}

/** Deterministic test bytes: the stream of (seed, offset) so any slice can be checked. */
export function pattern(seed: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    b[i] = (x * 31 + seed * 17 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
  }
  return b;
}

/** Collects what a side reads, across the socket objects that carry the connection over time. */
export class Reader {
  readonly chunks: Buffer[] = [];
  length = 0;
  attach(sock: AgentSocket): void {
    sock.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.length += c.length;
    });
    sock.on('error', () => {});
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  digest(): string {
    return createHash('sha256').update(this.bytes()).digest('hex');
  }
}

/** Resolve when `pred` holds, polling every few ms; reject after `ms`. */
export async function waitFor(pred: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
