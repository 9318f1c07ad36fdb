/**
 * The receive budget of a host: bytes that peers can make it hold, across all its connections.
 * A connection is charged for what it holds and what it has allowed its peer to send: from what
 * the application consumed up to the window edge it announced. That sum is bounded per host, per
 * local agent and per source address (the peer's IP, for connections opened to us: strangers
 * with fresh keys are free, their addresses are not). Every connection keeps a small floor of
 * credit, so none can be starved for good; beyond the floor a window only grows into free room,
 * so when the budget bites the peer's window shrinks (backpressure, nothing is lost). Windows grow
 * into three quarters of each bound only: the last quarter is kept for the floors of new opens, so
 * opens go on while windows are squeezed. A new open that cannot get its floor is refused
 * (`canOpen`); a connection arriving in a move is charged whatever it carries. Pure bookkeeping.
 */

/** The part of each bound windows may grow into; the rest is kept for the floors of new opens. */
const GROWTH_SHARE = 3 / 4;

/** The bounds of a {@link ReceiveBudget}, in bytes. */
export interface ReceiveBudgetLimits {
  /** All connections of the host. */
  readonly host: number;
  /** The connections of one local agent. */
  readonly perAgent: number;
  /** The connections opened to this host from one source address. */
  readonly perSource: number;
  /** Credit every open connection keeps whatever the budget says. */
  readonly floor: number;
}

/** Bytes charged per host, per agent and per source address. */
export class ReceiveBudget {
  private total = 0;
  private readonly agents = new Map<string, number>();
  private readonly sources = new Map<string, number>();

  constructor(readonly limits: ReceiveBudgetLimits) {}

  /** Bytes charged in all. */
  get charged(): number {
    return this.total;
  }

  /** Bytes charged to one agent's connections, or to those from one source address. */
  chargedTo(scope: { agent?: string; source?: string }): number {
    return scope.agent !== undefined ? (this.agents.get(scope.agent) ?? 0) : (this.sources.get(scope.source ?? '') ?? 0);
  }

  /**
   * Free bytes a window of `agent`'s connection from `source` may grow into (negative when over):
   * up to three quarters of each bound (`share` 1 for the floors of opens).
   */
  room(agent: string, source: string | undefined, share = GROWTH_SHARE): number {
    const l = this.limits;
    let r = Math.min(l.host * share - this.total, l.perAgent * share - (this.agents.get(agent) ?? 0));
    if (source !== undefined) r = Math.min(r, l.perSource * share - (this.sources.get(source) ?? 0));
    return Math.floor(r);
  }

  /** Whether a new connection of `agent` from `source` still gets its floor. */
  canOpen(agent: string, source: string | undefined): boolean {
    return this.room(agent, source, 1) >= this.limits.floor;
  }

  /**
   * Charge a new connection its floor. No check: opens call {@link canOpen} first, and a
   * connection arriving in a move is admitted whatever it costs (it was admitted where it opened).
   */
  open(agent: string, source: string | undefined): ReceiveAccount {
    const a = new ReceiveAccount(this, agent, source);
    a.set(this.limits.floor);
    return a;
  }

  /** @internal An account's charge changed by `delta`. */
  shift(agent: string, source: string | undefined, delta: number): void {
    this.total += delta;
    bump(this.agents, agent, delta);
    if (source !== undefined) bump(this.sources, source, delta);
  }
}

/** One connection's charge in a {@link ReceiveBudget}. */
export class ReceiveAccount {
  /** Bytes charged now. */
  charge = 0;
  private closed = false;

  constructor(
    private readonly budget: ReceiveBudget,
    readonly agent: string,
    readonly source: string | undefined,
  ) {}

  /** The floor every open connection keeps. */
  get floor(): number {
    return this.budget.limits.floor;
  }

  /** Free bytes this connection may grow into (negative when its scopes are over). */
  room(): number {
    return this.budget.room(this.agent, this.source);
  }

  /** Charge exactly `bytes` from now on. */
  set(bytes: number): void {
    if (this.closed || bytes === this.charge) return;
    this.budget.shift(this.agent, this.source, bytes - this.charge);
    this.charge = bytes;
  }

  /** Give everything back (idempotent). */
  close(): void {
    this.set(0);
    this.closed = true;
  }
}

function bump(m: Map<string, number>, k: string, delta: number): void {
  const v = (m.get(k) ?? 0) + delta;
  if (v === 0) m.delete(k);
  else m.set(k, v);
}
