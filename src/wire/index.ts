export * from './datagram.js';
export * from './bytes.js';
export * from './frames.js';
export * from './messages.js';
export * from './migration.js';
export * from './location-messages.js';
export * from './tunnel.js';
export * from './migration-steps.js';
