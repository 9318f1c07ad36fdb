/**
 * Structured logging: one JSON object per line on stderr, or silence. Every refusal of bad input
 * is logged exactly once, at the place that decides it (see STYLE: an error is surfaced once),
 * through {@link Logger.refused}, which rate-limits per (code, source) so that an attack cannot
 * grow the log with itself (log-limit.ts).
 */
import { systemClock, type Clock } from './clock.js';
import { RefusalLimiter, type RefusalFields, type RefusalLimits, type WarnSink } from './log-limit.js';

/** Severity levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Fields attached to a log line. Values must be JSON-serialisable. */
export type LogFields = Record<string, unknown>;

/** A structured logger. `child` adds fields (host, connection id) to every line. */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /**
   * A refusal of input from `fields.from`: a warn line, rate-limited per (code, source IP) and
   * summarised per window (`log.suppressed` with the count), shared with every child.
   */
  refused(event: string, fields: RefusalFields): void;
  child(fields: LogFields): Logger;
}

/** Options of the refusal rate limit of a root logger. */
export interface LoggerOptions {
  /** Clock of the refusal windows (default: the system clock). */
  readonly clock?: Clock;
  /** Overrides of the refusal limits (default: LIMITS). */
  readonly refusalLimits?: Partial<RefusalLimits>;
}

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger that writes JSON lines to `sink` (stderr by default) at or above `level`. */
export function createLogger(
  level: LogLevel = 'warn',
  base: LogFields = {},
  sink: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  options: LoggerOptions = {},
): Logger {
  const emit = (b: LogFields, lvl: LogLevel, event: string, fields?: LogFields): void => {
    if (rank[lvl] < rank[level]) return;
    sink(JSON.stringify({ t: new Date().toISOString(), level: lvl, event, ...b, ...fields }));
  };
  const limiter = new RefusalLimiter(options.clock ?? systemClock, (e, f) => emit(base, 'warn', e, f), options.refusalLimits);
  const make = (b: LogFields): Logger => {
    const warn: WarnSink = (e, f) => emit(b, 'warn', e, f);
    return {
      debug: (e, f) => emit(b, 'debug', e, f),
      info: (e, f) => emit(b, 'info', e, f),
      warn,
      error: (e, f) => emit(b, 'error', e, f),
      refused: (e, f) => limiter.refused(warn, e, f),
      child: (f) => make({ ...b, ...f }),
    };
  };
  return make(base);
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  refused() {},
  child: () => silentLogger,
};

/** A logger that records lines in memory, for tests that check "logged once". */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; event: string; fields: LogFields }[] = [];
  private readonly limiter: RefusalLimiter;
  constructor(
    private readonly base: LogFields = {},
    private readonly root?: MemoryLogger,
    options: LoggerOptions = {},
  ) {
    this.limiter = root ? root.limiter : new RefusalLimiter(options.clock ?? systemClock, (e, f) => this.push('warn', e, f), options.refusalLimits);
  }
  private push(level: LogLevel, event: string, fields: LogFields = {}): void {
    (this.root ?? this).lines.push({ level, event, fields: { ...this.base, ...fields } });
  }
  debug(e: string, f?: LogFields): void { this.push('debug', e, f); }
  info(e: string, f?: LogFields): void { this.push('info', e, f); }
  warn(e: string, f?: LogFields): void { this.push('warn', e, f); }
  error(e: string, f?: LogFields): void { this.push('error', e, f); }
  refused(e: string, f: RefusalFields): void { this.limiter.refused((ev, fl) => this.push('warn', ev, fl), e, f); }
  child(f: LogFields): Logger { return new MemoryLogger({ ...this.base, ...f }, this.root ?? this); }
  /** Write the pending `log.suppressed` summaries now. */
  flushRefusals(): void { this.limiter.flush(); }
}
