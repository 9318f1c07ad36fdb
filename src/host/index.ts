/** host/: the controller, the redirector and moves of agents between hosts. */
export * from './host.js';
export * from './migration.js';
export * from './policy.js';
export * from './runtime.js';
export * from './admin.js';
export * from './tunnel.js';
export * from './address-watch.js';
