/**
 * RedisStore (src/location/redis-store.ts) against a real redis-server started by the test (free
 * port, temporary directory): entries keep their chain across nodes; the epoch compare-and-set
 * lets exactly one of two nodes win a race and tells the loser the winner; deregistration is the
 * same compare-and-set; the agent count bounds new agents; changes reach the other nodes (not the
 * writer) through pub/sub; a node's cache stays true while subscribed, is dropped when the
 * subscription breaks, and the reconnect asks for a resync; with Redis down every operation is
 * FERRY_ERR_DIRECTORY_UNAVAILABLE and works again after a restart; a foreign value is refused; a
 * FLUSHALL (not announced on the change channel) is noticed through the directory marker: the
 * nodes drop their caches, ask their watchers to resync, and answer unknown.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { RedisStore, type LocationEntry, type RedisStoreOptions } from '../../../src/location/index.js';
import { startRedisServer, type RedisServerHandle } from '../../../src/testing/index.js';
import { Identity } from '../../../src/identity/index.js';
import { agent, ferry, host, otherAgent, provenEntry } from './fixtures.js';

let redis: RedisServerHandle;
const stores: RedisStore[] = [];
before(async () => {
  redis = await startRedisServer();
});
after(async () => {
  for (const s of stores.splice(0)) await s.close();
  await redis?.destroy();
});

let prefixes = 0;
/** Two or more nodes share a prefix; each test gets its own directory in the one Redis. */
async function nodes(n: number, opts: Partial<RedisStoreOptions> = {}): Promise<RedisStore[]> {
  const prefix = `t${++prefixes}`;
  const out: RedisStore[] = [];
  for (let i = 0; i < n; i++) {
    const s = await RedisStore.open({ url: redis.url, prefix, ...opts });
    stores.push(s);
    out.push(s);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(p: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!p()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await sleep(10);
  }
}

const plain = (e: LocationEntry | undefined): unknown => e && { ...e, agentKey: e.agentKey && Buffer.from(e.agentKey) };

describe('RedisStore', () => {
  it('an entry written through one node is read whole, chain included, through another', async () => {
    const [a, b] = await nodes(2);
    const e = provenEntry(host(0), 3);
    assert.deepEqual(await a!.put(e), { stored: true });
    assert.deepEqual(plain(await b!.get(agent.id)), plain(e));
    assert.equal(await b!.get(otherAgent.id), undefined);
    assert.equal(await b!.count(), 1);
    const listed: LocationEntry[] = [];
    for await (const x of b!.list()) listed.push(x);
    assert.deepEqual(listed.map(plain), [plain(e)]);
  });

  it('compare-and-set on the epoch: of two nodes racing for one agent exactly one wins, the loser sees the winner', async () => {
    const [a, b] = await nodes(2);
    for (let epoch = 1; epoch <= 30; epoch++) {
      const ea = provenEntry(host(0), epoch);
      const eb = provenEntry(host(1), epoch);
      const [ra, rb] = await Promise.all([a!.put(ea), b!.put(eb)]);
      assert.equal(Number(ra.stored) + Number(rb.stored), 1, `epoch ${epoch}: exactly one winner`);
      const winner = ra.stored ? ea : eb;
      const loser = ra.stored ? rb : ra;
      assert.equal(loser.stored === false && loser.current.hostId, winner.hostId);
      // The node that lost may answer from its cache until the winner's change reaches it over
      // pub/sub (a moment; a CI run read it first once): both must converge on the winner.
      for (const n of [a!, b!]) {
        let seen: string | undefined;
        for (let i = 0; i < 100 && (seen = (await n.get(agent.id))?.hostId) !== winner.hostId; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(seen, winner.hostId);
      }
    }
    const stale = await a!.put(provenEntry(host(2), 29));
    assert.equal(stale.stored === false && stale.current.epoch, 30);
    assert.equal(await a!.count(), 1);
  });

  it('deregistration removes only the entry at the given epoch, held by the given host', async () => {
    const [a, b] = await nodes(2);
    await a!.put(provenEntry(host(0), 4));
    assert.equal(await b!.remove(agent.id, 3, host(0).id), false);
    assert.equal(await b!.remove(otherAgent.id, 4, host(0).id), false);
    assert.equal(await b!.remove(agent.id, 4, host(1).id), false, 'another host at the same epoch removes nothing');
    assert.equal((await a!.get(agent.id))?.epoch, 4);
    assert.equal(await b!.remove(agent.id, 4, host(0).id), true);
    assert.equal(await b!.remove(agent.id, 4, host(0).id), false);
    assert.equal(await a!.get(agent.id), undefined);
    assert.equal(await a!.count(), 0);
    // The removed epoch stays as the agent's tombstone, seen by every node.
    assert.equal(await a!.removedEpoch(agent.id), 4);
    assert.equal(await b!.removedEpoch(otherAgent.id), undefined);
    // Gone, a lower epoch may register again (a fresh start of the agent).
    assert.equal((await a!.put(provenEntry(host(1), 1))).stored, true);
  });

  it('tombstones are bounded: beyond the most, the oldest removal is forgotten first', async () => {
    const [a, b] = await nodes(2, { maxTombstones: 2 });
    const third = Identity.fromSeed(Buffer.alloc(32, 78));
    for (const who of [agent, otherAgent, third]) {
      await a!.put(provenEntry(host(0), 5, undefined, who));
      assert.equal(await b!.remove(who.id, 5, host(0).id), true);
    }
    assert.equal(await a!.removedEpoch(agent.id), undefined, 'the oldest was dropped');
    assert.equal(await a!.removedEpoch(otherAgent.id), 5);
    assert.equal(await b!.removedEpoch(third.id), 5);
    // And they age by Redis's clock: past their lifetime they answer nothing.
    const [c] = await nodes(1, { tombstoneTtlMs: 50 });
    await c!.put(provenEntry(host(0), 6));
    assert.equal(await c!.remove(agent.id, 6, host(0).id), true);
    assert.equal(await c!.removedEpoch(agent.id), 6);
    await sleep(100);
    assert.equal(await c!.removedEpoch(agent.id), undefined);
  });

  it('a full directory refuses new agents, not updates of known ones', async () => {
    const [a] = await nodes(1, { maxEntries: 2 });
    const third = Identity.fromSeed(Buffer.alloc(32, 77));
    await a!.put(provenEntry(host(0), 1));
    await a!.put(provenEntry(host(0), 1, undefined, otherAgent));
    await assert.rejects(a!.put(provenEntry(host(0), 1, undefined, third)), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
    assert.equal((await a!.put(provenEntry(host(1), 2))).stored, true);
  });

  it('changes reach the other nodes, not the writer; caches stay true', async () => {
    const [a, b] = await nodes(2);
    const heardA: LocationEntry[] = [];
    const heardB: LocationEntry[] = [];
    a!.subscribe({ landed: (e) => heardA.push(e), resync: () => {} });
    b!.subscribe({ landed: (e) => heardB.push(e), resync: () => {} });
    await a!.put(provenEntry(host(0), 1));
    await until(() => heardB.length === 1);
    assert.equal(heardB[0]!.epoch, 1);
    assert.equal((await b!.get(agent.id))?.epoch, 1);
    const hits = b!.stats.cacheHits;
    assert.equal((await b!.get(agent.id))?.epoch, 1);
    assert.equal(b!.stats.cacheHits, hits + 1, 'served from the cache');
    // A newer registration through A replaces B's cached entry before B is asked again.
    await a!.put(provenEntry(host(1), 2));
    await until(() => heardB.length === 2);
    assert.equal((await b!.get(agent.id))?.hostId, host(1).id);
    await b!.remove(agent.id, 2, host(1).id);
    await until(() => a!.cached === 0);
    assert.equal(await a!.get(agent.id), undefined);
    assert.equal(heardA.length, 0, 'a node is not told of its own changes');
  });

  it('a broken subscription empties the cache and asks for a resync when it is back', async () => {
    const [a, b] = await nodes(2);
    let resyncs = 0;
    b!.subscribe({ landed: () => {}, resync: () => resyncs++ });
    await a!.put(provenEntry(host(0), 1));
    await b!.get(agent.id);
    assert.equal(b!.cached, 1);
    // Kill B's subscriber connection from the server side (what a network cut does to it).
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      await admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    } finally {
      await admin.close();
    }
    await until(() => !b!.subscribed || resyncs > 0);
    await until(() => resyncs >= 1);
    assert.equal(b!.subscribed, true);
    // While it was down A moved the agent on; B does not serve its old cached entry.
    await a!.put(provenEntry(host(1), 2));
    assert.equal((await b!.get(agent.id))?.epoch, 2);
  });
});

describe('RedisStore over a Redis that is flushed', () => {
  it('every node notices the flush by its marker, drops its cache and resyncs', async () => {
    const own = await startRedisServer();
    const opened: RedisStore[] = [];
    try {
      for (let i = 0; i < 2; i++) opened.push(await RedisStore.open({ url: own.url, prefix: 'flush', markerCheckMs: 50 }));
      const [a, b] = opened as [RedisStore, RedisStore];
      let resyncs = 0;
      b.subscribe({ landed: () => {}, resync: () => resyncs++ });
      await a.put(provenEntry(host(0), 1));
      await b.get(agent.id);
      assert.equal(a.cached + b.cached, 2, 'both nodes cache the entry');
      const admin = createClient({ url: own.url });
      await admin.connect();
      try {
        await admin.sendCommand(['FLUSHALL']);
      } finally {
        await admin.close();
      }
      await until(() => a.stats.flushes > 0 && b.stats.flushes > 0);
      assert.equal(await a.get(agent.id), undefined);
      assert.equal(await b.get(agent.id), undefined);
      assert.ok(resyncs >= 1, 'the node asked its watchers to re-read');
      // The directory works on: a registration is stored and served.
      assert.equal((await a.put(provenEntry(host(1), 1))).stored, true);
      assert.equal((await b.get(agent.id))?.hostId, host(1).id);
    } finally {
      for (const s of opened) await s.close();
      await own.destroy();
    }
  });
});

describe('RedisStore with Redis down', () => {
  it('every operation is FERRY_ERR_DIRECTORY_UNAVAILABLE, and works again once Redis is back', async () => {
    const own = await startRedisServer({ appendonly: true });
    let s: RedisStore | undefined;
    try {
      s = await RedisStore.open({ url: own.url, prefix: 'down' });
      await s.put(provenEntry(host(0), 1));
      await own.stop();
      // The cache is served only while subscribed; the subscriber hears the stop as a close.
      await until(() => !s!.subscribed);
      await assert.rejects(s.get(agent.id), ferry('FERRY_ERR_DIRECTORY_UNAVAILABLE'));
      await assert.rejects(s.put(provenEntry(host(1), 2)), ferry('FERRY_ERR_DIRECTORY_UNAVAILABLE'));
      await assert.rejects(s.remove(agent.id, 1, host(0).id), ferry('FERRY_ERR_DIRECTORY_UNAVAILABLE'));
      await own.restart();
      await until(() => s!.ready, 10_000);
      // Written before the stop, kept by the append-only file.
      assert.equal((await s.get(agent.id))?.epoch, 1);
      assert.equal((await s.put(provenEntry(host(1), 2))).stored, true);
    } finally {
      await s?.close();
      await own.destroy();
    }
  });

  it('opening against nothing is FERRY_ERR_DIRECTORY_UNAVAILABLE; a bad URL is FERRY_ERR_INVALID_ARGUMENT', async () => {
    const own = await startRedisServer();
    const url = own.url;
    await own.destroy();
    await assert.rejects(RedisStore.open({ url, timeoutMs: 100 }), ferry('FERRY_ERR_DIRECTORY_UNAVAILABLE'));
    await assert.rejects(RedisStore.open({ url: 'http://127.0.0.1:1' }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  });
});

describe('RedisStore and foreign data', () => {
  it('a value it did not write is FERRY_ERR_DIRECTORY_CORRUPT, for reads and for the compare-and-set', async () => {
    const [a] = await nodes(1);
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      await admin.set(`t${prefixes}:a:${agent.id}`, 'not an entry');
    } finally {
      await admin.close();
    }
    await assert.rejects(a!.get(agent.id), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
    await assert.rejects(a!.put(provenEntry(host(0), 1)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  });
});
