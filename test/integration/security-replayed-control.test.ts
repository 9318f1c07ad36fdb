// Scenario: an eavesdropper records a genuine, MAC'd SUS on the wire and, after the suspend /
// resume cycle it belonged to has finished, sends the exact bytes again from its own UDP socket
// (a new source address, so the control channel's duplicate cache — keyed by address and
// requestId — cannot answer it and the endpoint's counter check must). The host answers
// FERRY_ERR_REPLAYED_CONTROL (wire 12), logs it once, and neither the attacked connection nor a
// bystander connection on the same hosts notices: both stay ESTABLISHED and keep streaming
// both ways, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { MessageType, decodeConnControl, decodeDatagram } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Attacker, Link, assertLoggedOnce, assertRefused, sleep, tapper, warnings } from '../helpers/attacker.js';

test('a captured SUS replayed from another address after its cycle is refused as replayed', async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(2, { logger: log, wrapControlSocket: wrap });
  const attacker = await Attacker.bind();
  const second = await Attacker.bind();
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const [tap0] = taps as [NonNullable<(typeof taps)[0]>];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const c = await h0.addAgent();
    const d = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 10);
    const bystander = await Link.open(h0, c.id, h1, d.id, 20);
    await link.exchange(40_000, 'before');
    await bystander.exchange(40_000, 'bystander before');

    // The genuine cycle: a's end suspends (SUS, counter 1) and resumes (RES, counter 2). A user
    // suspend on a live socket goes in-band (a sealed SUSPEND frame), so this one is a move-time
    // suspend, which always sends the SUS datagram.
    const before = tap0.sentRequests(MessageType.SUS).length;
    await link.a.endpoint.suspend('move');
    link.write(10_000); // queued while suspended: must arrive once after the resume
    await link.a.resumeConnection();
    await link.settle('after the genuine cycle');
    const captured = tap0.sentRequests(MessageType.SUS).slice(before);
    assert.ok(captured.length >= 1, 'the SUS was seen on the wire');
    const sus = captured[0]!.msg;
    const m = decodeConnControl(Buffer.from(decodeDatagram(sus).body), MessageType.SUS);
    assert.ok(m.connectionId.equals(link.a.endpoint.connectionId), 'captured the attacked connection');
    assert.equal(captured[0]!.to, h1.controlAddress);

    // The replay: same bytes (same requestId, counter and MAC), another source address.
    const reply = await attacker.sendRaw(h1.controlAddress, sus);
    assertRefused(reply, 'FERRY_ERR_REPLAYED_CONTROL', 12);
    assert.equal(h1.refusals.get('FERRY_ERR_REPLAYED_CONTROL'), 1);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_REPLAYED_CONTROL');

    // The attacker repeating itself gets the control channel's cached answer: the same refusal,
    // not handled, counted or logged a second time.
    assertRefused(await attacker.sendRaw(h1.controlAddress, sus), 'FERRY_ERR_REPLAYED_CONTROL', 12);
    assert.equal(h1.refusals.get('FERRY_ERR_REPLAYED_CONTROL'), 1);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_REPLAYED_CONTROL');
    // From yet another address it reaches the endpoint again: refused again, logged once more.
    assertRefused(await second.sendRaw(h1.controlAddress, sus), 'FERRY_ERR_REPLAYED_CONTROL', 12);
    assert.equal(h1.refusals.get('FERRY_ERR_REPLAYED_CONTROL'), 2);
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_REPLAYED_CONTROL', 2);

    // Nothing moved: no suspend took hold on either end, the host said nothing else to the
    // attacker, and the stream goes on both ways.
    await sleep(100);
    assert.equal(link.a.state, 'ESTABLISHED');
    assert.equal(link.b.state, 'ESTABLISHED');
    assert.equal(attacker.seen.length, 2, 'one error reply per replay, nothing more');
    assert.equal(second.seen.length, 1, 'one error reply per replay, nothing more');
    assert.ok(attacker.bytesIn <= 3 * attacker.bytesOut, 'no amplification towards the replayer');
    await link.exchange(60_000, 'after the replay');
    await bystander.exchange(60_000, 'bystander after the replay');

    // The genuine protocol still works after the refusals: a further cycle from the other end.
    await link.b.suspend();
    await link.b.resumeConnection();
    await link.exchange(20_000, 'after a later genuine cycle');
    assert.equal(warnings(log, 'h0', 'FERRY_ERR_REPLAYED_CONTROL'), 0, 'the client host refused nothing');
  } finally {
    attacker.close();
    second.close();
    await net.close();
  }
});
