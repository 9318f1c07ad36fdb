// Scenario: the location service fails (every lookup rejects, as a rendezvous whose store is
// down may) while a connection's peer host has vanished. The resuming end asks the location
// service where the peer went; the failed lookup counts as no answer (one 'lookup_failed' log
// line with its code), the end keeps trying where the peer was, and after its reconnect limit
// fails with FERRY_ERR_PEER_UNREACHABLE. No rejection goes unhandled (that would end the
// process), and another connection of the same host streams on byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentId } from '../../src/identity/index.js';
import { MemoryLocationTable, type LocationEntry } from '../../src/location/index.js';
import { FerryError, MemoryLogger } from '../../src/util/index.js';
import { hostStarter, waitFor } from '../helpers/harness.js';
import { Link, Tap } from '../helpers/attacker.js';

/** A location table whose lookups can be made to fail. */
class FailingLocation extends MemoryLocationTable {
  failing = false;
  failures = 0;
  override async watch(agent: AgentId, newerThan: number, waitMs: number): Promise<LocationEntry | undefined> {
    if (this.failing) {
      this.failures++;
      throw new FerryError('FERRY_ERR_DIRECTORY_UNAVAILABLE', 'the directory store is down');
    }
    return super.watch(agent, newerThan, waitMs);
  }
}

test('a location service that fails during a resume is no answer, not a crash', async () => {
  const location = new FailingLocation();
  const log = new MemoryLogger();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const { hosts, start } = hostStarter(location, log);
  let tap: Tap | undefined;
  try {
    const client = await start('client', { reconnectLimitMs: 8000 });
    const doomed = await start('doomed', { wrapControlSocket: (s) => (tap = new Tap(s)) });
    const h2 = await start('h2');
    const a = await client.addAgent();
    const b = await doomed.addAgent();
    const e = await client.addAgent();
    const f = await h2.addAgent();
    const link = await Link.open(client, a.id, doomed, b.id, 150);
    const other = await Link.open(client, e.id, h2, f.id, 170);
    await link.exchange(20_000, 'before');

    const errors: FerryError[] = [];
    link.a.on('error', (err: Error) => errors.push(err as FerryError));
    location.failing = true;
    tap!.silent = true;
    await doomed.close();
    link.a.write(Buffer.alloc(5_000, 1));

    await other.exchange(30_000, 'other connection while the lookups fail');
    await waitFor(() => errors.length > 0, 40_000, 'PEER_UNREACHABLE on the client socket');
    assert.equal(errors[0]!.code, 'FERRY_ERR_PEER_UNREACHABLE');
    assert.equal(link.a.state, 'CLOSED');
    assert.ok(location.failures > 0, 'the resume asked the location service');
    const failed = log.lines.filter((l) => l.event === 'lookup_failed' && l.fields['host'] === 'client');
    assert.ok(failed.length > 0, 'each failed lookup is logged');
    assert.equal(failed[0]!.fields['code'], 'FERRY_ERR_DIRECTORY_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, [], 'no rejection went unhandled');
    location.failing = false;
    await other.exchange(30_000, 'other connection after');
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await Promise.all(hosts.map((h) => h.close()));
  }
});
