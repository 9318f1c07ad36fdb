// The exactly-once data path without sockets: random sessions of sends, partial deliveries,
// acks and rewinds (what a resume does) always reassemble the written stream exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReceiveBuffer, SendBuffer } from '../../../src/connection/index.js';
import { FerryError } from '../../../src/util/index.js';

test('random sessions with losses and rewinds deliver the stream exactly once', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 30 }),
      fc.array(fc.record({ frames: fc.integer({ min: 0, max: 6 }), lose: fc.integer({ min: 0, max: 3 }), max: fc.integer({ min: 1, max: 5000 }) }), { minLength: 1, maxLength: 12 }),
      (writes, sessions) => {
        const send = new SendBuffer(1 << 20);
        const recv = new ReceiveBuffer(1 << 20);
        const expected: Buffer[] = [];
        let seq = 0;
        for (const n of writes) {
          const b = Buffer.alloc(n, seq++ & 0xff);
          expected.push(b);
          send.append(b);
        }
        const out: Buffer[] = [];
        const run = (frames: number, lose: number, max: number): void => {
          // A new data socket: the receiver says how far it got; the sender rewinds there.
          send.rewind(recv.received, recv.announce(recv.limit));
          for (let i = 0; i < frames; i++) {
            const f = send.nextFrame(max);
            if (!f) break;
            // The socket dies after `lose` frames: the rest of this session never arrives.
            if (i >= frames - lose) continue;
            recv.onData(f.offset, Buffer.concat(f.parts));
          }
          let c: Buffer | undefined;
          while ((c = recv.take(777))) out.push(c);
          send.onAck(recv.received, recv.announce(recv.limit));
        };
        for (const s of sessions) run(s.frames, s.lose, s.max);
        run(1_000_000, 0, 65536); // a final clean session drains everything
        assert.ok(Buffer.concat(out).equals(Buffer.concat(expected)));
        assert.equal(send.unacked, 0);
      },
    ),
    { numRuns: 300 },
  );
});

test('duplicate and overlapping DATA is dropped; gaps and window overruns are refused', () => {
  const r = new ReceiveBuffer(100);
  r.announce(r.limit);
  assert.equal(r.onData(0, Buffer.alloc(10, 1)), 10);
  assert.equal(r.onData(0, Buffer.alloc(10, 1)), 0, 'full duplicate dropped');
  assert.equal(r.onData(5, Buffer.alloc(10, 2)), 5, 'overlap keeps only the new tail');
  assert.throws(() => r.onData(20, Buffer.alloc(1)), (e: FerryError) => e.code === 'FERRY_ERR_MALFORMED_FRAME');
  assert.throws(() => r.onData(15, Buffer.alloc(200)), (e: FerryError) => e.code === 'FERRY_ERR_BUFFER_BUDGET');
  while (r.take(100));
  assert.equal(r.delivered, 15);
  assert.equal(r.limit, 115, 'window edge moves with what the application read');
});

test('DATA is checked against the edge announced, which a budget may hold below the window and which never goes back', () => {
  const r = new ReceiveBuffer(100);
  assert.equal(r.announce(30), 30, 'a budget announces less than the window');
  assert.equal(r.onData(0, Buffer.alloc(30, 1)), 30);
  assert.throws(() => r.onData(30, Buffer.alloc(1)), (e: FerryError) => e.code === 'FERRY_ERR_BUFFER_BUDGET', 'nothing beyond the announced edge');
  assert.equal(r.announce(10), 30, 'an announced edge is never taken back');
  assert.equal(r.announce(500), 100, 'never beyond the window');
  assert.equal(r.onData(30, Buffer.alloc(70, 2)), 70);
});

test('the sender never sends past the peer window and keeps bytes until acknowledged', () => {
  const s = new SendBuffer(1000);
  s.append(Buffer.alloc(500));
  assert.equal(s.nextFrame(1000), undefined, 'no window yet');
  s.rewind(0, 100);
  assert.equal(s.nextFrame(1000)?.length, 100);
  assert.equal(s.nextFrame(1000), undefined);
  s.onAck(60, 300);
  assert.equal(s.unacked, 440);
  assert.equal(s.nextFrame(1000)?.offset, 100);
  s.append(Buffer.alloc(600));
  assert.equal(s.hasRoom, false, 'budget reached: write() must report backpressure');
  assert.throws(() => s.onAck(5000, 5000), (e: FerryError) => e.code === 'FERRY_ERR_MALFORMED_FRAME', 'ack beyond written');
  assert.throws(() => s.rewind(10, 100), (e: FerryError) => e.code === 'FERRY_ERR_MALFORMED_FRAME', 'resume below own ack');
});

test('FIN is idempotent across sessions and must sit at the end of the received data', () => {
  const r = new ReceiveBuffer(100);
  r.announce(r.limit);
  r.onData(0, Buffer.alloc(10));
  r.onFin(10);
  r.onFin(10);
  assert.throws(() => r.onFin(11), (e: FerryError) => e.code === 'FERRY_ERR_MALFORMED_FRAME');
  assert.equal(r.ended, false);
  r.take(100);
  assert.equal(r.ended, true);
  const s = new SendBuffer(100);
  s.append(Buffer.alloc(5));
  s.end();
  assert.throws(() => s.append(Buffer.alloc(1)), (e: FerryError) => e.code === 'FERRY_ERR_CONNECTION_CLOSED');
  s.rewind(0, 100);
  s.nextFrame(100);
  assert.equal(s.finDue, true);
});
