/** The wire symbols the connection layer uses, plus derived constants. */
import { LIMITS } from '../util/index.js';
export * from '../wire/index.js';
/** Largest DATA payload per frame. */
export const LIMITS_MAX_FRAME_PAYLOAD = LIMITS.MAX_FRAME_PAYLOAD.value;
