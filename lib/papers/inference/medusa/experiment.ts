/**
 * medusa: how many tokens does one forward pass of a char ToyLM emit with Medusa heads, a chain vs. a sparse tree of
 * about 16 candidates, and how much faster is decoding on the wall clock, with the output unchanged?
 *
 * Paper: Cai et al., ICML 2024, "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding Heads",
 * https://arxiv.org/abs/2401.10774 (code: github.com/FasterDecoding/Medusa).
 *
 * Protocol. (1) A char ToyLM is trained on the train split of Moby-Dick. (2) Medusa-1: K heads are trained on the
 * same split with the backbone frozen. (3) Validation: the backbone greedily continues validation prompts, and each
 * head's rank-r agreement with that continuation (a_k(r)) is measured; the sparse tree is built greedily from these
 * (the paper's construction), so the tree is tuned on validation, never on test. (4) Test: every test prompt (disjoint
 * windows of the test split) is decoded by plain greedy decoding with a KV cache (`ToyLM.generate`), by Medusa with
 * the chain (each head's top-1), with the sparse tree, and with the tree under typical acceptance at a temperature;
 * the three greedy decoders run one after another on the same prompt, so load changes hit them alike. Reported: the
 * tokens each verification forward emits (root + accepted), with 95% CIs over prompts; the wall-clock speed-up over
 * plain greedy decoding measured in the same run; the share of test prompts whose Medusa output equals greedy
 * decoding token for token (the guarantee at temperature 0).
 *
 * How ours differs from the paper. A 4-layer d=128 char model (quick: 2 layers, d=64) instead of Vicuna-7B/13B; Moby
 * Dick instead of ShareGPT and MT-Bench; 3-4 heads and a 16-node tree built from our heads' validation agreement
 * instead of 5 heads and the 63-node `mc_sim_7b_63`; tfjs on a CPU at batch 1, where a forward pass of 17 tokens costs
 * little more than one of 1 (overhead-bound, as a GPU is memory-bound in the paper), but the heads, the tree mask and
 * the cache bookkeeping are paid in JavaScript. Our backbone is small and briefly trained (its test bits per character
 * are in `test_bpc`): its greedy continuations often fall into loops ("the the the"), which the heads predict easily,
 * so greedy acceptance runs higher than it would on fluent text; the typical-acceptance row samples at T = 0.7 and
 * loops less. The paper's numbers come back as references beside ours.
 */
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import { textDataset } from '../../../data/corpus.js';
import type { Tokenizer } from '../../../data/tokenizer.js';
import {
  artifactCodec,
  charTokenizerKind,
  type ModelKind,
  toyLMKind,
  weightsKind,
} from '../../../experiments/codecs.js';
import { defineExperiment } from '../../../experiments/contract.js';
import { int, num, obj } from '../../../experiments/schema.js';
import { ToyLM } from '../../../layers/toylm.js';
import { train } from '../../../train/loop.js';
import { meanCi as meanCiOf } from '../../../util/stats.js';
import { medusaGenerate } from './decode.js';
import { forwardWithHidden, MedusaHeads, trainMedusaHeads } from './heads.js';
import { chainTree, expectedAccepted, greedyTree, type MedusaTree } from './tree.js';

export interface MedusaExperimentConfig {
  model: { dModel: number; heads: number; layers: number; seqLen: number; batch: number; steps: number; lr: number };
  /** Medusa-1: K heads, their training, λ (head k weighs λ^(k-1)). */
  medusa: { heads: number; steps: number; batch: number; lr: number; decay: number };
  /** Tree nodes besides the root, and the ranks per head measured on validation (the tree's top-k). */
  tree: { nodes: number; topK: number };
  /** Prompts of the validation split whose greedy continuations give the heads' agreement a_k(r). */
  validation: { prompts: number };
  /** Prompts of the test split; each is decoded for `newTokens` tokens. */
  test: { prompts: number; promptLen: number; newTokens: number };
  /** Typical acceptance: temperature T, ε, α (the official 0.09 and 0.3). */
  typical: { temperature: number; threshold: number; alpha: number };
}

/** One decoding setting's test figures. */
export interface MedusaRow {
  setting: string;
  tree_nodes: number;
  tokens_per_forward: number;
  tokens_per_forward_ci95: number;
  speedup: number;
  speedup_ci95: number;
  tokens_per_second: number;
  /** Wall-clock milliseconds per backbone forward (verification), prompt forward included. */
  ms_per_forward: number;
  /** Share of test prompts whose output equals plain greedy decoding (greedy settings only). */
  greedy_match: number | null;
  seconds: number;
}

export interface MedusaArtifacts {
  model: ToyLM;
  heads: MedusaHeads;
  tokenizer: Tokenizer;
  tree: MedusaTree;
  chain: MedusaTree;
  /** accuracy[k][r]: head k's rank-r agreement with the backbone's greedy continuation (validation). */
  accuracy: number[][];
  /** Per setting, how many verification forwards emitted 1, 2, ... K + 1 tokens (test). */
  histogram: Record<'chain' | 'tree' | 'typical', number[]>;
  /** One test prompt and its continuations (plain greedy = Medusa tree at T = 0, and typical). */
  example: { prompt: string; greedy: string; typical: string };
  dispose(): void;
}

const schema = obj<MedusaExperimentConfig>({
  model: obj({
    dModel: int({ min: 8 }),
    heads: int({ min: 1 }),
    layers: int({ min: 1, max: 12 }),
    seqLen: int({ min: 16, max: 1024 }),
    batch: int({ min: 1 }),
    steps: int({ min: 1 }),
    lr: num({ gt: 0 }),
  }),
  medusa: obj({
    heads: int({ min: 1, max: 8 }),
    steps: int({ min: 1 }),
    batch: int({ min: 1 }),
    lr: num({ gt: 0 }),
    decay: num({ gt: 0, max: 1 }),
  }),
  tree: obj({ nodes: int({ min: 1, max: 63 }), topK: int({ min: 1, max: 20 }) }),
  validation: obj({ prompts: int({ min: 1 }) }),
  test: obj({ prompts: int({ min: 2 }), promptLen: int({ min: 1 }), newTokens: int({ min: 1 }) }),
  typical: obj({ temperature: num({ gt: 0 }), threshold: num({ min: 0, max: 1 }), alpha: num({ min: 0, max: 1 }) }),
});

/** Mean and 95% CI half-width (normal approximation) over values. */
function meanCi(xs: number[]): [number, number] {
  const { mean, ci95 } = meanCiOf(xs);
  return [mean, ci95];
}

/** `count` prompts of `len` tokens at evenly spaced, non-overlapping starts of `ids`. */
function prompts(ids: Int32Array, count: number, len: number, room: number, fn: string): number[][] {
  const span = len + room;
  const stride = Math.floor(ids.length / count);
  if (stride < span)
    throw new Error(`${fn}: ${count} prompts of ${len} + ${room} tokens do not fit in ${ids.length} tokens`);
  return Array.from({ length: count }, (_, i) => Array.from(ids.subarray(i * stride, i * stride + len)));
}

/** Medusa heads for the experiment cache: their count and variables, rebuilt over the restored backbone. */
const medusaHeadsKind: ModelKind<MedusaHeads> = weightsKind(
  'MedusaHeads',
  MedusaHeads,
  (c: { model: unknown; heads: number }, resolve) => new MedusaHeads(resolve(c.model) as ToyLM, { heads: c.heads }),
  { configOf: (h, ref) => ({ model: ref(h.model), heads: h.count }) },
);

export const medusaExperiment = defineExperiment<MedusaExperimentConfig, MedusaArtifacts>({
  name: 'medusa',
  paper:
    'Cai et al. 2024, Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding Heads, https://arxiv.org/abs/2401.10774',
  description:
    'A char ToyLM with Medusa-1 heads (backbone frozen): tokens per verification forward for a chain vs. a sparse tree of about 16 nodes built on validation, wall-clock speed-up over greedy decoding with a KV cache, and identical greedy output on every test prompt.',
  schema,
  quick: {
    model: { dModel: 64, heads: 4, layers: 2, seqLen: 64, batch: 16, steps: 150, lr: 3e-3 },
    medusa: { heads: 3, steps: 80, batch: 16, lr: 3e-3, decay: 0.8 },
    tree: { nodes: 16, topK: 6 },
    validation: { prompts: 8 },
    test: { prompts: 10, promptLen: 16, newTokens: 24 },
    typical: { temperature: 0.7, threshold: 0.09, alpha: 0.3 },
  },
  full: {
    model: { dModel: 128, heads: 4, layers: 4, seqLen: 128, batch: 16, steps: 600, lr: 2e-3 },
    medusa: { heads: 4, steps: 300, batch: 16, lr: 2e-3, decay: 0.8 },
    tree: { nodes: 16, topK: 8 },
    validation: { prompts: 16 },
    test: { prompts: 40, promptLen: 32, newTokens: 48 },
    typical: { temperature: 0.7, threshold: 0.09, alpha: 0.3 },
  },
  artifactCodec: artifactCodec([toyLMKind, medusaHeadsKind, charTokenizerKind]),
  async run(cfg, ctx) {
    const fn = "experiment 'medusa'";
    const { promptLen, newTokens } = cfg.test;
    const need = promptLen + newTokens + cfg.tree.nodes + 1;
    if (need > cfg.model.seqLen)
      throw new Error(
        `${fn}: test.promptLen + test.newTokens + tree.nodes + 1 (${need}) must fit in model.seqLen ${cfg.model.seqLen}`,
      );
    if (cfg.medusa.heads + 2 > cfg.model.seqLen)
      throw new Error(
        `${fn}: model.seqLen must exceed medusa.heads + 1 (${cfg.medusa.heads + 1}), got ${cfg.model.seqLen}`,
      );
    const trainSet = textDataset({ tokenizer: 'char', split: 'train' });
    const validationSet = textDataset({ tokenizer: 'char', split: 'validation' });
    const testSet = textDataset({ tokenizer: 'char', split: 'test' });
    const { tokenizer } = trainSet;
    const V = tokenizer.vocabSize;
    const m = cfg.model;

    // (1) The backbone.
    ctx.log(`backbone: ${m.layers} layers, d ${m.dModel}, ${m.steps} steps`);
    const model = new ToyLM({
      vocab: V,
      dModel: m.dModel,
      heads: m.heads,
      layers: m.layers,
      maxLen: m.seqLen,
      positional: 'learned',
      seed: ctx.seed,
    });
    let heads: MedusaHeads | undefined;
    try {
      const t0 = performance.now();
      const fit = await train({
        variables: model.variables(),
        steps: m.steps,
        optimizer: { type: 'adamw', lr: m.lr, weightDecay: 0.01 },
        schedule: { type: 'cosine', warmup: Math.round(m.steps * 0.05) },
        clipNorm: 1,
        seed: ctx.seed,
        progress: ctx.progress,
        dataframe: false,
        loss: (step) => {
          const t = trainSet.sample({ batch: m.batch, seqLen: m.seqLen, seed: stepSeed(ctx.seed, step) }).toTensors();
          try {
            return model.loss(t.inputs, t.targets, t.lossMask);
          } finally {
            tf.dispose([t.inputs, t.targets, t.lossMask]);
          }
        },
      });
      if (fit.stopped) throw new Error(`${fn}: backbone training stopped: ${fit.stopped.message}`);
      const secondsBackbone = (performance.now() - t0) / 1000;
      let testCe = 0;
      const testBatches = 4;
      for (let i = 0; i < testBatches; i++) {
        const t = testSet.sample({ batch: m.batch, seqLen: m.seqLen, seed: ctx.seed + 7, step: i }).toTensors();
        const l = model.loss(t.inputs, t.targets, t.lossMask);
        testCe += l.dataSync()[0] / testBatches;
        tf.dispose([l, t.inputs, t.targets, t.lossMask]);
      }

      // (2) Medusa-1 heads, backbone frozen.
      ctx.log(`medusa: ${cfg.medusa.heads} heads, ${cfg.medusa.steps} steps`);
      const t1 = performance.now();
      heads = new MedusaHeads(model, { heads: cfg.medusa.heads, seed: ctx.seed });
      const headFit = await trainMedusaHeads(heads, trainSet, {
        steps: cfg.medusa.steps,
        batch: cfg.medusa.batch,
        seqLen: m.seqLen,
        lr: cfg.medusa.lr,
        decay: cfg.medusa.decay,
        seed: ctx.seed + 1,
        progress: ctx.progress,
      });
      const secondsHeads = (performance.now() - t1) / 1000;

      // (3) Validation: each head's rank-r agreement with the backbone's own greedy continuation; the tree from it.
      const K = cfg.medusa.heads;
      const R = cfg.tree.topK;
      const hits = Array.from({ length: K }, () => new Array(R).fill(0));
      let counted = 0;
      for (const p of prompts(validationSet.ids, cfg.validation.prompts, promptLen, newTokens, fn)) {
        const ids = tf.tensor2d([p], [1, promptLen], 'int32');
        const gen = model.generate(ids, newTokens, { fused: false });
        const seq = [...p, ...Array.from(gen.dataSync())];
        tf.dispose([ids, gen]);
        const z = tf.tidy(() => {
          const { logits, hidden } = forwardWithHidden(model, tf.tensor2d([seq], [1, seq.length], 'int32'));
          logits.dispose();
          return heads!.logits(hidden.squeeze([0]));
        }); // [s, K, V]
        const data = z.dataSync();
        z.dispose();
        // Positions t whose root (t + 1) and head targets (t + k + 1) lie in the generated part.
        for (let t = promptLen - 1; t + K + 1 < seq.length; t++) {
          counted++;
          for (let k = 0; k < K; k++) {
            const row = Array.from({ length: V }, (_, v) => v).sort(
              (a, b) => data[(t * K + k) * V + b] - data[(t * K + k) * V + a] || a - b,
            );
            const r = row.indexOf(seq[t + k + 2]);
            if (r >= 0 && r < R) hits[k][r]++;
          }
        }
      }
      const accuracy = hits.map((row) => row.map((h) => h / Math.max(1, counted)));
      const tree = greedyTree(accuracy, cfg.tree.nodes);
      const chain = chainTree(K);
      ctx.log(
        `tree: ${tree.size - 1} nodes, ${tree.maxDepth} deep, expected accepted ${expectedAccepted(tree, accuracy)}`,
      );

      // (4) Test: plain greedy vs Medusa chain / tree (greedy) vs tree (typical), prompt by prompt. Greedy decodes
      // with the same tfjs forward pass Medusa verifies with ({ fused: false }): the speed-up compares two decoders on
      // one implementation, as the paper's does, and the T = 0 match is checked on the same arithmetic (the fused
      // native decoding kernel would be a different, faster baseline; see `attnlab bench`'s toylm-decode rows).
      const testPrompts = prompts(testSet.ids, cfg.test.prompts, promptLen, newTokens, fn);
      const settings = ['greedy', 'chain', 'tree', 'typical'] as const;
      const time: Record<(typeof settings)[number], number[]> = { greedy: [], chain: [], tree: [], typical: [] };
      const perPrompt: Record<'chain' | 'tree' | 'typical', number[]> = { chain: [], tree: [], typical: [] };
      const forwards = { chain: 0, tree: 0, typical: 0 };
      const histogram = {
        chain: new Array(K + 1).fill(0),
        tree: new Array(K + 1).fill(0),
        typical: new Array(K + 1).fill(0),
      };
      const match = { chain: 0, tree: 0 };
      let example = { prompt: '', greedy: '', typical: '' };
      const typicalOpts = { ...cfg.typical, tree };
      // Warm-up: the first call of each path compiles kernels and fills caches.
      {
        const ids = tf.tensor2d([testPrompts[0]], [1, promptLen], 'int32');
        model.generate(ids, 2, { fused: false }).dispose();
        ids.dispose();
        medusaGenerate(heads, testPrompts[0], 2, { tree });
        medusaGenerate(heads, testPrompts[0], 2, { tree: chain });
      }
      testPrompts.forEach((p, i) => {
        const ids = tf.tensor2d([p], [1, promptLen], 'int32');
        let s = performance.now();
        const gen = model.generate(ids, newTokens, { fused: false });
        const want = Array.from(gen.dataSync());
        time.greedy.push(performance.now() - s);
        tf.dispose([ids, gen]);
        const run = (key: 'chain' | 'tree' | 'typical') => {
          s = performance.now();
          const r =
            key === 'typical'
              ? medusaGenerate(heads!, p, newTokens, { ...typicalOpts, seed: stepSeed(ctx.seed, i) })
              : medusaGenerate(heads!, p, newTokens, { tree: key === 'tree' ? tree : chain });
          time[key].push(performance.now() - s);
          perPrompt[key].push(newTokens / r.perForward.length);
          forwards[key] += r.forwards;
          // The last forward may be capped at newTokens; count only uncapped ones in the histogram.
          r.perForward.slice(0, -1).forEach((n) => histogram[key][n - 1]++);
          return r.tokens;
        };
        const chainOut = run('chain');
        const treeOut = run('tree');
        const typicalOut = run('typical');
        if (chainOut.join() === want.join()) match.chain++;
        if (treeOut.join() === want.join()) match.tree++;
        if (i === 0)
          example = {
            prompt: tokenizer.decode(p),
            greedy: tokenizer.decode(want),
            typical: tokenizer.decode(typicalOut),
          };
      });

      const n = testPrompts.length;
      const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const rows: MedusaRow[] = (['tree', 'chain', 'typical'] as const).map((key) => {
        const [tpf, tpfCi] = meanCi(perPrompt[key]);
        const [, spCi] = meanCi(time.greedy.map((g, i) => g / time[key][i]));
        return {
          setting:
            key === 'tree'
              ? `tree (${tree.size - 1} nodes, greedy)`
              : key === 'chain'
                ? `chain (${K} nodes, greedy)`
                : `tree (${tree.size - 1} nodes, typical T=${cfg.typical.temperature})`,
          tree_nodes: key === 'chain' ? K : tree.size - 1,
          tokens_per_forward: tpf,
          tokens_per_forward_ci95: tpfCi,
          speedup: total(time.greedy) / total(time[key]),
          speedup_ci95: spCi,
          tokens_per_second: (n * newTokens) / (total(time[key]) / 1000),
          ms_per_forward: total(time[key]) / forwards[key],
          greedy_match: key === 'typical' ? null : match[key] / n,
          seconds: total(time[key]) / 1000,
        };
      });
      const [gain, gainCi] = meanCi(perPrompt.tree.map((x, i) => x - perPrompt.chain[i]));
      const [tree0, chain0, typical0] = rows;
      const metrics: Record<string, number> = {
        test_bpc: testCe / Math.LN2,
        test_tokens_per_forward_tree: tree0.tokens_per_forward,
        test_tokens_per_forward_tree_ci95: tree0.tokens_per_forward_ci95,
        test_tokens_per_forward_chain: chain0.tokens_per_forward,
        test_tokens_per_forward_chain_ci95: chain0.tokens_per_forward_ci95,
        test_tokens_per_forward_tree_minus_chain: gain,
        test_tokens_per_forward_tree_minus_chain_ci95: gainCi,
        test_tokens_per_forward_typical: typical0.tokens_per_forward,
        test_speedup_tree: tree0.speedup,
        test_speedup_tree_ci95: tree0.speedup_ci95,
        test_speedup_chain: chain0.speedup,
        test_speedup_typical: typical0.speedup,
        test_greedy_match_tree: match.tree / n,
        test_greedy_match_chain: match.chain / n,
        test_tokens_per_second_greedy: (n * newTokens) / (total(time.greedy) / 1000),
        test_tokens_per_second_tree: tree0.tokens_per_second,
        test_ms_per_forward_greedy: total(time.greedy) / (n * newTokens), // generate: one forward per new token
        test_ms_per_forward_tree: tree0.ms_per_forward,
        test_ms_per_forward_chain: chain0.ms_per_forward,
        validation_expected_tokens_per_forward_tree: 1 + expectedAccepted(tree, accuracy),
        validation_expected_tokens_per_forward_chain: 1 + expectedAccepted(chain, accuracy),
        seconds_backbone: secondsBackbone,
        seconds_heads: secondsHeads,
        params: model.parameterCount(),
        params_heads: heads.variables().reduce((a, v) => a + v.size, 0),
      };
      accuracy.forEach((row, k) => (metrics[`validation_head${k + 1}_top1`] = row[0]));
      headFit.headLoss.forEach((l, k) => (metrics[`train_head${k + 1}_loss`] = l));
      const f = (x: number) => +x.toFixed(3);
      const out = heads;
      heads = undefined;
      const ours =
        `ours: a ${cfg.model.layers}-layer d ${cfg.model.dModel} char ToyLM trained ${cfg.model.steps} steps on Moby-Dick, ${K} Medusa-1 heads ` +
        `(${cfg.medusa.steps} steps, backbone frozen), a ${tree.size - 1}-node tree built on validation agreement, ${cfg.test.prompts} test prompts of ${newTokens} new characters`;
      return {
        metrics,
        tables: {
          settings: [
            {
              setting: 'plain greedy (KV cache)',
              tree_nodes: 0,
              tokens_per_forward: 1,
              tokens_per_forward_ci95: 0,
              speedup: 1,
              speedup_ci95: 0,
              tokens_per_second: f(metrics.test_tokens_per_second_greedy),
              ms_per_forward: f(metrics.test_ms_per_forward_greedy),
              greedy_match: 1,
              seconds: f(total(time.greedy) / 1000),
            },
            ...rows.map((r) => ({
              ...r,
              tokens_per_forward: f(r.tokens_per_forward),
              tokens_per_forward_ci95: f(r.tokens_per_forward_ci95),
              speedup: f(r.speedup),
              speedup_ci95: f(r.speedup_ci95),
              tokens_per_second: f(r.tokens_per_second),
              ms_per_forward: f(r.ms_per_forward),
              seconds: f(r.seconds),
            })),
          ],
          heads: accuracy.map((row, k) => ({
            head: k + 1,
            predicts: `t+${k + 2}`,
            train_loss: f(headFit.headLoss[k]),
            ...Object.fromEntries(row.map((a, r) => [`top${r + 1}`, f(a)])),
          })),
        },
        references: [
          {
            metric: 'test_speedup_tree',
            paper: 2.18,
            source:
              'Cai et al. 2024, Fig. 3(a): Medusa-1 on Vicuna-7B, MT-Bench, wall-clock speed-up over greedy decoding (2.33 on Vicuna-13B; both read off the figure)',

            setting: `${ours}; wall clock of tfjs on a CPU at batch 1. Paper: Medusa-1 (5 heads, 63-node tree) on Vicuna-7B, MT-Bench prompts, on a GPU`,
          },
          {
            metric: 'test_tokens_per_forward_tree',
            paper: 3.47,
            source:
              "Cai et al. 2024, Table 1 (unverified: quoted from memory; the same table's Medusa-2 Vicuna-7B speed-up 2.83x is confirmed by the paper's Fig. 3): acceleration rate (tokens per forward) of Medusa-2 on Vicuna-7B with the 63-node tree, MT-Bench (the paper tabulates no Medusa-1 rate)",

            setting:
              `${ours}; greedy acceptance, whose looping continuations ("the the the") are easy to predict. Paper: Medusa-2 (heads and ` +
              'backbone fine-tuned together) on Vicuna-7B with the 63-node tree, MT-Bench, typical acceptance',
          },
        ],
        summary:
          `Tokens per forward: tree (${tree.size - 1} nodes) ${tree0.tokens_per_forward.toFixed(2)} ± ${tree0.tokens_per_forward_ci95.toFixed(2)}, ` +
          `chain (${K}) ${chain0.tokens_per_forward.toFixed(2)} ± ${chain0.tokens_per_forward_ci95.toFixed(2)} (difference ${gain.toFixed(2)} ± ${gainCi.toFixed(2)}); ` +
          `wall-clock speed-up over greedy decoding: tree ${tree0.speedup.toFixed(2)}x, chain ${chain0.speedup.toFixed(2)}x (paper, Medusa-1 on Vicuna-7B: 2.18x); ` +
          `a tree forward takes ${tree0.ms_per_forward.toFixed(1)} ms against ${metrics.test_ms_per_forward_greedy.toFixed(1)} ms per plain decoding step; ` +
          `identical to greedy decoding on ${match.tree}/${n} test prompts (tree) and ${match.chain}/${n} (chain). ` +
          (gain > gainCi
            ? `The tree emits more tokens per forward than the chain beyond the difference's 95% CI.`
            : `The tree's gain over the chain is within its 95% CI: with ${n} test prompts this run is too small to show it.`),
        artifacts: {
          model,
          heads: out,
          tokenizer,
          tree,
          chain,
          accuracy,
          histogram,
          example,
          dispose() {
            out.dispose();
            model.dispose();
          },
        },
      };
    } catch (e) {
      heads?.dispose();
      model.dispose();
      throw e;
    }
  },
});
