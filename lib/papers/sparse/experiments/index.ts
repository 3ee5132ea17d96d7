/** The sparse-attention experiments (listed in lib/catalog.ts). */
export { sparseScaling } from './scaling.js';
export { routingLm } from './routing-lm.js';
export { sparseApprox } from './approx.js';
export { passkeyLong } from './passkey.js';
