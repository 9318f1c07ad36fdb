// RFC 9000 §8's 3x rule in the control core: replies, error details and cached duplicates are
// never more than three times the datagram that drew them; a PATH_CHALLENGE is echoed at 1x.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlCore } from '../../../src/control/index.js';
import { FerryError } from '../../../src/util/index.js';
import { LocationMessageType as T, PATH_CHALLENGE_BYTES, TYPE_ERROR, decodeDatagram, decodeErrorBody, decodePathResponse, encodeDatagram, encodePathChallenge } from '../../../src/wire/index.js';

const A = '127.0.0.1:1000';

function deliver(core: ControlCore, body: Buffer, requestId = 7) {
  const out = core.onDatagram(0, A, encodeDatagram({ type: 4, flags: 0, requestId }, body));
  const ev = out.events.find((e) => e.kind === 'request');
  return { out, req: ev && ev.kind === 'request' ? ev.request : undefined };
}

test('a short datagram naming a cached request does not draw the bigger cached reply', () => {
  const core = new ControlCore({ random: () => 0.5 });
  const { req } = deliver(core, Buffer.alloc(60));
  assert.ok(req);
  const reply = core.reply(0, req, 5, Buffer.alloc(150));
  assert.ok(reply, 'a 158-byte reply to a 68-byte request is within 3x');
  const spoof = core.onDatagram(1, A, encodeDatagram({ type: 4, flags: 0, requestId: 7 }, Buffer.alloc(0)));
  assert.equal(spoof.sends.length, 0, 'an 8-byte duplicate gets nothing');
  const retransmit = core.onDatagram(2, A, encodeDatagram({ type: 4, flags: 0, requestId: 7 }, Buffer.alloc(60)));
  assert.equal(retransmit.sends.length, 1, 'a genuine retransmission gets the cached reply');
  assert.ok(retransmit.sends[0]!.datagram.equals(reply.datagram));
});

test('an answer over 3x the request becomes FERRY_ERR_AMPLIFICATION_LIMIT; error details are cut', () => {
  const core = new ControlCore({ random: () => 0.5 });
  const { req } = deliver(core, Buffer.alloc(0), 1);
  const out = core.reply(0, req!, 5, Buffer.alloc(100));
  assert.ok(out && out.datagram.length <= 3 * 8, `reply of ${out?.datagram.length} bytes`);
  const { req: req2 } = deliver(core, Buffer.alloc(2), 2);
  const err = core.replyError(0, req2!, new FerryError('FERRY_ERR_UNKNOWN_AGENT', 'y'.repeat(200)));
  assert.ok(err && err.datagram.length <= 3 * 10, `error reply of ${err?.datagram.length} bytes`);
});

test('a PATH_CHALLENGE is echoed by the core itself, 1x, once per request; a bad one gets an error', () => {
  const core = new ControlCore({ random: () => 0.5 });
  const challenge = Buffer.alloc(PATH_CHALLENGE_BYTES, 0xab);
  const dgram = encodeDatagram({ type: T.PATH_CHALLENGE, flags: 0, requestId: 9 }, encodePathChallenge(challenge));
  const out = core.onDatagram(0, A, dgram);
  assert.equal(out.events.filter((e) => e.kind === 'request').length, 0, 'no handler is asked');
  assert.equal(out.sends.length, 1);
  const reply = decodeDatagram(out.sends[0]!.datagram);
  assert.deepEqual([reply.header.type, reply.header.requestId, out.sends[0]!.to], [T.PATH_RESPONSE, 9, A]);
  assert.deepEqual(decodePathResponse(Buffer.from(reply.body)), challenge);
  assert.equal(out.sends[0]!.datagram.length, dgram.length, 'the echo is no larger than the challenge');
  // A retransmission gets the cached echo.
  assert.ok(core.onDatagram(1, A, dgram).sends[0]!.datagram.equals(out.sends[0]!.datagram));
  // A malformed challenge: an error reply with the code, and a malformed event for the log.
  const bad = core.onDatagram(2, A, encodeDatagram({ type: T.PATH_CHALLENGE, flags: 0, requestId: 10 }, Buffer.alloc(15)));
  assert.equal(decodeDatagram(bad.sends[0]!.datagram).header.type, TYPE_ERROR);
  assert.equal(decodeErrorBody(decodeDatagram(bad.sends[0]!.datagram).body).code, 'FERRY_ERR_MALFORMED_DATAGRAM');
  assert.deepEqual(bad.events.map((e) => e.kind), ['malformed']);
});
