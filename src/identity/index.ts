/** identity/: keys, ids, signatures, session key derivation and frame AEAD. */
export * from './keys.js';
export * from './primitives.js';
export * from './aead.js';
export * from './keyschedule.js';
export * from './delegation.js';
