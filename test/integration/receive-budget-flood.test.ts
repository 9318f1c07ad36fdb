// Scenario: from one address (127.0.0.2), 1,000 agents with fresh keys each open a connection to
// an agent of a victim host that listens and never accepts, and push 300 KiB each (293 MiB in
// all). The victim runs in a process of its own so its memory is read alone, after full GCs.
// Its receive budget bounds what that address can make it hold (RECEIVE_BUDGET_PER_SOURCE_BYTES):
// windows stop growing, the pushers wait (nothing is lost or refused below the floor), and
// every connection still opens. Meanwhile an honest connection from 127.0.0.1 to another agent
// there streams both ways. Once the 1,000 abort, the victim gives the memory back. Twice: the
// victim agent a host-level one whose connections queue in its server socket, then a confined
// agent whose runtime reads ahead for its worker (that read-ahead is charged too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { isFerryError, limit } from '../../src/util/index.js';
import { waitFor } from '../helpers/harness.js';

const CONNECTIONS = 1000;
const PUSH = 300 * 1024;
/**
 * What one connection may cost the victim besides buffered bytes: the idle figure is ~13 KiB
 * (docs/BENCHMARKS.md, scale); this allows for its frame decoder, cipher objects and socket.
 */
const STATE_PER_CONNECTION = 64 * 1024;
/** What the victim may keep after every connection is gone (caches of verified keys and chains). */
const KEPT_AFTER = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

interface Mem {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}
interface State {
  endpoints: number;
  charged: number;
  fromAttacker: number;
  limitRefusals: number;
}

class Victim {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly proc: ChildProcess;
  constructor(mode: 'host' | 'runtime') {
    this.proc = fork(fileURLToPath(new URL('../fixtures/processes/receive-budget-victim.js', import.meta.url)), [mode], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m: { id: number; value?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error));
      else w?.resolve(m.value);
    });
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`victim exited with ${code}`));
      this.waiting.clear();
    });
  }
  call<T>(cmd: string): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd });
    });
  }
}

const used = (m: Mem): number => m.heapUsed + m.external;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

async function flood(mode: 'host' | 'runtime'): Promise<void> {
  const victim = new Victim(mode);
  const location = new MemoryLocationTable();
  let attacker: Host | undefined;
  let honest: Host | undefined;
  try {
    const t = await victim.call<{ agent: AgentId; echo: AgentId; hostId: string; controlPort: number; redirectorPort: number }>('start');
    for (const agent of [t.agent, t.echo]) await location.register({ agent, hostId: t.hostId, ip: '127.0.0.1', controlPort: t.controlPort, redirectorPort: t.redirectorPort, epoch: 1 });
    attacker = await Host.start({ location, ip: '127.0.0.2', name: 'attacker' });
    honest = await Host.start({ location, name: 'honest' });
    // A confined agent starts listening a moment after its launch.
    const first = await attacker.addAgent();
    let notListening = 0;
    for (let i = 0; ; i++) {
      try {
        await (await attacker.connect(first.id, t.agent)).close();
        break;
      } catch (err) {
        // Not listening yet is the only answer to wait out.
        if (i > 200 || !isFerryError(err, 'FERRY_ERR_NOT_LISTENING')) throw err;
        notListening++;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    console.log(`# ${mode}: ${notListening} connects refused NOT_LISTENING before the agent listened`);
    const before = await victim.call<Mem>('mem');

    // 1,000 fresh keys, one connection each, each pushing 300 KiB that nobody reads.
    const data = Buffer.alloc(PUSH, 0x5a);
    const socks: AgentSocket[] = [];
    for (let i = 0; i < CONNECTIONS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CONNECTIONS - i) }, async () => {
          const me = await attacker!.addAgent();
          const s = await attacker!.connect(me.id, t.agent);
          s.on('error', () => {});
          s.write(data);
          return s;
        }),
      );
      socks.push(...batch);
    }
    // Settled: each connection used all the window it was given (or delivered everything).
    const filled = (): boolean => socks.every((s) => s.endpoint.send.acked >= Math.min(PUSH, s.endpoint.send.peerLimit));
    await waitFor(filled, 30_000, 'the pushers to fill the windows they were given');
    const delivered = socks.reduce((n, s) => n + s.endpoint.send.acked, 0);

    // The victim holds no more than the attacker's address may make it hold.
    const during = await victim.call<Mem>('mem');
    const state = await victim.call<State>('state');
    const perSource = limit('RECEIVE_BUDGET_PER_SOURCE_BYTES');
    const bound = perSource + CONNECTIONS * STATE_PER_CONNECTION;
    const grew = used(during) - used(before);
    console.log(`# ${mode}: victim heap+external: before ${mib(used(before))}, with ${CONNECTIONS} pushers ${mib(used(during))} (+${mib(grew)}, bound ${mib(bound)}); rss ${mib(before.rss)} -> ${mib(during.rss)}; delivered ${mib(delivered)} of ${mib(CONNECTIONS * PUSH)} pushed; charged to 127.0.0.2: ${mib(state.fromAttacker)}`);
    assert.ok(delivered <= perSource, `the victim accepted ${mib(delivered)} from one address, above RECEIVE_BUDGET_PER_SOURCE_BYTES`);
    assert.ok(delivered >= CONNECTIONS * limit('RECEIVE_WINDOW_FLOOR_BYTES'), 'every connection could send its floor');
    assert.ok(state.fromAttacker <= perSource, `charged to the attacker's address: ${mib(state.fromAttacker)}`);
    // Nothing was read by agent code: every byte accepted is still held somewhere in the victim
    // (connection, stream buffer, the runtime's read-ahead and the worker's copy), and charged.
    assert.ok(delivered <= state.fromAttacker, `accepted ${mib(delivered)} but charged only ${mib(state.fromAttacker)}: bytes held outside the budget`);
    assert.ok(grew <= bound, `victim memory grew ${mib(grew)}, above ${mib(bound)} (the per-source budget and ${STATE_PER_CONNECTION / 1024} KiB of state per connection)`);
    assert.equal(state.limitRefusals, 0, 'no open was refused: the floors fit');

    // An honest connection from another address to another agent there streams both ways.
    const me = await honest.addAgent();
    const s = await honest.connect(me.id, t.echo);
    const got: Buffer[] = [];
    let gotBytes = 0;
    s.on('data', (c: Buffer) => {
      got.push(c);
      gotBytes += c.length;
    });
    const honestBytes = 2 * 1024 * 1024;
    const sent = Buffer.alloc(honestBytes, 0x33);
    s.write(sent);
    await waitFor(() => gotBytes >= honestBytes, 15_000, 'the honest echo');
    assert.ok(Buffer.concat(got).equals(sent), 'the honest stream came back exactly');
    s.destroy();

    // The 1,000 abort; the victim drops them and gives their memory back.
    for (const x of socks) x.destroy();
    let last: State | undefined;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      last = await victim.call<State>('state');
      if (last.endpoints === 0 && last.charged === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(last?.endpoints, 0, 'every connection is gone from the victim');
    assert.equal(last?.charged, 0, 'the receive budget is all given back');
    const after = await victim.call<Mem>('mem');
    console.log(`# ${mode}: victim heap+external after they closed: ${mib(used(after))} (+${mib(used(after) - used(before))} over before, bound ${mib(KEPT_AFTER)}); rss ${mib(after.rss)}`);
    assert.ok(used(after) - used(before) <= KEPT_AFTER, `the victim kept ${mib(used(after) - used(before))} after every connection closed`);
  } finally {
    await attacker?.close();
    await honest?.close();
    await victim.call('exit').catch(() => {});
    victim.proc.kill();
  }
}

test('1,000 connections from fresh keys pushing 300 KiB each to a host-level agent stay within the receive budget, and the memory comes back after they close', () => flood('host'));

test('the same to a confined agent that never accepts: the runtime\'s read-ahead is charged too', () => flood('runtime'));
