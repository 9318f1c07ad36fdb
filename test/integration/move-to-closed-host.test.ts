// Scenario: an in-process move (Host.moveAgent) whose destination refuses the agent after the
// source detached it (here: the destination host has closed). The agent comes back to the source,
// as a migration rolls back: it runs there, its connection carries bytes both ways exactly once,
// and the directory still names the source. Before the fix the detached agent ran nowhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFerryError } from '../../src/util/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { waitFor } from '../helpers/harness.js';
import { linkedTrio } from '../helpers/attacker.js';

test('a move whose destination refuses the agent after the detach brings it back to the source', async () => {
  const location = new MemoryLocationTable();
  const { h0, h1, a, link, close } = await linkedTrio(location, 510);
  try {
    await h1.close();

    await assert.rejects(h0.moveAgent(a, h1), (e: unknown) => isFerryError(e, 'FERRY_ERR_ABORTED'));
    assert.deepEqual(h0.agentIds(), [a], 'the agent runs on at the source');
    assert.equal((await location.lookup(a))?.hostId, h0.id, 'the directory names the source');
    await waitFor(() => h0.socketsOf(a).length === 1, 10_000, 'its connection back at the source');
    link.follow('a', h0.socketsOf(a)[0]!);
    await link.exchange(20_000, 'after the refused move', 15_000);
  } finally {
    await close();
  }
});
