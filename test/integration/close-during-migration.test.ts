// Scenario: a host closes while one of its agents is being migrated away, after the agent was
// detached, and the move then fails (here the channel is cut at CONFIRM). A closed host takes no
// agent back: the agent ends with the host, as the host's other agents did, the move rejects
// with FERRY_ERR_ABORTED saying so, and the agent's entry is deregistered, so that it can be
// launched elsewhere at once. Before the fix the rollback registered the agent again, on the
// closed host, and nothing ever removed that entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostId } from '../../src/identity/index.js';
import type { Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { MemoryLogger, isFerryError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { hostStarter } from '../helpers/harness.js';

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

test('a host that closes during a move, after the detach, takes no agent back and deregisters it', async () => {
  const location = new MemoryLocationTable();
  const log = new MemoryLogger();
  const { hosts, start } = hostStarter(location, log);
  let h0: Host | undefined;
  let closing: Promise<void> | undefined;
  try {
    h0 = await start('h0', {
      fenceCheckMs: 0,
      // At CONFIRM the agent is detached: the host closes now, and the channel is cut.
      migrationFault: (side, step) => {
        if (side !== 'source' || step !== MigrationStep.CONFIRM || closing) return undefined;
        closing = h0!.close();
        return 'cut';
      },
    });
    const h1 = await start('h1', { fenceCheckMs: 0 });
    const a = (await h0.addAgent()).id;
    assert.equal((await location.lookup(a))?.hostId, h0.id);

    await assert.rejects(h0.migrateAgent(a, target(h1)), (e: unknown) => isFerryError(e, 'FERRY_ERR_ABORTED') && /after this host closed/.test((e as Error).message));
    await closing;
    assert.deepEqual(h0.agentIds(), [], 'the closed host holds no agent');
    assert.deepEqual(h1.agentIds(), [], 'nothing landed at the destination');
    for (const end = Date.now() + 5000; (await location.lookup(a)) !== undefined; ) {
      assert.ok(Date.now() < end, 'the agent is still registered 5 s after its host closed');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(log.lines.filter((l) => l.event === 'migration_reattach_failed').length, 1, 'said once, loudly');
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
  }
});
