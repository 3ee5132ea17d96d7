/** The sparse-attention experiments (listed in lib/catalog.ts). */

export { sparseApprox } from './approx.js';
export { passkeyLong } from './passkey.js';
export { ROUTING_VARIANTS, type RoutingVariant, routingLm } from './routing-lm.js';
export { sparseScaling } from './scaling.js';
