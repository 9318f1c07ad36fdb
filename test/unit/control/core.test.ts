// The sans-I/O control core under a ManualClock: retransmission timing (RFC 6298, Karn), timeouts,
// duplicate suppression, address matching, limits, and a simulated lossy network property.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FerryError, ManualClock, isFerryError, type ErrorCode } from '../../../src/util/index.js';
import { FLAG_REPLY, TYPE_ERROR, decodeDatagram, encodeDatagram, encodeErrorBody } from '../../../src/wire/index.js';
import {
  ControlCore,
  formatAddress,
  parseAddress,
  type ControlEvent,
  type ControlLimits,
  type IncomingRequest,
  type Outgoing,
} from '../../../src/control/index.js';
import { seededRandom } from '../../../src/testing/index.js';
import { drive } from '../../helpers/control.js';

const CLIENT = '10.0.0.1:1000';
const SERVER = '10.0.0.9:9000';
const OTHER = '10.0.0.66:9000';

function core(limits?: Partial<ControlLimits>, random: () => number = () => 0.5): ControlCore {
  return new ControlCore({ random, limits });
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => isFerryError(err, code));
}

/** A reply datagram for request `requestId`, as the server would send it. */
function replyTo(requestId: number, body = 'ok'): Buffer {
  return encodeDatagram({ type: 2, flags: FLAG_REPLY, requestId }, Buffer.from(body));
}

function only<K extends ControlEvent['kind']>(events: ControlEvent[], kind: K): Extract<ControlEvent, { kind: K }> {
  assert.equal(events.length, 1, `expected one event, got ${JSON.stringify(events.map((e) => e.kind))}`);
  const e = events[0] as ControlEvent;
  assert.equal(e.kind, kind);
  return e as Extract<ControlEvent, { kind: K }>;
}

describe('addresses', () => {
  it('format and parse round-trip, IPv6 in brackets', () => {
    assert.equal(formatAddress('127.0.0.1', 5), '127.0.0.1:5');
    assert.equal(formatAddress('::1', 5), '[::1]:5');
    assert.deepEqual(parseAddress('127.0.0.1:65535'), { ip: '127.0.0.1', port: 65535 });
    assert.deepEqual(parseAddress('[fe80::1%eth0]:80'), { ip: 'fe80::1%eth0', port: 80 });
    for (const bad of ['', '1.2.3.4', '1.2.3.4:', ':80', '1.2.3.4:65536', '::1:80', '1.2.3.4:8x', ' 1.2.3.4:80']) {
      throwsCode(() => parseAddress(bad), 'FERRY_ERR_INVALID_ARGUMENT');
    }
    throwsCode(() => formatAddress('1.2.3.4', 70000), 'FERRY_ERR_INVALID_ARGUMENT');
  });

  it('parseAddress decides every string as its grammar does (the dotted form has a path without the expression)', () => {
    // The grammar, as the one regular expression it was: `[ip]:port` or `ip:port`, 1-5 digits, at most 65535.
    const grammar = (s: string): { ip: string; port: number } | undefined => {
      const m = /^(?:\[([0-9A-Fa-f:.%\w-]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(s);
      const ip = m?.[1] ?? m?.[2];
      const port = Number(m?.[3]);
      return !m || !ip || port > 0xffff ? undefined : { ip, port };
    };
    const random = seededRandom(7);
    const chars = '0123456789.:[]a%- \t';
    const cases = ['1.2.3.4:00080', '1.2.3.4:65536', '1.2.3.4:123456', '1.2.3.4:80:90', '...:1', '1.2.3.4: 80', '1.2.3.4:8\n'];
    const draw = (from: string, most: number): string => {
      let s = '';
      for (let n = Math.floor(random() * (most + 1)); n > 0; n--) s += from[Math.floor(random() * from.length)];
      return s;
    };
    for (let i = 0; i < 20_000; i++) {
      // Half of them near the dotted form (digits and dots, a colon, up to 7 digits), half anything.
      cases.push(i % 2 === 0 ? `${draw('0123456789.', 15)}:${draw('0123456789', 7)}` : draw(chars, 14));
    }
    for (const s of cases) {
      const want = grammar(s);
      if (want) assert.deepEqual(parseAddress(s), want, JSON.stringify(s));
      else throwsCode(() => parseAddress(s), 'FERRY_ERR_INVALID_ARGUMENT');
    }
  });
});

describe('ControlCore: requester', () => {
  it('retransmits with exponential backoff from CONTROL_INITIAL_RTO_MS, capped at CONTROL_MAX_RTO_MS, then times out', () => {
    const clock = new ManualClock();
    const c = core();
    const { handle, send } = c.request(clock.now(), SERVER, 1, Buffer.from('ping'));
    assert.ok(send, 'an empty window sends at once');
    assert.equal(send.to, SERVER);
    const run = drive(c, clock, 60_000);
    // 100, 200, 400, 800, then the 1000 ms cap; eight sends in all (CONTROL_MAX_TRIES).
    assert.deepEqual(run.sends.map((s) => s.at), [100, 300, 700, 1500, 2500, 3500, 4500]);
    for (const s of run.sends) assert.equal(s.out.datagram, send.datagram, 'a retransmission is the same datagram');
    assert.equal(run.events.length, 1);
    const failed = run.events[0];
    assert.equal(failed?.at, 5500);
    assert.equal(failed?.ev.kind, 'failed');
    if (failed?.ev.kind === 'failed') {
      assert.equal(failed.ev.handle, handle);
      assert.equal(failed.ev.error.code, 'FERRY_ERR_CONTROL_TIMEOUT');
    }
    assert.equal(c.stats.sent, 8);
    assert.equal(c.stats.retransmitted, 7);
    assert.equal(c.stats.timeouts, 1);
    assert.equal(c.pendingCount, 0);
    assert.equal(c.nextDeadline(), undefined);
  });

  it('never waits longer than maxRtoMs, whatever the tries', () => {
    const clock = new ManualClock();
    const c = core({ maxTries: 20, maxRtoMs: 300 });
    c.request(0, SERVER, 1, Buffer.alloc(0));
    const at = drive(c, clock, 1e6).sends.map((s) => s.at);
    assert.equal(at.length, 19);
    const gaps = at.map((t, i) => t - (i === 0 ? 0 : (at[i - 1] as number)));
    assert.deepEqual(gaps.slice(0, 3), [100, 200, 300]);
    assert.ok(gaps.every((g) => g <= 300));
  });

  it('honours per-request maxTries and timeoutMs', () => {
    const clock = new ManualClock();
    const c = core();
    c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 3 });
    let run = drive(c, clock, 1e6);
    assert.deepEqual(run.sends.map((s) => s.at), [100, 300]);
    assert.equal(run.events[0]?.at, 700);
    assert.equal(run.events[0]?.ev.kind === 'failed' && run.events[0].ev.error.code, 'FERRY_ERR_CONTROL_TIMEOUT');

    // The timeout leaves its backed-off RTO (400 ms) for the next request to that peer.
    const again = c.request(clock.now(), SERVER, 1, Buffer.alloc(0));
    assert.equal(c.nextDeadline(), clock.now() + 400);
    c.cancel(clock.now(), again.handle);

    const start = clock.now();
    c.request(start, OTHER, 1, Buffer.alloc(0), { timeoutMs: 250 });
    run = drive(c, clock, 1e6);
    assert.deepEqual(run.sends.map((s) => s.at - start), [100]);
    assert.equal((run.events[0]?.at as number) - start, 250);
    throwsCode(() => c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 0 }), 'FERRY_ERR_INVALID_ARGUMENT');
    throwsCode(() => c.request(0, SERVER, 1, Buffer.alloc(0), { timeoutMs: -1 }), 'FERRY_ERR_INVALID_ARGUMENT');
  });

  it('updates SRTT/RTTVAR from clean samples as RFC 6298 says, and uses the result as the RTO', () => {
    const clock = new ManualClock();
    const c = core();
    assert.equal(c.rtt(SERVER), undefined);
    let r = c.request(0, SERVER, 1, Buffer.alloc(0));
    only(c.onDatagram(40, SERVER, replyTo(r.handle.requestId)).events, 'reply');
    assert.deepEqual(c.rtt(SERVER), { srtt: 40, rttvar: 20, rto: 120 }); // R, R/2, SRTT + 4·RTTVAR

    r = c.request(100, SERVER, 1, Buffer.alloc(0));
    assert.equal(c.nextDeadline(), 220, 'the next request waits the measured RTO');
    only(c.onDatagram(120, SERVER, replyTo(r.handle.requestId)).events, 'reply');
    // RTTVAR = 3/4·20 + 1/4·|40 − 20| = 20; SRTT = 7/8·40 + 1/8·20 = 37.5
    assert.deepEqual(c.rtt(SERVER), { srtt: 37.5, rttvar: 20, rto: 117.5 });
    void clock;
  });

  it('clamps the RTO to [CONTROL_MIN_RTO_MS, CONTROL_MAX_RTO_MS]', () => {
    const c = core();
    let r = c.request(0, SERVER, 1, Buffer.alloc(0));
    c.onDatagram(2, SERVER, replyTo(r.handle.requestId));
    assert.equal(c.rtt(SERVER)?.rto, 25); // 2 + 4·1 = 6, floored
    const far = '10.9.9.9:1';
    r = c.request(10, far, 1, Buffer.alloc(0));
    c.onDatagram(610, far, replyTo(r.handle.requestId));
    assert.equal(c.rtt(far)?.rto, 1000); // 600 + 4·300, capped
  });

  it("follows Karn's rule: no sample from a retransmitted request, backed-off RTO kept until a clean one", () => {
    const clock = new ManualClock();
    const c = core();
    const r = c.request(0, SERVER, 1, Buffer.alloc(0));
    assert.equal(drive(c, clock, 100).sends.length, 1);
    only(c.onDatagram(150, SERVER, replyTo(r.handle.requestId)).events, 'reply');
    assert.equal(c.rtt(SERVER), undefined, 'the reply could answer either send: no sample');

    const r2 = c.request(150, SERVER, 1, Buffer.alloc(0));
    assert.equal(c.nextDeadline(), 150 + 200, 'the backed-off timeout carries over');
    only(c.onDatagram(160, SERVER, replyTo(r2.handle.requestId)).events, 'reply');
    assert.deepEqual(c.rtt(SERVER), { srtt: 10, rttvar: 5, rto: 30 });
    c.request(200, SERVER, 1, Buffer.alloc(0));
    assert.equal(c.nextDeadline(), 230, 'a clean sample ends the backoff');
  });

  it('matches a reply only by requestId AND the address the request went to', () => {
    const c = core();
    const r = c.request(0, SERVER, 1, Buffer.alloc(0));
    let ev = only(c.onDatagram(5, OTHER, replyTo(r.handle.requestId)).events, 'unmatched-reply');
    assert.equal(ev.from, OTHER);
    only(c.onDatagram(6, SERVER, replyTo((r.handle.requestId + 1) >>> 0)).events, 'unmatched-reply');
    assert.equal(c.pendingCount, 1);
    assert.equal(c.stats.unmatchedReplies, 2);
    const ok = only(c.onDatagram(7, SERVER, replyTo(r.handle.requestId, 'pong')).events, 'reply');
    assert.equal(ok.handle, r.handle);
    assert.equal(ok.body.toString(), 'pong');
    // A late duplicate of the reply is unmatched, not a second completion.
    ev = only(c.onDatagram(8, SERVER, replyTo(r.handle.requestId)).events, 'unmatched-reply');
    assert.equal(ev.requestId, r.handle.requestId);
  });

  it('rejects with the error a TYPE_ERROR reply carries; a garbled one leaves the request pending', () => {
    const c = core();
    const r = c.request(0, SERVER, 1, Buffer.alloc(0));
    const garbled = encodeDatagram({ type: TYPE_ERROR, flags: FLAG_REPLY, requestId: r.handle.requestId }, Buffer.from([0, 21]));
    const m = only(c.onDatagram(1, SERVER, garbled).events, 'malformed');
    assert.equal(m.error.code, 'FERRY_ERR_MALFORMED_DATAGRAM');
    assert.equal(c.pendingCount, 1);
    const err = encodeDatagram(
      { type: TYPE_ERROR, flags: FLAG_REPLY, requestId: r.handle.requestId },
      encodeErrorBody(new FerryError('FERRY_ERR_UNKNOWN_AGENT', 'gone')),
    );
    const f = only(c.onDatagram(2, SERVER, err).events, 'failed');
    assert.equal(f.error.code, 'FERRY_ERR_UNKNOWN_AGENT');
    assert.equal(f.error.by, 'peer');
    assert.equal(c.pendingCount, 0);
  });

  it('refuses a request beyond CONTROL_MAX_PENDING at once with LIMIT_EXCEEDED', () => {
    const c = core();
    const handles = [];
    for (let i = 0; i < 4096; i++) handles.push(c.request(0, SERVER, 1, Buffer.alloc(0)).handle);
    throwsCode(() => c.request(0, SERVER, 1, Buffer.alloc(0)), 'FERRY_ERR_LIMIT_EXCEEDED');
    assert.equal(c.pendingCount, 4096);
    assert.ok(c.cancel(0, handles[0] as never));
    c.request(0, SERVER, 1, Buffer.alloc(0));
    throwsCode(() => c.request(0, SERVER, 1, Buffer.alloc(0)), 'FERRY_ERR_LIMIT_EXCEEDED');
  });

  it('cancel stops retransmission and forgets the request', () => {
    const clock = new ManualClock();
    const c = core();
    const r = c.request(0, SERVER, 1, Buffer.alloc(0));
    assert.deepEqual(c.cancel(0, r.handle), { sends: [], events: [] });
    assert.equal(c.cancel(0, r.handle), undefined);
    assert.equal(c.nextDeadline(), undefined);
    const run = drive(c, clock, 1e6);
    assert.equal(run.sends.length + run.events.length, 0);
    assert.deepEqual(c.onTimer(1e6), { sends: [], events: [] });
    only(c.onDatagram(1, SERVER, replyTo(r.handle.requestId)).events, 'unmatched-reply');
  });

  it('allocates requestIds from the random start, incrementing mod 2^32', () => {
    const c = core({}, () => (2 ** 32 - 2) / 2 ** 32);
    const ids = [0, 1, 2, 3].map(() => c.request(0, SERVER, 1, Buffer.alloc(0)).handle.requestId);
    assert.deepEqual(ids, [0xfffffffe, 0xffffffff, 0, 1]);
    assert.equal(decodeDatagram(c.oneway(0, SERVER, 1, Buffer.alloc(0)).datagram).header.requestId, 2, 'one-way shares the sequence');
  });

  it('refuses reserved or invalid types and oversize bodies', () => {
    const c = core();
    for (const t of [0, TYPE_ERROR, 256, 1.5]) throwsCode(() => c.request(0, SERVER, t, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    throwsCode(() => c.request(0, SERVER, 1, Buffer.alloc(1193)), 'FERRY_ERR_INVALID_ARGUMENT');
    throwsCode(() => c.oneway(0, SERVER, TYPE_ERROR, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    assert.equal(c.pendingCount, 0);
  });

  it('abortAll fails every pending request with the given error', () => {
    const c = core();
    const a = c.request(0, SERVER, 1, Buffer.alloc(0)).handle;
    const b = c.request(0, OTHER, 1, Buffer.alloc(0)).handle;
    const events = c.abortAll(new FerryError('FERRY_ERR_ABORTED'));
    assert.deepEqual(events.map((e) => e.kind === 'failed' && [e.handle, e.error.code]), [
      [a, 'FERRY_ERR_ABORTED'],
      [b, 'FERRY_ERR_ABORTED'],
    ]);
    assert.equal(c.pendingCount, 0);
    assert.equal(c.nextDeadline(), undefined);
  });
});

describe('ControlCore: responder', () => {
  function requestBytes(requestId: number, type = 3, body = 'req'): Buffer {
    return encodeDatagram({ type, flags: 0, requestId }, Buffer.from(body));
  }

  it('delivers a request once; a duplicate in progress is ignored, an answered one gets the cached reply', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(77)).events, 'request').request;
    assert.deepEqual([req.from, req.requestId, req.type, req.body.toString()], [CLIENT, 77, 3, 'req']);

    let out = s.onDatagram(5, CLIENT, requestBytes(77));
    assert.equal(out.sends.length, 0);
    assert.equal(only(out.events, 'duplicate').answered, false);

    const reply = s.reply(10, req, 4, Buffer.from('answer'));
    assert.ok(reply);
    assert.equal(reply.to, CLIENT);
    const d = decodeDatagram(reply.datagram);
    assert.deepEqual([d.header.type, d.header.flags, d.header.requestId, d.body.toString()], [4, FLAG_REPLY, 77, 'answer']);

    for (let i = 0; i < 3; i++) {
      out = s.onDatagram(20 + i, CLIENT, requestBytes(77));
      assert.equal(only(out.events, 'duplicate').answered, true, 'no second request event: the handler is not re-run');
      assert.deepEqual(out.sends, [{ to: CLIENT, datagram: reply.datagram }]);
    }
    assert.equal(s.stats.duplicatesAnswered, 3);
    assert.equal(s.stats.duplicatesIgnored, 1);
    assert.equal(s.reply(30, req, 4, Buffer.alloc(0)), undefined, 'a request is answered once');
    assert.equal(s.replyError(30, req, new FerryError('FERRY_ERR_REFUSED')), undefined);
  });

  it('keys duplicates by (address, requestId): the same id from another address is a new request', () => {
    const s = core();
    only(s.onDatagram(0, CLIENT, requestBytes(5)).events, 'request');
    only(s.onDatagram(0, OTHER, requestBytes(5)).events, 'request');
    assert.equal(s.incomingCount, 2);
  });

  it('answers with TYPE_ERROR through replyError, and caches that too', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(9)).events, 'request').request;
    const out = s.replyError(1, req, new FerryError('FERRY_ERR_NOT_LISTENING'));
    assert.ok(out);
    const c = new ControlCore({ random: () => 0 });
    const sent = c.request(0, SERVER, 1, Buffer.alloc(0));
    // Re-address the cached error reply to the client's request id to check what it decodes to.
    const d = decodeDatagram(out.datagram);
    assert.equal(d.header.type, TYPE_ERROR);
    const relabelled = encodeDatagram({ ...d.header, requestId: sent.handle.requestId }, d.body);
    assert.equal(only(c.onDatagram(1, SERVER, relabelled).events, 'failed').error.code, 'FERRY_ERR_NOT_LISTENING');
    assert.deepEqual(s.onDatagram(2, CLIENT, requestBytes(9)).sends, [{ to: CLIENT, datagram: out.datagram }]);
  });

  it('leaves the request answerable when the reply cannot be encoded', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(9)).events, 'request').request;
    throwsCode(() => s.reply(1, req, 4, Buffer.alloc(5000)), 'FERRY_ERR_INVALID_ARGUMENT');
    throwsCode(() => s.reply(1, req, TYPE_ERROR, Buffer.alloc(0)), 'FERRY_ERR_INVALID_ARGUMENT');
    assert.ok(s.replyError(1, req, new FerryError('FERRY_ERR_INTERNAL')));
  });

  it('evicts the oldest cached reply beyond replyCacheEntries', () => {
    const s = core({ replyCacheEntries: 2 });
    const answer = (id: number): void => {
      const req = only(s.onDatagram(0, CLIENT, requestBytes(id)).events, 'request').request;
      assert.ok(s.reply(0, req, 4, Buffer.alloc(0)));
    };
    answer(1);
    answer(2);
    answer(3);
    // 1 was evicted: it looks new again. 2 and 3 are still answered from cache.
    only(s.onDatagram(1, CLIENT, requestBytes(3)).events, 'duplicate');
    only(s.onDatagram(1, CLIENT, requestBytes(2)).events, 'duplicate');
    only(s.onDatagram(1, CLIENT, requestBytes(1)).events, 'request');
  });

  it('keeps a cached reply for CONTROL_REPLY_CACHE_TTL_MS, no longer', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(1)).events, 'request').request;
    s.reply(1000, req, 4, Buffer.alloc(0));
    assert.equal(only(s.onDatagram(30_999, CLIENT, requestBytes(1)).events, 'duplicate').answered, true);
    only(s.onDatagram(31_000, CLIENT, requestBytes(1)).events, 'request');
  });

  it('forgets an unanswered request after the TTL: its late reply is not sent', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(1)).events, 'request').request;
    assert.equal(s.reply(30_000, req, 4, Buffer.alloc(0)), undefined);
    assert.equal(s.incomingCount, 0);
  });

  it('drops new requests beyond maxIncoming unanswered; the retransmission is served later', () => {
    const s = core({ maxIncoming: 2 });
    const r1 = only(s.onDatagram(0, CLIENT, requestBytes(1)).events, 'request').request;
    only(s.onDatagram(0, CLIENT, requestBytes(2)).events, 'request');
    const dropped = s.onDatagram(0, CLIENT, requestBytes(3));
    assert.equal(dropped.sends.length, 0);
    assert.equal(only(dropped.events, 'dropped').error.code, 'FERRY_ERR_LIMIT_EXCEEDED');
    assert.equal(s.stats.dropped, 1);
    s.reply(1, r1, 4, Buffer.alloc(0));
    only(s.onDatagram(2, CLIENT, requestBytes(3)).events, 'request');
  });

  it('drops requests of a source IP holding maxIncomingPerSource, any port; other sources still get in', () => {
    const s = core({ maxIncoming: 8, maxIncomingPerSource: 3 });
    const flood = (port: number, id: number) => s.onDatagram(0, `127.0.0.2:${port}`, requestBytes(id));
    const held = [1, 2, 3].map((id) => only(flood(4000 + id, id).events, 'request').request);
    const dropped = flood(5000, 9); // a fresh port is the same source
    assert.equal(dropped.sends.length, 0);
    assert.match(only(dropped.events, 'dropped').error.message, /from 127\.0\.0\.2 /);
    only(s.onDatagram(0, CLIENT, requestBytes(1)).events, 'request'); // another IP is not held back
    only(s.onDatagram(0, '[::1]:7000', requestBytes(1)).events, 'request');
    s.reply(1, held[0]!, 4, Buffer.alloc(0));
    only(flood(5000, 9).events, 'request'); // an answered request frees the source's place
    only(flood(5001, 10).events, 'dropped');
    // Expired requests free their places too.
    only(s.onDatagram(40_000, '127.0.0.2:6000', requestBytes(11)).events, 'request');
    assert.equal(s.incomingCount, 1);
  });

  it('delivers one-way messages once, never replies to them', () => {
    const c = core();
    const s = core();
    const msg = c.oneway(0, SERVER, 6, Buffer.from('note'));
    const out = s.onDatagram(0, CLIENT, msg.datagram);
    assert.equal(out.sends.length, 0);
    const ev = only(out.events, 'oneway');
    assert.deepEqual([ev.type, ev.body.toString(), ev.from], [6, 'note', CLIENT]);
    const dup = s.onDatagram(1, CLIENT, msg.datagram);
    assert.equal(dup.sends.length, 0);
    assert.equal(only(dup.events, 'duplicate').answered, false);
    assert.equal(c.pendingCount, 0);
    assert.equal(c.nextDeadline(), undefined, 'one-way is never retransmitted');
  });

  it('reports malformed datagrams as events, never throws, and leaves other state alone', () => {
    const s = core();
    const req = only(s.onDatagram(0, CLIENT, requestBytes(1)).events, 'request').request;
    const bad = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.from([2, 1, 0, 0, 0, 0, 0, 1]), Buffer.from([1, 1, 0x80, 0, 0, 0, 0, 1]), Buffer.alloc(1201, 1)];
    const codes = bad.map((b) => only(s.onDatagram(1, CLIENT, b).events, 'malformed').error.code);
    assert.deepEqual(codes, [
      'FERRY_ERR_MALFORMED_DATAGRAM',
      'FERRY_ERR_MALFORMED_DATAGRAM',
      'FERRY_ERR_UNSUPPORTED_VERSION',
      'FERRY_ERR_MALFORMED_DATAGRAM',
      'FERRY_ERR_MALFORMED_DATAGRAM',
    ]);
    assert.equal(s.stats.malformed, 5);
    assert.ok(s.reply(2, req, 4, Buffer.alloc(0)), 'the request in progress is unaffected');
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(CLIENT, OTHER), fc.uint8Array({ maxLength: 64 })), { maxLength: 50 }), (dgs) => {
        const s = core();
        let t = 0;
        for (const [from, bytes] of dgs) s.onDatagram(t++, from, bytes);
      }),
    );
  });
});

describe('ControlCore: simulated lossy network', () => {
  interface InFlight {
    at: number;
    seq: number;
    to: 'client' | 'server';
    bytes: Buffer;
  }

  it('every request completes at most once, with its own reply, and each handler runs once', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 8 }),
        (seed, drop, dup, n, window) => {
          const rnd = seededRandom(seed);
          const client = core({ maxTries: 30, maxInFlightPerPeer: window }, rnd);
          const server = core({}, rnd);
          const net: InFlight[] = [];
          let seq = 0;
          let now = 0;
          const transmit = (to: 'client' | 'server', bytes: Buffer): void => {
            if (rnd() < drop) return;
            const copies = rnd() < dup ? 2 : 1;
            for (let i = 0; i < copies; i++) net.push({ at: now + 1 + rnd() * 60, seq: seq++, to, bytes });
          };
          const handled = new Map<number, number>();
          const outcome = new Map<number, string>();
          const bodyOf = new Map<number, string>();
          const inProgress: IncomingRequest[] = [];
          for (let i = 0; i < n; i++) {
            const r = client.request(now, SERVER, 1, Buffer.from(`q${i}`));
            bodyOf.set(r.handle.requestId, `q${i}`);
            if (r.send) transmit('server', r.send.datagram);
            assert.equal(r.send === undefined, i >= window, 'the first `window` go out at once, the rest queue');
          }
          for (let step = 0; step < 100_000; step++) {
            // Answer one request in progress now and then, so duplicates meet both states.
            if (inProgress.length > 0 && rnd() < 0.3) {
              const req = inProgress.shift() as IncomingRequest;
              const out = server.reply(now, req, 2, Buffer.from(`a:${req.body.toString()}`));
              if (out) transmit('client', out.datagram);
            }
            net.sort((a, b) => a.at - b.at || a.seq - b.seq);
            const nextNet = net[0]?.at ?? Infinity;
            const nextTimer = client.nextDeadline() ?? Infinity;
            if (nextNet === Infinity && nextTimer === Infinity && inProgress.length === 0) break;
            if (nextNet === Infinity && nextTimer === Infinity) continue;
            if (nextNet <= nextTimer) {
              const d = net.shift() as InFlight;
              now = Math.max(now, d.at);
              if (d.to === 'server') {
                const out = server.onDatagram(now, CLIENT, d.bytes);
                for (const s of out.sends) transmit('client', s.datagram);
                for (const e of out.events) {
                  if (e.kind !== 'request') continue;
                  handled.set(e.request.requestId, (handled.get(e.request.requestId) ?? 0) + 1);
                  inProgress.push(e.request);
                }
              } else {
                const out = client.onDatagram(now, SERVER, d.bytes);
                for (const s of out.sends) transmit('server', s.datagram);
                for (const e of out.events) {
                  if (e.kind !== 'reply' && e.kind !== 'failed') continue;
                  const id = e.handle.requestId;
                  assert.equal(outcome.has(id), false, 'completed twice');
                  outcome.set(id, e.kind === 'reply' ? e.body.toString() : e.error.code);
                }
              }
            } else {
              now = nextTimer;
              const out = client.onTimer(now);
              for (const s of out.sends) transmit('server', s.datagram);
              for (const e of out.events) {
                if (e.kind !== 'failed') continue;
                assert.equal(outcome.has(e.handle.requestId), false, 'completed twice');
                outcome.set(e.handle.requestId, e.error.code);
              }
            }
            assert.ok(client.pendingCount - client.queuedCount <= window, 'never more than the window in flight');
          }
          assert.equal(outcome.size, n, 'every request completed');
          for (const [id, result] of outcome) {
            if (result !== 'FERRY_ERR_CONTROL_TIMEOUT') assert.equal(result, `a:${bodyOf.get(id)}`);
          }
          for (const count of handled.values()) assert.equal(count, 1, 'handler ran twice');
          assert.equal(client.pendingCount, 0);
        },
      ),
      { numRuns: 150 },
    );
  });
});
