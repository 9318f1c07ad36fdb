// Scenario: the server's host dies abruptly (its control socket goes silent, then host.close()
// tears down its ports and connections) under a connection whose client host has a reconnect
// limit of 1500 ms. The client end tries to resume, fails, and after the limit its socket emits
// 'error' with FERRY_ERR_PEER_UNREACHABLE — once, and within a bound (15 s here; the test checks
// that it arrives, not how fast). Meanwhile a connection between two other hosts, and another
// connection of the client host to a live host, stream on untouched, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { FerryError, MemoryLogger } from '../../src/util/index.js';
import { hostStarter, waitFor } from '../helpers/harness.js';
import { Link, Tap } from '../helpers/attacker.js';

test('a vanished peer host ends the connection with PEER_UNREACHABLE; others are unaffected', async () => {
  const location = new MemoryLocationTable();
  const log = new MemoryLogger();
  const { hosts, start } = hostStarter(location, log);
  let tap: Tap | undefined;
  try {
    const client = await start('client', { reconnectLimitMs: 1500 });
    const doomed = await start('doomed', { wrapControlSocket: (s) => (tap = new Tap(s)) });
    const h2 = await start('h2');
    const h3 = await start('h3');
    const a = await client.addAgent();
    const b = await doomed.addAgent();
    const c = await h2.addAgent();
    const d = await h3.addAgent();
    const e = await client.addAgent();
    const f = await h2.addAgent();
    const link = await Link.open(client, a.id, doomed, b.id, 150);
    const others = await Link.open(h2, c.id, h3, d.id, 160);
    const sameClientHost = await Link.open(client, e.id, h2, f.id, 170);
    await link.exchange(30_000, 'before');
    await others.exchange(30_000, 'others before');
    await sameClientHost.exchange(30_000, 'client host, other peer, before');

    const errors: FerryError[] = [];
    const sock: AgentSocket = link.a;
    sock.on('error', (err: Error) => errors.push(err as FerryError));
    // A crash, not a shutdown: nothing more leaves the host, not even a CLS.
    tap!.silent = true;
    await doomed.close();
    link.a.write(Buffer.alloc(10_000, 1)); // the application keeps writing into the void

    // While the client end retries, the other connections carry on.
    await others.exchange(50_000, 'others while the client retries');
    await sameClientHost.exchange(50_000, 'client host, other peer, while retrying');

    await waitFor(() => errors.length > 0, 15_000, 'PEER_UNREACHABLE on the client socket');
    assert.ok(errors[0] instanceof FerryError);
    assert.equal(errors[0].code, 'FERRY_ERR_PEER_UNREACHABLE');
    assert.equal(sock.state, 'CLOSED');
    assert.equal(sock.endpoint.error?.code, 'FERRY_ERR_PEER_UNREACHABLE');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(errors.length, 1, 'the error is surfaced once');
    assert.equal(log.lines.filter((l) => l.event === 'peer_unreachable' && l.fields['host'] === 'client').length, 1, 'and logged once');
    assert.ok(client.socketsOf(a.id).length === 0, 'the dead connection is released');

    await others.exchange(50_000, 'others after');
    await sameClientHost.exchange(50_000, 'client host, other peer, after');
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
  }
});
