/**
 * Rate limiting of refusal log lines. Every refusal of bad input is logged where it is decided,
 * and an attacker decides how many there are: 20,000 bad datagrams once wrote 12,171 warn lines
 * in 7 s. So refusals are counted per (code, source address) in windows of
 * LOG_REFUSAL_WINDOW_MS: the first LOG_REFUSAL_LINES_PER_KEY of each key are written (at most
 * LOG_REFUSAL_LINES_PER_WINDOW in all), the rest are counted, and when the window ends one
 * `log.suppressed` line per key says how many were not written. At most LOG_REFUSAL_KEYS keys
 * are told apart per window (a spoofed flood has as many sources as it likes); refusals beyond
 * them are counted together in one more summary line. A window therefore writes at most
 * LINES_PER_WINDOW + KEYS + 1 lines, whatever arrives.
 */
import type { Clock, TimerHandle } from './clock.js';
import { limit } from './limits.js';

/** Fields of a refusal line: its stable error code, and where the refused input came from. */
export type RefusalFields = Record<string, unknown> & {
  readonly code: string;
  /** The source address, `ip:port`, `[v6]:port` or a bare IP; counted by IP (ports are free). */
  readonly from?: string | undefined;
};

/** Writes one warn line. */
export type WarnSink = (event: string, fields: Record<string, unknown>) => void;

/** Bounds of a {@link RefusalLimiter}; each defaults to its row in LIMITS. */
export interface RefusalLimits {
  readonly windowMs: number;
  readonly linesPerKey: number;
  readonly linesPerWindow: number;
  readonly keys: number;
}

interface Key {
  readonly event: string;
  readonly code: string;
  readonly source: string;
  /** The logger that wrote the key's first line: its summary carries the same context fields. */
  readonly warn: WarnSink;
  lines: number;
  suppressed: number;
}

/** The IP of `ip:port` or `[v6]:port`; a bare IP as it is; '-' when there is none. */
export function sourceIp(from: string | undefined): string {
  if (!from) return '-';
  if (from.startsWith('[')) return from.slice(1, Math.max(1, from.indexOf(']')));
  const i = from.lastIndexOf(':');
  // One colon: ipv4:port. More: a bare IPv6 address.
  return i > 0 && from.indexOf(':') === i ? from.slice(0, i) : from;
}

/**
 * The counting behind `Logger.refused`; one per root logger, shared by its children, so the
 * bounds hold for a whole host or rendezvous. Holds one timer at most (the end of a window that
 * has something to summarise).
 */
export class RefusalLimiter {
  private readonly limits: RefusalLimits;
  private readonly keys = new Map<string, Key>();
  private windowEnd = -Infinity;
  private lines = 0;
  /** Refusals of keys beyond `limits.keys`, by code. */
  private other = new Map<string, number>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    /** Where summaries of keys beyond the table go (the root logger's warn). */
    private readonly rootWarn: WarnSink,
    limits: Partial<RefusalLimits> = {},
  ) {
    this.limits = {
      windowMs: limit('LOG_REFUSAL_WINDOW_MS'),
      linesPerKey: limit('LOG_REFUSAL_LINES_PER_KEY'),
      linesPerWindow: limit('LOG_REFUSAL_LINES_PER_WINDOW'),
      keys: limit('LOG_REFUSAL_KEYS'),
      ...limits,
    };
  }

  /** Write `event` through `warn` if its key and the window still have room; else count it. */
  refused(warn: WarnSink, event: string, fields: RefusalFields): void {
    const now = this.clock.now();
    if (now >= this.windowEnd) this.roll(now);
    const source = sourceIp(fields.from);
    const id = `${fields.code}|${source}`;
    let key = this.keys.get(id);
    if (!key) {
      if (this.keys.size >= this.limits.keys) {
        this.other.set(fields.code, (this.other.get(fields.code) ?? 0) + 1);
        this.arm();
        return;
      }
      key = { event, code: fields.code, source, warn, lines: 0, suppressed: 0 };
      this.keys.set(id, key);
    }
    if (key.lines < this.limits.linesPerKey && this.lines < this.limits.linesPerWindow) {
      key.lines++;
      this.lines++;
      warn(event, fields);
      return;
    }
    key.suppressed++;
    this.arm();
  }

  /** Write the summaries now (e.g. before a process exits). */
  flush(): void {
    this.roll(this.clock.now());
  }

  /** End the window: one summary line per key with suppressed refusals, then a fresh window. */
  private roll(now: number): void {
    this.timer?.cancel();
    this.timer = undefined;
    const windowMs = this.limits.windowMs;
    for (const k of this.keys.values()) {
      if (k.suppressed > 0) k.warn('log.suppressed', { of: k.event, code: k.code, from: k.source, suppressed: k.suppressed, windowMs });
    }
    if (this.other.size > 0) {
      const byCode = Object.fromEntries(this.other);
      const suppressed = [...this.other.values()].reduce((a, b) => a + b, 0);
      this.rootWarn('log.suppressed', { of: 'refusals from other sources', code: 'FERRY_ERR_LIMIT_EXCEEDED', suppressed, byCode, windowMs });
    }
    this.keys.clear();
    this.other = new Map();
    this.lines = 0;
    this.windowEnd = now + windowMs;
  }

  /** One timer, at the window's end, once there is something to summarise. */
  private arm(): void {
    if (this.timer) return;
    this.timer = this.clock.setTimer(Math.max(0, this.windowEnd - this.clock.now()), () => {
      this.timer = undefined;
      this.roll(this.clock.now());
    });
  }
}
