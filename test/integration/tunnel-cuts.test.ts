// Scenario: `ferry tunnel serve` and `ferry tunnel connect` as processes (sealed), a TCP target and
// TCP clients in this process. The data path between the two tunnel hosts is cut every 250 ms
// (every Ferry data socket reset, test/helpers/tunnel.ts) while: 10 idle tunnelled connections
// carry nothing, one client half-closes first and then receives 2 MiB, one target half-closes
// first and then receives 2 MiB, and two connections stream 1 MiB each way. No TCP client or
// target sees an error, every byte arrives once (sha256 of each direction), and after the cuts
// the idle connections still carry a round of bytes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Processes } from '../helpers/processes.js';
import { Cutter, ShaTarget, exchange, startTunnelPair, taggedClient, type Exchange, type ExchangeProgress } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/harness.js';

const procs = new Processes();
let cutter: Cutter | undefined;
after(() => {
  cutter?.halt();
  return procs.killAll();
});

const MiB = 1024 * 1024;
const IDLE = 10;

// Bounded: a tunnelled connection that never finishes must fail the run, not hang it (seen once).
test('tunnel: half-close both ways, streams and idle connections across a data path cut every 250 ms', { timeout: 240_000 }, async () => {
  // What the target does on its i-th connection: [bytes it sends, whether it sends FIN before the client's].
  const plan: Array<{ client: [number, boolean]; target: [number, boolean] }> = [
    ...Array.from({ length: IDLE }, () => ({ client: [64 * 1024, true] as [number, boolean], target: [0, false] as [number, boolean] })),
    { client: [0, true], target: [2 * MiB, false] },
    { client: [2 * MiB, false], target: [0, true] },
    { client: [MiB, true], target: [MiB, true] },
    { client: [MiB, true], target: [MiB, true] },
  ];
  const target = await ShaTarget.start((i) => ({ bytes: plan[i]!.target[0], endFirst: plan[i]!.target[1] }));
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`);
  const errors: Error[] = [];
  const open = async (i: number): Promise<Socket> => {
    const s = taggedClient(pair.listenPort, i, errors);
    // An open under cuts is retried by the tunnel for up to RECONNECT_LIMIT_MS (30 s); wait that out.
    await waitFor(() => target.results.has(i), 40_000, `target connection ${i}`).catch((err: Error) => {
      throw new Error(`${err.message}; client errors: ${errors.map((e) => e.message).join(', ')}; connect end: ${pair.connect.err().slice(-1500)}; serve end: ${pair.serve.err().slice(-1500)}`);
    });
    return s;
  };
  // Where every exchange stands, so that a stuck one fails with what it had done, not a bare timeout.
  const clientProgress = new Map<number, ExchangeProgress>();
  const track = (i: number): ExchangeProgress => {
    const p: ExchangeProgress = {};
    clientProgress.set(i, p);
    return p;
  };
  const within = async <T>(what: string, p: Promise<T>, ms: number): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const rows = plan.map((_, i) => `${i}: client ${JSON.stringify(clientProgress.get(i) ?? null)} target ${JSON.stringify(target.progress.get(i) ?? null)}`);
        reject(new Error(`${what} not done after ${ms} ms\n${rows.join('\n')}\nconnect end: ${pair.connect.err().slice(-3000)}\nserve end: ${pair.serve.err().slice(-3000)}`));
      }, ms);
    });
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  const idle: Socket[] = [];
  for (let i = 0; i < IDLE; i++) idle.push(await open(i));

  const cut = (cutter = new Cutter(pair.redirectorPorts, 250).start());
  const active: Promise<Exchange>[] = [];
  for (let i = IDLE; i < plan.length; i++) {
    const s = await open(i);
    active.push(exchange(s, plan[i]!.client[0], plan[i]!.client[1], errors, track(i)));
  }
  const clientSide = await within('the active exchanges', Promise.all(active), 90_000);
  // The idle connections sat through cuts without a byte; now each carries 64 KiB and closes.
  await waitFor(() => cut.cuts >= 6, 10_000, 'six cuts');
  const idleSide = await within('the idle exchanges', Promise.all(idle.map((s, i) => exchange(s, 64 * 1024, true, errors, track(i)))), 40_000);
  const { cuts, killed } = await cut.stop();
  const targetSide = await within('the target side', Promise.all(plan.map((_, i) => target.results.get(i)!)), 10_000);

  assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'no TCP client saw an error');
  assert.deepEqual(target.errors.map((e) => (e as NodeJS.ErrnoException).code), [], 'the target saw no error');
  const clients = [...idleSide, ...clientSide];
  for (let i = 0; i < plan.length; i++) {
    assert.equal(clients[i]!.received, plan[i]!.target[0], `connection ${i}: client received every byte once`);
    assert.equal(clients[i]!.receivedSha, targetSide[i]!.sentSha, `connection ${i}: target -> client sha256`);
    assert.equal(targetSide[i]!.received, plan[i]!.client[0], `connection ${i}: target received every byte once`);
    assert.equal(targetSide[i]!.receivedSha, clients[i]!.sentSha, `connection ${i}: client -> target sha256`);
  }
  // The cuts really hit the data path (each one resets the Ferry data sockets alive then).
  assert.ok(cuts >= 6 && killed >= cuts, `cuts=${cuts} sockets reset=${killed}`);
  console.log(`# ${cuts} cuts, ${killed} data sockets reset`);
  await pair.close();
  await target.close();
});
