/** The namespace lab lives in src/testing/ (the bench uses it too); tests import it from here. */
export { lineMatching, netnsAvailable, netnsUnavailableReason, NetnsLab, type SpawnNodeOptions } from '../../src/testing/index.js';
