/**
 * The peer's HELLO through the connection core: `helloArrived(h, remote)` throws the refusal or
 * names the slot the handed-over socket is from now on, and what it comes to comes out of `poll()`:
 * the carrying socket closed, `accept` (our HELLO_ACK on the new slot) and `attach`; or, when it
 * overtook the proof our RES asked for, held unread (one held before closes). A verified proof
 * takes it in its turn: answered if the state still resumes, else its socket closes; a refused
 * one drops it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFerryError } from '../../../../src/util/index.js';
import { FrameType, type Hello } from '../../../../src/wire/index.js';
import type { ConnectionCore, CoreCommand, HelloCrypto } from '../../../../src/connection/core/index.js';
import type { State } from '../../../../src/connection/state-machine.js';
import { coreIn, pollAll } from './fixtures.js';

const helloCrypto: HelloCrypto = { helloMac: () => Buffer.alloc(32), helloAckMac: () => Buffer.alloc(32) };

/** A core in `state` whose sockets come from 10.0.0.7 (as the adapter would say). */
function core(state: State): ConnectionCore {
  const c = coreIn(state, { helloCrypto });
  c.bindSockets({ isOpen: () => true, remoteAddress: () => '10.0.0.7' });
  return c;
}


function show(c: CoreCommand): string {
  if (c.kind === 'transition') return `${c.from}->${c.to}`;
  if (c.kind === 'act') return `act:${c.action}`;
  if (c.kind === 'log') return `log:${c.event}`;
  return 'slot' in c && typeof c.slot === 'number' ? `${c.kind}:${c.slot}` : c.kind;
}

function resumeHello(c: ConnectionCore): Hello {
  return { type: FrameType.HELLO, kind: 'resume', connectionId: c.connectionId, dialerRole: 'server', dialerNonce: Buffer.alloc(16, 2), challenge: c.path.issueChallenge(), received: 3, limit: 900, mac: Buffer.alloc(32) };
}

test('hellos: a resume HELLO while resuming closes the carrying socket, answers HELLO_ACK on the new slot and attaches it at the peer\'s offsets', () => {
  const c = core('RES_ACKED');
  const old = c.newSlot();
  c.slots.attached(old);
  const slot = c.helloArrived(resumeHello(c), '10.0.0.7');
  const out = pollAll(c);
  assert.deepEqual(out.map(show), [`close:${old}`, `accept:${slot}`, `attach:${slot}`]);
  const accept = out[1];
  assert.ok(accept?.kind === 'accept' && accept.frame.type === FrameType.HELLO_ACK);
  assert.deepEqual(out[2], { kind: 'attach', slot, keys: undefined, received: 3, limit: 900 });
  assert.equal(c.slots.data, undefined, 'carried by no socket until the adapter attaches the new one');
});

test('hellos: a HELLO the state does not take is refused, typed, and queues nothing', () => {
  const c = core('SUSPENDED');
  assert.throws(() => c.helloArrived(resumeHello(c), '10.0.0.7'), (e: unknown) => isFerryError(e) && e.code !== 'FERRY_ERR_INTERNAL');
  assert.deepEqual(pollAll(c), []);
});

test('hellos: one that overtook the proof we asked for is held; a second replaces it, the first one\'s socket closed', () => {
  const c = core('RES_SENT');
  c.path.resSent(true);
  const first = c.helloArrived(resumeHello(c), '10.0.0.7');
  assert.deepEqual(pollAll(c).map(show), ['log:resume_hello_parked']);
  c.helloArrived(resumeHello(c), '10.0.0.7');
  assert.deepEqual(pollAll(c).map(show), [`close:${first}`, 'log:resume_hello_parked']);
  assert.equal(c.slots.holdsHello, true);
  // (The verified proof answers it in its turn: control-requests.test.ts.)
});

test('hellos: the held HELLO goes with the resume: a transition out of it closes its socket, and nothing is left to take', () => {
  const c = core('RES_SENT');
  c.path.resSent(true);
  const held = c.helloArrived(resumeHello(c), '10.0.0.7');
  pollAll(c);
  c.handle('timeout');
  assert.deepEqual(pollAll(c).map(show).slice(0, 2), [`close:${held}`, 'RES_SENT->SUSPENDED']);
  assert.equal(c.slots.holdsHello, false);
});
