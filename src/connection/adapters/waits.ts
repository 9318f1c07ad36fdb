/**
 * The waits of an endpoint's promise API: suspend(), resume(), close() and a move's preparation
 * each wait until a condition on the connection holds, judged again on every event that may make
 * it hold, and reject with the error the connection gives when it can no longer hold (closed,
 * moved away). What the condition is and which error ends it are the core's (core/intent.ts
 * `ResumeIntent`: `resumeWaitOver`, `waitFails`; `SuspendWatch`); this only listens.
 */
import type { EventEmitter } from 'node:events';
import type { FerryError } from '../../util/index.js';

/**
 * The endpoint's events on which a wait is judged again: a state change, a finished drain, the
 * end, a checkpoint, a move prepared or cancelled, a later suspend() that supersedes a resume().
 */
const WAKES = ['state', 'drained', 'closed', 'detached', 'moving', 'superseded'] as const;

/** How a wait is judged besides its condition. */
export interface WaitRules {
  /** Not now: a row is being carried out (judged again on a later microtask). */
  busy(): boolean;
  /** The error the wait ends with, if it can no longer succeed (asked only when the condition does not hold). */
  fails(): FerryError | undefined;
}

/**
 * Resolve once `pred` holds on `ep` (at once if it holds now and `rules` are not busy); reject
 * with the error `rules.fails()` gives first. Every listener goes once the wait settles.
 */
export function waitUntil(ep: EventEmitter, pred: () => boolean, rules: WaitRules): Promise<void> {
  if (!rules.busy() && pred()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let queued = false;
    const check = (): void => {
      if (rules.busy()) {
        if (!queued) {
          queued = true;
          queueMicrotask(() => {
            queued = false;
            check();
          });
        }
        return;
      }
      if (pred()) {
        cleanup();
        resolve();
        return;
      }
      const err = rules.fails();
      if (!err) return;
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      for (const e of WAKES) ep.off(e, check);
    };
    for (const e of WAKES) ep.on(e, check);
    // Already closing (or halfway through a row): judged now (queued, when busy).
    check();
  });
}
