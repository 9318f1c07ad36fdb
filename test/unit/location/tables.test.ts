/**
 * The rendezvous's pure tables under injected time: the watch table (lifetime, notification
 * count, per-agent and total bounds, renewal, epoch filter, removal) and REGISTER_PART reassembly
 * (in order only, bounded count and size, expiry, one sender cannot add to another's upload).
 * The proven-address table: lifetime, renewal, oldest forgotten first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProvenAddresses, UploadTable, WatchTable } from '../../../src/location/index.js';
import { limit } from '../../../src/util/index.js';
import { idFromBytes, type AgentId } from '../../../src/identity/index.js';
import { agent, ferry, otherAgent } from './fixtures.js';

const tok = (n: number): Buffer => Buffer.alloc(8, n);
const watch = (from: string, token: Buffer, over: Partial<{ newerThan: number; ttlMs: number; notifications: number }> = {}) => ({
  agent: agent.id,
  from,
  token,
  newerThan: 1,
  ttlMs: 1000,
  notifications: 4,
  ...over,
});

test('watches: notified above their epoch, counted down, expired by time', () => {
  const t = new WatchTable();
  assert.deepEqual(t.add(0, watch('a:1', tok(1), { notifications: 2 })), { ttlMs: 1000, notifications: 2 });
  assert.deepEqual(t.add(0, watch('b:1', tok(2), { newerThan: 5 })), { ttlMs: 1000, notifications: 4 });
  // Epoch 1 is not newer than 1; epoch 2 notifies the first watcher only.
  assert.deepEqual(t.landed(10, agent.id, 1), []);
  assert.deepEqual(t.landed(10, agent.id, 2).map((n) => n.to), ['a:1']);
  assert.deepEqual(t.landed(10, agent.id, 6).map((n) => n.to), ['a:1', 'b:1']);
  // The first has used its two notifications.
  assert.deepEqual(t.landed(10, agent.id, 7).map((n) => n.to), ['b:1']);
  assert.equal(t.size, 1);
  // Other agents are not affected; expiry drops the rest.
  assert.deepEqual(t.landed(10, otherAgent.id, 9), []);
  assert.deepEqual(t.landed(1000, agent.id, 8), []);
  assert.equal(t.size, 0);
});

test('watches: bounded lifetime and count, zero grants, renewal replaces, removal by token', () => {
  const t = new WatchTable();
  assert.deepEqual(t.add(0, watch('a:1', tok(1), { ttlMs: 10 ** 9, notifications: 100 })), { ttlMs: limit('WATCH_MAX_TTL_MS'), notifications: limit('WATCH_MAX_NOTIFICATIONS') });
  assert.deepEqual(t.add(0, watch('a:1', tok(2), { notifications: 0 })), { ttlMs: 0, notifications: 0 });
  assert.deepEqual(t.add(0, watch('a:1', tok(3), { ttlMs: 0 })), { ttlMs: 0, notifications: 0 });
  assert.equal(t.size, 1);
  t.add(5, watch('a:1', tok(1), { ttlMs: 50 }));
  assert.equal(t.size, 1);
  assert.equal(t.remove(agent.id, 'b:1', tok(1)), false, 'another address cannot remove it');
  assert.equal(t.remove(agent.id, 'a:1', tok(9)), false);
  assert.equal(t.remove(agent.id, 'a:1', tok(1)), true);
  assert.equal(t.size, 0);
});

test('watches: per-agent and total bounds, expired watches make room', () => {
  const t = new WatchTable({ maxEntries: 3, maxPerAgent: 2 });
  assert.equal(t.add(0, watch('a:1', tok(1))).notifications, 4);
  assert.equal(t.add(0, watch('a:2', tok(2), { ttlMs: 10 })).notifications, 4);
  assert.equal(t.add(0, watch('a:3', tok(3))).notifications, 0, 'per-agent bound');
  assert.equal(t.add(0, { ...watch('a:3', tok(3)), agent: otherAgent.id }).notifications, 4);
  assert.equal(t.add(0, { ...watch('a:4', tok(4)), agent: otherAgent.id }).notifications, 0, 'total bound');
  // Once the short watch lapsed, there is room again.
  assert.equal(t.add(20, { ...watch('a:4', tok(4)), agent: otherAgent.id }).notifications, 4);
  assert.equal(t.size, 3);
});

const part = (index: number, fragment: Buffer, over: Partial<{ count: number; totalLength: number; uploadId: Buffer }> = {}) => ({
  uploadId: tok(7),
  index,
  count: 2,
  totalLength: 10,
  fragment,
  ...over,
});

test('uploads: in-order fragments reassemble; gaps, duplicates and disagreements break the upload', () => {
  const u = new UploadTable();
  assert.equal(u.part(0, 'a:1', part(0, Buffer.alloc(6, 1))), undefined);
  assert.deepEqual(u.part(1, 'a:1', part(1, Buffer.alloc(4, 2))), Buffer.concat([Buffer.alloc(6, 1), Buffer.alloc(4, 2)]));
  assert.equal(u.size, 0);
  // Out of order (a fragment 1 first) and a fragment from another address.
  assert.throws(() => u.part(0, 'a:1', part(1, Buffer.alloc(4))), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  u.part(0, 'a:1', part(0, Buffer.alloc(6)));
  assert.throws(() => u.part(0, 'b:1', part(1, Buffer.alloc(4))), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  // A length that disagrees with the first fragment ends the upload.
  assert.throws(() => u.part(0, 'a:1', part(1, Buffer.alloc(4), { totalLength: 11 })), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  assert.equal(u.size, 0);
  // Overrun, and a short total.
  u.part(0, 'a:1', part(0, Buffer.alloc(6)));
  assert.throws(() => u.part(0, 'a:1', part(1, Buffer.alloc(5))), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  u.part(0, 'a:1', part(0, Buffer.alloc(6)));
  assert.throws(() => u.part(0, 'a:1', part(1, Buffer.alloc(3))), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  // A second first fragment for a live upload.
  u.part(0, 'a:1', part(0, Buffer.alloc(6)));
  assert.throws(() => u.part(0, 'a:1', part(0, Buffer.alloc(6))), ferry('FERRY_ERR_UPLOAD_BROKEN'));
});

test('uploads: bounded in number, per source address and in lifetime', () => {
  const u = new UploadTable({ maxUploads: 3, perSource: 2, ttlMs: 100 });
  const first = (now: number, from: string, id: number): Buffer | undefined => u.part(now, from, part(0, Buffer.alloc(6), { uploadId: tok(id) }));
  const second = (now: number, from: string, id: number): Buffer | undefined => u.part(now, from, part(1, Buffer.alloc(4), { uploadId: tok(id) }));
  first(0, 'a:1', 1);
  first(10, 'a:2', 2);
  // A third from the same address (any port) takes that address's own idlest upload.
  assert.equal(first(20, 'a:3', 3), undefined);
  assert.equal(u.size, 2);
  assert.throws(() => second(21, 'a:1', 1), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  // Another address gets in beside them; with the table full, a newcomer takes the idlest upload
  // of the address holding the most (a's, not b's).
  first(30, 'b:1', 4);
  assert.equal(u.size, 3);
  first(40, 'c:1', 5);
  assert.equal(u.size, 3);
  assert.throws(() => second(41, 'a:2', 2), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  assert.ok(second(42, 'b:1', 4), "b's upload completes");
  // At 120 the upload started at 20 has expired: its next fragment is unknown.
  assert.throws(() => second(120, 'a:3', 3), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  assert.ok(second(125, 'c:1', 5));
  assert.equal(u.size, 0);
});

const agentNo = (i: number): AgentId => idFromBytes(Buffer.alloc(16, 0).fill(i & 0xff, 0, 1).fill((i >> 8) & 0xff, 1, 2));

/** Fill a table with default limits completely: 8 sources × WATCH_MAX_PER_SOURCE, 64 per agent. */
function full(ttlMs = 1000): WatchTable {
  const t = new WatchTable();
  const max = limit('WATCH_MAX_ENTRIES');
  for (let i = 0; i < max; i++) {
    const from = `10.0.0.${Math.floor(i / limit('WATCH_MAX_PER_SOURCE'))}:${1000 + (i % 60000)}`;
    const g = t.add(0, { ...watch(from, tok(i & 0xff)), agent: agentNo(Math.floor(i / 64)), ttlMs });
    assert.equal(g.notifications, 4, `watch ${i} kept`);
  }
  assert.equal(t.size, max);
  return t;
}

/** Count every Map walk (for-of, entries, keys, values, forEach) while `fn` runs. */
function mapWalks(fn: () => void): number {
  const proto = Map.prototype as unknown as Record<string | symbol, (...args: unknown[]) => unknown>;
  const names: (string | symbol)[] = [Symbol.iterator, 'entries', 'keys', 'values', 'forEach'];
  const saved = names.map((n) => proto[n]);
  let walks = 0;
  names.forEach((n, i) => {
    const orig = saved[i] as (...args: unknown[]) => unknown;
    proto[n] = function (this: unknown, ...args: unknown[]) {
      walks++;
      return orig.apply(this, args);
    };
  });
  try {
    fn();
  } finally {
    names.forEach((n, i) => (proto[n] = saved[i] as (...args: unknown[]) => unknown));
  }
  return walks;
}

test('watches: one source IP holds at most WATCH_MAX_PER_SOURCE, whatever ports it uses', () => {
  const t = new WatchTable({ maxPerSource: 3 });
  for (let p = 1; p <= 3; p++) assert.equal(t.add(0, { ...watch(`10.0.0.1:${p}`, tok(p)), agent: agentNo(p) }).notifications, 4);
  assert.equal(t.add(0, { ...watch('10.0.0.1:9', tok(9)), agent: agentNo(9) }).notifications, 0, 'a fourth port of the same IP');
  assert.equal(t.add(0, { ...watch('[::1]:9', tok(9)), agent: agentNo(9) }).notifications, 4, 'another source is not affected');
  assert.equal(t.add(0, { ...watch('10.0.0.1:1', tok(1)), agent: agentNo(1) }).notifications, 4, 'a renewal replaces, within the budget');
  assert.equal(t.remove(agentNo(2), '10.0.0.1:2', tok(2)), true);
  assert.equal(t.add(0, { ...watch('10.0.0.1:9', tok(9)), agent: agentNo(9) }).notifications, 4, 'a removal gives the slot back');
  assert.equal(t.add(0, { ...watch('10.0.0.1:8', tok(8)), agent: agentNo(8) }).notifications, 0);
  // Lapsed watches give their slots back when the next add drops them (4 lapsed: all dropped).
  assert.equal(t.add(2000, { ...watch('10.0.0.1:8', tok(8)), agent: agentNo(8) }).notifications, 4);
  assert.equal(t.size, 1);
});

test('watches: a WATCH flood into a full table walks no map and refuses at once', () => {
  const t = full();
  let refused = 0;
  // The attack of issue 10: WATCHes of new sources, agents and tokens into the full table.
  const walks = mapWalks(() => {
    for (let i = 0; i < 2000; i++) {
      if (t.add(10, { ...watch(`10.1.${i >> 8}.${i & 0xff}:7`, tok(i & 0xff)), agent: agentNo(5000 + i) }).notifications === 0) refused++;
    }
  });
  assert.equal(refused, 2000);
  assert.equal(walks, 0, 'no operation looks at the whole table');
  assert.equal(t.size, limit('WATCH_MAX_ENTRIES'));
});

test('watches: a table that lapses at once is drained a few per add, earliest first, never all at once', () => {
  const t = full(1000);
  const max = limit('WATCH_MAX_ENTRIES');
  // Every watch lapsed at 1000: one add drops a bounded few (8) and keeps its own.
  assert.equal(t.add(1000, { ...watch('10.2.0.1:7', tok(1)), agent: agentNo(9000) }).notifications, 4);
  assert.equal(t.size, max - 8 + 1);
  // Lapsed watches notify no one while they wait to be dropped; a landing drops them.
  assert.deepEqual(t.landed(1000, agentNo(100), 9), []);
  assert.equal(t.size, max - 8 + 1 - 64);
});

test('proven addresses: held for their lifetime, re-proving renews, oldest forgotten when full', () => {
  const p = new ProvenAddresses({ maxEntries: 2, ttlMs: 100 });
  assert.equal(p.has(0, '10.0.0.1:1'), false);
  p.add(0, '10.0.0.1:1');
  p.add(10, '10.0.0.2:1');
  assert.equal(p.has(99, '10.0.0.1:1'), true);
  assert.equal(p.has(100, '10.0.0.1:1'), false, 'lapsed');
  p.add(100, '10.0.0.1:1');
  // Full: the oldest proof (10.0.0.2, at 10) goes first, not the renewed one.
  p.add(101, '10.0.0.3:1');
  assert.deepEqual(['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1'].map((a) => p.has(105, a)), [true, false, true]);
  assert.equal(p.size, 2);
});
