/**
 * `ferry/agent`: the one module agent code may import inside its worker. It gives no authority:
 * it has no runtime imports (the worker's loader refuses every other module, including this
 * file's neighbours), and only shapes and checks the definition. Everything an agent can do comes
 * through the `ctx` passed to `run`.
 *
 * ```js
 * import { defineAgent } from 'ferry/agent';
 * export default defineAgent({
 *   async run(ctx) {
 *     const server = await ctx.listen();
 *     for await (const sock of server) sock.pipe(sock);
 *   },
 * });
 * ```
 */
import type { AgentContext } from './context.js';

// Type-only, so erased from the emitted module: the worker's SDK must keep no runtime imports.
export type { AgentContext, ContextSocket, ContextServer } from './context.js';

/** What an agent module default-exports. */
export interface AgentDefinition<S = Record<string, unknown>> {
  /**
   * The agent's life on one host. Called on launch and again after every move (weak mobility),
   * with `ctx.state` as it was at the move. When the promise settles the agent ends: resolved,
   * its connections close gracefully; rejected, it is reported as crashed and they are aborted.
   */
  run(ctx: AgentContext<S>): unknown;
}

function invalid(message: string): Error {
  const e = new TypeError(message) as TypeError & { code: string };
  e.name = 'FerryError';
  e.code = 'FERRY_ERR_INVALID_ARGUMENT';
  return e;
}

/** Declare an agent. Checks the shape and freezes it. */
export function defineAgent<S = Record<string, unknown>, D extends AgentDefinition<S> = AgentDefinition<S>>(definition: D): Readonly<D> {
  if (typeof definition !== 'object' || definition === null || typeof (definition as { run?: unknown }).run !== 'function') {
    throw invalid('defineAgent({ run(ctx) { … } }): run must be a function');
  }
  return Object.freeze(definition);
}

/**
 * The Ferry error code of an error an agent caught (`'FERRY_ERR_POLICY_DENIED'`…), or undefined.
 * Errors reach agent code from the host and the loader as plain `Error`s with `name` 'FerryError'
 * and a string `code`: match on the code, as everywhere in Ferry.
 */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && code.startsWith('FERRY_ERR_') ? code : undefined;
}
