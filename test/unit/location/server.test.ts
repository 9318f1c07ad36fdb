/**
 * RendezvousServer and RendezvousClient over loopback UDP (wall time injected for the chains):
 * proven registration and lookup; every refusal (forged, expired, stale, truncated, too long,
 * mismatched, unproven, unsigned, malformed) with its stable code and exactly one log line; an
 * 8-link chain registered through REGISTER_PART fragments; watches answered at once when already
 * newer, notified on landing, resolved by polling when every LANDED is lost and over a lossy link,
 * and never rejecting when the rendezvous is gone; an unpadded WATCH buys no notifications; the
 * lookup cache (hits, refresh by LANDED and own registration, drop on failure); the directory
 * surviving a restart through the snapshot file; the relay of a first CONNECT to a host; and
 * DEREGISTER: the holder removes its entry, a stale, replayed or forged one is refused (one log
 * line each) and the entry kept.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlChannel, type DatagramSocketLike } from '../../../src/control/index.js';
import { MemoryStore, RendezvousClient, RendezvousServer, registrationDigest, type LocationEntry, type RendezvousClientOptions, type RendezvousServerOptions } from '../../../src/location/index.js';
import { LossyDatagramSocket } from '../../../src/testing/index.js';
import { FerryError, MemoryLogger, type ErrorCode } from '../../../src/util/index.js';
import { deregisterSigned, encodeDeregister, encodeDatagram, encodeRegister, encodeRelayedAck, encodeWatch, decodeRelayed, decodeWatchAck, LocationMessageType as T, MessageType, type Register } from '../../../src/wire/index.js';
import { freshChain } from '../../../src/identity/index.js';
import { HOUR, T0, agent, chainOf, ferry, host, mallory, provenEntry, provenRegister, registration, signed } from './fixtures.js';

const NOW = (): number => T0 + 1000;
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: RendezvousServerOptions = {}): Promise<RendezvousServer> {
  const s = await RendezvousServer.start({ now: NOW, ...opts });
  cleanups.push(() => s.close());
  return s;
}

async function client(srv: RendezvousServer | string, opts: Partial<RendezvousClientOptions> = {}): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ server: typeof srv === 'string' ? srv : srv.address, ...opts });
  cleanups.push(() => c.close());
  return c;
}

async function raw(): Promise<ControlChannel> {
  const c = await ControlChannel.bind({ limits: { maxTries: 4 } });
  cleanups.push(() => c.close());
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A socket wrapper that drops every incoming datagram of one message type. */
function dropType(type: number): (s: DatagramSocketLike) => DatagramSocketLike & { dropped: number } {
  return (inner) => {
    const listeners: ((m: Buffer, r: { address: string; port: number }) => void)[] = [];
    const w = {
      dropped: 0,
      send: (b: Buffer, p: number, a: string) => inner.send(b, p, a),
      on(_e: 'message', l: (m: Buffer, r: { address: string; port: number }) => void) {
        listeners.push(l);
        return w;
      },
      close: () => inner.close(),
      address: () => inner.address(),
    };
    inner.on('message', (m, r) => {
      if (m[1] === type) {
        w.dropped++;
        return;
      }
      for (const l of listeners) l(m, r);
    });
    return w;
  };
}

describe('rendezvous over loopback', () => {
  it('registers a proven location and answers lookups', async () => {
    const srv = await server();
    const c = await client(srv, { signer: host(0) });
    await c.register(provenEntry(host(0), 1));
    const other = await client(srv);
    const e = await other.lookup(agent.id);
    assert.deepEqual(e, { agent: agent.id, hostId: host(0).id, ip: '127.0.0.1', controlPort: 4001, redirectorPort: 5001, epoch: 1 });
    assert.equal(await other.lookup(host(5).id as never), undefined);
    assert.equal(srv.stats.registered, 1);
  });

  it('refuses bad registrations with stable codes, each logged once', async () => {
    const log = new MemoryLogger();
    const srv = await server({ logger: log });
    const ch = await raw();
    await ch.request(srv.address, T.REGISTER, encodeRegister(provenRegister(host(0), 1)));
    const send = (reg: Register | Buffer): Promise<unknown> => ch.request(srv.address, T.REGISTER, Buffer.isBuffer(reg) ? reg : encodeRegister(reg));
    const forged = provenRegister(host(1), 3);
    const link = { ...forged.chain![0]!, signature: Buffer.from(forged.chain![0]!.signature) };
    link.signature[0]! ^= 0x80;
    const cut = encodeRegister(provenRegister(host(1), 3));
    const cases: [string, Register | Buffer, ErrorCode][] = [
      ['forged', signed(registration([link], host(1), 3), host(1)), 'FERRY_ERR_CHAIN_FORGED'],
      ['expired', provenRegister(host(1), 3, T0 - 2 * HOUR), 'FERRY_ERR_CHAIN_EXPIRED'],
      ['stale', provenRegister(host(1), 1), 'FERRY_ERR_STALE_EPOCH'],
      ['truncated (empty)', signed(registration([], host(1), 3), host(1)), 'FERRY_ERR_CHAIN_TRUNCATED'],
      ['truncated (first link missing)', signed(registration(chainOf(2).slice(1), host(1), 2), host(1)), 'FERRY_ERR_CHAIN_TRUNCATED'],
      ['chain for another epoch', signed(registration(chainOf(2), host(1), 3), host(1)), 'FERRY_ERR_REGISTRATION_MISMATCH'],
      ['truncated (bytes cut)', cut.subarray(0, cut.length - 100), 'FERRY_ERR_MALFORMED_CERTIFICATE'],
      ['mismatched host', signed(registration(freshChain(agent, host(1).publicRaw, 3, T0, HOUR), host(2), 3), host(2)), 'FERRY_ERR_REGISTRATION_MISMATCH'],
      ['unproven', registration(undefined, host(1), 3), 'FERRY_ERR_REGISTRATION_UNPROVEN'],
      ['unsigned locator change', { ...provenRegister(host(1), 3), ip: '10.9.9.9' }, 'FERRY_ERR_BAD_SIGNATURE'],
      ['malformed', Buffer.from([0x80]), 'FERRY_ERR_MALFORMED_DATAGRAM'],
    ];
    for (const [name, reg, code] of cases) await assert.rejects(send(reg), ferry(code), name);
    const refused = log.lines.filter((l) => l.event === 'rendezvous.refused');
    assert.deepEqual(
      refused.map((l) => l.fields.code),
      cases.map((c) => c[2]),
    );
    assert.equal(srv.stats.refused, cases.length);
    // The proven entry is untouched.
    assert.equal((await srv.store.get(agent.id))?.hostId, host(0).id);
  });

  it('deregistration: the holder removes its entry; a stale, replayed or forged one is refused, logged once, and the entry kept', async () => {
    const log = new MemoryLogger();
    const srv = await server({ logger: log });
    const h0 = await client(srv, { signer: host(0), cacheTtlMs: 0 });
    const h1 = await client(srv, { signer: host(1), cacheTtlMs: 0 });
    const first = provenEntry(host(0), 1);
    await h0.register(first);
    // The agent moves to host 1 (epoch 2); host 0's late deregistration of epoch 1 removes nothing.
    const moved = provenEntry(host(1), 2);
    await h1.register(moved);
    await assert.rejects(h0.deregister(first), ferry('FERRY_ERR_NOT_HOLDER'));
    assert.equal((await h0.lookup(agent.id))?.hostId, host(1).id, 'the newer entry is kept');
    // A DEREGISTER by someone else, claiming host 1: with Mallory's key, or host 1's key and Mallory's signature.
    const ch = await raw();
    const unsigned = { agent: agent.id, hostId: host(1).id, epoch: 2, registration: registrationDigest(moved.chain), hostKey: Buffer.from(host(1).publicRaw) };
    await assert.rejects(ch.request(srv.address, T.DEREGISTER, encodeDeregister({ ...unsigned, signature: mallory.sign(deregisterSigned(unsigned)) })), ferry('FERRY_ERR_BAD_SIGNATURE'));
    const malloryKey = { ...unsigned, hostKey: Buffer.from(mallory.publicRaw) };
    await assert.rejects(ch.request(srv.address, T.DEREGISTER, encodeDeregister({ ...malloryKey, signature: mallory.sign(deregisterSigned(malloryKey)) })), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
    assert.equal((await srv.store.get(agent.id))?.epoch, 2);
    // The holder removes it; the same request again finds nothing (acknowledged with 0).
    const genuine = encodeDeregister({ ...unsigned, signature: host(1).sign(deregisterSigned(unsigned)) });
    assert.equal(await h1.deregister(moved), true);
    assert.equal(await h1.lookup(agent.id), undefined);
    assert.equal(srv.stats.deregistered, 1);
    const fresh = await raw();
    assert.equal((await fresh.request(srv.address, T.DEREGISTER, genuine)).body[0], 0);
    // The deregistered epoch is a tombstone: LOOKUP says so, and nothing at or below it registers
    // again, not even a fresh chain at the same host and epoch (a replay could not be told apart).
    assert.equal(await h1.lookup(agent.id), undefined);
    assert.equal(h1.removedEpoch(agent.id), 2);
    await assert.rejects(h1.register(provenEntry(host(1), 2, T0 + 5000)), ferry('FERRY_ERR_STALE_EPOCH'));
    // Registered again above it: the old DEREGISTER, replayed, is refused.
    await h1.register(provenEntry(host(1), 3, T0 + 5000));
    assert.equal(h1.removedEpoch(agent.id), undefined, 'an entry again: no tombstone to report');
    await assert.rejects((await raw()).request(srv.address, T.DEREGISTER, genuine), ferry('FERRY_ERR_NOT_HOLDER'));
    assert.equal((await srv.store.get(agent.id))?.hostId, host(1).id, 'the replay removed nothing');
    const refused = log.lines.filter((l) => l.event === 'rendezvous.refused').map((l) => l.fields.code);
    assert.deepEqual(refused, ['FERRY_ERR_NOT_HOLDER', 'FERRY_ERR_BAD_SIGNATURE', 'FERRY_ERR_IDENTITY_MISMATCH', 'FERRY_ERR_STALE_EPOCH', 'FERRY_ERR_NOT_HOLDER']);
  });

  it("accepts a host's own registration (empty chain, its key) and refuses another key or signer for that id", async () => {
    const srv = await server();
    const h = host(3);
    const self = (key: Uint8Array, epoch: number): LocationEntry => ({ agent: h.id as unknown as LocationEntry['agent'], hostId: h.id, ip: '127.0.0.1', controlPort: 7, redirectorPort: 8, epoch, agentKey: key, chain: [] });
    await (await client(srv, { signer: h })).register(self(h.publicRaw, 5));
    const stored = await (await client(srv)).lookup(h.id as unknown as LocationEntry['agent']);
    assert.equal(stored?.hostId, h.id);
    assert.equal(stored?.redirectorPort, 8);
    const ch = await raw();
    const send = (reg: Register): Promise<unknown> => ch.request(srv.address, T.REGISTER, encodeRegister(reg));
    const unsigned = (key: Uint8Array, epoch: number): Omit<Register, 'signature'> => ({ ...self(key, epoch), agentKey: Buffer.from(key), chain: [] });
    await assert.rejects(send(signed(unsigned(mallory.publicRaw, 6), mallory)), ferry('FERRY_ERR_IDENTITY_MISMATCH'));
    await assert.rejects(send(signed(unsigned(h.publicRaw, 6), mallory)), ferry('FERRY_ERR_BAD_SIGNATURE'));
    assert.equal((await srv.store.get(h.id as unknown as LocationEntry['agent']))?.epoch, 5, 'the host entry is untouched');
  });

  it('registers an 8-link chain in REGISTER_PART fragments (and refuses a 9th link)', async () => {
    const srv = await server({ now: () => T0 + 8 * 60_000 });
    const c = await client(srv, { signer: host(7) });
    const entry: LocationEntry = { ...registration(chainOf(8), host(7), 8, '2001:db8::7'), agentKey: agent.publicRaw };
    await c.register(entry);
    assert.equal((await srv.store.get(agent.id))?.chain?.length, 8);
    assert.equal((await (await client(srv)).lookup(agent.id))?.ip, '2001:db8::7');
    // A 9th link travels in fragments too, and is refused before any signature is checked.
    const nine: LocationEntry = { ...registration(chainOf(9), host(8), 9, '2001:db8::9'), agentKey: agent.publicRaw };
    await assert.rejects(c.register(nine, { signer: host(8) }), ferry('FERRY_ERR_CHAIN_TOO_LONG'));
    assert.equal((await srv.store.get(agent.id))?.epoch, 8);
    // The client refuses to sign for another host, and a chain without a signer.
    await assert.rejects(c.register({ ...entry, epoch: 9 }, { signer: host(1) }), ferry('FERRY_ERR_INVALID_ARGUMENT'));
    await assert.rejects((await client(srv)).register(entry), ferry('FERRY_ERR_INVALID_ARGUMENT'));
  });

  it('watch: at once when newer, notified on landing (no polling needed), current after the wait', async () => {
    const srv = await server();
    const reg = await client(srv, { signer: host(0) });
    await reg.register(provenEntry(host(0), 1));
    const watcher = await client(srv, { pollMs: 60_000, cacheTtlMs: 0 });
    assert.equal((await watcher.watch(agent.id, 0, 5000))?.epoch, 1, 'already newer');
    const t0 = Date.now();
    const waiting = watcher.watch(agent.id, 1, 5000);
    await sleep(50);
    assert.equal(srv.watchCount, 1);
    await reg.register(provenEntry(host(1), 2), { signer: host(1) });
    const landed = await waiting;
    assert.equal(landed?.epoch, 2);
    assert.equal(landed?.hostId, host(1).id);
    assert.ok(Date.now() - t0 < 2000, 'woken by LANDED, not by a poll');
    assert.equal(srv.stats.notified, 1);
    await sleep(50);
    assert.equal(srv.watchCount, 0, 'UNWATCH freed the slot');
    // Nothing newer arrives: after the wait, the current location.
    assert.equal((await watcher.watch(agent.id, 2, 100))?.epoch, 2);
  });

  it('watch: every LANDED lost, the landing is still found by polling', async () => {
    const srv = await server();
    const reg = await client(srv, { signer: host(0) });
    await reg.register(provenEntry(host(0), 1));
    let link!: ReturnType<ReturnType<typeof dropType>>;
    const watcher = await client(srv, { pollMs: 50, cacheTtlMs: 0, wrap: (s) => (link = dropType(T.LANDED)(s)) });
    const waiting = watcher.watch(agent.id, 1, 5000);
    await sleep(30);
    await reg.register(provenEntry(host(1), 2), { signer: host(1) });
    assert.equal((await waiting)?.epoch, 2);
    assert.equal(link.dropped, 1, 'the notification was sent and lost');
  });

  it('watch: over a lossy, duplicating link (LossyDatagramSocket) the landing is still seen', async () => {
    const srv = await server();
    const reg = await client(srv, { signer: host(0) });
    await reg.register(provenEntry(host(0), 1));
    for (const seed of [1, 2, 3]) {
      const watcher = await client(srv, {
        pollMs: 40,
        cacheTtlMs: 0,
        wrap: (s) => new LossyDatagramSocket(s, { seed, drop: 0.3, duplicate: 0.2, delayMs: [0, 10], incoming: { drop: 0.3, duplicate: 0.2 } }),
      });
      const waiting = watcher.watch(agent.id, seed, 8000);
      await sleep(20);
      await reg.register(provenEntry(host(seed), seed + 1), { signer: host(seed) });
      assert.equal((await waiting)?.epoch, seed + 1, `seed ${seed}`);
    }
  });

  it('watch never rejects: a rendezvous that is gone yields the best known location', async () => {
    const srv = await server();
    const addr = srv.address;
    const c = await client(srv, { signer: host(0) });
    await c.register(provenEntry(host(0), 1));
    await srv.close();
    const t0 = Date.now();
    const e = await c.watch(agent.id, 1, 300);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(e?.epoch, 1, 'what it last knew');
    const fresh = await client(addr, { cacheTtlMs: 0 });
    assert.equal(await fresh.watch(agent.id, 0, 200), undefined);
    assert.equal(await fresh.watch(agent.id, 0, 0), undefined);
  });

  it('an unpadded WATCH is answered but buys no notification (3x rule)', async () => {
    const srv = await server();
    const ch = await raw();
    const reply = await ch.request(srv.address, T.WATCH, encodeWatch({ agent: agent.id, newerThan: 0, ttlMs: 1000, token: Buffer.alloc(8), padding: 0 }));
    const ack = decodeWatchAck(reply.body);
    assert.deepEqual([ack.ttlMs, ack.notifications, ack.current], [0, 0, undefined]);
    assert.equal(srv.watchCount, 0);
    const padded = await ch.request(srv.address, T.WATCH, encodeWatch({ agent: agent.id, newerThan: 0, ttlMs: 10 ** 8, token: Buffer.alloc(8), padding: 200 }));
    assert.deepEqual([decodeWatchAck(padded.body).ttlMs, decodeWatchAck(padded.body).notifications], [30_000, 4]);
  });

  it('lookup cache: served while fresh, refreshed by own registration, dropped on a refused one', async () => {
    const srv = await server();
    const c = await client(srv, { signer: host(0), cacheTtlMs: 60_000 });
    await c.register(provenEntry(host(0), 1));
    assert.equal((await c.lookup(agent.id))?.epoch, 1);
    assert.equal(srv.stats.lookups, 0, 'served from the registration');
    // Someone else moves the agent: the cache is stale until invalidated or refreshed.
    await (await client(srv, { signer: host(1) })).register(provenEntry(host(1), 2));
    assert.equal((await c.lookup(agent.id))?.epoch, 1);
    c.invalidate(agent.id);
    assert.equal((await c.lookup(agent.id))?.epoch, 2);
    assert.equal(srv.stats.lookups, 1);
    // A refused registration drops the entry: the next lookup asks.
    await assert.rejects(c.register(provenEntry(host(0), 2)), ferry('FERRY_ERR_STALE_EPOCH'));
    await c.lookup(agent.id);
    assert.equal(srv.stats.lookups, 2);
    // Concurrent lookups share one request.
    c.invalidate(agent.id);
    await Promise.all([c.lookup(agent.id), c.lookup(agent.id), c.lookup(agent.id)]);
    assert.equal(srv.stats.lookups, 3);
  });

  it('lookup cache: a LANDED notification refreshes it', async () => {
    const srv = await server();
    const c = await client(srv, { cacheTtlMs: 60_000, pollMs: 60_000 });
    const r = await client(srv, { signer: host(0) });
    await r.register(provenEntry(host(0), 1));
    assert.equal((await c.lookup(agent.id))?.epoch, 1);
    const waiting = c.watch(agent.id, 1, 5000);
    await sleep(30);
    await r.register(provenEntry(host(1), 2), { signer: host(1) });
    await waiting;
    const before = srv.stats.lookups;
    assert.equal((await c.lookup(agent.id))?.epoch, 2);
    assert.equal(srv.stats.lookups, before, 'from the cache');
  });

  it('the directory survives a restart through its snapshot file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-rv-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'directory.json');
    const first = await server({ store: await MemoryStore.open({ snapshotFile: file }) });
    await (await client(first, { signer: host(0) })).register(provenEntry(host(0), 4));
    await first.close();
    const second = await server({ store: await MemoryStore.open({ snapshotFile: file }) });
    assert.equal((await (await client(second)).lookup(agent.id))?.epoch, 4);
    // And it still enforces epochs across the restart.
    await assert.rejects((await client(second, { signer: host(1) })).register(provenEntry(host(1), 4)), ferry('FERRY_ERR_STALE_EPOCH'));
  });

  it('development mode accepts bare claims, ordered by epoch', async () => {
    const srv = await server({ requireChains: false });
    const c = await client(srv);
    const bare = { agent: agent.id, hostId: host(0).id, ip: '127.0.0.1', controlPort: 1, redirectorPort: 2, epoch: 1 };
    await c.register(bare);
    await assert.rejects(c.register({ ...bare, controlPort: 9 }), ferry('FERRY_ERR_STALE_EPOCH'));
    await c.register({ ...bare, epoch: 2 });
    assert.equal((await srv.store.get(agent.id))?.epoch, 2);
    const strict = await server();
    await assert.rejects((await client(strict)).register(bare), ferry('FERRY_ERR_REGISTRATION_UNPROVEN'));
  });

  it('the registration already stored is acknowledged again, verified, without a write (a retry through another node)', async () => {
    const srv = await server();
    const c = await client(srv, { signer: host(0) });
    const e = provenEntry(host(0), 3);
    await c.register(e);
    const registered = srv.stats.registered;
    // A fresh client: the server's duplicate suppression does not apply, only the entry does.
    await (await client(srv, { signer: host(0) })).register(e);
    assert.equal(srv.stats.registered, registered, 'no second write');
    // Same locator and epoch but a chain for another agent key: verified, so refused.
    await assert.rejects((await client(srv, { signer: host(0) })).register({ ...e, chain: freshChain(mallory, host(0).publicRaw, 3, T0, HOUR) }), ferry('FERRY_ERR_CHAIN_TRUNCATED'));
    // Another host at the same epoch is still stale.
    await assert.rejects((await client(srv, { signer: host(1) })).register(provenEntry(host(1), 3)), ferry('FERRY_ERR_STALE_EPOCH'));
  });

  it('relays a first CONNECT to the current host and passes its answer or error back', async () => {
    const srv = await server();
    const hostCh = await raw();
    const seen: { origin: string; body: Buffer }[] = [];
    hostCh.onRequest((req) => {
      assert.equal(req.type, T.RELAYED);
      const m = decodeRelayed(req.body);
      seen.push({ origin: `${m.originIp}:${m.originPort}`, body: Buffer.from(m.innerBody) });
      if (m.innerBody[0] === 0xee) throw new FerryError('FERRY_ERR_NOT_LISTENING', 'nobody home');
      return { type: T.RELAYED_ACK, body: encodeRelayedAck({ innerType: MessageType.CONNECT_ACK, innerBody: Buffer.from('ack') }) };
    });
    const port = Number(hostCh.address.split(':')[1]);
    await (await client(srv, { signer: host(0) })).register({ ...provenEntry(host(0), 1), controlPort: port });
    const c = await client(srv);
    const r = await c.relay(agent.id, MessageType.CONNECT, Buffer.from('connect'));
    assert.deepEqual([r.type, r.body.toString(), r.location.controlPort, r.location.hostId], [MessageType.CONNECT_ACK, 'ack', port, host(0).id]);
    assert.deepEqual(seen[0], { origin: c.address, body: Buffer.from('connect') });
    await assert.rejects(c.relay(agent.id, MessageType.CONNECT, Buffer.of(0xee)), ferry('FERRY_ERR_NOT_LISTENING'));
    await assert.rejects(c.relay(agent.id, MessageType.SUS, Buffer.of(1)), ferry('FERRY_ERR_REFUSED'));
    await assert.rejects(c.relay(host(3).id as never, MessageType.CONNECT, Buffer.of(1)), ferry('FERRY_ERR_UNKNOWN_AGENT'));
    assert.equal(srv.stats.relayed, 1);
  });

  it('random requests of every location type are refused or answered, and the server keeps serving', async () => {
    const srv = await server();
    const ch = await ControlChannel.bind({ limits: { maxTries: 2 } });
    cleanups.push(() => ch.close());
    let state = 12345;
    const rnd = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, () => {
        const body = Buffer.from(Array.from({ length: rnd(120) }, () => rnd(256)));
        return ch.request(srv.address, 20 + rnd(15), body).then(
          () => 'answered',
          (err: unknown) => (err instanceof FerryError ? err.code : `not a FerryError: ${String(err)}`),
        );
      }),
    );
    for (const o of outcomes) assert.ok(o === 'answered' || o.startsWith('FERRY_ERR_'), o);
    assert.ok(!outcomes.includes('FERRY_ERR_INTERNAL'), 'no handler crashed');
    await (await client(srv, { signer: host(0) })).register(provenEntry(host(0), 1));
    assert.equal((await (await client(srv)).lookup(agent.id))?.epoch, 1);
  });

  it('ignores stray datagrams and answers unknown request types with UNKNOWN_TYPE', async () => {
    const srv = await server();
    const ch = await raw();
    await assert.rejects(ch.request(srv.address, 99, Buffer.alloc(4)), ferry('FERRY_ERR_UNKNOWN_TYPE'));
    ch.send(srv.address, T.LANDED, Buffer.alloc(10));
    await assert.rejects(ch.request(srv.address, T.LOOKUP, Buffer.alloc(3)), ferry('FERRY_ERR_MALFORMED_DATAGRAM'));
    assert.ok(encodeDatagram({ type: T.LOOKUP, flags: 0, requestId: 1 }, Buffer.alloc(16)).length <= 24);
  });
});
