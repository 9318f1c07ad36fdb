// Scenario: the location service fails just when a move detaches an agent (the detach asks it
// for the agent's current epoch, as a rendezvous whose store went down may fail to answer).
// Nothing was paused yet, so the move fails and the agent runs on where it is: its connection
// carries bytes both ways, it opens and accepts new connections, and once the location service
// answers again it moves. Before the fix the agent stayed marked as moving for good: every open
// to it was answered PEER_MOVING, every open from it failed UNKNOWN_AGENT, and it never moved.
// In a group move, the member whose lookup fails and the member that did detach both run on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentId, HostId } from '../../src/identity/index.js';
import type { AgentServerSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { MemoryLocationTable, type LocationEntry } from '../../src/location/index.js';
import { FerryError, isFerryError } from '../../src/util/index.js';
import { linkedTrio, type Link } from '../helpers/attacker.js';
import { opensBothWays } from '../helpers/agents.js';

/** A location table whose lookups of one agent fail from the `failAt`-th on (1 = the next one). */
class FailingLookups extends MemoryLocationTable {
  agent: AgentId | undefined;
  failAt = 0;
  seen = 0;
  failures = 0;
  override async lookup(agent: AgentId): Promise<LocationEntry | undefined> {
    if (agent === this.agent && this.failAt > 0 && ++this.seen >= this.failAt) {
      this.failures++;
      throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', 'the directory store is down');
    }
    return super.lookup(agent);
  }
  failFrom(agent: AgentId, n: number): void {
    this.agent = agent;
    this.failAt = n;
    this.seen = 0;
  }
  heal(): void {
    this.failAt = 0;
  }
}

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

/** The agent `a` on `h0` still runs there: its link streams, it opens and it accepts. */
async function stillRunsHere(h0: Host, a: AgentId, h2: Host, c: AgentId, cServer: AgentServerSocket, link: Link | undefined, what: string): Promise<void> {
  assert.ok(h0.agentIds().includes(a), `${what}: the agent is still on its host`);
  if (link) await link.exchange(10_000, `${what}: its connection`);
  await opensBothWays(h0, a, h2, c, cServer);
}

for (const how of ['detachAgent', 'migrateAgent', 'migrateGroup'] as const) {
  test(`a ${how} whose location lookup fails leaves the agent running, and it moves later`, async () => {
    const location = new FailingLookups();
    // No directory check: its lookups would take the failing ones at random moments.
    const { h0, h1, h2, a, link, close } = await linkedTrio(location, 310, { fenceCheckMs: 0 });
    try {
      const d = (await h0.addAgent()).id;
      const c = (await h2.addAgent()).id;
      const cServer = h2.listen(c);

      if (how === 'detachAgent') {
        // The detach's only lookup is the agent's epoch.
        location.failFrom(a, 1);
        await assert.rejects(h0.detachAgent(a), (e: unknown) => isFerryError(e, 'FERRY_ERR_DIRECTORY_UNAVAILABLE'));
      } else if (how === 'migrateAgent') {
        // The move looks the agent up before step 1 (its next epoch), then again in the detach.
        location.failFrom(a, 2);
        await assert.rejects(h0.migrateAgent(a, target(h1)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_DIRECTORY_UNAVAILABLE'));
        assert.equal(location.seen, 2, 'the failure came at the detach, after the destination admitted the agent');
      } else {
        // Members a and d: d's detach is answered, a's is not. d detached and is re-attached here.
        location.failFrom(a, 2);
        await assert.rejects(h0.migrateGroup([a, d], target(h1)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_DIRECTORY_UNAVAILABLE'));
        assert.equal(location.seen, 2, 'the failure came at the detach, after the destination admitted the group');
        assert.deepEqual(h1.agentIds(), [], 'nothing landed at the destination');
      }
      assert.equal(location.failures, 1);
      location.heal();
      await stillRunsHere(h0, a, h2, c, cServer, link, `after the failed ${how}`);
      await stillRunsHere(h0, d, h2, c, cServer, undefined, `the other agent, after the failed ${how}`);

      // The directory answers again: the agent moves, and its connection comes along.
      if (how === 'migrateGroup') await h0.migrateGroup([a, d], target(h1));
      else await h0.migrateAgent(a, target(h1));
      assert.ok(h1.agentIds().includes(a) && !h0.agentIds().includes(a), 'the agent now lives on h1');
      const cAccepted = cServer.accept();
      const moved = await h1.connect(a, c);
      (await cAccepted).destroy();
      moved.destroy();
    } finally {
      await close();
    }
  });
}
