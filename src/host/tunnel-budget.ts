/**
 * The send budget of a tunnel end: what all its streams together may hold for their peers.
 *
 * A tunnelled stream reads its TCP side (a target, or a local client) into its Ferry connection,
 * which keeps each byte until the peer acknowledges it (up to SEND_BUDGET_BYTES per connection).
 * A peer that never reads makes the end hold that much per stream: at TUNNEL_MAX_STREAMS, gigabytes.
 * So a stream may always hold a small floor, and beyond it draws from one pool per tunnel end,
 * of which the streams with one source (the peer's host address: keys are free, addresses are
 * not) may take a share. A stream that may not hold more stops reading its TCP side
 * until its peer acknowledges bytes, or another stream gives room back.
 *
 * No I/O here: the splice reports what each stream holds and pauses or resumes its TCP side as
 * told (host/tunnel.ts).
 */

/** The three bounds of a {@link SendBudget}, in bytes. */
export interface SendBudgetLimits {
  /** The pool all streams draw from beyond their floor. */
  max: number;
  /** Of the pool, what the streams with one source (peer address) may take together. */
  perSource: number;
  /** What every stream may hold whatever the pool says (so none is starved for good). */
  floor: number;
}

interface Charge {
  source: string;
  /** What the stream holds. */
  held: number;
  /** Of it, what is drawn from the pool (above the floor). */
  drawn: number;
}

/** Per tunnel end: what each stream holds, what the pool and each source's share have left. */
export class SendBudget {
  private readonly streams = new Map<object, Charge>();
  private readonly drawnBy = new Map<string, number>();
  private drawn = 0;
  private heldAll = 0;

  constructor(readonly limits: SendBudgetLimits) {}

  /**
   * Stream `stream` with source `source` holds `held` bytes now. Returns whether it may read
   * more: while below its floor, or while the pool and its source's share both have room (a read then adds at
   * most one chunk beyond them). Returns, as `freed`, whether the pool got room back.
   */
  update(stream: object, source: string, held: number): { mayRead: boolean; freed: boolean } {
    let c = this.streams.get(stream);
    if (!c) {
      c = { source, held: 0, drawn: 0 };
      this.streams.set(stream, c);
    }
    const drawn = Math.max(0, held - this.limits.floor);
    const delta = drawn - c.drawn;
    this.heldAll += held - c.held;
    c.held = held;
    if (delta !== 0) this.draw(c.source, delta);
    c.drawn = drawn;
    return { mayRead: this.mayRead(c), freed: delta < 0 };
  }

  /** Whether stream `stream` may read more now (false for one not known). */
  mayReadNow(stream: object): boolean {
    const c = this.streams.get(stream);
    return c !== undefined && this.mayRead(c);
  }

  /** The stream ended: what it held goes back. Returns whether the pool got room back. */
  release(stream: object): boolean {
    const c = this.streams.get(stream);
    if (!c) return false;
    this.streams.delete(stream);
    this.heldAll -= c.held;
    if (c.drawn > 0) this.draw(c.source, -c.drawn);
    return c.drawn > 0;
  }

  /** What all streams hold now. */
  get held(): number {
    return this.heldAll;
  }

  /** What the streams hold beyond their floors (drawn from the pool). */
  get pooled(): number {
    return this.drawn;
  }

  private mayRead(c: Charge): boolean {
    if (c.held < this.limits.floor) return true;
    return this.drawn < this.limits.max && (this.drawnBy.get(c.source) ?? 0) < this.limits.perSource;
  }

  private draw(source: string, delta: number): void {
    this.drawn += delta;
    const left = (this.drawnBy.get(source) ?? 0) + delta;
    if (left > 0) this.drawnBy.set(source, left);
    else this.drawnBy.delete(source);
  }
}
