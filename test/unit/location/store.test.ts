/**
 * MemoryStore (src/location/store.ts): "store if newer" semantics, capacity and deregistration; the snapshot file
 * round-trips every field (chain and key included), is written atomically, coalesced under an
 * injected clock (a burst of changes is one write) and on close; a missing file is an empty
 * directory; a corrupt, foreign, oversized-count or duplicate-agent file and an unwritable path
 * are refused at open with FERRY_ERR_SNAPSHOT_UNREADABLE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, type LocationEntry } from '../../../src/location/index.js';
import { ManualClock, limit } from '../../../src/util/index.js';
import { agent, ferry, host, otherAgent, provenEntry } from './fixtures.js';

async function tmp(): Promise<{ dir: string; file: string; done(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-store-'));
  return { dir, file: join(dir, 'directory.json'), done: () => rm(dir, { recursive: true, force: true }) };
}

const bare = (epoch: number, who = otherAgent.id): LocationEntry => ({ agent: who, hostId: host(1).id, ip: '::1', controlPort: 7, redirectorPort: 8, epoch });

async function all(s: MemoryStore): Promise<LocationEntry[]> {
  const out: LocationEntry[] = [];
  for await (const e of s.list()) out.push(e);
  return out;
}

test('put stores only newer epochs; a full store refuses new agents, not updates', async () => {
  const s = await MemoryStore.open({ maxEntries: 1 });
  assert.deepEqual(await s.put(bare(2)), { stored: true });
  const out = await s.put(bare(2));
  assert.equal(out.stored, false);
  assert.equal(out.stored === false && out.current.epoch, 2);
  assert.equal((await s.put(bare(1))).stored, false);
  assert.equal((await s.put(bare(3))).stored, true);
  await assert.rejects(s.put(provenEntry(host(0), 1)), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
  assert.equal((await s.get(otherAgent.id))?.epoch, 3);
  assert.equal((await all(s)).length, 1);
  // Deregistration drops only the entry at the epoch given, held by the host given.
  assert.equal(await s.remove(otherAgent.id, 2, host(1).id), false);
  assert.equal(await s.remove(otherAgent.id, 3, host(0).id), false, 'another host at the same epoch removes nothing');
  assert.equal(await s.remove(otherAgent.id, 3, host(1).id), true);
  assert.equal(await s.get(otherAgent.id), undefined);
  assert.equal(await s.remove(otherAgent.id, 3, host(1).id), false);
  await s.close();
  await assert.rejects(s.put(bare(9)), ferry('FERRY_ERR_ABORTED'));
});

test('a deregistration leaves a tombstone with its epoch, for LOCATION_TOMBSTONE_TTL_MS, bounded', async () => {
  const clock = new ManualClock();
  const s = await MemoryStore.open({ clock });
  assert.equal(await s.removedEpoch(otherAgent.id), undefined);
  await s.put(bare(3));
  assert.equal(await s.remove(otherAgent.id, 2, host(1).id), false);
  assert.equal(await s.removedEpoch(otherAgent.id), undefined, 'a refused removal leaves none');
  assert.equal(await s.remove(otherAgent.id, 3, host(1).id), true);
  assert.equal(await s.removedEpoch(otherAgent.id), 3);
  clock.advance(limit('LOCATION_TOMBSTONE_TTL_MS') - 1);
  assert.equal(await s.removedEpoch(otherAgent.id), 3);
  clock.advance(1);
  assert.equal(await s.removedEpoch(otherAgent.id), undefined, 'expired: no REGISTER from before it verifies any more');
  await s.close();
  // Bounded: beyond the most, the oldest removal is forgotten first.
  const small = await MemoryStore.open({ clock, maxTombstones: 2 });
  for (const who of [agent, otherAgent, host(5)]) {
    await small.put(provenEntry(host(0), 5, undefined, who));
    assert.equal(await small.remove(who.id, 5, host(0).id), true);
  }
  assert.deepEqual(await Promise.all([agent, otherAgent, host(5)].map((w) => small.removedEpoch(w.id))), [undefined, 5, 5]);
  await small.close();
});

test('snapshot: every field survives a reopen; written atomically (no temporary file left)', async () => {
  const t = await tmp();
  try {
    const s = await MemoryStore.open({ snapshotFile: t.file });
    const proven = provenEntry(host(0), 3);
    await s.put(proven);
    await s.put(bare(5));
    await s.close();
    assert.deepEqual(await readdir(t.dir), ['directory.json']);
    const again = await MemoryStore.open({ snapshotFile: t.file });
    assert.equal(again.size, 2);
    const p = await again.get(agent.id);
    assert.deepEqual({ ...p, agentKey: Buffer.from(p!.agentKey!) }, { ...proven, agentKey: Buffer.from(proven.agentKey!) });
    assert.deepEqual(await again.get(otherAgent.id), bare(5));
    await again.close();
  } finally {
    await t.done();
  }
});

test('snapshot: a burst of changes is one write per interval, and close flushes the rest', async () => {
  const t = await tmp();
  try {
    const clock = new ManualClock();
    const s = await MemoryStore.open({ snapshotFile: t.file, clock, snapshotIntervalMs: 100 });
    const afterOpen = s.writes; // the initial write that proves the path is writable
    for (let e = 1; e <= 20; e++) await s.put(bare(e));
    assert.equal(s.writes, afterOpen, 'nothing written before the interval');
    clock.advance(100);
    await s.flush(); // waits for the write the timer started
    assert.equal(s.writes, afterOpen + 1);
    assert.equal(JSON.parse(await readFile(t.file, 'utf8')).entries[0].epoch, 20);
    await s.put(bare(21));
    await s.close();
    assert.equal(s.writes, afterOpen + 2);
    assert.equal(JSON.parse(await readFile(t.file, 'utf8')).entries[0].epoch, 21);
    assert.equal(clock.pending, 0, 'no timer left behind');
  } finally {
    await t.done();
  }
});

test('snapshot: missing file is empty; corrupt, foreign, duplicate or unwritable refused at open', async () => {
  const t = await tmp();
  try {
    const s = await MemoryStore.open({ snapshotFile: t.file });
    assert.equal(s.size, 0);
    await s.close();
    const bad = ferry('FERRY_ERR_SNAPSHOT_UNREADABLE');
    const doc = (entries: unknown[]): string => JSON.stringify({ format: 'ferry-rendezvous-snapshot', v: 1, entries });
    const good = { agent: agent.id, hostId: host(0).id, ip: '127.0.0.1', controlPort: 1, redirectorPort: 2, epoch: 1 };
    for (const text of [
      'not json',
      JSON.stringify({ format: 'something else', v: 1, entries: [] }),
      JSON.stringify({ format: 'ferry-rendezvous-snapshot', v: 3, entries: [], tombstones: [] }),
      JSON.stringify({ format: 'ferry-rendezvous-snapshot', v: 2, entries: [] }),
      doc([{ ...good, ip: 'example.org' }]),
      doc([{ ...good, controlPort: 0 }]),
      doc([{ ...good, epoch: -1 }]),
      doc([{ ...good, agent: 'short' }]),
      doc([{ ...good, chain: 'zz' }]),
      doc([{ ...good, chain: '0100' }]),
      doc([{ ...good, agentKey: 'abcd' }]),
      doc([good, good]),
    ]) {
      await writeFile(t.file, text);
      await assert.rejects(MemoryStore.open({ snapshotFile: t.file }), bad, text.slice(0, 60));
    }
    await writeFile(t.file, doc([good, { ...good, agent: otherAgent.id }]));
    await assert.rejects(MemoryStore.open({ snapshotFile: t.file, maxEntries: 1 }), bad);
    await assert.rejects(MemoryStore.open({ snapshotFile: join(t.dir, 'no', 'such', 'dir.json') }), bad);
  } finally {
    await t.done();
  }
});

test('snapshot: tombstones survive a reopen with the time they had left; a version 1 file still reads', async () => {
  const t = await tmp();
  try {
    const clock = new ManualClock();
    const s = await MemoryStore.open({ snapshotFile: t.file, clock });
    await s.put(provenEntry(host(0), 7));
    assert.equal(await s.remove(agent.id, 7, host(0).id), true);
    clock.advance(1000);
    await s.close();
    // A new process: its clock starts again; the tombstone holds for the time it had left.
    const clock2 = new ManualClock();
    const again = await MemoryStore.open({ snapshotFile: t.file, clock: clock2 });
    assert.equal(await again.removedEpoch(agent.id), 7, 'a REGISTER captured before the DEREGISTER is still refused after the restart');
    clock2.advance(limit('LOCATION_TOMBSTONE_TTL_MS') - 1001);
    assert.equal(await again.removedEpoch(agent.id), 7);
    clock2.advance(1001);
    assert.equal(await again.removedEpoch(agent.id), undefined, 'expired within its whole lifetime');
    await again.close();

    const good = { agent: agent.id, hostId: host(0).id, ip: '127.0.0.1', controlPort: 1, redirectorPort: 2, epoch: 1 };
    await writeFile(t.file, JSON.stringify({ format: 'ferry-rendezvous-snapshot', v: 1, entries: [good] }));
    const v1 = await MemoryStore.open({ snapshotFile: t.file });
    assert.equal(v1.size, 1);
    assert.equal(await v1.removedEpoch(agent.id), undefined);
    await v1.close();

    const bad = ferry('FERRY_ERR_SNAPSHOT_UNREADABLE');
    const tomb = { agent: otherAgent.id, epoch: 3, remainingMs: 1000 };
    const doc = (tombstones: unknown): string => JSON.stringify({ format: 'ferry-rendezvous-snapshot', v: 2, entries: [], tombstones });
    for (const text of [
      doc(undefined),
      doc([{ ...tomb, agent: 'short' }]),
      doc([{ ...tomb, epoch: 2 ** 32 }]),
      doc([{ ...tomb, remainingMs: 0 }]),
      doc([{ ...tomb, remainingMs: limit('LOCATION_TOMBSTONE_TTL_MS') + 1 }]),
      doc([tomb, tomb]),
      doc(['x']),
    ]) {
      await writeFile(t.file, text);
      await assert.rejects(MemoryStore.open({ snapshotFile: t.file }), bad, text.slice(0, 90));
    }
    await writeFile(t.file, doc([tomb, { ...tomb, agent: agent.id }]));
    await assert.rejects(MemoryStore.open({ snapshotFile: t.file, maxTombstones: 1 }), bad);
  } finally {
    await t.done();
  }
});
