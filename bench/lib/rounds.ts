/**
 * Interleaved rounds: each round runs one trial of every system, in an order that rotates from
 * round to round, and a ratio is the median over rounds of the per-round ratio. A change in the
 * machine's load then moves both sides of a ratio within the same round (seconds apart) instead
 * of one system's whole sample, as measuring each system in turn did; the rotation keeps any
 * system from always running first after a pause or last after the heaviest one.
 */

/** One round's figure for each system (absent where its trial did not run). */
export type RoundFigures = Record<string, number>;

/** A median with the range of the sample it came from. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Sample size (rounds with both figures, for a ratio). */
  n: number;
}

/** The order of `systems` in round `round` (0-based): rotated left by `round`. */
export function rotation<T>(systems: readonly T[], round: number): T[] {
  const n = systems.length;
  if (n === 0) return [];
  const k = ((round % n) + n) % n;
  return [...systems.slice(k), ...systems.slice(0, k)];
}

/**
 * Median (the mean of the middle two for an even sample) and range. Throws on an empty sample
 * or a value that is not finite: a missing figure is a broken suite, never a figure of 0.
 */
export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) throw new Error('empty sample');
  for (const x of xs) if (!Number.isFinite(x)) throw new Error(`not a figure: ${x}`);
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/**
 * `system` over `baseline` in each round that has both (a baseline of 0 gives no ratio), then
 * their median and range. Throws if no round has both.
 */
export function roundRatio(rounds: readonly RoundFigures[], system: string, baseline: string): Spread {
  const xs: number[] = [];
  for (const r of rounds) {
    const a = r[system];
    const b = r[baseline];
    if (a !== undefined && b !== undefined && b > 0) xs.push(a / b);
  }
  if (xs.length === 0) throw new Error(`no round measured both ${system} and ${baseline}`);
  return spread(xs);
}

/** Each system's figures over the rounds: median and range. */
export function systemSpread(rounds: readonly RoundFigures[], system: string): Spread {
  return spread(rounds.flatMap((r) => (r[system] === undefined ? [] : [r[system]!])));
}

/** One kind of trial (a message size, a benchmark program) and the systems it runs on. */
export interface Workload {
  name: string;
  systems: readonly string[];
  /** One trial of `system`: its figure (a rate; higher or lower is the caller's business). */
  trial(system: string, round: number): Promise<number>;
}

/** Where {@link runRounds} is: for a progress line. */
export interface RoundStep {
  /** 0-based round, of `rounds`. */
  round: number;
  rounds: number;
  workload: string;
  system: string;
  /** Trials done so far, of `trials` in all. */
  done: number;
  trials: number;
}

/**
 * Run `rounds` rounds; each round runs every workload in turn, and within a workload one trial of
 * each of its systems in {@link rotation} order, so the trials a ratio compares are adjacent in
 * time. Returns, per workload, each round's figures by system. `onStep` is called before each
 * trial.
 */
export async function runRounds(workloads: readonly Workload[], rounds: number, onStep: (step: RoundStep) => void = () => {}): Promise<Map<string, RoundFigures[]>> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a positive integer, got ${rounds}`);
  const out = new Map<string, RoundFigures[]>(workloads.map((w) => [w.name, Array.from({ length: rounds }, () => ({}))]));
  const trials = rounds * workloads.reduce((a, w) => a + w.systems.length, 0);
  let done = 0;
  for (let r = 0; r < rounds; r++) {
    for (const w of workloads) {
      for (const system of rotation(w.systems, r)) {
        onStep({ round: r, rounds, workload: w.name, system, done, trials });
        out.get(w.name)![r]![system] = await w.trial(system, r);
        done++;
      }
    }
  }
  return out;
}
