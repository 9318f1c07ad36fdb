/**
 * The connection core under plain `now` numbers, with no socket, timer or promise: events apply
 * to completion in the order handed in (every command of one event before the next event), an
 * event that went stale behind an earlier one changes nothing and says so, the transition table
 * decides every state, and the resume deadline follows the transitions alone. A property drives
 * random event sequences against the table itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConnectionCore, type CoreCommand, type CoreInit, type OpenCrypto } from '../../../../src/connection/core/index.js';
import { MessageType, type Connect } from '../../../../src/wire/index.js';
import { EVENTS, STATES, lookup, type Event, type State } from '../../../../src/connection/state-machine.js';
import { ReceiveBuffer, SendBuffer } from '../../../../src/connection/data-path.js';
import type { AgentId, Identity } from '../../../../src/identity/index.js';
import { limit } from '../../../../src/util/index.js';
import { coreIn } from './fixtures.js';


/** Every command the core gives out at `now`. */
function drain(core: ConnectionCore, now = 0): CoreCommand[] {
  const out: CoreCommand[] = [];
  for (let c = core.poll(now); c; c = core.poll(now)) out.push(c);
  return out;
}

test('ConnectionCore: an event gives its transition, then its actions in the table\'s order', () => {
  const core = coreIn('ESTABLISHED');
  core.handle('recv_res');
  // drop_socket and dial_if_dialer are the core's (core/slots.ts): no socket carries the
  // connection here, so there is none to drop; this end is the dialer, so its resume dials.
  const to = core.path.dialTarget();
  const dial = (slot: number): CoreCommand => ({ kind: 'dial', slot, ip: to.ip, port: to.redirectorPort });
  assert.deepEqual(drain(core), [{ kind: 'transition', event: 'recv_res', from: 'ESTABLISHED', to: 'RES_ACKED' }, { kind: 'act', action: 'ack_res' }, dial(1)]);
  assert.equal(core.state, 'RES_ACKED');
  // A row that stays in its state gives its actions and no transition (the adapter did not dial: it may again).
  core.handle('recv_res');
  assert.deepEqual(drain(core), [{ kind: 'act', action: 'ack_res' }, dial(2)]);
});

test('ConnectionCore: an event handed in while a command is carried out waits for every command of the current event', () => {
  const core = coreIn('SUSPENDED');
  core.handle('resume');
  const first = core.poll(0);
  assert.deepEqual(first, { kind: 'transition', event: 'resume', from: 'SUSPENDED', to: 'RES_SENT' });
  // Carrying out the transition, the adapter learns the peer closed: queued, not applied yet.
  core.handle('recv_cls');
  assert.equal(core.state, 'RES_SENT');
  // send_res is the core's: no kept socket, so the RES datagram, decided in the state it was queued in.
  const res = core.poll(0);
  assert.ok(res?.kind === 'request' && res.type === MessageType.RES);
  assert.equal(core.state, 'RES_SENT', 'the send_res action runs in the state it was decided in');
  // cancel_res is the core's own: the RES is cancelled.
  // drop_socket is the core's: no socket carries the connection, so it comes to nothing.
  assert.deepEqual(drain(core), [
    { kind: 'transition', event: 'recv_cls', from: 'RES_SENT', to: 'CLOSE_ACKED' },
    { kind: 'cancel', id: res.id },
    { kind: 'act', action: 'ack_cls' },
  ]);
});

test('ConnectionCore: an event gone stale behind an earlier one changes nothing and comes out as stale', () => {
  const core = coreIn('ESTABLISHED');
  core.handle('close');
  core.handle('suspend'); // the application's suspend, queued behind its close
  // send_cls is the core's own: the CLS request comes out in its place.
  assert.deepEqual(drain(core).map((c) => (c.kind === 'request' ? { kind: 'request', type: c.type } : c)), [
    { kind: 'transition', event: 'close', from: 'ESTABLISHED', to: 'CLOSE_SENT' },
    { kind: 'request', type: MessageType.CLS },
    { kind: 'stale', event: 'suspend', state: 'CLOSE_SENT' },
  ]);
  assert.equal(core.state, 'CLOSE_SENT');
  assert.equal(core.accepts('suspend'), false);
  assert.equal(core.accepts('recv_cls_ack'), true);
  assert.equal(core.poll(0), undefined);
});

test('ConnectionCore: the resume deadline is set on leaving SUSPENDED for a resume, kept through it, cleared after', () => {
  const core = coreIn('SUSPENDED');
  const hs = limit('HANDSHAKE_TIMEOUT_MS');
  core.handle('resume');
  drain(core, 1000);
  assert.equal(core.nextDeadline(), 1000 + hs);
  // RES_SENT -> RES_ACKED is still the same resume: the deadline does not move.
  core.handle('recv_res');
  drain(core, 1500);
  assert.equal(core.state, 'RES_ACKED');
  assert.equal(core.nextDeadline(), 1000 + hs);
  assert.equal(core.handleTimeout(1000 + hs - 1), undefined, 'not due before its time');
  core.handle('socket_ready');
  drain(core, 1600);
  assert.equal(core.state, 'ESTABLISHED');
  assert.equal(core.nextDeadline(), undefined, 'a finished resume has no deadline left');
  assert.equal(core.handleTimeout(1e9), undefined);
});

test('ConnectionCore: an expired resume deadline is acted on once, by the core; the delayed ACK shares the table', () => {
  const core = coreIn('SUSPENDED');
  const hs = limit('HANDSHAKE_TIMEOUT_MS');
  core.setDeadline('ack', 50);
  core.handle('resume');
  drain(core, 0);
  assert.equal(core.nextDeadline(), 50);
  // The earliest first: the delayed ACK (no socket carries here: nothing to send), then the resume deadline.
  core.handleTimeout(hs);
  assert.equal(core.hasDeadline('ack'), false);
  assert.equal(core.hasDeadline('resume_deadline'), true);
  assert.equal(core.poll(hs), undefined);
  core.handleTimeout(hs);
  assert.deepEqual(drain(core, hs).map((c) => c.kind), ['log', 'transition', 'cancel'], 'its timeout is applied: RES_SENT -> SUSPENDED, the RES cancelled');
  assert.equal(core.state, 'SUSPENDED');
  assert.equal(core.handleTimeout(hs), undefined, 'each deadline expires once');
  assert.equal(core.poll(hs), undefined);
  assert.equal(core.hasDeadline('resume_deadline'), false);
  core.setDeadline('drain', 10, 2);
  assert.equal(core.cancelDeadline('drain', 2), true);
  assert.equal(core.cancelDeadline('drain', 2), false);
  core.setDeadline('kept_socket', 10, 1);
  core.clearDeadlines();
  assert.equal(core.nextDeadline(), undefined);
});

/** What the core's own steps come to in a control-channel open with no RES out: their command, and the action it stands for. */
/**
 * The actions the core decides, by the command each comes to here: the open's steps, and
 * the data sockets' (with no socket: a drain is over on a later turn; this end is the dialer).
 */
const OPEN_STEP_KINDS: Record<string, 'send_connect' | 'send_confirm' | 'dial' | 'send_cls' | 'drain' | 'dial_if_dialer' | undefined> = {
  open_oneway: 'send_confirm',
  fire_later: 'drain',
};
/** Our requests, by message type, and the action each stands for (no socket here: never in-band). */
const REQUEST_ACTIONS: Record<number, 'send_sus' | 'send_res' | 'send_cls' | 'send_connect'> = { [MessageType.SUS]: 'send_sus', [MessageType.RES]: 'send_res', [MessageType.CLS]: 'send_cls', [MessageType.CONNECT]: 'send_connect' };
const STUB_CLIENT = { id: 'a'.repeat(32) } as Identity;
/** An open's cryptography that builds placeholders: the property checks the table, not the handshake. */
const STUB_CRYPTO: OpenCrypto = {
  buildConnect: () => ({ body: Buffer.alloc(4), message: { clientHalf: Buffer.alloc(8) } as Connect, ephemeral: undefined }),
  buildConnectAck: () => assert.fail('a client builds no CONNECT_ACK'),
  acceptConnectAck: () => assert.fail('no CONNECT_ACK in the property'),
  clientFinished: () => Buffer.alloc(32),
  verifyClientFinished: () => false,
};

test('ConnectionCore: any sequence of events follows the table exactly, and a resume deadline is set exactly while resuming', () => {
  fc.assert(
    fc.property(fc.constantFrom(...STATES), fc.array(fc.constantFrom(...EVENTS), { maxLength: 40 }), (start: State, events: Event[]) => {
      const core = coreIn(start);
      core.open.startClient({ inband: false, client: STUB_CLIENT, redirectorPort: 2001, controlPort: 2000, window: 1 << 16, crypto: STUB_CRYPTO });
      let model: State = start;
      let now = 0;
      let ended = false;
      for (const e of events) {
        now += 7;
        core.handle(e);
        // The open's steps come out as what the core decided for them (control-channel open), the
        // end (`fail`, `closed`) as `ended`, named here by the row's action, and `established`
        // and `confirmed` as commands of their own.
        const end = lookup(model, e)?.actions.find((a) => a === 'fail' || a === 'closed');
        // Our SUS, RES and CLS requests stand for send_sus, send_res and send_cls; the cancels of a
        // RES still out are checked by control-requests.test.ts.
        const cmds = drain(core, now)
          .filter((c) => c.kind !== 'cancel')
          .map((c) => (c.kind === 'request' ? { kind: 'act', action: REQUEST_ACTIONS[c.type] } : c.kind === 'dial' ? { kind: 'act', action: lookup(model, e)?.actions.includes('dial') ? 'dial' : 'dial_if_dialer' } : OPEN_STEP_KINDS[c.kind] ? { kind: 'act', action: OPEN_STEP_KINDS[c.kind] } : c.kind === 'ended' ? { kind: 'act', action: end } : c.kind === 'established' || c.kind === 'confirmed' ? { kind: 'act', action: c.kind } : c));
        const row = lookup(model, e);
        if (!row) {
          assert.deepEqual(cmds, [{ kind: 'stale', event: e, state: model }]);
          continue;
        }
        const want: CoreCommand[] = [];
        if (row.to !== model) want.push({ kind: 'transition', event: e, from: model, to: row.to });
        // cancel_res is the core's own, and no RES is ever out here: it comes to nothing; so does
        // schedule_resume (also the core's), as no automatic resume is wanted here; and so do
        // drop_socket and reuse_socket, with no socket carrying the connection or agreed for a reuse.
        // The connection ends once: a later fail or closed comes to nothing.
        for (const action of row.actions) {
          if (['cancel_res', 'schedule_resume', 'drop_socket', 'reuse_socket'].includes(action)) continue;
          if (action === 'fail' || action === 'closed') {
            if (ended) continue;
            ended = true;
          }
          want.push({ kind: 'act', action });
        }
        assert.deepEqual(cmds, want);
        model = row.to;
        assert.equal(core.state, model);
      }
      const resuming = model === 'RES_SENT' || model === 'RES_ACKED';
      // Entered by a transition (not the start state) iff the deadline is set.
      if (!resuming) assert.equal(core.hasDeadline('resume_deadline'), false, `no resume deadline in ${model}`);
    }),
    { numRuns: 500 },
  );
});

test('ConnectionCore: checkpoint() and fromCheckpoint() carry the whole connection end, unacked and unread bytes and end of stream included', () => {
  const core = coreIn('SUSPENDED', { counters: { sent: 2, received: 5 } });
  core.send.append(Buffer.from('unacked bytes'));
  core.send.end();
  core.recv.announce(1 << 16);
  core.recv.onData(0, Buffer.from('not read yet'));
  core.recv.onFin(12);
  core.intent.autoResume = true;
  const cp = core.checkpoint();
  assert.equal(cp.resume, true, "the intent's wish to resume travels");
  assert.equal(cp.controlCounter, 2);
  assert.equal(cp.peerCounter, 5);
  const landed = ConnectionCore.fromCheckpoint(JSON.parse(JSON.stringify(cp)), { reconnectLimitMs: 30_000, random: (n) => Buffer.alloc(n) });
  assert.equal(landed.intent.autoResume, true, 'it lands wanting to resume');
  assert.equal(landed.state, 'SUSPENDED');
  assert.deepEqual(landed.checkpoint(), cp, 'what lands is what left, field for field');
  assert.deepEqual(landed.send.snapshot(), { acked: 0, data: Buffer.from('unacked bytes'), fin: 13 });
  assert.deepEqual(landed.recv.take(100), Buffer.from('not read yet'));
  assert.equal(landed.recv.ended, true);
  assert.deepEqual([landed.auth.sent, landed.auth.received], [2, 5]);
  assert.equal(landed.nextDeadline(), undefined, 'no deadline travels');
});

test('ConnectionCore.fromCheckpoint: a checkpoint from another host is checked, never trusted through its type', () => {
  const cp = coreIn('SUSPENDED').checkpoint();
  const bad = (o: unknown, code: string): void => {
    assert.throws(() => ConnectionCore.fromCheckpoint(o as never, { reconnectLimitMs: 1, random: (n) => Buffer.alloc(n) }), (e: { code?: string }) => e.code === code);
  };
  bad({ ...cp, v: 2 }, 'FERRY_ERR_UNSUPPORTED_VERSION');
  bad({ ...cp, controlCounter: -1 }, 'FERRY_ERR_MALFORMED_CHECKPOINT');
  bad({ ...cp, send: { ...cp.send, data: 'not base64!' } }, 'FERRY_ERR_MALFORMED_CHECKPOINT');
  bad({ ...cp, role: 'admin' }, 'FERRY_ERR_MALFORMED_CHECKPOINT');
});
