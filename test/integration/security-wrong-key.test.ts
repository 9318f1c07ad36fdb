// Scenario: an attacker who knows a live connection's id (it travels in clear in every control
// datagram) but not its key sends SUS, RES and CLS for it, MAC'd under a key of its own, to
// both ends, with a counter far above the genuine one. Each is refused with FERRY_ERR_BAD_MAC
// (wire 11) and logged once; the MAC is checked before anything else, so the forged counter is
// not recorded (the genuine ends' later, lower counters still work), the forged RES plants no
// candidate address, and the connection and a bystander on the same hosts keep streaming. A
// control message for a connection id no host knows is refused with FERRY_ERR_UNKNOWN_CONNECTION.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { controlMac } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { connectionKeysFromMaster, type ConnectionKeys } from '../../src/identity/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { MessageType, NONCE_BYTES, encodeConnControl, type ConnControl, type Role } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Attacker, Link, assertLoggedOnce, assertRefused, sleep } from '../helpers/attacker.js';

type RequestType = typeof MessageType.SUS | typeof MessageType.RES | typeof MessageType.CLS;

/** A SUS/RES/CLS body MAC'd under `keys` (the attacker's, not the connection's). */
function forge(keys: ConnectionKeys, type: RequestType, connectionId: Buffer, senderRole: Role, counter: number, redirectorPort = 0): Buffer {
  const fields = {
    type,
    connectionId,
    senderRole,
    counter,
    reason: type === MessageType.CLS ? 1 : 0,
    redirectorPort,
    challenge: type === MessageType.RES ? randomBytes(NONCE_BYTES) : Buffer.alloc(NONCE_BYTES),
  };
  return encodeConnControl({ ...fields, mac: controlMac(keys, fields) } as ConnControl);
}

test('SUS, RES and CLS under a wrong key are refused with BAD_MAC; an unknown id with UNKNOWN_CONNECTION', async () => {
  // Both hosts share this logger and the attacker's address: six BAD_MAC refusals from one source
  // would pass the rate limit's five per key (log-flood.test.ts), and this test counts each one.
  const log = new MemoryLogger({}, undefined, { refusalLimits: { linesPerKey: 100 } });
  const net = await startHosts(2, { logger: log });
  const attacker = await Attacker.bind();
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 30);
    const bystander = await Link.open(h0, c.id, h1, d.id, 40);
    await link.exchange(40_000, 'before');
    await bystander.exchange(40_000, 'bystander before');

    const cid = link.a.endpoint.connectionId;
    const wrong = connectionKeysFromMaster(randomBytes(32));
    const serverPeer = { ...link.b.endpoint.peer };
    const clientPeer = { ...link.a.endpoint.peer };
    const attack: [string, Host, RequestType, Role][] = [
      // To the server end (h1) as if from the client, and to the client end (h0) as if from the server.
      ['h1', h1, MessageType.SUS, 'client'],
      ['h1', h1, MessageType.RES, 'client'],
      ['h1', h1, MessageType.CLS, 'client'],
      ['h0', h0, MessageType.SUS, 'server'],
      ['h0', h0, MessageType.RES, 'server'],
      ['h0', h0, MessageType.CLS, 'server'],
    ];
    const perHost = new Map<string, number>();
    for (const [name, host, type, role] of attack) {
      const reply = await attacker.request(host.controlAddress, type, forge(wrong, type, cid, role, 1_000_000, 9));
      assertRefused(reply, 'FERRY_ERR_BAD_MAC', 11);
      perHost.set(name, (perHost.get(name) ?? 0) + 1);
      assert.equal(host.refusals.get('FERRY_ERR_BAD_MAC'), perHost.get(name));
      await assertLoggedOnce(log, name, 'FERRY_ERR_BAD_MAC', perHost.get(name));
    }

    // Nothing changed: states, peer addresses (no candidate from the forged RES), streams.
    await sleep(100);
    assert.equal(link.a.state, 'ESTABLISHED');
    assert.equal(link.b.state, 'ESTABLISHED');
    assert.deepEqual(link.b.endpoint.peer, serverPeer);
    assert.deepEqual(link.a.endpoint.peer, clientPeer);
    assert.equal(attacker.seen.length, attack.length, 'one error reply per forgery, nothing more');
    assert.ok(attacker.bytesIn <= 3 * attacker.bytesOut, 'no amplification towards the forger');
    await link.exchange(60_000, 'after the forgeries');
    await bystander.exchange(60_000, 'bystander after the forgeries');

    // The forged counter 1 000 000 was not recorded: genuine SUS/RES with counters 1 and 2, from
    // each end in turn, are still accepted.
    await link.a.suspend();
    link.write(5_000);
    await link.a.resumeConnection();
    await link.settle('after a genuine cycle from the client end');
    await link.b.suspend();
    await link.b.resumeConnection();
    await link.exchange(20_000, 'after a genuine cycle from the server end');

    // A connection id no host knows.
    const unknown = randomBytes(16);
    for (const type of [MessageType.SUS, MessageType.RES, MessageType.CLS] as const) {
      assertRefused(await attacker.request(h1.controlAddress, type, forge(wrong, type, unknown, 'client', 1)), 'FERRY_ERR_UNKNOWN_CONNECTION', 20);
    }
    assert.equal(h1.refusals.get('FERRY_ERR_UNKNOWN_CONNECTION'), 3);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_UNKNOWN_CONNECTION', 3);
    // The live id with the role that does not live on this host is unknown here too.
    assertRefused(await attacker.request(h1.controlAddress, MessageType.SUS, forge(wrong, MessageType.SUS, cid, 'server', 1)), 'FERRY_ERR_UNKNOWN_CONNECTION', 20);
    await link.exchange(20_000, 'at the end');
    await bystander.exchange(20_000, 'bystander at the end');
    assert.equal(h0.refusals.get('FERRY_ERR_UNKNOWN_CONNECTION') ?? 0, 0);
  } finally {
    attacker.close();
    await net.close();
  }
});
