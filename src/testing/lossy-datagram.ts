/**
 * A datagram socket wrapper that loses, duplicates and delays datagrams, for testing the control
 * channel against the faults UDP really has. Delays are drawn per datagram, so they reorder.
 *
 * Determinism: each datagram consumes exactly four numbers from the direction's seeded PRNG
 * whatever happens to it, so with a given seed the n-th datagram through a direction always gets
 * the same fate (dropped, duplicated, which delays). Incoming and outgoing use separate streams,
 * so traffic one way never changes the fate of the other.
 */
import { FerryError, systemClock, type Clock, type TimerHandle } from '../util/index.js';
import type { DatagramSocketLike } from '../control/index.js';

/**
 * mulberry32: a tiny, fast, seeded PRNG returning uniform numbers in [0, 1). Not for anything
 * secret; for reproducible tests and simulations only.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Faults applied to one direction. */
export interface FaultOptions {
  /** Probability in [0, 1] that a datagram is lost. */
  readonly drop?: number;
  /** Probability in [0, 1] that a surviving datagram is delivered twice. */
  readonly duplicate?: number;
  /** Each copy is delayed by a uniform draw from [min, max] ms (default: no delay). */
  readonly delayMs?: readonly [number, number];
}

/** Options of a {@link LossyDatagramSocket}: outgoing faults, and optionally incoming ones. */
export interface LossyOptions extends FaultOptions {
  /** PRNG seed; the same seed gives the same fates. */
  readonly seed: number;
  /** Faults for received datagrams (default: none). */
  readonly incoming?: FaultOptions;
  /** Clock for delays (default: the system clock). */
  readonly clock?: Clock;
  /** Datagrams never dropped, either way (still duplicated and delayed); default: none. */
  readonly spare?: (datagram: Buffer) => boolean;
}

/** What one direction did. */
export interface FaultCounters {
  /** Datagrams offered. */
  seen: number;
  dropped: number;
  /** Datagrams delivered twice. */
  duplicated: number;
  /** Copies held back by a delay. */
  delayed: number;
  /** Copies passed on (sent, or emitted to listeners). */
  delivered: number;
}

function validFaults(f: FaultOptions): Required<FaultOptions> {
  const p = (name: string, v: number | undefined): number => {
    const x = v ?? 0;
    if (!(x >= 0 && x <= 1)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${name} must be a probability, got ${v}`);
    return x;
  };
  const [min, max] = f.delayMs ?? [0, 0];
  if (!(min >= 0 && max >= min && Number.isFinite(max))) {
    throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `delayMs must be [min, max] with 0 <= min <= max, got [${min}, ${max}]`);
  }
  return { drop: p('drop', f.drop), duplicate: p('duplicate', f.duplicate), delayMs: [min, max] };
}

/** One direction of faults. */
class FaultLine {
  readonly counters: FaultCounters = { seen: 0, dropped: 0, duplicated: 0, delayed: 0, delivered: 0 };
  private readonly faults: Required<FaultOptions>;
  private readonly rng: () => number;

  constructor(
    faults: FaultOptions,
    seed: number,
    private readonly clock: Clock,
    private readonly timers: Set<TimerHandle>,
  ) {
    this.faults = validFaults(faults);
    this.rng = seededRandom(seed);
  }

  pass(deliver: () => void, spared = false): void {
    // Always four draws, used or not: see the determinism note at the top of the file.
    const rDrop = this.rng();
    const rDup = this.rng();
    const rDelay = [this.rng(), this.rng()] as const;
    this.counters.seen++;
    if (rDrop < this.faults.drop && !spared) {
      this.counters.dropped++;
      return;
    }
    const copies = rDup < this.faults.duplicate ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    const [min, max] = this.faults.delayMs;
    for (let i = 0; i < copies; i++) {
      const delay = min + (rDelay[i] as number) * (max - min);
      if (delay <= 0) {
        this.counters.delivered++;
        deliver();
        continue;
      }
      this.counters.delayed++;
      const t: TimerHandle = this.clock.setTimer(delay, () => {
        this.timers.delete(t);
        this.counters.delivered++;
        deliver();
      });
      this.timers.add(t);
    }
  }
}

type MessageListener = (msg: Buffer, rinfo: { address: string; port: number }) => void;

/**
 * Wraps a datagram socket with seeded loss, duplication and delay. Implements the same
 * {@link DatagramSocketLike} interface, so `ControlChannel.bind({ wrap })` can insert it.
 */
export class LossyDatagramSocket implements DatagramSocketLike {
  private readonly out: FaultLine;
  private readonly in: FaultLine;
  private readonly timers = new Set<TimerHandle>();
  private readonly listeners: MessageListener[] = [];
  private closed = false;
  private readonly spare: ((datagram: Buffer) => boolean) | undefined;

  constructor(private readonly inner: DatagramSocketLike, options: LossyOptions) {
    this.spare = options.spare;
    const clock = options.clock ?? systemClock;
    // Different seeds per direction; the constant only has to differ from 0.
    this.out = new FaultLine(options, options.seed, clock, this.timers);
    this.in = new FaultLine(options.incoming ?? {}, (options.seed ^ 0x9e3779b9) >>> 0, clock, this.timers);
    inner.on('message', (msg, rinfo) => {
      if (this.closed) return;
      this.in.pass(() => {
        if (this.closed) return;
        for (const l of this.listeners) l(msg, rinfo);
      }, this.spare?.(msg));
    });
  }

  /** Counters of the outgoing direction (our sends). */
  get outgoing(): Readonly<FaultCounters> {
    return this.out.counters;
  }

  /** Counters of the incoming direction (datagrams the inner socket received). */
  get incoming(): Readonly<FaultCounters> {
    return this.in.counters;
  }

  /** Send through the outgoing faults. The buffer is not copied: do not modify it afterwards. */
  send(buf: Buffer, port: number, address: string): void {
    if (this.closed) return;
    this.out.pass(() => {
      if (!this.closed) this.inner.send(buf, port, address);
    }, this.spare?.(buf));
  }

  /** Subscribe to datagrams that survived the incoming faults. */
  on(event: 'message', listener: MessageListener): this {
    if (event === 'message') this.listeners.push(listener);
    return this;
  }

  /** Drop everything still delayed and close the inner socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    this.inner.close();
  }

  /** The inner socket's local address. */
  address(): { address: string; port: number } {
    return this.inner.address();
  }
}
