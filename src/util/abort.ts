/**
 * AbortSignal support for the public API, as Node's own APIs do it: an operation given an already
 * aborted signal rejects at once and changes nothing; one aborted while pending settles with the
 * same error. The error is a {@link FerryError} with code FERRY_ERR_ABORTED, `name` "AbortError"
 * (what `err.name === 'AbortError'` checks for Node's and the DOM's aborts expect) and the
 * signal's reason as its `cause`.
 */
import { FerryError } from './errors.js';

/** The error an aborted operation rejects with. */
export function abortedError(what: string, signal: AbortSignal | undefined): FerryError {
  const err = new FerryError('FERRY_ERR_ABORTED', `${what} aborted`, { cause: signal?.reason });
  err.name = 'AbortError';
  return err;
}

/** Whether `err` is the FERRY_ERR_ABORTED error of an AbortSignal (see {@link abortedError}). */
export function isAbortError(err: unknown): err is FerryError {
  return err instanceof FerryError && err.code === 'FERRY_ERR_ABORTED' && err.name === 'AbortError';
}

/**
 * Call `onAbort` once if `signal` aborts; returns the function that stops listening. Callers call
 * it when their operation settles, so a long-lived signal passed to many calls holds no listener
 * per finished call.
 */
export function onAbort(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (!signal) return () => {};
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** One caller waiting in a queue (an accept waiting for a connection). */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

/**
 * Wait in `queue` until whoever takes this waiter settles it; if `signal` aborts first, the waiter
 * leaves the queue and the promise rejects with the AbortError of `what`. The listener goes when
 * the waiter settles either way.
 */
export function queueWaiter<T>(queue: Waiter<T>[], what: string, signal: AbortSignal | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const w: Waiter<T> = {
      resolve: (v) => {
        stop();
        resolve(v);
      },
      reject: (e) => {
        stop();
        reject(e);
      },
    };
    queue.push(w);
    const stop = onAbort(signal, () => {
      const i = queue.indexOf(w);
      if (i >= 0) queue.splice(i, 1);
      reject(abortedError(what, signal));
    });
  });
}

