/**
 * Pointer Networks.
 *
 * Paper: Vinyals, Fortunato, Jaitly, 2015, "Pointer Networks", NeurIPS, https://arxiv.org/abs/1506.03134
 *
 * An encoder RNN reads the input points P = (P_1..P_n) into states e_1..e_n; a decoder RNN produces states d_i.
 * Additive attention over the encoder states is used as the output itself, a distribution over input positions:
 *
 *   u_j^i = vᵀ tanh(W1 e_j + W2 d_i),   j ∈ (1..n)
 *   p(C_i | C_1..C_{i-1}, P) = softmax(u^i)
 *
 * so the output "dictionary" has as many entries as the input has points, whatever n is. The decoder's next input is
 * the coordinates of the point it chose. We add a learned end symbol at position 0 (for variable-length answers),
 * and mask positions that cannot be chosen: padding, points already used (hull, TSP, sort), and an end symbol that
 * would cut a triangle (Delaunay).
 *
 * Shape legend: b batch, n points (padded to the longest in the batch), p = n + 1 pointer positions (EOS first),
 * m decoder steps, c coordinates (2 for points, 1 for sort), h hidden size, V fixed vocabulary (seq2seq baselines).
 *
 * Files: geometry.ts (monotone-chain hull, Bowyer-Watson Delaunay, polygon predicates), tsp.ts (Held-Karp, 2-opt,
 * nearest neighbour), tasks.ts (examples, padded batches, validity masks), model.ts (LSTM cell, encoder, decoder,
 * pointer scores, the baselines, the loss), decode.ts (greedy and beam search), metrics.ts (the paper's metrics),
 * experiments.ts (the registered experiments pointer-hull, pointer-delaunay, pointer-tsp, pointer-sort).
 *
 *   const model = createPointerModel({ kind: 'pointer', coordDim: 2, hidden: 128, seed: 0 });
 *   const batch = makeBatch(TASKS.hull, makeExamples(TASKS.hull, 64, 5, 10, new Rng(0)));
 *   const loss = sequenceLoss(model, batch);                       // teacher forcing
 *   const out = greedyDecode(model, TASKS.hull, batch.examples);   // or beamDecode(..., width)
 *   hullMetrics(batch.examples, out.map((o) => o.answer));
 */

export * from './decode.js';
export * from './experiments.js';
export * from './geometry.js';
export * from './metrics.js';
export * from './model.js';
export * from './tasks.js';
export * from './tsp.js';
