/**
 * Preloaded with `node --import` into tunnel ends the bench starts when FERRY_BENCH_ACK_NOW=1
 * (docs/BENCHMARKS.md): sets ACK_NOW_BYTES to 0, so every DATA is acknowledged at the end of the
 * event-loop turn it arrived in, as before the delayed ACK (ACK_DELAY_MS never applies). The
 * bench then measures the tunnel with and without the delayed ACK in the same rounds; nothing
 * in the product reads a switch for it. LIMITS is a plain object, read through `limit()` at each
 * use, so changing it before the CLI runs changes that process only.
 */
import { LIMITS } from '../../src/util/limits.js';

(LIMITS.ACK_NOW_BYTES as { value: number }).value = 0;
