// The control core's per-peer window (CoAP's NSTART, RFC 7252 §4.7) under a fake clock: at most
// maxInFlightPerPeer requests to one address in flight, the rest queued FIFO and sent as earlier
// ones complete; a queued request's timeoutMs, cancel and abort; the silent-peer rule that fails
// the queue behind a request that got no reply at all; and, in a simulated exchange with a peer
// that serves one request at a time, that the window keeps retransmissions down where sending the
// whole burst at once storms.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError, LIMITS, ManualClock } from '../../../src/util/index.js';
import { FLAG_REPLY, TYPE_ERROR, decodeDatagram, encodeDatagram, encodeErrorBody } from '../../../src/wire/index.js';
import { ControlCore, type ControlEvent, type ControlLimits, type ControlOutput, type IncomingRequest, type Outgoing, type RequestHandle } from '../../../src/control/index.js';
import { drive } from '../../helpers/control.js';

const SERVER = '10.0.0.9:9000';
const OTHER = '10.0.0.66:9000';
const CLIENT = '10.0.0.1:1000';

function core(limits?: Partial<ControlLimits>): ControlCore {
  return new ControlCore({ random: () => 0.5, limits });
}

function replyTo(requestId: number, body = 'ok'): Buffer {
  return encodeDatagram({ type: 2, flags: FLAG_REPLY, requestId }, Buffer.from(body));
}

function idOf(o: Outgoing): number {
  return decodeDatagram(o.datagram).header.requestId;
}

/** Start `n` requests to `to` at `now`; returns their handles and the first sends. */
function burst(c: ControlCore, now: number, to: string, n: number, options?: { maxTries?: number; timeoutMs?: number }): { handles: RequestHandle[]; sends: Outgoing[] } {
  const handles: RequestHandle[] = [];
  const sends: Outgoing[] = [];
  for (let i = 0; i < n; i++) {
    const r = c.request(now, to, 1, Buffer.from(`q${i}`), options);
    handles.push(r.handle);
    if (r.send) sends.push(r.send);
  }
  return { handles, sends };
}

function failedIds(events: ControlEvent[]): number[] {
  return events.flatMap((e) => (e.kind === 'failed' ? [e.handle.requestId] : []));
}

describe('ControlCore: per-peer window', () => {
  it('sends at most maxInFlightPerPeer requests to one address, queues the rest, and counts them', () => {
    const c = core({ maxInFlightPerPeer: 3 });
    const { handles, sends } = burst(c, 0, SERVER, 5);
    assert.deepEqual(sends.map(idOf), handles.slice(0, 3).map((h) => h.requestId));
    assert.equal(c.pendingCount, 5);
    assert.equal(c.queuedCount, 2);
    assert.equal(c.stats.queued, 2);
    assert.equal(c.stats.sent, 3, 'a queued request is not sent');
    assert.equal(c.nextDeadline(), 100, 'only the ones in flight have a retransmission timer');
  });

  it('uses the default window from CONTROL_MAX_IN_FLIGHT_PER_PEER', () => {
    const w = LIMITS.CONTROL_MAX_IN_FLIGHT_PER_PEER.value;
    const c = core();
    assert.equal(burst(c, 0, SERVER, w + 5).sends.length, w);
    assert.equal(c.queuedCount, 5);
  });

  it('drains the queue in request order as replies arrive, each starting its own RTO at its first send', () => {
    const clock = new ManualClock();
    const c = core({ maxInFlightPerPeer: 2 });
    const { handles } = burst(c, 0, SERVER, 5);
    const ids = handles.map((h) => h.requestId);
    // Replies in the reverse order of sending still release the queue front first.
    let out = c.onDatagram(10, SERVER, replyTo(ids[1]!));
    assert.deepEqual(out.sends.map(idOf), [ids[2]]);
    out = c.onDatagram(12, SERVER, replyTo(ids[0]!));
    assert.deepEqual(out.sends.map(idOf), [ids[3]]);
    assert.equal(c.queuedCount, 1);
    // Each went out with the RTO measured by then, not the initial 100 ms from request(): ids[2]
    // at 10 after one sample (10 + 4·5 = 30), ids[3] at 12 after two (SRTT 10.25, RTTVAR 4.25).
    clock.advance(12);
    const run = drive(c, clock, 40, true);
    assert.deepEqual(
      run.sends.map((s) => [s.at, idOf(s.out)]),
      [
        [12 + 27.25, ids[3]],
        [10 + 30, ids[2]],
      ],
    );
  });

  it('counts timeoutMs from request(): a queued request can fail without ever being sent', () => {
    const clock = new ManualClock();
    const c = core({ maxInFlightPerPeer: 1 });
    const first = c.request(0, SERVER, 1, Buffer.alloc(0));
    const queued = c.request(0, SERVER, 1, Buffer.alloc(0), { timeoutMs: 50 });
    assert.equal(queued.send, undefined);
    assert.equal(c.nextDeadline(), 50, 'the queued request has a deadline at its timeoutMs');
    const run = drive(c, clock, 60, true);
    assert.deepEqual(run.sends, []);
    assert.equal(run.events.length, 1);
    const ev = run.events[0]!;
    assert.equal(ev.at, 50);
    assert.ok(ev.ev.kind === 'failed' && ev.ev.handle === queued.handle && ev.ev.error.code === 'FERRY_ERR_CONTROL_TIMEOUT');
    assert.match(ev.ev.kind === 'failed' ? ev.ev.error.message : '', /not sent/);
    assert.deepEqual([c.stats.sent, c.stats.timeouts, c.queuedCount], [1, 1, 0]);
    // The one in flight is untouched, and a reply to it now releases nothing.
    assert.deepEqual(c.onDatagram(61, SERVER, replyTo(first.handle.requestId)).sends, []);
    assert.equal(c.pendingCount, 0);
  });

  it('fails a queued request whose timeoutMs passed when its turn comes, instead of sending it', () => {
    const c = core({ maxInFlightPerPeer: 1 });
    const first = c.request(0, SERVER, 1, Buffer.alloc(0));
    const late = c.request(0, SERVER, 1, Buffer.alloc(0), { timeoutMs: 50 });
    const next = c.request(0, SERVER, 1, Buffer.alloc(0));
    // The adapter's timer is late: the reply is handled at 70, before onTimer ran for 50.
    const out = c.onDatagram(70, SERVER, replyTo(first.handle.requestId));
    assert.deepEqual(out.sends.map(idOf), [next.handle.requestId]);
    assert.deepEqual(
      out.events.map((e) => e.kind === 'failed' ? ['failed', e.handle, e.error.code] : [e.kind]),
      [['reply'], ['failed', late.handle, 'FERRY_ERR_CONTROL_TIMEOUT']],
    );
  });

  it('cancel of a queued request just removes it; cancel of one in flight sends the next', () => {
    const c = core({ maxInFlightPerPeer: 1 });
    const { handles } = burst(c, 0, SERVER, 3);
    const [a, b, d] = handles as [RequestHandle, RequestHandle, RequestHandle];
    assert.deepEqual(c.cancel(1, b), { sends: [], events: [] });
    assert.equal(c.queuedCount, 1);
    const out = c.cancel(2, a);
    assert.deepEqual(out?.sends.map(idOf), [d.requestId], 'the place goes to the next in line, b is gone');
    assert.deepEqual(out?.events, []);
    assert.equal(c.nextDeadline(), 102, "d's RTO starts at its send");
    assert.equal(c.cancel(3, b), undefined);
    only(c.onDatagram(4, SERVER, replyTo(b.requestId)).events, 'unmatched-reply');
  });

  it('never completes a queued request with a reply: it was not sent, so nothing answers it', () => {
    const c = core({ maxInFlightPerPeer: 1 });
    const { handles } = burst(c, 0, SERVER, 2);
    only(c.onDatagram(1, SERVER, replyTo(handles[1]!.requestId)).events, 'unmatched-reply');
    assert.equal(c.queuedCount, 1);
  });

  it('abortAll fails queued requests too', () => {
    const c = core({ maxInFlightPerPeer: 1 });
    const { handles } = burst(c, 0, SERVER, 3);
    const events = c.abortAll(new FerryError('FERRY_ERR_ABORTED'));
    assert.deepEqual(new Set(failedIds(events)), new Set(handles.map((h) => h.requestId)));
    assert.deepEqual([c.pendingCount, c.queuedCount, c.nextDeadline()], [0, 0, undefined]);
    // A fresh request after the abort has the whole window again.
    assert.ok(c.request(1, SERVER, 1, Buffer.alloc(0)).send);
  });

  it('does not let one peer’s full window hold back requests to another', () => {
    const c = core({ maxInFlightPerPeer: 1 });
    burst(c, 0, SERVER, 3);
    assert.ok(c.request(0, OTHER, 1, Buffer.alloc(0)).send, 'another address has its own window');
    assert.equal(c.queuedCount, 2);
  });

  it('fails the whole queue at once when a request got no reply at all from a silent peer', () => {
    const clock = new ManualClock();
    const c = core({ maxInFlightPerPeer: 2 });
    const { handles } = burst(c, 0, SERVER, 10, { maxTries: 3 });
    // A more patient request queued behind them keeps its place and goes out instead.
    const patient = c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 4 });
    const run = drive(c, clock, 700, true);
    // Sends at 0, 100 and 300; the two in flight give up at 700, and so does everything queued
    // with no more patience than theirs, never sent: not 5 more schedules of 700 ms each.
    assert.deepEqual(run.sends.map((s) => s.at), [100, 100, 300, 300, 700]);
    assert.equal(idOf(run.sends[4]!.out), patient.handle.requestId);
    assert.deepEqual(failedIds(run.events.map((e) => e.ev)).sort(), handles.map((h) => h.requestId).sort());
    assert.ok(run.events.every((e) => e.at === 700 && e.ev.kind === 'failed' && e.ev.error.code === 'FERRY_ERR_CONTROL_TIMEOUT'));
    assert.equal(c.stats.timeouts, 10);
    assert.equal(c.stats.sent, 2 * 3 + 1);
    assert.deepEqual([c.pendingCount, c.queuedCount], [1, 0]);
  });

  it('leaves the queue alone when the peer answered anything since: slow is not dead', () => {
    const clock = new ManualClock();
    const c = core({ maxInFlightPerPeer: 2 });
    const a = c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 3 });
    const b = c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 30 });
    const { handles } = burst(c, 0, SERVER, 2, { maxTries: 3 });
    const [q1, q2] = handles as [RequestHandle, RequestHandle];
    // The peer is slow: it answers b (with an error: still an answer) only at 650, after two
    // retransmissions. a is never answered and gives up at 700.
    drive(c, clock, 650, true);
    const err = encodeDatagram({ type: TYPE_ERROR, flags: FLAG_REPLY, requestId: b.handle.requestId }, encodeErrorBody(new FerryError('FERRY_ERR_UNKNOWN_AGENT')));
    assert.deepEqual(c.onDatagram(650, SERVER, err).sends.map(idOf), [q1.requestId]);
    const run = drive(c, clock, 700, true);
    // a heard nothing itself, but its peer answered after a was sent: q2 takes a's place.
    assert.deepEqual(failedIds(run.events.map((e) => e.ev)), [a.handle.requestId]);
    assert.deepEqual(run.sends.map((s) => [s.at, idOf(s.out)]), [[700, q2.requestId]]);
    assert.deepEqual([c.pendingCount, c.queuedCount], [2, 0]);
  });

  it('does not let a one-try request condemn the queue behind it', () => {
    const clock = new ManualClock();
    const c = core({ maxInFlightPerPeer: 1 });
    c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 1 });
    const behind = c.request(0, SERVER, 1, Buffer.alloc(0), { maxTries: 4 });
    const run = drive(c, clock, 100, true);
    assert.deepEqual(run.sends.map((s) => [s.at, idOf(s.out)]), [[100, behind.handle.requestId]]);
    assert.equal(failedIds(run.events.map((e) => e.ev)).length, 1);
  });
});

/** A peer that serves one request at a time, `serviceMs` each, over a path of `oneWayMs`. */
function slowPeer(window: number, n: number, serviceMs: number, oneWayMs: number): { retransmitted: number; failed: number; replies: number; ms: number } {
  const client = core({ maxInFlightPerPeer: window });
  const server = core();
  let now = 0;
  // Pushed in time order with a fixed delay, so the first earliest is also the first sent.
  const net: { at: number; toServer: boolean; bytes: Buffer }[] = [];
  const send = (toServer: boolean, o: Outgoing): void => void net.push({ at: now + oneWayMs, toServer, bytes: o.datagram });
  const work: IncomingRequest[] = [];
  let serving: IncomingRequest | undefined;
  let doneAt = Infinity;
  let replies = 0;
  let failed = 0;
  const onClient = (out: ControlOutput): void => {
    for (const s of out.sends) send(true, s);
    for (const e of out.events) {
      if (e.kind === 'reply') replies++;
      if (e.kind === 'failed') failed++;
    }
  };
  const serveNext = (): void => {
    serving = work.shift();
    doneAt = serving ? now + serviceMs : Infinity;
  };
  for (const s of burst(client, 0, SERVER, n).sends) send(true, s);
  while (replies + failed < n) {
    let first = 0;
    for (let i = 1; i < net.length; i++) if (net[i]!.at < net[first]!.at) first = i;
    const nextNet = net[first]?.at ?? Infinity;
    const nextTimer = client.nextDeadline() ?? Infinity;
    now = Math.min(nextNet, nextTimer, doneAt);
    assert.ok(now < Infinity, 'the exchange stalled');
    if (now === doneAt) {
      const o = server.reply(now, serving!, 2, Buffer.from('ok'));
      if (o) send(false, o);
      serveNext();
    } else if (now === nextNet) {
      const d = net.splice(first, 1)[0]!;
      if (!d.toServer) {
        onClient(client.onDatagram(now, SERVER, d.bytes));
        continue;
      }
      const out = server.onDatagram(now, CLIENT, d.bytes);
      for (const s of out.sends) send(false, s);
      for (const e of out.events) if (e.kind === 'request') work.push(e.request);
      if (!serving) serveNext();
    } else {
      onClient(client.onTimer(now));
    }
  }
  return { retransmitted: client.stats.retransmitted, failed, replies, ms: now };
}

describe('ControlCore: a burst to a peer that answers slowly but surely', () => {
  it('1000 requests at 1 ms of peer CPU each: few retransmissions inside the window, a storm without it', () => {
    // As for the SUS or RES of a move of 1000 connections, on a LAN.
    const w = LIMITS.CONTROL_MAX_IN_FLIGHT_PER_PEER.value;
    const windowed = slowPeer(w, 1000, 1, 0.05);
    const unwindowed = slowPeer(4096, 1000, 1, 0.05);
    assert.deepEqual([windowed.replies, windowed.failed], [1000, 0]);
    assert.ok(windowed.retransmitted <= w, `windowed: ${windowed.retransmitted} retransmissions`);
    assert.ok(unwindowed.retransmitted > 1000, `unwindowed: ${unwindowed.retransmitted} retransmissions`);
    // The peer's CPU is the bottleneck either way: the window costs no time.
    assert.ok(windowed.ms <= unwindowed.ms * 1.05, `windowed ${windowed.ms} ms, unwindowed ${unwindowed.ms} ms`);
  });

  it('loses no request at 6 ms each, where sending the whole burst at once lets some time out', () => {
    // 6 s of peer CPU in all: longer than a request's whole retry schedule (5.5 s).
    const windowed = slowPeer(LIMITS.CONTROL_MAX_IN_FLIGHT_PER_PEER.value, 1000, 6, 0.05);
    const unwindowed = slowPeer(4096, 1000, 6, 0.05);
    assert.deepEqual([windowed.replies, windowed.failed], [1000, 0]);
    assert.ok(windowed.retransmitted < 250, `windowed: ${windowed.retransmitted} retransmissions`);
    assert.ok(unwindowed.failed > 0, 'the last of the burst waited past its whole retry schedule');
  });

  it('keeps a long path busy: over a 50 ms RTT the window costs little against the peer’s own pace', () => {
    // 64 in flight per 50 ms RTT is 1280 requests/s, above the 1000/s this peer serves.
    const windowed = slowPeer(LIMITS.CONTROL_MAX_IN_FLIGHT_PER_PEER.value, 1000, 1, 25);
    assert.deepEqual([windowed.replies, windowed.failed], [1000, 0]);
    assert.ok(windowed.ms < 1000 * 1 * 1.2, `${windowed.ms} ms`);
  });
});

function only<K extends ControlEvent['kind']>(events: ControlEvent[], kind: K): Extract<ControlEvent, { kind: K }> {
  assert.equal(events.length, 1, `expected one event, got ${JSON.stringify(events.map((e) => e.kind))}`);
  const e = events[0] as ControlEvent;
  assert.equal(e.kind, kind);
  return e as Extract<ControlEvent, { kind: K }>;
}
