/**
 * A child process's stdout lines and stderr, collected from its start, with bounded waits for a
 * line and readers for the JSON log events on stderr. For children that are not `ferry`
 * processes started by {@link Processes} (namespaced ones, the sha peers).
 */
import type { ChildProcess } from 'node:child_process';
import { poll } from './processes.js';
import type { PeerResult } from './tcp-sha-peer.js';

/** A child's stdout lines and stderr, collected from the start. */
export class ChildLines {
  lines: string[] = [];
  err = '';
  private buf = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (c: Buffer) => {
      this.buf += c.toString();
      const parts = this.buf.split('\n');
      this.buf = parts.pop()!;
      this.lines.push(...parts);
    });
    child.stderr!.on('data', (c: Buffer) => (this.err += c.toString()));
  }

  /** The n-th (from 0) line matching `re`, waited for (bounded). */
  wait(re: RegExp, ms: number, n = 0): Promise<RegExpExecArray> {
    return poll(
      () => this.lines.map((l) => re.exec(l)).filter((m) => m !== null)[n],
      ms,
      () => `no line ${n} matching ${re}; stdout tail: ${this.lines.slice(-5).join(' | ')}; stderr tail: ${this.err.slice(-1500)}`,
    );
  }

  /** The `result {…}` lines of a tcp-sha-peer. */
  results(): PeerResult[] {
    return this.lines.filter((l) => l.startsWith('result ')).map((l) => JSON.parse(l.slice(7)) as PeerResult);
  }

  /** The JSON log lines on stderr with this event. */
  events(event: string): Array<Record<string, unknown>> {
    return this.err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((o) => o.event === event);
  }
}
