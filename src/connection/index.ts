/** connection/: the 12-state machine, the exactly-once data path, endpoints and agent sockets. */
export * from './state-machine.js';
export * from './data-path.js';
export * from './receive-budget.js';
export * from './data-socket.js';
export * from './handshake.js';
export * from './resume-proof.js';
export * from './checkpoint.js';
export * from './endpoint.js';
export * from './socket.js';
