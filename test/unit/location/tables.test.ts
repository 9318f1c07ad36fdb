/**
 * The rendezvous's pure tables under injected time: the watch table (lifetime, notification
 * count, per-agent and total bounds, renewal, epoch filter, removal) and REGISTER_PART reassembly
 * (in order only, bounded count and size, expiry, one sender cannot add to another's upload).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UploadTable, WatchTable } from '../../../src/location/index.js';
import { limit } from '../../../src/util/index.js';
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

test('uploads: bounded in number and lifetime', () => {
  const u = new UploadTable({ maxUploads: 2, ttlMs: 100 });
  u.part(0, 'a:1', part(0, Buffer.alloc(6), { uploadId: tok(1) }));
  u.part(10, 'a:1', part(0, Buffer.alloc(6), { uploadId: tok(2) }));
  assert.throws(() => u.part(20, 'a:1', part(0, Buffer.alloc(6), { uploadId: tok(3) })), ferry('FERRY_ERR_LIMIT_EXCEEDED'));
  // At 100 the first has expired: its next fragment is unknown, and there is room for a new one.
  assert.throws(() => u.part(100, 'a:1', part(1, Buffer.alloc(4), { uploadId: tok(1) })), ferry('FERRY_ERR_UPLOAD_BROKEN'));
  assert.equal(u.part(100, 'a:1', part(0, Buffer.alloc(6), { uploadId: tok(3) })), undefined);
  assert.ok(u.part(105, 'a:1', part(1, Buffer.alloc(4), { uploadId: tok(2) })));
  assert.equal(u.size, 1);
});
