// Scenario: a local client of `ferry tunnel connect --listen` opens 2,000 TCP connections and resets
// each as soon as it is accepted, before its Ferry connection could open. `ferry tunnel serve` and
// `ferry tunnel connect` as processes (sealed), the target and the clients in this process. Then an
// honest client exchanges 256 KiB each way through the tunnel. The connecting end must drop the
// opens of clients that are gone (they wait in the host's queue of opens towards the serving
// host, OPENS_IN_FLIGHT_PER_PEER at a time), so the serving end does not dial the target for
// them and the honest client is not queued behind 2,000 dead opens. Before, every reset client
// still cost a full open and a target connection. Both tunnel ends stay up, and the honest
// exchange arrives whole (sha256 both ways).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { limit } from '../../src/util/index.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, exchange, startTunnelPair, taggedClient } from '../helpers/tunnel.js';

const procs = new Processes();
after(() => procs.killAll());

const DEAD = 2000;
const KiB = 1024;

/** Connect to 127.0.0.1:`port` and reset the connection once it is established. */
function resetAtOnce(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => s.resetAndDestroy());
    s.once('error', () => {});
    s.once('close', () => resolve());
  });
}

test('tunnel: 2,000 local clients reset as soon as accepted cost no opens and harm no other client', { timeout: 180_000 }, async () => {
  const target = await ShaTarget.start(() => ({ bytes: 256 * KiB, endFirst: false }));
  let reached = 0;
  target.server.on('connection', () => reached++);
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`);
  try {
    for (let i = 0; i < DEAD; i += 500) await Promise.all(Array.from({ length: 500 }, () => resetAtOnce(pair.listenPort)));
    const errors: Error[] = [];
    const honest = taggedClient(pair.listenPort, 1, errors);
    const client = await exchange(honest, 256 * KiB, true, errors);
    const server = await target.results.get(1)!;
    assert.deepEqual(errors.map((e) => (e as NodeJS.ErrnoException).code), []);
    assert.equal(client.receivedSha, server.sentSha);
    assert.equal(server.receivedSha, client.sentSha);
    // The opens under way when a client reset may still complete (at most OPENS_IN_FLIGHT_PER_PEER
    // at a time); the rest must never reach the serving end. Before, all 2,000 reached the target.
    console.log(`${reached - 1} of ${DEAD} reset clients reached the target`);
    assert.ok(reached - 1 < DEAD / 4, `target connections for ${DEAD} reset clients: ${reached - 1} (opens in flight at once: ${limit('OPENS_IN_FLIGHT_PER_PEER')})`);
    assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
    assert.equal(pair.connect.child.exitCode, null, 'the connecting end runs');
    for (const p of [pair.serve, pair.connect]) assert.doesNotMatch(p.err(), /Unhandled|TypeError|RangeError/);
  } finally {
    await pair.close();
    await target.close();
  }
});
