/** What the runner hands each suite. */
export interface BenchContext {
  /** Small sizes for CI smoke (every figure still produced). */
  readonly quick: boolean;
  /** `open` also measures between two network namespaces (`--netns`; needs root). */
  readonly netns?: boolean;
  /** Rounds of interleaved trials where a suite measures in rounds (`--rounds`; tunnel). */
  readonly rounds?: number;
  /** Update the progress line on stderr (rate-limited unless `force`). */
  progress(line: string, force?: boolean): void;
}

/** Latency loop sizes: warm-up then measured iterations (the issue asks ≥ 200 in full runs). */
export function iterations(ctx: Pick<BenchContext, 'quick'>): { warmup: number; n: number } {
  return ctx.quick ? { warmup: 5, n: 30 } : { warmup: 30, n: 300 };
}
