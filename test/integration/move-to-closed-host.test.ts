// Scenario: an in-process move (Host.moveAgent) whose destination refuses the agent after the
// source detached it (here: the destination host has closed). The agent comes back to the source,
// as a migration rolls back: it runs there, its connection carries bytes both ways exactly once,
// and the directory still names the source. Before the fix the detached agent ran nowhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogger, isFerryError } from '../../src/util/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { hostStarter, waitFor } from '../helpers/harness.js';
import { Link } from '../helpers/attacker.js';

test('a move whose destination refuses the agent after the detach brings it back to the source', async () => {
  const location = new MemoryLocationTable();
  const { hosts, start } = hostStarter(location, new MemoryLogger());
  try {
    const h0 = await start('h0');
    const h1 = await start('h1');
    const h2 = await start('h2');
    const a = (await h0.addAgent()).id;
    const b = (await h2.addAgent()).id;
    const link = await Link.open(h0, a, h2, b, 510);
    await link.exchange(20_000, 'before');
    await h1.close();

    await assert.rejects(h0.moveAgent(a, h1), (e: unknown) => isFerryError(e, 'FERRY_ERR_ABORTED'));
    assert.deepEqual(h0.agentIds(), [a], 'the agent runs on at the source');
    assert.equal((await location.lookup(a))?.hostId, h0.id, 'the directory names the source');
    await waitFor(() => h0.socketsOf(a).length === 1, 10_000, 'its connection back at the source');
    link.follow('a', h0.socketsOf(a)[0]!);
    await link.exchange(20_000, 'after the refused move', 15_000);
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
  }
});
