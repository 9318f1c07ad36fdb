// Scenario: two hosts, each with a RendezvousClient listing two rendezvous nodes over one Redis
// (a real redis-server started here, AOF on). Agent a on h0 streams with agent b on h1. A move of
// a to h1 is under way when redis-server is SIGKILLed (at the destination's CONFIRM, after the
// source has detached a): the destination's commit registration is refused with
// DIRECTORY_UNAVAILABLE. Both ends wait for the directory (it is back a second later) instead of
// giving up: the destination retries its registration, and should the source's wait for COMMITTED
// end first, its rollback registration retries too, and the compare-and-set picks one. Either the
// move commits (a at h1, epoch 2) or it rolls back (a at h0, epoch 2): a runs on exactly one host,
// the one the directory names, its connection carries on with every byte exactly once, and the
// next move, back the other way, commits at epoch 3.
import { after, test, type TestContext } from 'node:test';
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
test('Redis dies during a move\'s commit: the move completes or rolls back once the directory is back, the agent on exactly one host', { timeout: 120_000 }, async (t: TestContext) => {
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

  const targetOf = (h: Host): { ip: string; redirectorPort: number; hostId: typeof h.id } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });
  const committed = await h0.migrateAgent(a.id, targetOf(h1)).then(
    () => true,
    (e: unknown) => {
      assert.ok(isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_DIRECTORY_UNAVAILABLE'), `a move that did not commit rolled back for the directory: ${String(e)}`);
      return false;
    },
  );
  t.diagnostic(committed ? 'the destination\'s retried registration committed the move' : 'the source\'s rollback won: the move rolled back');
  assert.ok(outage, 'Redis was killed during the move');
  await outage;
  const [here, there] = committed ? [h1, h0] : [h0, h1];
  assert.deepEqual([here.agentIds().includes(a.id), there.agentIds().includes(a.id)], [true, false], `a runs at ${here === h0 ? 'h0' : 'h1'} only`);
  // Node 0 hears a registration made through node 1 over pub/sub, a moment later: ask node 1.
  const entry = await nodes[1]!.store.get(a.id);
  assert.deepEqual([entry?.hostId, entry?.epoch], [here.id, 2], 'the directory names that host, above the epoch a left');

  // The connection carries on from where it was (landed or re-attached with a).
  sa = here.socketsOf(a.id)[0]!;
  ra.attach(sa);
  write(64_000);
  await waitFor(() => rb.length === wa && ra.length === wb, 10_000, 'after the move or its rollback');

  // And the next move, the other way, commits.
  await here.migrateAgent(a.id, targetOf(there));
  // Node 0 hears a commit made through node 1 over pub/sub, a moment later.
  let moved = await nodes[0]!.store.get(a.id);
  for (let i = 0; i < 50 && moved?.epoch !== 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    moved = await nodes[0]!.store.get(a.id);
  }
  assert.deepEqual([moved?.hostId, moved?.epoch], [there.id, 3]);
  sa = there.socketsOf(a.id)[0]!;
  ra.attach(sa);
  write(64_000);
  await waitFor(() => rb.length === wa && ra.length === wb, 10_000, 'after the move');
  assert.ok(rb.bytes().equals(pattern(1, 0, wa)), 'a -> b exactly once');
  assert.ok(ra.bytes().equals(pattern(2, 0, wb)), 'b -> a exactly once');
});
