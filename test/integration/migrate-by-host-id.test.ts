// Scenario: hosts by id. A host registers its own locator under its own id (Host.registerSelf);
// an agent streaming through an echo calls ctx.migrate(hostId) with the bare id, the source finds
// the host through the location service and the agent lands there over the migration channel,
// every echoed byte exactly once. A bare id that no host registered is refused with
// FERRY_ERR_UNKNOWN_HOST and the agent runs on where it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { connectWhenListening, fixture, startChannelNet } from '../helpers/agents.js';
import { Identity } from '../../src/identity/index.js';

test('ctx.migrate(hostId): the destination is found by its self-registration and the agent lands there', async () => {
  const net = await startChannelNet(3);
  try {
    const [h0, , h2] = net.hosts as [Host, Host, Host];
    await h2.registerSelf();
    const echo = await net.launch(1, fixture('echo.mjs'));
    await connectWhenListening(h0, echo.id).then((s) => s.destroy());
    const h = await net.launch(0, fixture('try-migrate.mjs'), { state: { peer: echo.id, target: h2.id, total: 400_000 } });
    const source = await h.exited;
    assert.equal(source.reason, 'migrated', source.error?.message);
    const landed = net.runtimes[2]!.handleOf(h.id);
    assert.ok(landed, 'the agent runs on the host named by id');
    const dest = await landed.exited;
    assert.equal(dest.reason, 'finished', dest.error?.message);
    // run() again at the destination: its own ctx.migrate(h2.id) is refused there (already on it).
    const r = dest.result as { ok: boolean; received: number; runs: number; hostId: string };
    assert.deepEqual({ ok: r.ok, received: r.received, runs: r.runs, hostId: r.hostId }, { ok: true, received: 400_000, runs: 2, hostId: h2.id });
    assert.deepEqual(net.runtimes[0]!.agentIds(), [], 'never on both');

    // An id no host registered: refused by the source, the agent runs on.
    const stranger = Identity.generate().id;
    const h2b = await net.launch(0, fixture('try-migrate.mjs'), { state: { peer: echo.id, target: stranger, total: 100_000 } });
    const exit = await h2b.exited;
    assert.equal(exit.reason, 'finished', exit.error?.message);
    assert.deepEqual(exit.result, { code: 'FERRY_ERR_UNKNOWN_HOST', ok: true, received: 100_000, runs: 1, hostId: h0.id });
  } finally {
    await net.close();
  }
});
