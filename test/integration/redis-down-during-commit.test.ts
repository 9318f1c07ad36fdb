// Scenario: two hosts, each with a RendezvousClient listing two rendezvous nodes over one Redis
// (a real redis-server started here, AOF on). Agent a on h0 streams with agent b on h1. A move of
// a to h1 is under way when redis-server is SIGKILLed (at the destination's CONFIRM, after the
// source has detached a): the destination's commit registration is refused with
// DIRECTORY_UNAVAILABLE, and the source's rollback registration waits for the directory (it is
// back a second later) instead of giving up, so the move rolls back: a runs on at h0 (epoch 2,
// registered by the rollback), nowhere else, its connection carries on with every byte exactly
// once, and the next move commits (epoch 3 at h1).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { Host } from '../../src/host/index.js';
import { RedisStore, RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { startRedisServer } from '../../src/testing/index.js';
import { isFerryError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { pattern, Reader, waitFor } from '../helpers/harness.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// Bounded: a hang fails the file instead of stalling the run.
test('Redis dies during a move\'s commit: the move rolls back once the directory is back, the agent on exactly one host', { timeout: 120_000 }, async () => {
  const redis = await startRedisServer({ appendonly: true });
  cleanups.push(() => redis.destroy());
  const nodes: RendezvousServer[] = [];
  for (let i = 0; i < 2; i++) {
    const n = await RendezvousServer.start({ store: await RedisStore.open({ url: redis.url }) });
    cleanups.push(() => n.close());
    nodes.push(n);
  }
  let outage: Promise<void> | undefined;
  const hosts: Host[] = [];
  for (let i = 0; i < 2; i++) {
    const location = await RendezvousClient.connect({ server: nodes[i % 2]!.address, alternates: [nodes[(i + 1) % 2]!.address] });
    cleanups.push(() => location.close());
    const h = await Host.start({
      location,
      name: `h${i}`,
      // At the destination's CONFIRM the source has detached the agent: Redis dies now, and
      // comes back (same port and files) a second later.
      migrationFault: (side, step) => {
        if (i === 1 && side === 'destination' && step === MigrationStep.CONFIRM && !outage) {
          outage = redis.kill().then(async () => {
            await new Promise((r) => setTimeout(r, 1000));
            await redis.restart();
          });
        }
        return undefined;
      },
    });
    cleanups.push(() => h.close());
    hosts.push(h);
  }
  const [h0, h1] = hosts as [Host, Host];
  const a = await h0.addAgent();
  const b = await h1.addAgent();
  const accepted = h1.listen(b.id).accept();
  let sa: AgentSocket = await h0.connect(a.id, b.id);
  const sb: AgentSocket = await accepted;
  const ra = new Reader();
  const rb = new Reader();
  ra.attach(sa);
  rb.attach(sb);
  let wa = 0;
  let wb = 0;
  const write = (n: number): void => {
    sa.write(pattern(1, wa, n));
    wa += n;
    sb.write(pattern(2, wb, n));
    wb += n;
  };
  write(64_000);
  await waitFor(() => rb.length === wa && ra.length === wb, 5000, 'before the move');

  const target = { ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id };
  await assert.rejects(h0.migrateAgent(a.id, target), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_DIRECTORY_UNAVAILABLE'));
  assert.ok(outage, 'Redis was killed during the move');
  await outage;
  assert.deepEqual([h0.agentIds().includes(a.id), h1.agentIds().includes(a.id)], [true, false], 'a runs at h0 only');
  const entry = await nodes[1]!.store.get(a.id);
  assert.deepEqual([entry?.hostId, entry?.epoch], [h0.id, 2], 'the rollback registered a at h0 above the epoch it left');

  // The connection carries on from where it was (the rollback re-attached a's socket).
  sa = h0.socketsOf(a.id)[0]!;
  ra.attach(sa);
  write(64_000);
  await waitFor(() => rb.length === wa && ra.length === wb, 10_000, 'after the rollback');

  // And the next move commits.
  await h0.migrateAgent(a.id, target);
  // Node 0 hears a commit made through node 1 over pub/sub, a moment later.
  let moved = await nodes[0]!.store.get(a.id);
  for (let i = 0; i < 50 && moved?.epoch !== 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    moved = await nodes[0]!.store.get(a.id);
  }
  assert.deepEqual([moved?.hostId, moved?.epoch], [h1.id, 3]);
  sa = h1.socketsOf(a.id)[0]!;
  ra.attach(sa);
  write(64_000);
  await waitFor(() => rb.length === wa && ra.length === wb, 10_000, 'after the move');
  assert.ok(rb.bytes().equals(pattern(1, 0, wa)), 'a -> b exactly once');
  assert.ok(ra.bytes().equals(pattern(2, 0, wb)), 'b -> a exactly once');
});
