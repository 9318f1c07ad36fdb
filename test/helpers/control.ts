/** Test helpers for the sans-I/O control core. */
import type { ControlCore, ControlEvent, Outgoing } from '../../src/control/index.js';
import type { ManualClock } from '../../src/util/index.js';

/**
 * Run the core's timer as an adapter would, from each deadline to the next, until `until`; returns
 * what it sent and reported. `toEnd`: leave the clock at `until` (else at the last deadline run).
 */
export function drive(c: ControlCore, clock: ManualClock, until: number, toEnd = false): { sends: { at: number; out: Outgoing }[]; events: { at: number; ev: ControlEvent }[] } {
  const sends: { at: number; out: Outgoing }[] = [];
  const events: { at: number; ev: ControlEvent }[] = [];
  for (;;) {
    const d = c.nextDeadline();
    if (d === undefined || d > until) break;
    clock.advance(d - clock.now());
    const out = c.onTimer(clock.now());
    for (const s of out.sends) sends.push({ at: clock.now(), out: s });
    for (const e of out.events) events.push({ at: clock.now(), ev: e });
  }
  if (toEnd) clock.advance(Math.max(0, until - clock.now()));
  return { sends, events };
}
