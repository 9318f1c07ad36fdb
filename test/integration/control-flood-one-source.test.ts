// Scenario: a stranger floods a control channel from one IP address with requests its handler is
// slow to answer, as a LOOKUP waits on a directory store that lags, while an honest peer on
// another address asks something the handler answers at once. Real UDP on loopback: the stranger
// sends raw datagrams from 127.0.0.2, so no sender window of ours holds it back.
//
// The table of requests in progress holds CONTROL_MAX_INCOMING; one source IP may hold only
// CONTROL_INCOMING_PER_SOURCE of them. So the stranger's 5,000 requests take 1,024 places, the
// rest are dropped unanswered and counted, and the honest peer's request is answered. Without the
// per-source budget the stranger filled all 4,096 places and the honest request was dropped until
// its tries ran out (FERRY_ERR_CONTROL_TIMEOUT).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { ControlChannel } from '../../src/control/index.js';
import { encodeDatagram } from '../../src/wire/datagram.js';
import { limit } from '../../src/util/limits.js';

const closers: Array<() => unknown> = [];
after(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const SLOW = 1;
const FAST = 2;
const FLOOD = 5000;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Send requests `from`..`to` from `sock` to `port`, a few hundred per turn so the receiving socket keeps up. */
async function flood(sock: Socket, port: number, from: number, to: number): Promise<void> {
  for (let id = from; id <= to; id++) {
    sock.send(encodeDatagram({ type: SLOW, flags: 0, requestId: id }, Buffer.from(`slow-${id}`)), port, '127.0.0.1');
    if (id % 200 === 0) await pause(5);
  }
}

describe('a flood of slow requests from one source IP', () => {
  it('holds the per-source budget and no more; another address is still answered', async () => {
    const server = await ControlChannel.bind({ host: '127.0.0.1' });
    closers.push(() => server.close());
    const waiting: Array<() => void> = [];
    server.onRequest(async (req) => {
      if (req.type === FAST) return { type: FAST, body: Buffer.from(`answer:${req.body.toString()}`) };
      await new Promise<void>((resolve) => waiting.push(resolve));
      return { type: SLOW, body: Buffer.alloc(0) };
    });
    closers.push(() => waiting.splice(0).forEach((release) => release()));
    const port = Number(server.address.split(':').pop());

    // The stranger sends from many ports of one address, as a flood would.
    const strangers: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const s = createSocket('udp4');
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.2', resolve));
      closers.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
      strangers.push(s);
    }
    const per = FLOOD / strangers.length;
    for (const [i, s] of strangers.entries()) await flood(s, port, i * per + 1, (i + 1) * per);
    // Wait until every datagram that reached the channel was either taken or dropped.
    for (let i = 0; i < 300 && waiting.length + server.stats.dropped < FLOOD; i++) await pause(10);

    const honest = await ControlChannel.bind({ host: '127.0.0.1' });
    closers.push(() => honest.close());
    const reply = await honest.request(server.address, FAST, Buffer.from('where is agent x'));
    assert.equal(reply.body.toString(), 'answer:where is agent x');
    assert.equal(honest.stats.retransmitted, 0, 'answered at the first try: nothing of the honest peer was dropped');

    const cap = limit('CONTROL_INCOMING_PER_SOURCE');
    assert.ok(cap < limit('CONTROL_MAX_INCOMING'), 'one source can never fill the table');
    assert.equal(waiting.length, cap, 'the stranger holds exactly its budget of requests in progress');
    assert.ok(server.stats.dropped >= FLOOD - cap - 100, `the rest are dropped and counted (dropped ${server.stats.dropped}; a few may be lost in the kernel)`);

    // Once answered, the stranger's requests free their places: a new one is taken, not dropped.
    const dropped = server.stats.dropped;
    waiting.splice(0).forEach((release) => release());
    await pause(50);
    strangers[0]!.send(encodeDatagram({ type: SLOW, flags: 0, requestId: FLOOD + 1 }, Buffer.from('again')), port, '127.0.0.1');
    for (let i = 0; i < 100 && waiting.length === 0; i++) await pause(10);
    assert.equal(waiting.length, 1, 'an answered request freed its place');
    assert.equal(server.stats.dropped, dropped);
  });
});
