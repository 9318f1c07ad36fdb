/**
 * The kept socket's rules, over every state: which transitions keep a drained socket for a resume
 * on it, and what a frame arriving on it comes to (the peer's RESUME accepted only while SUSPENDED
 * and not moving; our RESUME answered by RESUME_ACK or a crossing RESUME only while it is out on
 * this socket; anything else refused, falling back to a RES datagram when our RESUME was out on it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType } from '../../../../src/wire/index.js';
import { STATES, type State } from '../../../../src/connection/index.js';
import { keepsSocket, keptFrameVerdict } from '../../../../src/connection/core/index.js';

const SUSPENDING: State[] = ['SUS_SENT', 'SUS_ACKED', 'SUSPENDED'];

test('kept socket: kept while suspending and suspended, and into the resume that offers it; dropped leaving a resume', () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const expected = SUSPENDING.includes(to) ? from !== 'RES_SENT' && from !== 'RES_ACKED' : from === 'SUSPENDED' && to === 'RES_SENT';
      assert.equal(keepsSocket(from, to), expected, `${from} -> ${to}`);
    }
  }
  assert.equal(keepsSocket('SUSPENDED', 'RES_SENT'), true);
  assert.equal(keepsSocket('RES_SENT', 'SUSPENDED'), false, 'a resume that failed does not fall back on it');
  assert.equal(keepsSocket('SUSPENDED', 'RES_ACKED'), false, 'the peer resumes by datagram: a new socket');
  assert.equal(keepsSocket('SUSPENDED', 'CLOSE_SENT'), false);
});

test('kept socket: the peer\'s RESUME is accepted only while SUSPENDED and not moving', () => {
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME, 'SUSPENDED', false, false), { kind: 'peer_resumes' });
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME, 'SUSPENDED', true, false), { kind: 'refuse', fallback: false }, 'moving: the peer resumes by datagram');
  for (const st of STATES.filter((s) => s !== 'SUSPENDED' && s !== 'RES_SENT')) {
    assert.deepEqual(keptFrameVerdict(FrameType.RESUME, st, false, false), { kind: 'refuse', fallback: false }, st);
  }
});

test('kept socket: our RESUME out on it is answered by RESUME_ACK or a crossing RESUME, on that socket only', () => {
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME_ACK, 'RES_SENT', false, true), { kind: 'resume_accepted' });
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME, 'RES_SENT', false, true), { kind: 'resume_accepted' });
  // Not offered on this socket: a RESUME_ACK there answers nothing of ours.
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME_ACK, 'RES_SENT', false, false), { kind: 'refuse', fallback: false });
  assert.deepEqual(keptFrameVerdict(FrameType.RESUME_ACK, 'SUSPENDED', false, true), { kind: 'refuse', fallback: false });
});

test('kept socket: any other frame is refused; with our RESUME out on it we fall back to a RES datagram', () => {
  for (const type of [FrameType.DATA, FrameType.ACK, FrameType.FIN, FrameType.SUSPEND, FrameType.DRAIN, FrameType.HELLO]) {
    assert.deepEqual(keptFrameVerdict(type, 'RES_SENT', false, true), { kind: 'refuse', fallback: true }, `type ${type}`);
    assert.deepEqual(keptFrameVerdict(type, 'SUSPENDED', false, false), { kind: 'refuse', fallback: false }, `type ${type}`);
  }
});
