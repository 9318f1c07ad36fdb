/**
 * location/: where agents are. The in-process table, and the networked rendezvous (server,
 * client, stores) implementing the same {@link LocationService} interface.
 */
export * from './table.js';
export * from './store.js';
export * from './registration.js';
export * from './watches.js';
export * from './paths.js';
export * from './uploads.js';
export * from './server.js';
export * from './client.js';
export * from './stored-entry.js';
export * from './redis-store.js';
