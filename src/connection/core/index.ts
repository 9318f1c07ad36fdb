/**
 * connection/core/: the pure pieces of a connection. Nothing here reads a clock, sets a timer,
 * defers work or touches a socket (scripts/check-layers.mjs enforces it): time comes in as `now`,
 * randomness through an injected source, and each piece returns decisions for the endpoint (the
 * adapter) to carry out.
 */
export * from './timers.js';
export * from './control-auth.js';
export * from './recovery.js';
export * from './path.js';
export * from './kept-socket.js';
export * from './data.js';
export * from './data-inputs.js';
export * from './connection-core.js';
export * from './closing.js';
export * from './open.js';
export * from './control-requests.js';
export * from './control-incoming.js';
export * from './intent.js';
export * from './slots.js';
