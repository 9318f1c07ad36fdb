// Scenario: agents migrate host to host over the authenticated migration channel (five steps)
// while streaming. Any failure before the destination commits rolls back: the agent runs on at
// the source, never on both hosts, never on none, and its streams stay exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host, type HostOptions } from '../../src/host/index.js';
import type { AgentId, HostId } from '../../src/identity/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { isFerryError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { pattern, Reader, waitFor } from '../helpers/harness.js';

interface World {
  hosts: Host[];
  location: MemoryLocationTable;
  a: AgentId;
  b: AgentId;
  sa: AgentSocket;
  sb: AgentSocket;
  ra: Reader;
  rb: Reader;
  written: { a: number; b: number };
  close(): Promise<void>;
}

async function world(opts: (i: number) => Partial<HostOptions> = () => ({})): Promise<World> {
  const location = new MemoryLocationTable();
  const hosts: Host[] = [];
  for (let i = 0; i < 3; i++) hosts.push(await Host.start({ location, name: `h${i}`, ...opts(i) }));
  const a = (await hosts[0]!.addAgent()).id;
  const b = (await hosts[1]!.addAgent()).id;
  const acc = hosts[1]!.listen(b).accept();
  const sa = await hosts[0]!.connect(a, b);
  const sb = await acc;
  const ra = new Reader();
  const rb = new Reader();
  ra.attach(sa);
  rb.attach(sb);
  return { hosts, location, a, b, sa, sb, ra, rb, written: { a: 0, b: 0 }, close: async () => void (await Promise.all(hosts.map((h) => h.close()))) };
}

function stream(w: World, n: number): void {
  w.sa.write(pattern(1, w.written.a, n));
  w.written.a += n;
  w.sb.write(pattern(2, w.written.b, n));
  w.written.b += n;
}

async function verify(w: World): Promise<void> {
  await waitFor(() => w.rb.length === w.written.a && w.ra.length === w.written.b, 10_000, 'streams delivered');
  assert.ok(w.rb.bytes().equals(pattern(1, 0, w.written.a)), 'A -> B exactly once');
  assert.ok(w.ra.bytes().equals(pattern(2, 0, w.written.b)), 'B -> A exactly once');
}

function target(h: Host): { ip: string; redirectorPort: number; hostId: HostId } {
  return { ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id };
}

/** After a migration attempt, adopt A's socket wherever A now lives (exactly one host). */
function adoptA(w: World): Host {
  const holders = w.hosts.filter((h) => h.agentIds().includes(w.a));
  assert.equal(holders.length, 1, `agent A lives on exactly one host (found ${holders.length})`);
  const sock = holders[0]!.socketsOf(w.a)[0]!;
  if (sock !== w.sa) {
    w.sa = sock;
    w.ra.attach(sock);
  }
  return holders[0]!;
}

test('migration over the authenticated channel, while streaming both ways', async () => {
  const w = await world();
  try {
    stream(w, 200_000);
    await w.hosts[0]!.migrateAgent(w.a, target(w.hosts[2]!));
    assert.equal(adoptA(w), w.hosts[2]);
    assert.equal((await w.location.lookup(w.a))?.hostId, w.hosts[2]!.id);
    stream(w, 100_000);
    await verify(w);
  } finally {
    await w.close();
  }
});

for (const side of ['source', 'destination'] as const) {
  for (const step of [MigrationStep.DELEGATE, MigrationStep.PEERS, MigrationStep.CONNECTION_IDS, MigrationStep.CONFIRM, MigrationStep.CHECKPOINT_PART]) {
    test(`channel cut at step ${step} (${side} side): rolled back, the agent runs on at the source`, async () => {
      const fault = (s: typeof side, st: number): 'cut' | undefined => (s === side && st === step ? 'cut' : undefined);
      const w = await world(() => ({ migrationFault: fault }));
      try {
        stream(w, 100_000);
        const before = (await w.location.lookup(w.a))!.epoch;
        const sock = w.sa;
        await assert.rejects(w.hosts[0]!.migrateAgent(w.a, target(w.hosts[2]!)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK'));
        assert.equal(adoptA(w), w.hosts[0], 'still at the source');
        const loc = (await w.location.lookup(w.a))!;
        assert.equal(loc.hostId, w.hosts[0]!.id);
        // The source detaches once it has the destination's answer (step 3): a cut before that
        // (the destination cuts right after sending its answer) never paused the agent.
        if (side === 'source' ? step <= MigrationStep.CONNECTION_IDS : step < MigrationStep.CONNECTION_IDS) {
          assert.equal(w.sa, sock, 'the same socket: never detached');
          assert.equal(loc.epoch, before, 'no rollback was needed');
        } else {
          assert.notEqual(w.sa, sock, 'detached and re-attached');
          assert.ok(loc.epoch > before, 'the rollback registered a newer epoch');
        }
        stream(w, 100_000);
        await verify(w);
      } finally {
        await w.close();
      }
    });
  }
}

test('destination commits but its answer is lost: the source learns it from the epoch', async () => {
  const w = await world(() => ({ migrationFault: (s, st) => (s === 'destination' && st === MigrationStep.COMMITTED ? 'cut' : undefined) }));
  try {
    stream(w, 100_000);
    await w.hosts[0]!.migrateAgent(w.a, target(w.hosts[2]!));
    assert.equal(adoptA(w), w.hosts[2], 'the agent lives at the destination only');
    stream(w, 50_000);
    await verify(w);
  } finally {
    await w.close();
  }
});

test('destination down or not the host we asked for: rolled back', async () => {
  const w = await world();
  try {
    stream(w, 50_000);
    await assert.rejects(w.hosts[0]!.migrateAgent(w.a, { ...target(w.hosts[2]!), hostId: w.hosts[1]!.id }), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_IDENTITY_MISMATCH'));
    assert.equal(adoptA(w), w.hosts[0]);
    const dead = target(w.hosts[2]!);
    await w.hosts[2]!.close();
    await assert.rejects(w.hosts[0]!.migrateAgent(w.a, dead), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK'));
    assert.equal(adoptA(w), w.hosts[0]);
    stream(w, 50_000);
    await verify(w);
  } finally {
    await w.close();
  }
});

test('the source is killed right after the commit: the agent lives on at the destination', async () => {
  const w = await world();
  try {
    stream(w, 100_000);
    await w.hosts[0]!.migrateAgent(w.a, target(w.hosts[2]!));
    await w.hosts[0]!.close();
    assert.equal(adoptA(w), w.hosts[2]);
    stream(w, 100_000);
    await verify(w);
  } finally {
    await w.close();
  }
});
