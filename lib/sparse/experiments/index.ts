/** The sparse-attention experiments (importing this module registers them). */
import './scaling.js';
import './routing-lm.js';
import './approx.js';
import './passkey.js';
