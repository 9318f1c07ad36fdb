/**
 * Structured logging: one JSON object per line on stderr, or silence. Every refusal of bad input
 * is logged exactly once, at the place that decides it (see STYLE: an error is surfaced once).
 */

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
  child(fields: LogFields): Logger;
}

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger that writes JSON lines to `sink` (stderr by default) at or above `level`. */
export function createLogger(
  level: LogLevel = 'warn',
  base: LogFields = {},
  sink: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Logger {
  const emit = (lvl: LogLevel, event: string, fields?: LogFields): void => {
    if (rank[lvl] < rank[level]) return;
    sink(JSON.stringify({ t: new Date().toISOString(), level: lvl, event, ...base, ...fields }));
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (f) => createLogger(level, { ...base, ...f }, sink),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** A logger that records lines in memory, for tests that check "logged once". */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; event: string; fields: LogFields }[] = [];
  constructor(private readonly base: LogFields = {}, private readonly root?: MemoryLogger) {}
  private push(level: LogLevel, event: string, fields: LogFields = {}): void {
    (this.root ?? this).lines.push({ level, event, fields: { ...this.base, ...fields } });
  }
  debug(e: string, f?: LogFields): void { this.push('debug', e, f); }
  info(e: string, f?: LogFields): void { this.push('info', e, f); }
  warn(e: string, f?: LogFields): void { this.push('warn', e, f); }
  error(e: string, f?: LogFields): void { this.push('error', e, f); }
  child(f: LogFields): Logger { return new MemoryLogger({ ...this.base, ...f }, this.root ?? this); }
}
