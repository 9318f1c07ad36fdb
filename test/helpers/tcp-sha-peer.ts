/**
 * A paced, checksummed TCP peer run as its own process (a test starts it inside a network
 * namespace, where the test process cannot listen or dial). Either end of a tunnelled TCP
 * connection:
 *
 *   node tcp-sha-peer.js target --bytes N [--chunk B --every MS]   listen on 127.0.0.1:0, print
 *       "listening PORT"; on each connection send N bytes and read to the client's FIN
 *   node tcp-sha-peer.js client --port P --bytes N [--chunk B --every MS]   connect to
 *       127.0.0.1:P, send N bytes, then FIN, and read to the target's FIN
 *
 * Bytes are random, written `chunk` bytes every `every` ms (respecting backpressure), so that a
 * stall of the path shows as a gap in arrivals. Each side prints "progress sent=S received=R"
 * every 100 ms, and per connection one line "result {json}": checksums of both directions, bytes
 * received, socket errors, and the arrival gaps longer than 50 ms as [start, end] wall-clock ms.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** What one side of a connection reports. */
export interface PeerResult {
  sentSha: string;
  receivedSha: string;
  sent: number;
  received: number;
  errors: string[];
  /** Arrival gaps over GAP_MS: [last arrival before, first arrival after], Date.now() ms. */
  gaps: Array<[number, number]>;
}

const GAP_MS = 50;

function run(s: Socket, bytes: number, chunk: number, every: number, progress: { sent: number; received: number }): Promise<PeerResult> {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  const r: PeerResult = { sentSha: '', receivedSha: '', sent: 0, received: 0, errors: [], gaps: [] };
  let last = 0;
  let ended = false;
  let wrote = false;
  return new Promise((resolve) => {
    const finish = (): void => {
      if (!ended || !wrote) return;
      r.sentSha = sent.digest('hex');
      r.receivedSha = got.digest('hex');
      resolve(r);
    };
    s.on('data', (c: Buffer) => {
      const now = Date.now();
      if (last > 0 && now - last > GAP_MS) r.gaps.push([last, now]);
      last = now;
      r.received += c.length;
      progress.received += c.length;
      got.update(c);
    });
    s.on('end', () => {
      ended = true;
      finish();
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      r.errors.push(e.code ?? e.message);
      ended = wrote = true;
      finish();
    });
    const tick = (): void => {
      if (r.errors.length > 0) return;
      if (r.sent >= bytes) {
        s.end();
        wrote = true;
        return finish();
      }
      const c = randomBytes(Math.min(chunk, bytes - r.sent));
      r.sent += c.length;
      progress.sent += c.length;
      sent.update(c);
      if (s.write(c)) setTimeout(tick, every);
      else s.once('drain', () => setTimeout(tick, every));
    };
    tick();
  });
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { port: { type: 'string' }, bytes: { type: 'string' }, chunk: { type: 'string', default: '16384' }, every: { type: 'string', default: '5' } },
  });
  const bytes = Number(values.bytes);
  const chunk = Number(values.chunk);
  const every = Number(values.every);
  const progress = { sent: 0, received: 0 };
  const timer = setInterval(() => process.stdout.write(`progress sent=${progress.sent} received=${progress.received} t=${Date.now()}\n`), 100);
  timer.unref();
  const report = (r: PeerResult): void => void process.stdout.write(`result ${JSON.stringify(r)}\n`);
  // The test ends us by closing stdin (or killing us): nothing outlives it.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  if (positionals[0] === 'target') {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => void run(s, bytes, chunk, every, progress).then(report));
    server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
  } else if (positionals[0] === 'client') {
    const s = connect({ host: '127.0.0.1', port: Number(values.port), allowHalfOpen: true, noDelay: true });
    report(await run(s, bytes, chunk, every, progress));
    s.destroy();
  } else {
    throw new Error('usage: tcp-sha-peer target|client …');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void main();
