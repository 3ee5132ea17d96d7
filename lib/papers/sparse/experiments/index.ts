/** The sparse-attention experiments (listed in lib/catalog.ts). */

export { sparseApprox } from './approx.js';
export { passkeyLong } from './passkey.js';
export { routingLm } from './routing-lm.js';
export { sparseScaling } from './scaling.js';
