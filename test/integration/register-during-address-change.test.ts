// Scenario: a roaming host's address changes while an agent's registration is in flight (the
// directory is slow to answer). The address change re-registers the agents it knows, which this
// one is not yet; so once its registration lands at the old address, the host registers it again
// at the new one (epoch 2). Before the fix it stayed registered at the address the host had left,
// and every new connection to it dialled there until the next address change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentId } from '../../src/identity/index.js';
import { Host } from '../../src/host/index.js';
import { MemoryLocationTable, type LocationEntry } from '../../src/location/index.js';
import { MemoryLogger } from '../../src/util/index.js';

/** A table that holds each registration until `release()` while `holding` is set. */
class SlowRegistrations extends MemoryLocationTable {
  holding = false;
  private held: (() => void)[] = [];
  arrived = 0;
  override async register(entry: LocationEntry, ...rest: unknown[]): Promise<void> {
    if (this.holding) {
      this.arrived++;
      await new Promise<void>((r) => this.held.push(r));
    }
    return (super.register as (e: LocationEntry, ...r: unknown[]) => Promise<void>)(entry, ...rest);
  }
  release(): void {
    this.holding = false;
    for (const r of this.held.splice(0)) r();
  }
}

test('an agent whose registration was in flight when the address changed is registered again at the new address', async () => {
  const location = new SlowRegistrations();
  const h0 = await Host.start({ location, name: 'h0', ip: '0.0.0.0', advertise: '127.0.0.1', logger: new MemoryLogger(), fenceCheckMs: 0 });
  try {
    location.holding = true;
    const adding = h0.addAgent();
    for (let i = 0; i < 100 && location.arrived === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(location.arrived, 1, 'the registration is in flight');
    h0.changeAddress('127.0.0.2');
    location.release();
    const id: AgentId = (await adding).id;
    let entry = await location.lookup(id);
    for (let i = 0; i < 200 && entry?.ip !== '127.0.0.2'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      entry = await location.lookup(id);
    }
    assert.deepEqual([entry?.ip, entry?.epoch, entry?.hostId], ['127.0.0.2', 2, h0.id], 'registered again at the new address, at the next epoch');
  } finally {
    await h0.close();
  }
});
