/**
 * The data path's rules (core/data.ts) under a ManualClock, driven as the endpoint drives them:
 * one clock timer set from the timer table, a turn's ACK sent when the turn ends. The delayed ACK
 * (PROTOCOL.md §7.1): how many ACK frames a burst of small DATA makes, and that a duplicate, a FIN,
 * bulk and a peer short of credit are acknowledged in their own turn; what lies below the receive
 * offset is never delivered; a new socket rewinds the sender to the offset the peer states; the
 * verdict on the peer's DRAIN or SUSPEND in every state; the FIN's turn; credit and the receive
 * budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, type Ack } from '../../../../src/wire/index.js';
import { ManualClock, limit, type TimerHandle } from '../../../../src/util/index.js';
import { STATES } from '../../../../src/connection/index.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import { ReceiveBudget } from '../../../../src/connection/receive-budget.js';
import { ConnectionCore, DataFlow, TimerTable, drainVerdict, keepsDrained, mayPump, type AckStep } from '../../../../src/connection/core/index.js';
import { coreIn } from './fixtures.js';

const DELAY = limit('ACK_DELAY_MS');
const NOW_BYTES = limit('ACK_NOW_BYTES');

/** A receiving end as the endpoint drives its core: one timer from the table, turn ACKs at the turn's end. */
class Receiver {
  readonly clock = new ManualClock();
  readonly timers = new TimerTable();
  readonly recv: ReceiveBuffer;
  readonly flow: DataFlow;
  /** ACK frames sent, with the time each went. */
  readonly acks: { at: number; ack: Ack }[] = [];
  private turnAck = false;
  private timer: TimerHandle | undefined;
  private received = 0;

  constructor(window = 1 << 20, budget?: ReceiveBudget) {
    this.recv = new ReceiveBuffer(window);
    this.flow = new DataFlow(new SendBuffer(1 << 20), this.recv, this.timers);
    if (budget) this.flow.useBudget(budget.open('a', undefined));
    // A socket's first words announce our edge (as attach's first ACK does); not counted.
    this.flow.ack();
  }

  /**
   * The reader takes up to `max` bytes (all by default) and lets go of them, as the endpoint's
   * read() and holding() do: each may reopen the peer's window at once. Returns the bytes taken.
   */
  read(max = Infinity): number {
    let took = 0;
    while (took < max) {
      const b = this.flow.read(Math.min(64 * 1024, max - took));
      if (!b) break;
      took += b.length;
      this.reopen();
    }
    if (this.flow.hold(0)) this.reopen();
    return took;
  }

  private reopen(): void {
    if (this.flow.reopenDue()) this.sendAck();
  }

  /** The edge the peer was last told (its send limit). */
  get peerLimit(): number {
    return this.acks.at(-1)?.ack.limit ?? this.recv.edge;
  }

  /** A DATA frame of `bytes` at the next offset (or `offset`): its AckStep. */
  data(bytes: number, offset = this.received): AckStep {
    const n = this.flow.deliver(offset, Buffer.alloc(bytes, 1));
    this.received += n;
    return this.step(this.flow.dataAck(n));
  }

  fin(): AckStep {
    return this.step(this.flow.fin(this.received));
  }

  private step(s: AckStep): AckStep {
    if (s === 'delay') {
      // The delayed ACK's deadline, as the core's `deadline` command sets it (core/data-inputs.ts).
      this.timers.set('ack', this.clock.now() + DELAY);
      this.rearm();
    } else if (s === 'turn') {
      this.turnAck = true;
    }
    return s;
  }

  /** The turn ends: a turn's ACK goes now, unless an ACK during the turn covered it. */
  endTurn(): void {
    if (!this.turnAck) return;
    this.turnAck = false;
    if (this.flow.turnEnded()) this.sendAck();
  }

  private sendAck(): void {
    this.acks.push({ at: this.clock.now(), ack: this.flow.ack() });
    this.rearm();
  }

  private rearm(): void {
    this.timer?.cancel();
    this.timer = undefined;
    const next = this.timers.nextDeadline();
    if (next === undefined) return;
    this.timer = this.clock.setTimer(next - this.clock.now(), () => {
      this.timer = undefined;
      const e = this.timers.nextExpired(this.clock.now());
      if (e?.name === 'ack') this.sendAck();
      else this.rearm();
    });
  }
}

test('delayed ACK: 100 small DATA frames 1 ms apart, each its own turn, make one ACK per ACK_DELAY_MS', () => {
  const r = new Receiver();
  for (let i = 0; i < 100; i++) {
    r.data(100);
    r.endTurn();
    r.clock.advance(1);
  }
  r.clock.advance(DELAY);
  const expected = Math.ceil(100 / DELAY);
  assert.equal(r.acks.length, expected, `ACKs at ${r.acks.map((a) => a.at).join(', ')}`);
  // Each ACK goes ACK_DELAY_MS after the first DATA it covers, and covers every DATA before it.
  r.acks.forEach(({ at, ack }, i) => {
    assert.equal(at, (i + 1) * DELAY);
    assert.equal(ack.received, Math.min(100, at) * 100);
  });
  assert.equal(r.acks.at(-1)!.ack.received, 100 * 100);
  assert.equal(r.timers.size, 0, 'no deadline left behind');
});

test('delayed ACK: a burst of small DATA in one turn is one ACK, after ACK_DELAY_MS, none at the turn\'s end', () => {
  const r = new Receiver();
  const steps = Array.from({ length: 50 }, () => r.data(200));
  assert.deepEqual([...new Set(steps)], ['delay', 'none'], 'the first arms the deadline, the rest ride on it');
  r.endTurn();
  assert.equal(r.acks.length, 0);
  r.clock.advance(DELAY - 1);
  assert.equal(r.acks.length, 0);
  r.clock.advance(1);
  assert.deepEqual(r.acks.map((a) => [a.at, a.ack.received]), [[DELAY, 50 * 200]]);
});

test('delayed ACK: a duplicate is acknowledged in its own turn, and that ACK covers the delayed one', () => {
  const r = new Receiver();
  assert.equal(r.data(100), 'delay');
  assert.equal(r.data(100, 0), 'turn', 'a duplicate: its sender is behind on what we have');
  r.endTurn();
  assert.deepEqual(r.acks.map((a) => [a.at, a.ack.received]), [[0, 100]]);
  r.clock.advance(5 * DELAY);
  assert.equal(r.acks.length, 1, 'the delayed ACK was covered by the turn\'s');
});

test('delayed ACK: a FIN is acknowledged in its own turn', () => {
  const r = new Receiver();
  r.data(10);
  assert.equal(r.fin(), 'turn');
  r.endTurn();
  assert.deepEqual(r.acks.map((a) => [a.at, a.ack.received]), [[0, 10]]);
  // The FIN is sent again on every new socket: idempotent, and acknowledged again.
  assert.equal(r.fin(), 'turn');
});

test('delayed ACK: bulk (ACK_NOW_BYTES unacknowledged) is acknowledged in its turn, one ACK per ACK_NOW_BYTES', () => {
  const r = new Receiver(16 << 20);
  const frame = 16 * 1024;
  const total = 2 << 20;
  for (let sent = 0; sent < total; sent += frame) {
    r.data(frame);
    r.endTurn();
  }
  assert.equal(r.acks.length, total / NOW_BYTES);
  assert.ok(r.acks.every((a) => a.at === 0), 'no ACK waited for the deadline');
  assert.ok(r.acks.every((a, i) => a.ack.received === (i + 1) * NOW_BYTES));
});

test('delayed ACK: many due frames in one turn make one ACK at its end', () => {
  const r = new Receiver();
  const steps = [r.data(100)];
  // Duplicates, each due at once: the turn's one ACK covers them all.
  for (let i = 0; i < 9; i++) steps.push(r.data(100, 0));
  assert.deepEqual(steps, ['delay', 'turn', ...Array(8).fill('none')]);
  r.endTurn();
  r.clock.advance(DELAY);
  assert.deepEqual(r.acks.map((a) => [a.at, a.ack.received]), [[0, 100]]);
});

test('delayed ACK: a peer down to half its credit is acknowledged in its turn (the window must not wait)', () => {
  const window = 256 * 1024;
  const frame = 1000;
  const r = new Receiver(window);
  let first: { i: number; received: number } | undefined;
  for (let i = 0; i < 200; i++) {
    const s = r.data(frame);
    r.endTurn();
    if (s === 'turn' && !first) first = { i, received: (i + 1) * frame };
    r.clock.advance(1);
  }
  // Nothing read, so the edge stays at the window: the first frame leaving less than half of it
  // is due at once (10 KB at most go unacknowledged between delayed ACKs: not ACK_NOW_BYTES).
  const k = Math.floor(window / 2 / frame) + 1;
  assert.deepEqual(first, { i: k - 1, received: k * frame });
  assert.notEqual(first.i % DELAY, 0, 'not a delayed ACK\'s time');
  assert.ok(r.acks.some((a) => a.at === first!.i && a.ack.received === first!.received), 'acknowledged in that turn');
  assert.ok(r.acks.filter((a) => a.at < first!.i).every((a) => a.at % DELAY === 0), 'before it, only delayed ACKs');
});

/**
 * A bulk sender that sends what the receiver's last ACK allows, in frames of up to `frame` bytes,
 * one per turn, and a reader that reads `readPerTurn()` bytes after each frame, in its turn or (with
 * `readLater`) in the next; until `total` bytes were delivered. Fails if the sender ever waits with nothing the reader could still read and no ACK to come.
 */
function bulk(r: Receiver, total: number, frame: number, readPerTurn: () => number, readLater = false): { turns: number } {
  let sent = r.recv.received;
  let turns = 0;
  while (r.recv.delivered < total) {
    turns++;
    const n = Math.min(frame, r.peerLimit - sent, total - sent);
    if (n > 0) {
      r.data(n, sent);
      sent += n;
    }
    if (readLater) r.endTurn();
    // The reader reads in the turn the DATA arrived in (as a piped stream does), or in a later one.
    r.read(readPerTurn());
    r.endTurn();
    if (sent < total && r.peerLimit === sent && r.recv.queued === 0) {
      // Nothing left to read and no credit: only the delayed ACK could still come (it must not be needed).
      assert.fail(`stalled at ${sent}: credit ${r.peerLimit - sent}, nothing queued, turn ${turns}`);
    }
  }
  return { turns };
}

test('bulk through a reader that keeps up: the credit grows to the whole window, one ACK per quarter of it', () => {
  const window = 1 << 20;
  const floor = 4096;
  const budget = new ReceiveBudget({ host: 64 << 20, perAgent: 64 << 20, perSource: 64 << 20, floor });
  const r = new Receiver(window, budget);
  const total = 32 << 20;
  bulk(r, total, 64 * 1024, () => Infinity);
  // The credit a bulk peer gets: the whole window (it stayed at a quarter of it, 256 KiB, while
  // the reader's reopening every 64 KiB kept the peer above half its credit).
  assert.equal(Math.max(...r.acks.map((a) => a.ack.limit - a.ack.received)), window);
  // Past the growth (the first MiB), one ACK per quarter window: not one per 64 KiB frame, and
  // no second ACK at the end of a turn that a reopen already covered.
  const late = r.acks.filter((a) => a.ack.received >= 1 << 20);
  assert.ok(late.length <= ((total - (1 << 20)) / (window / 4)) * 1.1, `${late.length} ACKs for ${(total - (1 << 20)) >> 20} MiB`);
  assert.ok(r.acks.every((a) => a.at === 0), 'none waited for the delayed ACK');
});

test('bulk through a slow reader in small reads, with a budget to spare or a tight one, never leaves the sender waiting for an ACK that does not come', () => {
  let seed = 12345;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const window of [64 * 1024, 1 << 20]) {
    for (const floor of [4096, 16 * 1024]) {
      // A host budget with room to spare, and one so tight that the window can never grow by a
      // quarter of the credit: the reader that has taken everything must reopen what it can.
      for (const host of [64 << 20, 96 * 1024]) {
        const budget = new ReceiveBudget({ host, perAgent: 64 << 20, perSource: 64 << 20, floor });
        const r = new Receiver(window, budget);
        // Reads of 0 to 48 KiB a turn, against frames of up to 64 KiB: the reader falls behind.
        for (const readLater of [false, true]) {
          const { turns } = bulk(r, r.recv.delivered + (4 << 20), 64 * 1024, () => Math.floor(random() * 48 * 1024), readLater);
          assert.ok(turns > 0);
        }
      }
    }
  }
});

test('DATA below the receive offset is never delivered; an overlap delivers only what is new', () => {
  const r = new Receiver();
  r.data(100);
  assert.equal(r.flow.deliver(0, Buffer.alloc(100)), 0);
  assert.equal(r.flow.deliver(50, Buffer.alloc(50)), 0);
  assert.equal(r.flow.deliver(50, Buffer.alloc(80)), 30);
  assert.equal(r.recv.received, 130);
  assert.equal(r.recv.queued, 130);
});

test('a new socket rewinds the sender to the offset the peer states; a stated offset above the acked frees room', () => {
  const send = new SendBuffer(1 << 20);
  const flow = new DataFlow(send, new ReceiveBuffer(1 << 20), new TimerTable());
  send.append(Buffer.alloc(1000));
  send.onAck(0, 1 << 20);
  while (send.nextFrame(300));
  assert.equal(send.sent, 1000);
  assert.deepEqual(flow.rewind(400, 1 << 20), { replayed: 600, room: true });
  assert.equal(send.acked, 400);
  assert.equal(send.nextFrame(1 << 20)!.offset, 400, 'the next DATA starts at the peer\'s offset');
  // The peer states what it acknowledged already: everything after it goes again, no room freed.
  assert.deepEqual(flow.rewind(400, 1 << 20), { replayed: 600, room: false });
  while (send.nextFrame(300));
  assert.equal(flow.rewindToAcked(), 600, 'a kept socket: from the last acknowledged offset');
  assert.throws(() => flow.rewind(100, 1 << 20), { code: 'FERRY_ERR_MALFORMED_FRAME' }, 'below its own earlier ack');
});

test('the FIN goes once, after every byte before it, and again after a rewind', () => {
  const send = new SendBuffer(1 << 20);
  const flow = new DataFlow(send, new ReceiveBuffer(1 << 20), new TimerTable());
  send.onAck(0, 1 << 20);
  send.append(Buffer.alloc(10));
  send.end();
  assert.equal(flow.finDue(), undefined, 'bytes before it not sent yet');
  send.nextFrame(100);
  assert.deepEqual(flow.finDue(), { type: FrameType.FIN, offset: 10 });
  assert.equal(flow.finDue(), undefined, 'once per socket');
  flow.rewind(0, 1 << 20);
  send.nextFrame(100);
  assert.deepEqual(flow.finDue(), { type: FrameType.FIN, offset: 10 });
  assert.equal(mayPump('ESTABLISHED'), true);
  for (const s of STATES.filter((x) => x !== 'ESTABLISHED')) assert.equal(mayPump(s), false, s);
});

test('our DRAIN and SUSPEND state what we received; the peer\'s frees what it acknowledged', () => {
  const r = new Receiver();
  r.data(70);
  assert.deepEqual(r.flow.drain(), { type: FrameType.DRAIN, received: 70 });
  assert.deepEqual(r.flow.suspend(), { type: FrameType.SUSPEND, received: 70 });
  const send = new SendBuffer(1 << 20);
  const flow = new DataFlow(send, new ReceiveBuffer(1 << 20), new TimerTable());
  send.append(Buffer.alloc(500));
  flow.peerDrained(200);
  assert.equal(send.acked, 200);
  assert.equal(flow.acked(300, 1000), true);
  assert.equal(flow.acked(300, 1000), false, 'a stale ACK frees nothing');
});

test('drainVerdict: the peer\'s DRAIN or SUSPEND, on each socket, in every state', () => {
  const D = FrameType.DRAIN;
  const S = FrameType.SUSPEND;
  for (const st of STATES) {
    for (const moving of [false, true]) {
      for (const type of [D, S]) {
        // On our in-band SUSPEND's socket: the suspend acknowledged in SUS_SENT, else a drain ending.
        assert.equal(drainVerdict(type, true, false, st, moving), st === 'SUS_SENT' ? 'suspend_acked' : 'drain_done', `${st} inband`);
        // On a socket no longer carrying the connection: its drain ends.
        assert.equal(drainVerdict(type, false, false, st, moving), 'drain_done');
        const expected = type === S && st === 'ESTABLISHED' && !moving ? 'peer_suspends' : st === 'SUS_SENT' && !moving ? 'answer_drain' : 'socket_lost';
        assert.equal(drainVerdict(type, false, true, st, moving), expected, `${st} ${type} moving=${moving}`);
      }
    }
  }
  assert.equal(drainVerdict(D, false, true, 'ESTABLISHED', false), 'socket_lost', 'a DRAIN without our SUS: the peer left');
});

test('keepsDrained: only after the peer\'s DRAIN, on a live socket, not moving, while suspending or suspended', () => {
  for (const st of STATES) {
    const ok = st === 'SUS_ACKED' || st === 'SUSPENDED';
    assert.equal(keepsDrained(true, true, false, st), ok, st);
    assert.equal(keepsDrained(false, true, false, st), false);
    assert.equal(keepsDrained(true, false, false, st), false);
    assert.equal(keepsDrained(true, true, true, st), false);
  }
});

test('credit starts at the budget\'s floor and doubles when the peer used half of it; closed, only the unread stays charged', () => {
  const floor = 16 * 1024;
  const window = 64 * 1024;
  const budget = new ReceiveBudget({ host: 8 << 20, perAgent: 8 << 20, perSource: 8 << 20, floor });
  const flow = new DataFlow(new SendBuffer(1 << 20), new ReceiveBuffer(window), new TimerTable());
  flow.useBudget(budget.open('a', undefined));
  // Nothing announced yet, so less than half the floor is left: the first announce doubles it.
  assert.equal(flow.ack().limit, 2 * floor);
  assert.equal(budget.charged, 2 * floor);
  assert.equal(flow.deliver(0, Buffer.alloc(20480)), 20480);
  assert.equal(flow.ack().limit, 4 * floor, 'more than half used: doubled');
  assert.equal(flow.ack().limit, 4 * floor, 'not used: unchanged');
  assert.equal(flow.reopenDue(), false, 'nothing read: nothing to grant');
  // The reader takes it all and still holds it (its stream buffer): still charged.
  assert.equal(flow.read(1 << 20)!.length, 20480);
  assert.equal(budget.charged, 4 * floor);
  assert.equal(flow.hold(0), true);
  assert.equal(flow.hold(0), false, 'unchanged');
  assert.equal(budget.charged, 4 * floor - 20480, 'charged from what was consumed to the edge');
  assert.equal(flow.reopenDue(), true, 'the window can grow by a quarter');
  assert.equal(flow.ack().limit, 20480 + window);
  assert.equal(flow.reopenDue(), false, 'announced');
  assert.equal(flow.deliver(20480, Buffer.alloc(100)), 100);
  flow.close();
  flow.settleBudget();
  assert.equal(budget.charged, 100, 'closed: what is left unread');
  flow.read(1000);
  assert.equal(budget.charged, 100, 'held by the reader');
  flow.hold(0);
  assert.equal(budget.charged, 0, 'read and let go: given back');
});

test('without a receive budget the whole window is announced at once', () => {
  const recv = new ReceiveBuffer(300_000);
  const flow = new DataFlow(new SendBuffer(1 << 20), recv, new TimerTable());
  assert.deepEqual(flow.ack(), { type: FrameType.ACK, received: 0, limit: 300_000 });
});

test('the delayed ACK is a deadline of the ConnectionCore: its next deadline, expired by handleTimeout, cleared with the others', () => {
  const core = coreIn('ESTABLISHED');
  const flow = core.flow;
  flow.ack();
  assert.equal(flow.dataAck(flow.deliver(0, Buffer.alloc(10))), 'delay');
  core.setDeadline('ack', 1000 + DELAY);
  assert.equal(core.nextDeadline(), 1000 + DELAY);
  assert.equal(flow.dataAck(flow.deliver(10, Buffer.alloc(10))), 'none', 'armed: the next small DATA rides on it');
  assert.equal(core.handleTimeout(1000 + DELAY - 1), undefined);
  assert.equal(core.hasDeadline('ack'), true);
  // The core acts on it itself (core/data-inputs.ts): no socket here to send it on, nothing goes.
  assert.equal(core.handleTimeout(1000 + DELAY), undefined);
  assert.equal(core.hasDeadline('ack'), false);
  assert.equal(core.poll(1000 + DELAY), undefined);
  assert.deepEqual(flow.ack(), { type: FrameType.ACK, received: 20, limit: 1 << 16 });
  // A checkpoint or a close clears it with every other deadline.
  flow.deliver(20, Buffer.alloc(10));
  core.setDeadline('ack', 2000 + DELAY);
  core.clearDeadlines();
  assert.equal(core.nextDeadline(), undefined);
  assert.equal(flow.dataAck(flow.deliver(30, Buffer.alloc(10))), 'delay', 'cleared: the next one arms it again');
});
