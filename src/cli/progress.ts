/**
 * A one-line progress display: redrawn in place on a terminal, printed once a second otherwise
 * (CI logs stay readable). Writes to stderr so stdout keeps only results.
 */
export class Progress {
  private last = 0;
  private readonly tty: boolean;
  constructor(private readonly out: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.tty = Boolean(out.isTTY);
  }

  /** Show `line`; rate-limited unless `force`. */
  update(line: string, force = false): void {
    if (this.quiet) return;
    const now = Date.now();
    if (!force && now - this.last < (this.tty ? 100 : 1000)) return;
    this.last = now;
    if (this.tty) this.out.write(`\r\x1b[2K${line}`);
    else this.out.write(`${line}\n`);
  }

  /** End the progress line. */
  done(line?: string): void {
    if (this.quiet) return;
    if (this.tty) this.out.write(`\r\x1b[2K${line ?? ''}${line ? '\n' : ''}`);
    else if (line) this.out.write(`${line}\n`);
  }
}

/** Human-readable byte count. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Median and percentiles of a sample (ms); empty samples give 0. */
export function percentiles(xs: number[]): { p50: number; p90: number; max: number } {
  if (xs.length === 0) return { p50: 0, p90: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number): number => Math.round(x * 100) / 100;
  return { p50: r(at(0.5)), p90: r(at(0.9)), max: r(s[s.length - 1]!) };
}
