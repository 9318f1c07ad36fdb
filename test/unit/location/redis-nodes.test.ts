/**
 * Several RendezvousServers over one Redis (a real redis-server started here), reached by
 * RendezvousClients over loopback UDP: a registration through one node is served, chain and all,
 * by another; a watch through node A is told (LANDED, not a poll) when the agent lands through
 * node B; a stale or forged registration through one node is refused and changes nothing at the
 * others; a client given two nodes fails over when its node dies and its waiting watch re-arms
 * at the other; a registration that node A committed but never answered, sent again through B,
 * is acknowledged without a second write (the move commits exactly once); a node whose change
 * feed was interrupted re-reads what its watchers wait for; a deregistration through one node
 * removes the entry at every node, and a stale one (sent before a move committed through another
 * node) is refused and removes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DatagramSocketLike } from '../../../src/control/index.js';
import { LocationMessageType as T } from '../../../src/wire/index.js';
import { MemoryStore, RedisStore, RendezvousClient, RendezvousServer, type LocationEntry, type RendezvousClientOptions, type StoreListener } from '../../../src/location/index.js';
import { startRedisServer, type RedisServerHandle } from '../../../src/testing/index.js';
import { freshChain } from '../../../src/identity/index.js';
import { HOUR, T0, agent, ferry, host, mallory, provenEntry } from './fixtures.js';

const NOW = (): number => T0 + 1000;
let redis: RedisServerHandle;
const cleanups: Array<() => unknown> = [];
before(async () => {
  redis = await startRedisServer();
});
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await redis?.destroy();
});

let prefixes = 0;
/** A socket wrapper that never sends REGISTER_ACK: the node commits, then "dies" before answering. */
function mute(inner: DatagramSocketLike): DatagramSocketLike {
  return {
    send: (b, p, a) => {
      if (b[1] !== T.REGISTER_ACK) inner.send(b, p, a);
    },
    on: (e, l) => inner.on(e, l),
    close: () => inner.close(),
    address: () => inner.address(),
  };
}

async function nodes(n: number, wrapFirst?: (s: DatagramSocketLike) => DatagramSocketLike): Promise<RendezvousServer[]> {
  const prefix = `n${++prefixes}`;
  const out: RendezvousServer[] = [];
  for (let i = 0; i < n; i++) {
    const s = await RendezvousServer.start({ now: NOW, store: await RedisStore.open({ url: redis.url, prefix }), ...(i === 0 && wrapFirst ? { wrap: wrapFirst } : {}) });
    cleanups.push(() => s.close());
    out.push(s);
  }
  return out;
}

async function client(servers: (RendezvousServer | string)[], opts: Partial<RendezvousClientOptions> = {}): Promise<RendezvousClient> {
  const [first, ...rest] = servers.map((s) => (typeof s === 'string' ? s : s.address));
  const c = await RendezvousClient.connect({ server: first!, alternates: rest, cacheTtlMs: 0, ...opts });
  cleanups.push(() => c.close());
  return c;
}

/** Wait (bounded) until `p()` holds. */
async function until(p: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!p()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const plain = (e: LocationEntry | undefined): unknown => e && { ...e, agentKey: e.agentKey && Buffer.from(e.agentKey) };

describe('rendezvous nodes over one Redis', () => {
  it('a registration through one node is served, with its chain, by the other', async () => {
    const [a, b] = await nodes(2);
    await (await client([a!], { signer: host(0) })).register(provenEntry(host(0), 1));
    assert.equal((await (await client([b!])).lookup(agent.id))?.hostId, host(0).id);
    assert.deepEqual(plain(await b!.store.get(agent.id)), plain(provenEntry(host(0), 1)));
  });

  it('a watch through node A is told by LANDED when the agent lands through node B', async () => {
    const [a, b] = await nodes(2);
    await (await client([b!], { signer: host(0) })).register(provenEntry(host(0), 1));
    // Polls far apart: only a LANDED can answer within the wait.
    const watcher = await client([a!], { pollMs: 60_000 });
    const seen = watcher.watch(agent.id, 1, 5000);
    await until(() => a!.watchCount > 0);
    await (await client([b!], { signer: host(1) })).register(provenEntry(host(1), 2));
    const e = await seen;
    assert.equal(e?.epoch, 2);
    assert.equal(e?.hostId, host(1).id);
    assert.equal(a!.stats.notified, 1, 'node A sent the LANDED for a commit made through node B');
  });

  it('a stale or forged registration through one node is refused, and the others keep the true entry', async () => {
    const [a, b, c] = await nodes(3);
    await (await client([a!], { signer: host(0) })).register(provenEntry(host(0), 5));
    await assert.rejects((await client([b!], { signer: host(1) })).register(provenEntry(host(1), 4)), ferry('FERRY_ERR_STALE_EPOCH'));
    await assert.rejects((await client([b!], { signer: host(1) })).register(provenEntry(host(1), 5)), ferry('FERRY_ERR_STALE_EPOCH'));
    // Mallory's key delegating "the agent" to host 1: the chain is not the agent's.
    const forged = { ...provenEntry(host(1), 6), chain: freshChain(mallory, host(1).publicRaw, 6, T0, HOUR) };
    await assert.rejects((await client([c!], { signer: host(1) })).register(forged), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
    for (const n of [a!, b!, c!]) assert.equal((await (await client([n])).lookup(agent.id))?.hostId, host(0).id);
    assert.equal(a!.stats.refused + b!.stats.refused + c!.stats.refused, 3);
  });

  it('a client given two nodes fails over when its node dies; its waiting watch re-arms at the other', async () => {
    const [a, b] = await nodes(2);
    const both = [a!.address, b!.address];
    const h0 = await client(both, { signer: host(0) });
    await h0.register(provenEntry(host(0), 1));
    const watcher = await client(both, { pollMs: 300 });
    const seen = watcher.watch(agent.id, 1, 8000);
    await until(() => a!.watchCount > 0);
    await a!.close();
    // The watcher's next poll times out on A, fails over, and sends its WATCH to B.
    await until(() => b!.watchCount > 0);
    assert.equal(watcher.server, b!.address);
    const h1 = await client(both, { signer: host(1) });
    await h1.register(provenEntry(host(1), 2));
    assert.equal(h1.server, b!.address, 'the registering host moved on to node B');
    assert.equal((await seen)?.epoch, 2);
  });

  it('a registration node A committed but never answered is acknowledged by node B without a second write', async () => {
    const [a, b] = await nodes(2, mute);
    const h = await client([a!, b!], { signer: host(0) });
    await h.register(provenEntry(host(0), 1));
    assert.equal(h.server, b!.address, 'the host failed over to B after A did not answer');
    assert.equal(a!.stats.registered, 1, 'A committed');
    assert.equal(b!.stats.registered, 0, 'B wrote nothing');
    assert.equal((await b!.store.get(agent.id))?.hostId, host(0).id);
    // Another host's registration at the committed epoch is still refused.
    await assert.rejects((await client([b!], { signer: host(1) })).register(provenEntry(host(1), 1)), ferry('FERRY_ERR_STALE_EPOCH'));
  });
});

describe('a node whose change feed was interrupted', () => {
  it('a stale deregistration through node B, after a move committed through A, removes nothing; the holder\'s removes it everywhere', async () => {
    const [a, b] = await nodes(2);
    const h0 = await client([b!], { signer: host(0) });
    const h1 = await client([a!], { signer: host(1) });
    const first = provenEntry(host(0), 1);
    await h0.register(first);
    // Node A serves (and caches) it; then the agent moves to host 1 through A.
    assert.equal((await a!.store.get(agent.id))?.hostId, host(0).id);
    const moved = provenEntry(host(1), 2);
    await h1.register(moved);
    await assert.rejects(h0.deregister(first), ferry('FERRY_ERR_NOT_HOLDER'));
    for (const n of [a!, b!]) assert.equal((await (await client([n])).lookup(agent.id))?.hostId, host(1).id, `node ${n.address} keeps the newer entry`);
    // The holder deregisters through B; A stops serving it too (its cache hears the removal).
    assert.equal(await (await client([b!], { signer: host(1) })).deregister(moved), true);
    assert.equal(await (await client([b!])).lookup(agent.id), undefined);
    let seen: LocationEntry | undefined = moved;
    const end = Date.now() + 5000;
    while (seen && Date.now() < end) seen = await a!.store.get(agent.id);
    assert.equal(seen, undefined, 'node A no longer serves the removed entry');
    assert.equal(await (a!.store as RedisStore).count(), 0);
  });

  it('re-reads the agents its watchers wait for and sends LANDED for the newer ones', async () => {
    // A store whose feed the test controls: the entry changes "elsewhere" while the feed is down.
    let feed: StoreListener | undefined;
    const mem = await MemoryStore.open();
    const store = Object.assign(Object.create(mem) as MemoryStore, {
      subscribe: (l: StoreListener) => {
        feed = l;
        return () => (feed = undefined);
      },
    });
    const srv = await RendezvousServer.start({ now: NOW, store });
    cleanups.push(() => srv.close());
    await mem.put(provenEntry(host(0), 1));
    const c = await RendezvousClient.connect({ server: srv.address, pollMs: 60_000, cacheTtlMs: 0 });
    cleanups.push(() => c.close());
    const seen = c.watch(agent.id, 1, 5000);
    await until(() => srv.watchCount > 0);
    await mem.put(provenEntry(host(1), 2));
    assert.ok(feed, 'the server subscribed to the store');
    feed.resync();
    assert.equal((await seen)?.epoch, 2);
    assert.equal(srv.stats.notified, 1);
  });
});
