/**
 * The stored-entry codec (src/location/stored-entry.ts): every field round-trips (IPv4 and IPv6,
 * with and without key and chain); the epoch sits at the offset the compare-and-set script reads;
 * every truncation, a trailing byte, an unknown version or flag, and a chain without its key are
 * FERRY_ERR_DIRECTORY_CORRUPT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeStoredEntry, encodeStoredEntry, STORED_ENTRY_EPOCH_OFFSET, type LocationEntry } from '../../../src/location/index.js';
import { agent, chainOf, ferry, host, provenEntry } from './fixtures.js';

const plain = (e: LocationEntry): unknown => ({ ...e, ...(e.agentKey ? { agentKey: Buffer.from(e.agentKey) } : {}) });

test('round-trips every field; the epoch is a u32 at its fixed offset', () => {
  const proven = { ...provenEntry(host(0), 3), epoch: 0xfeed_beef };
  const long = { ...provenEntry(host(7), 8), chain: chainOf(8) };
  const bare: LocationEntry = { agent: agent.id, hostId: host(1).id, ip: '2001:db8::7', controlPort: 1, redirectorPort: 65535, epoch: 0 };
  const keyOnly: LocationEntry = { ...bare, ip: '10.0.0.1', agentKey: agent.publicRaw };
  for (const e of [proven, long, bare, keyOnly]) {
    const b = encodeStoredEntry(e);
    assert.deepEqual(plain(decodeStoredEntry(b)), plain(e));
    assert.equal(b.readUInt32BE(STORED_ENTRY_EPOCH_OFFSET), e.epoch);
  }
  assert.equal(encodeStoredEntry(proven).length, 245, 'the size the docs state for a 1-link IPv4 entry');
});

test('strict: truncation at every byte, trailing bytes, bad version, flags or ports are refused', () => {
  const b = encodeStoredEntry(provenEntry(host(0), 3));
  for (let n = 0; n < b.length; n++) assert.throws(() => decodeStoredEntry(b.subarray(0, n)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'), `cut at ${n}`);
  assert.throws(() => decodeStoredEntry(Buffer.concat([b, Buffer.of(0)])), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  const bad = (at: number, v: number): Buffer => {
    const c = Buffer.from(b);
    c[at] = v;
    return c;
  };
  assert.throws(() => decodeStoredEntry(bad(0, 2)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  const flagsAt = 1 + 4 + 16 + 16 + 1 + 4 + 4;
  assert.throws(() => decodeStoredEntry(bad(flagsAt, 0x06)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  assert.throws(() => decodeStoredEntry(bad(flagsAt, 0x02)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  const zeroPort = Buffer.from(b);
  zeroPort.writeUInt16BE(0, flagsAt - 4);
  assert.throws(() => decodeStoredEntry(zeroPort), ferry('FERRY_ERR_DIRECTORY_CORRUPT'));
  assert.throws(() => decodeStoredEntry(bad(1 + 4 + 32, 5)), ferry('FERRY_ERR_DIRECTORY_CORRUPT'), 'IP length 5');
});
