/** identity/: keys, ids, signatures, session key derivation, frame AEAD and Merkle trees. */
export * from './keys.js';
export * from './primitives.js';
export * from './aead.js';
export * from './keyschedule.js';
export * from './delegation.js';
export * from './merkle.js';
