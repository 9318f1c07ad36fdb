/**
 * AddressWatch: which address a roaming host registers, and when it reports a change (an
 * interface list under the test's control, a manual clock).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressWatch, chooseAddress, type InterfaceList } from '../../../src/host/address-watch.js';
import { ManualClock, limit } from '../../../src/util/index.js';

const v4 = (address: string, internal = false): { address: string; family: string; internal: boolean } => ({ address, family: 'IPv4', internal });

test('chooseAddress keeps the current address while it is there, and never picks loopback or IPv6', () => {
  const list: InterfaceList = { lo: [v4('127.0.0.1', true)], eth0: [{ address: 'fe80::1', family: 'IPv6', internal: false }, v4('10.0.0.5')], wlan0: [v4('192.168.1.7')] };
  assert.equal(chooseAddress(list, '192.168.1.7'), '192.168.1.7');
  assert.equal(chooseAddress(list, undefined), '10.0.0.5');
  assert.equal(chooseAddress({ lo: [v4('127.0.0.1', true)] }, undefined), undefined);
});

test('chooseAddress prefers a new address on the interface the old one was on', () => {
  // The old address is still listed (being removed) but another one replaces it on wlan0.
  assert.equal(chooseAddress({ eth0: [v4('10.0.0.5')], wlan0: [v4('192.168.1.9')] }, '192.168.1.7'), '10.0.0.5', 'gone from the list: any interface');
  const list: InterfaceList = { eth0: [v4('10.0.0.5')], wlan0: [{ address: '192.168.1.7', family: 'IPv4', internal: true }, v4('192.168.1.9')] };
  assert.equal(chooseAddress(list, '192.168.1.7'), '192.168.1.9');
});

test('AddressWatch reports a change once the address is gone and another is there, not in the gap', () => {
  const clock = new ManualClock();
  let list: InterfaceList = { eth0: [v4('10.0.0.5')] };
  const changes: Array<[string, string]> = [];
  const w = new AddressWatch((next, prev) => changes.push([next, prev]), { interfaces: () => list, clock }).start();
  assert.equal(w.current, '10.0.0.5');
  list = { eth0: [v4('10.0.0.5'), v4('10.0.0.6')] };
  clock.advance(limit('ADDRESS_POLL_MS'));
  assert.deepEqual(changes, [], 'a second address while the first stays changes nothing');
  list = { eth0: [] };
  clock.advance(limit('ADDRESS_POLL_MS'));
  assert.deepEqual(changes, [], 'between networks: wait');
  assert.equal(w.current, '10.0.0.5');
  list = { eth0: [v4('10.0.1.9')] };
  clock.advance(limit('ADDRESS_POLL_MS') - 1);
  assert.deepEqual(changes, [], 'not before the next poll');
  clock.advance(1);
  assert.deepEqual(changes, [['10.0.1.9', '10.0.0.5']]);
  assert.equal(w.current, '10.0.1.9');
  w.stop();
  list = { eth0: [v4('10.0.2.1')] };
  clock.advance(10 * limit('ADDRESS_POLL_MS'));
  assert.equal(changes.length, 1, 'stopped: no more polls');
});
