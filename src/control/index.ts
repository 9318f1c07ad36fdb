/** control/: the UDP control channel (NapletSocket paper §3.4): a sans-I/O core and its adapter. */
export * from './core.js';
export * from './channel.js';
