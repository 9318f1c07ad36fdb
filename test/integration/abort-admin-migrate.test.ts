// Scenario: an operator starts a move through the host's admin endpoint (what `ferry migrate`
// does) to a destination that accepts the TCP connection but never answers the migration
// handshake, then gives up (Ctrl-C: the HTTP request closes before the answer). The host aborts
// the move at once: it rolls back with FERRY_ERR_ABORTED as the cause, instead of waiting out the
// handshake timeout (FERRY_ERR_HANDSHAKE_TIMEOUT), and the agent's stream goes on exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { request } from 'node:http';
import { once } from 'node:events';
import { AdminServer, Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { Link } from '../helpers/attacker.js';
import { waitFor } from '../helpers/harness.js';

test('closing a pending admin /migrate request aborts the move; it rolls back at once', async () => {
  const location = new MemoryLocationTable();
  const log = new MemoryLogger();
  const h0 = await Host.start({ location, name: 'h0', logger: log });
  const h1 = await Host.start({ location, name: 'h1' });
  const admin = await AdminServer.start(h0, 0, log);
  // A destination that takes the connection and stays silent.
  const held: Socket[] = [];
  const mute = createServer((s) => held.push(s));
  mute.listen(0, '127.0.0.1');
  await once(mute, 'listening');
  try {
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const l = await Link.open(h0, a.id, h1, b.id, 600);
    await l.exchange(20_000, 'before');

    const body = JSON.stringify({ agent: a.id, ip: '127.0.0.1', redirectorPort: (mute.address() as { port: number }).port });
    const req = request(`${admin.url}/migrate`, { method: 'POST', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' } });
    req.on('error', () => undefined); // the client's own abort below
    req.end(body);
    await waitFor(() => held.length === 1, 5000, 'the host dialled the destination');
    req.destroy();

    await waitFor(() => log.lines.some((x) => x.event === 'migration_rolled_back'), 10_000, 'the move rolled back');
    const line = log.lines.find((x) => x.event === 'migration_rolled_back')!;
    assert.equal(line.fields.code, 'FERRY_ERR_ABORTED', `rolled back because of the abort, not ${String(line.fields.code)}`);
    assert.deepEqual(h0.socketsOf(a.id), [l.a], 'the agent never stopped: the same socket object');
    await l.exchange(30_000, 'after');
  } finally {
    for (const s of held) s.destroy();
    mute.close();
    await admin.close();
    await Promise.all([h0.close(), h1.close()]);
  }
});
