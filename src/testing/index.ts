/** testing/: in-process fakes for tests and simulations, and network namespaces for process-level tests and `ferry bench --netns` (never used by production code). */
export * from './lossy-datagram.js';
export * from './memory-datagram.js';
export * from './memory-stream.js';
export * from './netns.js';
export * from './redis-server.js';
export * from './cutting-proxy.js';
