// Scenario: a registration with someone else's address (issue 10, finding 2). An attacker with
// keys of its own registers two agents, properly chained and signed, at two victim addresses
// that never speak, then sends RELAYs for them: one at a time (each waiting for its answer, so
// every RELAY meets an unproven address) and then 20 at once, one victim with full-size RELAYs
// (a secure CONNECT, 179 bytes inside), the other with the smallest RELAY there is (25 bytes).
// The ratio is checked after the first RELAY, after two more, and after the burst.
// Everything the rendezvous sends each victim, retransmissions included, stays within 3x the
// bytes of the RELAYs that named it, and is only PATH_CHALLENGE: no RELAYED reaches an address
// that did not prove it receives. Each RELAY is refused (REFUSED). A host that does answer (any
// control channel echoes the challenge) is proven once and gets its relays.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlChannel } from '../../src/control/index.js';
import { Identity, freshChain } from '../../src/identity/index.js';
import { RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { limit } from '../../src/util/index.js';
import { LocationMessageType as T, MessageType, encodeRelay, encodeRelayedAck } from '../../src/wire/index.js';
import { Attacker, assertRefused, sleep, splitAddress } from '../helpers/attacker.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

test('a registration naming a victim address reflects at most 3x of what the attacker sent', async () => {
  const rv = await RendezvousServer.start();
  cleanups.push(() => rv.close());
  const attacker = await Attacker.bind('127.0.0.2');
  const big = await Attacker.bind('127.0.0.3');
  const small = await Attacker.bind('127.0.0.4');
  cleanups.push(() => attacker.close(), () => big.close(), () => small.close());

  // The attacker's own host key signs registrations that name the victims' addresses.
  const mallory = Identity.generate();
  const reg = await RendezvousClient.connect({ server: rv.address, signer: mallory });
  cleanups.push(() => reg.close());
  const agents = new Map<Attacker, Identity>();
  for (const victim of [big, small]) {
    const a = Identity.generate();
    const { ip, port } = splitAddress(victim.address);
    await reg.register({ agent: a.id, hostId: mallory.id, ip, controlPort: port, redirectorPort: port, epoch: 1, agentKey: a.publicRaw, chain: freshChain(a, mallory.publicRaw, 1, Date.now()) });
    agents.set(victim, a);
  }

  const relay = (victim: Attacker): Buffer => encodeRelay({ to: agents.get(victim)!.id, innerType: MessageType.CONNECT, innerBody: Buffer.alloc(victim === big ? 179 : 0, 7) });
  const paid = new Map<Attacker, number>([[big, 0], [small, 0]]);
  const send = async (victim: Attacker): Promise<void> => {
    const body = relay(victim);
    paid.set(victim, paid.get(victim)! + 8 + body.length);
    assertRefused(await attacker.request(rv.address, T.RELAY, body, 10_000), 'FERRY_ERR_REFUSED');
  };
  const check = (phase: string): void => {
    for (const [victim, name] of [[big, '179-byte CONNECT'], [small, 'empty']] as const) {
      const ratio = victim.bytesIn / paid.get(victim)!;
      console.log(`${phase}, RELAYs with ${name} inside: ${paid.get(victim)} bytes from the attacker, ${victim.bytesIn} bytes (${victim.seen.length} datagrams) to the victim: ${ratio.toFixed(2)}x`);
      assert.ok(victim.seen.length > 0, 'the rendezvous did try the address');
      assert.ok(ratio <= limit('AMPLIFICATION_FACTOR'), `${ratio.toFixed(2)}x reflected toward the ${name} victim (${phase})`);
      assert.deepEqual([...new Set(victim.seen.map((s) => s.msg[1]))], [T.PATH_CHALLENGE], 'only path challenges reach an unproven address');
    }
  };
  // A RELAY is answered only once nothing more will be sent for it (its challenge, or before
  // the fix its RELAYED, has run its course); a moment more lets the last datagrams arrive.
  const settle = (): Promise<void> => sleep(300);
  await Promise.all([big, small].map((v) => send(v)));
  await settle();
  check('a first RELAY');
  // One at a time, each after the last was answered: every RELAY meets an unproven address.
  await Promise.all([big, small].map(async (v) => {
    for (let i = 0; i < 2; i++) await send(v);
  }));
  await settle();
  check('two more, one at a time');
  // A burst: the RELAYs wait for one challenge.
  await Promise.all([big, small].map((v) => Promise.all(Array.from({ length: 20 }, () => send(v)))));
  await settle();
  check('then 20 at once');
  assert.equal(rv.stats.relayed, 0);

  // An honest host (its control channel echoes the challenge) is proven once, then relayed to.
  const hostKey = Identity.generate();
  const honest = await ControlChannel.bind();
  cleanups.push(() => honest.close());
  honest.onRequest(() => ({ type: T.RELAYED_ACK, body: encodeRelayedAck({ innerType: MessageType.CONNECT_ACK, innerBody: Buffer.from('ack') }) }));
  const h = splitAddress(honest.address);
  const b = Identity.generate();
  const hreg = await RendezvousClient.connect({ server: rv.address, signer: hostKey });
  cleanups.push(() => hreg.close());
  await hreg.register({ agent: b.id, hostId: hostKey.id, ip: h.ip, controlPort: h.port, redirectorPort: h.port, epoch: 1, agentKey: b.publicRaw, chain: freshChain(b, hostKey.publicRaw, 1, Date.now()) });
  for (let i = 0; i < 3; i++) {
    const r = await hreg.relay(b.id, MessageType.CONNECT, Buffer.from('connect'));
    assert.equal(r.body.toString(), 'ack');
  }
  assert.equal(rv.stats.relayed, 3);
  assert.equal(rv.stats.proven, 1, 'proven once, remembered');
});
