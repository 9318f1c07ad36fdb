/**
 * At most `limit` holders per key at once; further callers wait in arrival order. Used to keep the
 * opens one host has in flight towards one peer host below what that peer holds per source
 * (OPENS_IN_FLIGHT_PER_PEER against HALF_OPEN_PER_SOURCE), as CoAP's NSTART bounds requests in
 * flight per peer.
 */
import { abortedError, onAbort } from './abort.js';
import { FerryError } from './errors.js';

interface Key {
  holders: number;
  /** Waiting callers, oldest first; each is handed a place when a holder leaves. */
  readonly queue: Array<() => void>;
}

export class KeyedGate {
  private readonly keys = new Map<string, Key>();

  /** `limit` holders per key; at most `maxWaiting` callers wait per key (more are refused LIMIT_EXCEEDED). */
  constructor(
    private readonly limit: number,
    private readonly maxWaiting: number,
  ) {}

  /**
   * Take a place under `key`, waiting for one if `limit` are held. Resolves to the function that
   * gives the place back (calling it again does nothing). Rejects with FERRY_ERR_ABORTED when
   * `signal` aborts while waiting (the caller then holds nothing), and with
   * FERRY_ERR_LIMIT_EXCEEDED when `maxWaiting` callers already wait.
   */
  async enter(key: string, what: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw abortedError(what, signal);
    let k = this.keys.get(key);
    if (!k) {
      k = { holders: 0, queue: [] };
      this.keys.set(key, k);
    }
    if (k.holders < this.limit) {
      k.holders++;
      return this.leaver(key, k);
    }
    if (k.queue.length >= this.maxWaiting) throw new FerryError('FERRY_ERR_LIMIT_EXCEEDED', `${k.queue.length} ${what}s already waiting`);
    const entry = k;
    await new Promise<void>((resolve, reject) => {
      const handed = (): void => {
        stop();
        resolve();
      };
      entry.queue.push(handed);
      const stop = onAbort(signal, () => {
        const i = entry.queue.indexOf(handed);
        if (i >= 0) entry.queue.splice(i, 1);
        reject(abortedError(what, signal));
      });
    });
    // The leaver handed its place over: `holders` already counts this caller.
    return this.leaver(key, entry);
  }

  /** Places held under `key` (0 for a key nobody holds). */
  held(key: string): number {
    return this.keys.get(key)?.holders ?? 0;
  }

  /** Callers waiting under `key`. */
  waiting(key: string): number {
    return this.keys.get(key)?.queue.length ?? 0;
  }

  private leaver(key: string, k: Key): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = k.queue.shift();
      if (next) return next();
      k.holders--;
      if (k.holders === 0) this.keys.delete(key);
    };
  }
}
