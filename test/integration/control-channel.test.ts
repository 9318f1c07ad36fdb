// Scenario: two control channels on real loopback UDP sockets. Requests go through a lossy link
// (30% drop, 20% duplicate, 0–20 ms delay that reorders) and still each get exactly their own
// reply with the handler run once; a request to a closed port times out; malformed datagrams from
// a raw socket are logged once each and do not disturb the channel.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { FerryError, MemoryLogger, isFerryError } from '../../src/util/index.js';
import { encodeDatagram } from '../../src/wire/index.js';
import { ControlChannel } from '../../src/control/index.js';
import { LossyDatagramSocket } from '../../src/testing/index.js';

const closers: Array<() => void> = [];
after(() => {
  for (const close of closers.splice(0)) close();
});

async function channel(options: Parameters<typeof ControlChannel.bind>[0] = {}): Promise<ControlChannel> {
  const c = await ControlChannel.bind(options);
  closers.push(() => c.close());
  return c;
}

async function rawSocket(): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => s.close());
  return s;
}

/** Wait until `cond` holds (bounded: the test fails rather than hangs). */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('control channel over loopback UDP', () => {
  it('answers a request, measures the RTT, and relays a handler error', async () => {
    const server = await channel();
    const client = await channel();
    server.onRequest((req) => {
      if (req.type === 9) throw new FerryError('FERRY_ERR_NOT_LISTENING', 'nobody home');
      return { type: 2, body: Buffer.concat([Buffer.from('pong:'), req.body]) };
    });
    const r = await client.request(server.address, 1, Buffer.from('ping'));
    assert.deepEqual([r.type, r.body.toString(), r.from], [2, 'pong:ping', server.address]);
    assert.ok(client.rtt(server.address), 'a clean sample was taken');
    await assert.rejects(client.request(server.address, 9, Buffer.alloc(0)), (e: unknown) => isFerryError(e, 'FERRY_ERR_NOT_LISTENING'));
  });

  it('200 requests over a lossy, duplicating, reordering link: each gets its own reply, each handler runs once', async () => {
    let serverLink!: LossyDatagramSocket;
    let clientLink!: LossyDatagramSocket;
    // A 200 ms backoff cap keeps an unlucky request's retries inside the test's time budget; the
    // 30 tries make a lost exchange (51% per try with loss both ways) vanishingly unlikely.
    const limits = { maxRtoMs: 200 };
    const server = await channel({
      limits,
      wrap: (s) => (serverLink = new LossyDatagramSocket(s, { drop: 0.3, duplicate: 0.2, delayMs: [0, 20], seed: 1 })),
    });
    const client = await channel({
      limits,
      wrap: (s) => (clientLink = new LossyDatagramSocket(s, { drop: 0.3, duplicate: 0.2, delayMs: [0, 20], seed: 2 })),
    });
    const calls = new Map<string, number>();
    server.onRequest(async (req) => {
      const key = req.body.toString();
      calls.set(key, (calls.get(key) ?? 0) + 1);
      // Hold some answers back so duplicates also arrive while the request is in progress.
      await new Promise((r) => setTimeout(r, key.length % 4));
      return { type: 2, body: Buffer.from(`reply:${key}`) };
    });
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.request(server.address, 1, Buffer.from(`req-${i}`), { maxTries: 30 })),
    );
    replies.forEach((r, i) => assert.equal(r.body.toString(), `reply:req-${i}`));
    assert.equal(calls.size, 200);
    for (const [key, n] of calls) assert.equal(n, 1, `handler for ${key} ran ${n} times`);
    // The faults really happened, and the channel really had to cope with them.
    assert.ok(clientLink.outgoing.dropped > 0 && serverLink.outgoing.dropped > 0);
    assert.ok(clientLink.outgoing.duplicated > 0 && serverLink.outgoing.duplicated > 0);
    assert.ok(client.stats.retransmitted > 0);
    assert.ok(server.stats.duplicatesAnswered > 0);
    assert.ok(client.stats.unmatchedReplies > 0, 'duplicate replies arrived and were dropped');
  });

  it('times out with CONTROL_TIMEOUT when nobody listens on the port', async () => {
    const gone = await rawSocket();
    const port = gone.address().port;
    gone.close();
    closers.pop();
    const client = await channel();
    await assert.rejects(client.request(`127.0.0.1:${port}`, 1, Buffer.alloc(0), { maxTries: 2 }), (e: unknown) =>
      isFerryError(e, 'FERRY_ERR_CONTROL_TIMEOUT'),
    );
    assert.equal(client.stats.timeouts, 1);
    assert.equal(client.stats.sent, 2);
  });

  it('logs each malformed datagram once and keeps serving', async () => {
    const log = new MemoryLogger();
    const server = await channel({ logger: log });
    server.onRequest(() => ({ type: 2, body: Buffer.from('fine') }));
    const raw = await rawSocket();
    const from = `127.0.0.1:${raw.address().port}`;
    const port = Number(server.address.split(':')[1]);
    const badVersion = encodeDatagram({ type: 1, flags: 0, requestId: 1 }, Buffer.alloc(0));
    badVersion[0] = 9;
    for (const bad of [Buffer.from([1, 2, 3]), badVersion, Buffer.alloc(1300, 1)]) raw.send(bad, port, '127.0.0.1');
    await until(() => server.stats.malformed === 3);

    const client = await channel();
    assert.equal((await client.request(server.address, 1, Buffer.alloc(0))).body.toString(), 'fine');
    const lines = log.lines.filter((l) => l.event === 'control.malformed');
    assert.deepEqual(
      lines.map((l) => [l.level, l.fields.code, l.fields.from]),
      [
        ['warn', 'FERRY_ERR_MALFORMED_DATAGRAM', from],
        ['warn', 'FERRY_ERR_UNSUPPORTED_VERSION', from],
        ['warn', 'FERRY_ERR_MALFORMED_DATAGRAM', from],
      ],
    );
    assert.equal(server.stats.malformed, 3);
  });
});
