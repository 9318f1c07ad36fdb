/**
 * The NapletSocket connection state machine (paper Table 1 and Fig. 2), as one literal table.
 *
 * Every (state, event) pair is either a row of {@link TRANSITIONS} or a typed rejection from
 * {@link rejectionFor}: there is no silent no-op. The diagram in docs/STATE-MACHINE.md is
 * generated from this table (`npm run docs`), so the two cannot drift.
 *
 * The table does no I/O: it returns the actions the endpoint adapter must perform.
 */
import { FerryError, type ErrorCode } from '../util/index.js';

/** The 12 states of Table 1. */
export const STATES = [
  'CLOSED',
  'LISTEN',
  'CONNECT_SENT',
  'CONNECT_ACKED',
  'ESTABLISHED',
  'SUS_SENT',
  'SUS_ACKED',
  'SUSPENDED',
  'RES_SENT',
  'RES_ACKED',
  'CLOSE_SENT',
  'CLOSE_ACKED',
] as const;
/** A connection state. */
export type State = (typeof STATES)[number];

/**
 * Events: calls from the local agent (lower case verbs) and things that happen on the network.
 * `recv_confirm` is the client's key confirmation (CONNECT_CONFIRM or the open HELLO);
 * `socket_ready` is a data socket whose HELLO exchange verified; `socket_lost` is a data socket
 * that died (reset, cut, failed dial); `drained` is a data socket released after a suspend or
 * close; `timeout` is a control request that exhausted its tries or a deadline that passed;
 * `detach` is the host taking the endpoint away for a move; `recv_res_reuse` is the peer's in-band
 * RESUME frame on the data socket both ends kept after the suspend, which we accept, `recv_res_ack_reuse` the RESUME_ACK that accepts our RESUME, or the peer's RESUME crossing
 * ours (docs/PROTOCOL.md §6.3, "Resume on the kept socket, in-band").
 */
export const EVENTS = [
  'listen',
  'connect',
  'suspend',
  'resume',
  'close',
  'detach',
  'recv_connect',
  'recv_connect_ack',
  'recv_confirm',
  'recv_sus',
  'recv_sus_ack',
  'recv_res',
  'recv_res_ack',
  'recv_res_reuse',
  'recv_res_ack_reuse',
  'recv_cls',
  'recv_cls_ack',
  'socket_ready',
  'socket_lost',
  'drained',
  'timeout',
] as const;
/** A connection event. */
export type Event = (typeof EVENTS)[number];

/** What the adapter must do on a transition, in order. */
export type Action =
  | 'send_connect'
  | 'send_connect_ack'
  | 'send_confirm'
  | 'dial'
  | 'send_sus'
  | 'ack_sus'
  | 'send_res'
  | 'cancel_res'
  | 'ack_res'
  | 'dial_if_dialer'
  | 'reuse_socket'
  | 'send_cls'
  | 'ack_cls'
  | 'drain'
  | 'drop_socket'
  | 'schedule_resume'
  | 'checkpoint'
  | 'established'
  | 'confirmed'
  | 'fail'
  | 'closed';

/** One row of the table. */
export interface Transition {
  readonly from: State;
  readonly event: Event;
  readonly to: State;
  readonly actions: readonly Action[];
  /** Why the row exists, for the generated docs. */
  readonly note: string;
}

const t = (from: State, event: Event, to: State, actions: Action[], note: string): Transition => ({ from, event, to, actions, note });

/** Every defined transition. */
export const TRANSITIONS: readonly Transition[] = [
  // open: client side
  t('CLOSED', 'connect', 'CONNECT_SENT', ['send_connect'], 'active open: CONNECT with half id, ephemeral key and signature'),
  t('CONNECT_SENT', 'recv_connect_ack', 'ESTABLISHED', ['send_confirm', 'dial', 'established'], 'verified ACK: confirm (third message) and hand the data socket over'),
  t('CONNECT_SENT', 'timeout', 'CLOSED', ['fail'], 'no valid reply: the open fails with a typed error'),
  t('CONNECT_SENT', 'close', 'CLOSED', ['fail'], 'open aborted by the agent'),
  // open: server side
  t('CLOSED', 'listen', 'LISTEN', [], 'passive open: the agent has a server socket'),
  t('LISTEN', 'recv_connect', 'CONNECT_ACKED', ['send_connect_ack'], 'CONNECT accepted: ACK with half id, ephemeral key, signature, key confirmation'),
  t('LISTEN', 'close', 'CLOSED', [], 'server socket closed'),
  t('CONNECT_ACKED', 'recv_confirm', 'ESTABLISHED', ['established'], 'client key confirmation verified'),
  t('CONNECT_ACKED', 'socket_ready', 'ESTABLISHED', ['established'], 'the open HELLO carries the same confirmation'),
  t('CONNECT_ACKED', 'recv_res', 'RES_ACKED', ['ack_res', 'dial_if_dialer', 'confirmed'], 'the client is ESTABLISHED but its socket died before its confirmation arrived: its RES, under the connection key, is the key confirmation: the open is complete (the connection goes to the agent) and resumes as any other'),
  t('CONNECT_ACKED', 'timeout', 'CLOSED', ['fail'], 'half-open expired without confirmation'),
  t('CONNECT_ACKED', 'close', 'CLOSED', ['fail'], 'half-open dropped by the host'),
  // established
  t('ESTABLISHED', 'socket_ready', 'ESTABLISHED', [], 'the open data socket arrives after the confirmation'),
  t('ESTABLISHED', 'recv_confirm', 'ESTABLISHED', [], 'confirmation arriving after the open HELLO already confirmed'),
  t('ESTABLISHED', 'suspend', 'SUS_SENT', ['send_sus'], 'agent suspends (or host before a move): in-band SUSPEND on a live socket (a user suspend), else the SUS datagram'),
  t('ESTABLISHED', 'recv_sus', 'SUS_ACKED', ['ack_sus', 'drain'], 'peer suspends (SUS, or SUSPEND on our socket: our DRAIN is the ACK): ACK, drain the socket into the buffers'),
  t('ESTABLISHED', 'recv_res', 'RES_ACKED', ['drop_socket', 'ack_res', 'dial_if_dialer'], 'peer lost its socket (or moved abruptly) before we noticed'),
  t('ESTABLISHED', 'socket_lost', 'SUSPENDED', ['schedule_resume'], 'abrupt failure: recover by resuming, bounded by the reconnect limit'),
  t('ESTABLISHED', 'close', 'CLOSE_SENT', ['send_cls'], 'active close'),
  t('ESTABLISHED', 'recv_cls', 'CLOSE_ACKED', ['ack_cls', 'drop_socket'], 'passive close'),
  // suspending
  t('SUS_SENT', 'recv_sus_ack', 'SUSPENDED', ['drain'], 'suspend acknowledged (SUS_ACK, or the peer\'s DRAIN, or its crossing SUSPEND, answering ours: socket kept): drain what is left'),
  t('SUS_SENT', 'recv_sus', 'SUS_SENT', ['ack_sus'], 'crossing suspends: both ACK, both end SUSPENDED'),
  t('SUS_SENT', 'timeout', 'SUSPENDED', ['drain'], 'peer moving or unreachable: suspension never waits for it'),
  t('SUS_SENT', 'socket_lost', 'SUS_SENT', [], 'the socket died while suspending: nothing left to drain'),
  t('SUS_SENT', 'close', 'CLOSE_SENT', ['send_cls'], 'close while suspending'),
  t('SUS_SENT', 'recv_cls', 'CLOSE_ACKED', ['ack_cls', 'drop_socket'], 'peer closes while we suspend'),
  t('SUS_ACKED', 'drained', 'SUSPENDED', [], 'drain finished'),
  t('SUS_ACKED', 'socket_lost', 'SUSPENDED', [], 'socket gone during the drain: offsets make it safe'),
  t('SUS_ACKED', 'recv_sus', 'SUS_ACKED', ['ack_sus'], 'retransmitted SUS'),
  t('SUS_ACKED', 'recv_res', 'RES_ACKED', ['drop_socket', 'ack_res', 'dial_if_dialer'], 'peer resumes before our drain ended'),
  t('SUS_ACKED', 'close', 'CLOSE_SENT', ['send_cls'], 'close while suspended by the peer'),
  t('SUS_ACKED', 'recv_cls', 'CLOSE_ACKED', ['ack_cls', 'drop_socket'], 'peer closes after suspending'),
  // suspended
  t('SUSPENDED', 'resume', 'RES_SENT', ['send_res'], 'either end may resume: RESUME on the kept socket if there is one and no proof is due, else the RES datagram'),
  t('SUSPENDED', 'recv_res', 'RES_ACKED', ['ack_res', 'dial_if_dialer'], 'peer resumes: ACK with a path challenge; the lower AgentId dials'),
  t('SUSPENDED', 'recv_res_reuse', 'ESTABLISHED', ['ack_res', 'reuse_socket', 'established'], 'peer resumes in-band on the socket both ends kept after the suspend (RESUME): RESUME_ACK, carry on on it (same keys, counters going on), no dial'),
  t('SUSPENDED', 'recv_sus', 'SUSPENDED', ['ack_sus'], 'peer suspends (to move) while we are suspended'),
  t('SUSPENDED', 'socket_lost', 'SUSPENDED', [], 'late close of a drained socket'),
  t('SUSPENDED', 'drained', 'SUSPENDED', [], 'drain finished after the state changed'),
  t('SUSPENDED', 'detach', 'SUSPENDED', ['checkpoint'], 'the host checkpoints the endpoint for a move'),
  t('SUSPENDED', 'close', 'CLOSE_SENT', ['send_cls'], 'close from SUSPENDED'),
  t('SUSPENDED', 'recv_cls', 'CLOSE_ACKED', ['ack_cls'], 'peer closes a suspended connection'),
  // resuming
  t('RES_SENT', 'recv_res_ack', 'RES_SENT', ['dial_if_dialer'], 'resume acknowledged: the dialer opens the new data socket'),
  t('RES_SENT', 'recv_res_ack_reuse', 'ESTABLISHED', ['reuse_socket', 'established'], 'the peer accepted our RESUME (RESUME_ACK), or its RESUME crossed ours: the kept socket carries the stream again, no dial'),
  t('RES_SENT', 'recv_res', 'RES_ACKED', ['ack_res', 'dial_if_dialer'], 'crossing resumes: both ACK; the lower AgentId dials once'),
  t('RES_SENT', 'socket_ready', 'ESTABLISHED', ['established'], 'offsets exchanged on the new socket: retransmit from there'),
  t('RES_SENT', 'timeout', 'SUSPENDED', ['cancel_res', 'schedule_resume'], 'peer not answering (moving, down): drop the RES still queued or in flight, retry with backoff'),
  t('RES_SENT', 'socket_lost', 'SUSPENDED', ['cancel_res', 'schedule_resume'], 'the dial failed'),
  t('RES_SENT', 'recv_sus', 'SUSPENDED', ['cancel_res', 'ack_sus'], 'peer is leaving: it resumes when it lands'),
  t('RES_SENT', 'suspend', 'SUS_SENT', ['cancel_res', 'send_sus'], 'we leave before the resume finished'),
  t('RES_SENT', 'close', 'CLOSE_SENT', ['cancel_res', 'send_cls'], 'close while resuming'),
  t('RES_SENT', 'recv_cls', 'CLOSE_ACKED', ['cancel_res', 'ack_cls', 'drop_socket'], 'peer closes while we resume'),
  t('RES_ACKED', 'socket_ready', 'ESTABLISHED', ['established'], 'the new data socket is proven: retransmit from the exchanged offsets'),
  t('RES_ACKED', 'recv_res', 'RES_ACKED', ['ack_res', 'dial_if_dialer'], 'retransmitted or crossing RES'),
  t('RES_ACKED', 'recv_res_ack', 'RES_ACKED', ['dial_if_dialer'], 'our own crossing RES answered'),
  t('RES_ACKED', 'timeout', 'SUSPENDED', ['cancel_res', 'drop_socket', 'schedule_resume'], 'no data socket in time: our own crossing RES, if still in flight, stops with the attempt (its late answer, judged against where the peer is by then, must not end or mark the next one)'),
  t('RES_ACKED', 'socket_lost', 'SUSPENDED', ['cancel_res', 'schedule_resume'], 'the new socket died: our own crossing RES, if still in flight, stops with the attempt (as for timeout)'),
  t('RES_ACKED', 'recv_sus', 'SUSPENDED', ['cancel_res', 'drop_socket', 'ack_sus'], 'peer is leaving again: our own crossing RES, if still in flight, stops (its late failure would end the resume after the peer lands)'),
  t('RES_ACKED', 'suspend', 'SUS_SENT', ['cancel_res', 'drop_socket', 'send_sus'], 'we leave before the resume finished: our own crossing RES, if still in flight, stops (its failure would end the suspend early)'),
  t('RES_ACKED', 'close', 'CLOSE_SENT', ['cancel_res', 'drop_socket', 'send_cls'], 'close while resuming: our own crossing RES stops (its failure would end the close before the CLS is acknowledged)'),
  t('RES_ACKED', 'recv_cls', 'CLOSE_ACKED', ['cancel_res', 'ack_cls', 'drop_socket'], 'peer closes while resuming'),
  // closing
  t('CLOSE_SENT', 'recv_cls_ack', 'CLOSED', ['drop_socket', 'closed'], 'close acknowledged'),
  t('CLOSE_SENT', 'timeout', 'CLOSED', ['drop_socket', 'closed'], 'peer gone: close anyway'),
  t('CLOSE_SENT', 'recv_cls', 'CLOSE_SENT', ['ack_cls'], 'crossing closes'),
  t('CLOSE_SENT', 'socket_lost', 'CLOSE_SENT', [], 'socket gone while closing'),
  t('CLOSE_SENT', 'drained', 'CLOSE_SENT', [], 'socket released while closing'),
  t('CLOSE_ACKED', 'drained', 'CLOSED', ['closed'], 'socket released after the peer closed'),
  t('CLOSE_ACKED', 'socket_lost', 'CLOSED', ['closed'], 'socket gone after the peer closed'),
  t('CLOSE_ACKED', 'recv_cls', 'CLOSE_ACKED', ['ack_cls'], 'retransmitted CLS'),
  t('CLOSED', 'recv_cls', 'CLOSED', ['ack_cls'], 'late retransmitted CLS after close'),
];

/** The rows by state, then by event (no key to build per lookup: the endpoint looks up every event it applies). */
const table = new Map<State, Map<Event, Transition>>();
for (const row of TRANSITIONS) {
  let rows = table.get(row.from);
  if (!rows) table.set(row.from, (rows = new Map()));
  if (rows.has(row.event)) throw new Error(`duplicate transition ${row.from}|${row.event}`);
  rows.set(row.event, row);
}

/** The error code for a pair that has no row: closed connections say so, others are illegal. */
export function rejectionFor(state: State, _event: Event): ErrorCode {
  return state === 'CLOSED' || state === 'CLOSE_SENT' || state === 'CLOSE_ACKED' ? 'FERRY_ERR_CONNECTION_CLOSED' : 'FERRY_ERR_ILLEGAL_TRANSITION';
}

/** The row for (state, event), or undefined when the pair is rejected. */
export function lookup(state: State, event: Event): Transition | undefined {
  return table.get(state)?.get(event);
}

/** Apply an event: the row, or a thrown FerryError with the pair's rejection code. */
export function transition(state: State, event: Event): Transition {
  const row = lookup(state, event);
  if (!row) throw new FerryError(rejectionFor(state, event), `event ${event} not allowed in state ${state}`);
  return row;
}
