// The ControlChannel adapter over an in-memory datagram network under a ManualClock: promises,
// handlers, error replies, abort, close, logging, and that it keeps exactly one timer.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError, ManualClock, MemoryLogger, isFerryError, type ErrorCode } from '../../../src/util/index.js';
import { encodeDatagram } from '../../../src/wire/index.js';
import { ControlChannel, type ControlReply } from '../../../src/control/index.js';
import { MemoryDatagramNetwork, type MemoryDatagramSocket } from '../../../src/testing/index.js';

/** Let microtasks (in-memory delivery) and async handlers run to quiescence. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function rejectsCode(p: Promise<unknown>, code: ErrorCode): Promise<FerryError> {
  let caught: unknown;
  await p.then(
    () => assert.fail(`expected ${code}, resolved`),
    (e: unknown) => (caught = e),
  );
  assert.ok(isFerryError(caught, code), `expected ${code}, got ${String(caught)}`);
  return caught;
}

describe('ControlChannel over an in-memory network', () => {
  let channels: ControlChannel[] = [];
  afterEach(() => {
    for (const c of channels) c.close();
    channels = [];
  });

  function setup(): { clock: ManualClock; net: MemoryDatagramNetwork; log: MemoryLogger; a: ControlChannel; b: ControlChannel } {
    const clock = new ManualClock();
    const net = new MemoryDatagramNetwork();
    const log = new MemoryLogger();
    const a = new ControlChannel(net.bind('10.0.0.1'), { clock, logger: log });
    const b = new ControlChannel(net.bind('10.0.0.2'), { clock, logger: log });
    channels.push(a, b);
    return { clock, net, log, a, b };
  }

  it('resolves a request with the handler’s answer', async () => {
    const { a, b } = setup();
    b.onRequest((req) => ({ type: req.type + 1, body: Buffer.from(`echo:${req.body.toString()}:${req.from}`) }));
    const p = a.request(b.address, 10, Buffer.from('hi'));
    await settle();
    const r: ControlReply = await p;
    assert.deepEqual([r.type, r.body.toString(), r.from], [11, `echo:hi:${a.address}`, b.address]);
  });

  it('keeps one timer for many requests, retransmits on it, and times out with CONTROL_TIMEOUT', async () => {
    const { clock, net, a } = setup();
    const dead = '10.0.0.99:7';
    const ps = Array.from({ length: 10 }, () => a.request(dead, 1, Buffer.alloc(0), { maxTries: 3 }));
    const results = Promise.allSettled(ps);
    assert.equal(clock.pending, 1, 'one timer, not one per request');
    for (let t = 0; t < 700; t += 50) {
      clock.advance(50);
      assert.ok(clock.pending <= 1);
    }
    await settle();
    for (const r of await results) {
      assert.equal(r.status, 'rejected');
      assert.ok(isFerryError(r.status === 'rejected' ? r.reason : undefined, 'FERRY_ERR_CONTROL_TIMEOUT'));
    }
    assert.equal(a.stats.sent, 30);
    assert.equal(net.undeliverable, 30);
    assert.equal(clock.pending, 0, 'no timer once nothing is outstanding');
  });

  it('turns a thrown FerryError into the peer’s rejection with the same code', async () => {
    const { a, b } = setup();
    b.onRequest(() => {
      throw new FerryError('FERRY_ERR_UNKNOWN_AGENT', 'agent 7 is elsewhere');
    });
    // A 32-byte request leaves room for the whole detail within the 3x reply budget.
    const p = rejectsCode(a.request(b.address, 1, Buffer.alloc(32)), 'FERRY_ERR_UNKNOWN_AGENT');
    await settle();
    const e = await p;
    assert.match(e.message, /agent 7 is elsewhere/);
  });

  it('never answers more than 3x the request: big replies and long error details are cut', async () => {
    const { a, b } = setup();
    b.onRequest((req) => (req.type === 1 ? { type: 2, body: Buffer.alloc(100) } : Promise.reject(new FerryError('FERRY_ERR_UNKNOWN_AGENT', 'x'.repeat(200)))));
    const big = rejectsCode(a.request(b.address, 1, Buffer.alloc(0)), 'FERRY_ERR_AMPLIFICATION_LIMIT');
    const long = rejectsCode(a.request(b.address, 3, Buffer.alloc(4)), 'FERRY_ERR_UNKNOWN_AGENT');
    await settle();
    await big;
    const e = await long;
    // reply = 8 header + 3 + detail ≤ 3 * (8 + 4) = 36, so at most 25 detail bytes
    assert.ok(Buffer.byteLength(e.message.replace(/^peer: /, '')) <= 25, e.message);
    const ok = a.request(b.address, 1, Buffer.alloc(100));
    await settle();
    assert.equal((await ok).body.length, 100, 'a reply within 3x goes through');
  });

  it('answers a non-Ferry failure with INTERNAL, without its message, and logs it once', async () => {
    const { a, b, log } = setup();
    b.onRequest(async () => {
      throw new Error('secret internals');
    });
    const p = rejectsCode(a.request(b.address, 1, Buffer.alloc(0)), 'FERRY_ERR_INTERNAL');
    await settle();
    const e = await p;
    assert.doesNotMatch(e.message, /secret/);
    assert.equal(log.lines.filter((l) => l.event === 'control.handler_failed').length, 1);
  });

  it('answers INTERNAL when the handler’s answer cannot be encoded', async () => {
    const { a, b, log } = setup();
    b.onRequest(() => ({ type: 2, body: Buffer.alloc(5000) }));
    const p = rejectsCode(a.request(b.address, 1, Buffer.alloc(0)), 'FERRY_ERR_INTERNAL');
    await settle();
    await p;
    assert.equal(log.lines.filter((l) => l.event === 'control.bad_answer').length, 1);
  });

  it('answers UNKNOWN_TYPE when no handler is set', async () => {
    const { a, b } = setup();
    const p = rejectsCode(a.request(b.address, 1, Buffer.alloc(0)), 'FERRY_ERR_UNKNOWN_TYPE');
    await settle();
    await p;
  });

  it('runs the handler once however often the request is retransmitted', async () => {
    const { clock, a, b } = setup();
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    b.onRequest(async () => {
      calls++;
      await gate;
      return { type: 2, body: Buffer.from('done') };
    });
    const p = a.request(b.address, 1, Buffer.alloc(0));
    await settle();
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      await settle();
    }
    assert.ok(a.stats.retransmitted >= 3);
    release();
    await settle();
    assert.equal((await p).body.toString(), 'done');
    assert.equal(calls, 1);
    assert.equal(b.stats.duplicatesIgnored, a.stats.retransmitted);
  });

  it('rejects with ABORTED on the signal and stops retransmitting', async () => {
    const { clock, a } = setup();
    const ac = new AbortController();
    const p = rejectsCode(a.request('10.0.0.99:7', 1, Buffer.alloc(0), { signal: ac.signal }), 'FERRY_ERR_ABORTED');
    ac.abort(new Error('user'));
    await p;
    assert.equal(clock.pending, 0);
    clock.advance(10_000);
    assert.equal(a.stats.retransmitted, 0);
    await rejectsCode(a.request('10.0.0.99:7', 1, Buffer.alloc(0), { signal: ac.signal }), 'FERRY_ERR_ABORTED');
    assert.equal(a.stats.sent, 1, 'an already aborted signal sends nothing');
  });

  it('close rejects outstanding requests with ABORTED, clears its timer and refuses new work', async () => {
    const { clock, a } = setup();
    const p = rejectsCode(a.request('10.0.0.99:7', 1, Buffer.alloc(0)), 'FERRY_ERR_ABORTED');
    a.close();
    await p;
    assert.equal(clock.pending, 0);
    await rejectsCode(a.request('10.0.0.99:7', 1, Buffer.alloc(0)), 'FERRY_ERR_ABORTED');
    assert.throws(() => a.send('10.0.0.99:7', 1, Buffer.alloc(0)), (e: unknown) => isFerryError(e, 'FERRY_ERR_ABORTED'));
    a.close(); // idempotent
  });

  it('refuses a destination that is not an IP literal with a port', async () => {
    const { a } = setup();
    for (const to of ['localhost:80', '10.0.0.1', '10.0.0.1:0']) {
      await rejectsCode(a.request(to, 1, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    }
    await rejectsCode(a.request('10.0.0.2:1', 0, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
  });

  it('delivers one-way messages to onOneway once, and logs handler failures', async () => {
    const { a, b, log } = setup();
    const got: string[] = [];
    b.onOneway((m) => {
      got.push(`${m.type}:${m.body.toString()}:${m.from}`);
      if (m.type === 9) throw new Error('boom');
    });
    a.send(b.address, 5, Buffer.from('x'));
    a.send(b.address, 9, Buffer.from('y'));
    await settle();
    assert.deepEqual(got, [`5:x:${a.address}`, `9:y:${a.address}`]);
    assert.equal(log.lines.filter((l) => l.event === 'control.oneway_handler_failed').length, 1);
  });

  it('logs each malformed datagram once with its code and sender, and carries on', async () => {
    const { net, a, b, log } = setup();
    b.onRequest(() => ({ type: 2, body: Buffer.alloc(0) }));
    const raw: MemoryDatagramSocket = net.bind('10.0.0.3');
    const [ip, port] = b.address.split(':') as [string, string];
    raw.send(Buffer.from([1, 2, 3]), Number(port), ip);
    raw.send(encodeDatagram({ type: 1, flags: 0, requestId: 1 }, Buffer.alloc(0)).fill(7, 0, 1), Number(port), ip);
    await settle();
    const from = `${raw.address().address}:${raw.address().port}`;
    const lines = log.lines.filter((l) => l.event === 'control.malformed');
    assert.deepEqual(
      lines.map((l) => [l.level, l.fields.code, l.fields.from]),
      [
        ['warn', 'FERRY_ERR_MALFORMED_DATAGRAM', from],
        ['warn', 'FERRY_ERR_UNSUPPORTED_VERSION', from],
      ],
    );
    assert.equal(b.stats.malformed, 2);
    const p = a.request(b.address, 1, Buffer.alloc(0));
    await settle();
    await p;
    raw.close();
  });
});
