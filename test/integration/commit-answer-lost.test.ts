// Scenario: at the commit of a migration, the directory stores the destination's registration
// of the agent but its answer is lost (a store that applies a write after the client gave up, or
// a node that dies after writing). The destination retries while the directory does not answer;
// the registration sent again is acknowledged (the same host, locator and epoch), so the agent is
// built there and the move commits: the agent runs at the destination, its connection carries
// bytes both ways, and the source has let it go. Before the fix the destination gave up at once:
// the source's rollback was refused as stale and taken for the destination's commit, and the
// agent ran nowhere while the directory named the destination. Also: a directory table refuses
// an older or equal epoch from anyone else, and acknowledges its holder's registration sent again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentId, HostId } from '../../src/identity/index.js';
import type { Host } from '../../src/host/index.js';
import { MemoryLocationTable, type LocationEntry } from '../../src/location/index.js';
import { FerryError, MemoryLogger, isFerryError } from '../../src/util/index.js';
import { waitFor } from '../helpers/harness.js';
import { linkedTrio } from '../helpers/attacker.js';

/** A table that, once armed, stores one registration of `agent` by `host` and then fails as if its answer were lost. */
class LosesOneAnswer extends MemoryLocationTable {
  agent: AgentId | undefined;
  host: string | undefined;
  lost = 0;
  override async register(entry: LocationEntry, ...rest: unknown[]): Promise<void> {
    await (super.register as (e: LocationEntry, ...r: unknown[]) => Promise<void>)(entry, ...rest);
    if (entry.agent === this.agent && entry.hostId === this.host) {
      this.agent = undefined;
      this.lost++;
      throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', 'the directory stored it, but its answer was lost');
    }
  }
}

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

test('a commit whose directory answer is lost is sent again: the agent runs at the destination', async () => {
  const location = new LosesOneAnswer();
  const log = new MemoryLogger();
  const { h0, h1, a, link, close } = await linkedTrio(location, 410, { fenceCheckMs: 0 }, log);
  try {
    location.agent = a;
    location.host = h1.id;
    await h0.migrateAgent(a, target(h1));
    assert.equal(location.lost, 1, 'the destination registration lost its answer once');
    assert.deepEqual(h1.agentIds(), [a], 'the agent runs at the destination');
    assert.ok(!h0.agentIds().includes(a), 'and no longer at the source');
    const entry = await location.lookup(a);
    assert.equal(entry?.hostId, h1.id, 'the directory names the destination');
    assert.equal(log.lines.filter((l) => l.event === 'migration_reattach_failed').length, 0);

    // Its connection moved with it and carries bytes both ways, exactly once.
    await waitFor(() => h1.socketsOf(a).length === 1, 10_000, 'the connection at the destination');
    link.follow('a', h1.socketsOf(a)[0]!);
    await link.exchange(20_000, 'after the move', 15_000);
  } finally {
    await close();
  }
});

test('a directory table acknowledges its holder\'s registration sent again, and refuses anyone else at that epoch', async () => {
  const t = new MemoryLocationTable();
  const e: LocationEntry = { agent: 'a'.repeat(32) as AgentId, hostId: 'h'.repeat(32), ip: '127.0.0.1', controlPort: 1, redirectorPort: 2, epoch: 3 };
  await t.register(e);
  await t.register({ ...e }); // the same host, locator and epoch: acknowledged
  await assert.rejects(t.register({ ...e, hostId: 'g'.repeat(32) }), (err: unknown) => isFerryError(err, 'FERRY_ERR_STALE_EPOCH'));
  await assert.rejects(t.register({ ...e, redirectorPort: 3 }), (err: unknown) => isFerryError(err, 'FERRY_ERR_STALE_EPOCH'));
  await assert.rejects(t.register({ ...e, epoch: 2 }), (err: unknown) => isFerryError(err, 'FERRY_ERR_STALE_EPOCH'));
  assert.equal((await t.lookup(e.agent))?.epoch, 3);
});
