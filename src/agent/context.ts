/**
 * The agent-facing types: {@link AgentContext}, the only authority an agent has, and the socket
 * and server types it hands out. The implementation runs inside the agent's worker
 * (`src/host/agent-worker.ts`, `agent-port.ts`); a type test keeps the two in step.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

/**
 * A connection to another agent, as agent code sees it: a `node:stream` Duplex. `write()` returns
 * false under backpressure and `'drain'` follows; `end()` half-closes; `close()` is graceful (end,
 * wait for the peer to acknowledge, then close); `destroy(err)` aborts. Errors carry a Ferry `code`.
 * Unlike `net.Socket`, an error on a socket with no `'error'` listener does not crash the agent: it
 * is logged by the host (`agent_connection_dropped`), the socket closes, and `errored`, reads and
 * async iteration carry it (docs/AGENTS.md).
 * Not supported: `setEncoding()` and `unshift()` (they would hide how much agent code read, which
 * the host needs to carry unread bytes across a move).
 */
export interface ContextSocket extends Duplex {
  /** The peer agent's id. */
  readonly remoteAgent: string;
  /** The connection id (hex). */
  readonly connectionId: string;
  /** True if this agent opened the connection (`ctx.connect`), false if it accepted it; kept across moves. */
  readonly initiator: boolean;
  /** Graceful close. */
  close(): Promise<void>;
}

/**
 * The agent's server socket: connections to it arrive as `'connection'` events (when a listener is
 * attached), through `accept()`, or by `for await (const sock of server)`. Until then they wait in
 * the listen queue, which a move carries along; one that fails there is dropped (one host log line).
 */
export interface ContextServer extends EventEmitter, AsyncIterable<ContextSocket> {
  /**
   * The next incoming connection; rejects with FERRY_ERR_CONNECTION_CLOSED once closed, and with
   * FERRY_ERR_ABORTED (an AbortError, cause the reason) when `signal` aborts first or already
   * has (the next connection then waits for the next accept()).
   */
  accept(opts?: { signal?: AbortSignal }): Promise<ContextSocket>;
  /**
   * `for await (const sock of server.connections({ signal }))`: connections until the server
   * socket closes; when `signal` aborts, the loop throws FERRY_ERR_ABORTED and the server stays open.
   */
  connections(opts?: { signal?: AbortSignal }): AsyncIterable<ContextSocket>;
  readonly closed: boolean;
  /** Stop accepting connections. */
  close(): void;
}

/** `run(ctx)`'s argument: everything an agent can do. */
export interface AgentContext<S = Record<string, unknown>> {
  /** This agent's id (hash of its public key). */
  readonly id: string;
  /** The id of the host it runs on now. */
  readonly hostId: string;
  /** The id of the owner whose credential admitted it. */
  readonly owner: string;
  /**
   * Structured-clone data that moves with the agent. Mutate it or assign a new value; it is
   * snapshotted when the agent moves (at `migrate()`, or when the host moves it), and `run` sees
   * that snapshot on the destination. It is not persisted otherwise.
   */
  state: S;
  /**
   * The connections that came with the agent on its last move (opened by `connect()` or accepted,
   * in any state), each continuing exactly where agent code stopped reading. Empty on launch.
   */
  readonly connections: readonly ContextSocket[];
  /**
   * Open a connection to another agent by id. Refused with FERRY_ERR_POLICY_DENIED unless both the
   * credential and the host policy allow it, FERRY_ERR_LIMIT_EXCEEDED past maxConnections.
   * `signal`: already aborted, this rejects at once with FERRY_ERR_ABORTED (name "AbortError",
   * cause the reason) and nothing is asked of the host; aborted while pending, it rejects at once
   * and the host calls the open off (a half-open connection is destroyed; one that completed
   * meanwhile is aborted, its peer sees FERRY_ERR_PEER_ABORTED). Nothing is left behind.
   */
  connect(agentId: string, opts?: { signal?: AbortSignal }): Promise<ContextSocket>;
  /** The agent's server socket (the same one on every call). FERRY_ERR_POLICY_DENIED if not granted. */
  listen(): Promise<ContextServer>;
  /**
   * Move to another host (id or address). On success this worker is torn down and the promise
   * never settles; `run(ctx)` starts again on the destination. On failure it rejects (typed error)
   * and the agent runs on here as if nothing happened.
   */
  migrate(target: string): Promise<never>;
  /** One line in the host log (bounded length and rate). `console.*` lands here too. */
  log(...args: unknown[]): void;
}
