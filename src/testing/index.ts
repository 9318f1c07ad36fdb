/** testing/: in-process fakes for tests and simulations (never used by production code). */
export * from './lossy-datagram.js';
export * from './memory-datagram.js';
