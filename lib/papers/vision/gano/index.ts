/**
 * GANO, guided attention for the next active object (Thakur et al. 2023, https://arxiv.org/abs/2305.12953): detections
 * as guiding queries that cross-attend to a clip's spatio-temporal patch tokens, GA(Q, X) = concat_h(softmax(Q W_q^h
 * (X W_k^h)ᵀ / √d_h) X W_v^h) W_o with queries [b, n, d] and tokens [b, p, d]. The mechanism, its float64 reference and
 * the model (guided / concat / video-only fusion) are in ./model.ts; the experiment `gano` in ./experiment.ts; the
 * clips in lib/data/ego-clips.ts.
 */
export * from './experiment.js';
export * from './model.js';
