/** location/: where agents are. The in-process table now; the rendezvous server implements the same interface. */
export * from './table.js';
