/** util/: errors, limits, clock, logging and byte helpers shared by every layer. */
export * from './errors.js';
export * from './limits.js';
export * from './clock.js';
export * from './log.js';
export * from './bounded.js';
export * from './heap.js';
export * from './source-slots.js';
export * from './log-limit.js';
export * from './abort.js';
export * from './keyed-gate.js';
export * from './malloc.js';
