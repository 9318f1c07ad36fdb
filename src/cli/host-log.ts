/**
 * What a `ferry host` shows at its default level: one readable line per agent lifecycle event
 * (launched, started, landed, moved, finished, failed with its reason, stopped), every agent log
 * line (`ctx.log`, `console.*`), refusals, and every warning or error of the host itself. The
 * lines go to stdout and to DATA-DIR/host.log (read by `ferry logs`); `--verbose` adds the full
 * structured log (JSON lines) on stderr.
 */
import { appendFileSync, renameSync, statSync } from 'node:fs';
import { RefusalLimiter, createLogger, limit, systemClock, type LogFields, type Logger, type LogLevel } from '../util/index.js';

const short = (id: unknown): string => (typeof id === 'string' ? id : '?');

/** The readable line for one structured event, or undefined when the default level skips it. */
export function describeEvent(level: LogLevel, event: string, f: LogFields): string | undefined {
  const agent = `agent ${short(f.agent)}`;
  const why = (): string => `${String(f.code ?? '')}${f.detail ? `: ${String(f.detail)}` : ''}`;
  switch (event) {
    case 'agent_log':
      return `${agent}: ${String(f.text)}`;
    case 'agent_launched':
      return `${agent} launched (owner ${short(f.owner)})`;
    case 'agent_started':
      return `${agent} started`;
    case 'agent_landed':
      return `${agent} landed with ${String(f.connections)} connection(s)`;
    case 'agent_migrated':
      // The runtime's line names the target; the host's own (with `to`) repeats it.
      return f.target === undefined ? undefined : `${agent} moved to ${String(f.target)}`;
    case 'agent_finished':
      return `${agent} finished${f.result === undefined ? '' : `: ${String(f.result)}`}`;
    case 'agent_stopped':
      return level === 'warn' ? `${agent} failed: ${why()}` : `${agent} stopped: ${why()}`;
    case 'agent_fenced':
      return `${agent} fenced: ${why()}`;
    case 'agent_deregistered':
      return `${agent} deregistered (epoch ${String(f.epoch)})`;
    case 'agent_restored':
      return `${agent} registered again at epoch ${String(f.epoch)}: the rendezvous had lost it`;
    case 'host_restored':
      return 'this host registered again: the rendezvous had lost it';
    case 'agent_refused':
      return `refused ${String(f.op)} of ${agent}: ${why()}`;
    case 'agent_migration_failed':
      return `${agent} did not move to ${String(f.target)}: ${why()}`;
    case 'rendezvous_unreachable':
      return `rendezvous ${String(f.rendezvous)} does not answer (${why()}); asking again every ${Number(f.retryMs) / 1000} s; until it answers, agents cannot be launched or land here`;
    case 'rendezvous_answers':
      return `rendezvous ${String(f.rendezvous)} answers`;
    case 'address_changed':
      return `address changed from ${String(f.from)} to ${String(f.to)}: ${String(f.sockets)} connection(s) resume from it, agents register there again`;
    case 'address_gone':
      return `address ${String(f.address)} is gone; waiting for another`;
    case 'admin_refused':
      return undefined; // the operator's command prints it, with its causes
    default:
      if (level !== 'warn' && level !== 'error') return undefined;
      return `${level}: ${event}${Object.entries(f)
        .filter(([k]) => k !== 'host')
        .map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join('')}`;
  }
}

/** Appends lines to a file, starting over (one old file kept as FILE.1) past HOST_LOG_BYTES. */
export class LogFile {
  private size: number;
  constructor(readonly path: string) {
    try {
      this.size = statSync(path).size;
    } catch {
      this.size = 0;
    }
  }

  append(line: string): void {
    if (this.size + line.length > limit('HOST_LOG_BYTES')) {
      try {
        renameSync(this.path, `${this.path}.1`);
      } catch {
        // nothing to keep
      }
      this.size = 0;
    }
    try {
      appendFileSync(this.path, line);
      this.size += Buffer.byteLength(line);
    } catch {
      // A full or unwritable disk must not stop the host; stdout still has the line.
    }
  }
}

/** The host's logger: readable lines to `out` and `file`, plus JSON on stderr when verbose. */
export function hostLogger(opts: { verbose: boolean; file?: LogFile; out?: (line: string) => void }): Logger {
  const out = opts.out ?? ((l: string) => process.stdout.write(l));
  const json = opts.verbose ? createLogger('info') : undefined;
  // Refusals of input are rate-limited per (code, source) as in every Ferry logger.
  const limiter = new RefusalLimiter(systemClock, (e, f) => root.warn(e, f));
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, event: string, fields?: LogFields): void => {
      const f = { ...base, ...fields };
      if (json) (json[level] as (e: string, f: LogFields) => void)(event, f);
      const text = describeEvent(level, event, f);
      if (text === undefined) return;
      const line = `${new Date().toISOString()} ${text}\n`;
      out(line);
      opts.file?.append(line);
    };
    return {
      debug: (e, f) => emit('debug', e, f),
      info: (e, f) => emit('info', e, f),
      warn: (e, f) => emit('warn', e, f),
      error: (e, f) => emit('error', e, f),
      refused: (e, f) => limiter.refused((ev, fl) => emit('warn', ev, fl), e, f),
      child: (f) => make({ ...base, ...f }),
    };
  };
  const root = make({});
  return root;
}
