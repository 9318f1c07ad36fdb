/**
 * Test harness: hosts on loopback sharing one in-process location table, a byte-stream
 * checker that follows a connection across moves (old socket objects end, new ones continue), a
 * connected pair of agents, and a test-only reach into an endpoint's data sockets.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Host, type HostOptions } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { isFerryError, type ErrorCode } from '../../src/util/index.js';
import type { AgentSocket, DataSocket, DataSocketHandlers, Endpoint } from '../../src/connection/index.js';

/** Start `n` hosts on 127.0.0.1 sharing one location table. */
export async function startHosts(n: number, opts: Partial<HostOptions> = {}): Promise<{ hosts: Host[]; location: MemoryLocationTable; close(): Promise<void> }> {
  const location = new MemoryLocationTable();
  const hosts: Host[] = [];
  for (let i = 0; i < n; i++) hosts.push(await Host.start({ location, name: `h${i}`, ...opts }));
  return { hosts, location, close: async () => void (await Promise.all(hosts.map((h) => h.close()))) };
}

/**
 * Hosts started one by one on a shared location service and logger, each with its own options
 * (a short reconnect limit, a tapped control socket), remembered in `hosts` so the test closes
 * them all.
 */
export function hostStarter(location: HostOptions['location'], logger: HostOptions['logger']): { hosts: Host[]; start(name: string, opts?: Partial<HostOptions>): Promise<Host> } {
  const hosts: Host[] = [];
  return {
    hosts,
    start: async (name, opts = {}) => {
      const h = await Host.start({ location, name, logger, ...opts });
      hosts.push(h);
      return h;
    },
  };
}

/** Deterministic test bytes: the stream of (seed, offset) so any slice can be checked. */
export function pattern(seed: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  // Byte x is (x * 31 + seed * 17 + (x >>> 8) * 7 + (x >>> 16)) & 0xff. Within one aligned run of
  // 256 offsets only x * 31 changes, and its low byte is that of (x & 0xff) * 31: each run is a
  // slice of one of 256 fixed rows, copied rather than computed byte by byte (the simulator
  // writes and checks every byte it moves with this). The same bytes as the formula wherever the
  // integer arithmetic is exact; elsewhere, the formula itself.
  if (!(Number.isSafeInteger(seed * 17) && Number.isSafeInteger(offset) && offset >= 0 && offset + length <= 2 ** 32)) {
    for (let i = 0; i < length; i++) {
      const x = offset + i;
      b[i] = (x * 31 + seed * 17 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
    }
    return b;
  }
  const rows = patternRows();
  const s = (seed * 17) % 256;
  for (let i = 0; i < length; ) {
    const x = offset + i;
    const j = x & 0xff;
    const n = Math.min(256 - j, length - i);
    const c = (s + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
    rows.copy(b, i, c * 256 + j, c * 256 + j + n);
    i += n;
  }
  return b;
}

let rowTable: Buffer | undefined;
/** Row c holds (j * 31 + c) & 0xff for j = 0..255 (built once). */
function patternRows(): Buffer {
  if (!rowTable) {
    rowTable = Buffer.allocUnsafe(256 * 256);
    for (let c = 0; c < 256; c++) for (let j = 0; j < 256; j++) rowTable[c * 256 + j] = (j * 31 + c) & 0xff;
  }
  return rowTable;
}

/**
 * Whether `chunks`, taken in order, are exactly the first `length` bytes of the stream of `seed`
 * ({@link pattern}): `Buffer.concat(chunks).equals(pattern(seed, 0, length))`, without joining
 * the chunks or building the whole expected stream.
 */
export function isPattern(chunks: readonly Buffer[], seed: number, length: number): boolean {
  let at = 0;
  for (const c of chunks) {
    if (at + c.length > length || !c.equals(pattern(seed, at, c.length))) return false;
    at += c.length;
  }
  return at === length;
}

/**
 * Collects what a side reads, across the socket objects that carry the connection over time, and
 * the codes of the 'error' events they emit (for the test to judge).
 */
export class Reader {
  readonly chunks: Buffer[] = [];
  readonly errors: string[] = [];
  length = 0;
  attach(sock: AgentSocket): void {
    sock.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.length += c.length;
    });
    sock.on('error', (e: unknown) => this.errors.push(codeOf(e)));
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

/** A new agent on hosts[0] connected to a new one on hosts[1] (listener closed after the accept): both ends, ESTABLISHED. */
export async function connectedPair(net: { hosts: Host[] }): Promise<[AgentSocket, AgentSocket]> {
  const [h0, h1] = net.hosts as [Host, Host];
  const from = (await h0.addAgent()).id;
  const to = (await h1.addAgent()).id;
  const server = h1.listen(to);
  const acc = server.accept();
  const c = await h0.connect(from, to);
  const s = await acc;
  server.close();
  await waitFor(() => c.state === 'ESTABLISHED' && s.state === 'ESTABLISHED', 5000, 'established');
  return [c, s];
}

/** An endpoint's attached data socket and the one it keeps after a suspend (test-only reach into the internals). */
export function dataSocketsOf(ep: Endpoint): { data: DataSocket | undefined; kept: DataSocket | undefined } {
  const inside = ep as unknown as { core: { slots: { data: number | undefined; kept: number | undefined } }; sockets: { socket(slot: number | undefined): DataSocket | undefined } };
  return { data: inside.sockets.socket(inside.core.slots.data), kept: inside.sockets.socket(inside.core.slots.kept) };
}

/** Assert `ds` is there (`what`), then make its frames and close reach the endpoint `ms` late, as when its TCP events queue behind UDP ones. */
export function delayDataSocket(ds: DataSocket | undefined, ms: number, what = 'a data socket is there'): void {
  assert.ok(ds, what);
  const h = (ds as unknown as { handlers: DataSocketHandlers }).handlers;
  ds.setHandlers({
    frame: (f) => void setTimeout(() => h.frame(f), ms),
    close: (e) => void setTimeout(() => h.close(e), ms),
    writable: () => h.writable(),
  });
}

/** `p`, or a rejection naming `what` after `ms` (fail, not hang). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The code a rejection carries (its text when it is not a FerryError). */
export function codeOf(err: unknown): string {
  return isFerryError(err) ? err.code : String(err);
}

/**
 * Await `p`, which may resolve or reject only with a code `allowed` admits: returns 'ok' or that
 * code. Any other rejection fails, naming `what`, the code and the message. For operations whose
 * failure a test must judge instead of swallowing it.
 */
export async function settledAs(p: Promise<unknown>, what: string, allowed: readonly ErrorCode[] | ((code: string) => boolean) = []): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    const code = codeOf(err);
    if (typeof allowed === 'function' ? allowed(code) : (allowed as readonly string[]).includes(code)) return code;
    throw new Error(`${what} rejected with ${code}: ${(err as Error)?.message ?? ''}`, { cause: err });
  }
}

/** Watch `p` without awaiting it: the result says 'pending' until it settles, then 'ok' or the rejection's code. */
export function outcomeOf(p: Promise<unknown>): () => string {
  let now = 'pending';
  p.then(
    () => (now = 'ok'),
    (err: unknown) => (now = codeOf(err)),
  );
  return () => now;
}
