/**
 * Learning dynamics and training objectives (issue #22): what attention learns, how it gets there, and which training
 * changes help. One namespace per paper:
 *
 *   al.dynamics.icl         He, Pan, Chen, Yang 2025: multi-head softmax attention learns in-context linear regression
 *   al.dynamics.scanSnap    Tian et al. 2023, Scan and Snap: a 1-layer transformer's attention scans, then snaps
 *   al.dynamics.positional  Back de Luca et al. 2025, Positional Attention: weights from positions only
 *   al.dynamics.meap        Zhuang et al. 2025, MEAP: masked inputs in next-token prediction
 *   al.dynamics.moh         Jin et al. 2024, MoH: heads as experts under a router (the layer option is in lib/layers)
 *
 * Notebooks: 10-learning-dynamics (icl, scanSnap, positional), 11-training-objectives (meap, moh).
 */
export * as icl from './icl-regression/index.js';
export * as meap from './meap/index.js';
export * as moh from './moh/index.js';
export * as positional from './positional-attention/index.js';
export * as scanSnap from './scan-snap/index.js';
