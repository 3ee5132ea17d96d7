/**
 * The circuit tasks' ToyLM (one model trained jointly on IOI-like, coloured-objects and MCQ prompts from
 * lib/data/circuit-tasks.ts), and circuit discovery by iterated path patching on it.
 *
 * Discovery (after Wang et al. 2023 and Merullo et al. 2024): stage 0 path-patches every head's direct path to the
 * logits; heads whose share of the clean-corrupted logit-difference gap is >= threshold are the movers. Stage 1 patches
 * every earlier head's path into the movers' queries (the "inhibition" role: in IOI the S-inhibition heads steer the
 * name movers' queries) and into their keys/values; stage 2 repeats into stage 1's heads, and so on back to layer 0.
 * The circuit is the union; each edge sender -> receiver group carries its path-patching score.
 */
import * as tf from '@tensorflow/tfjs';
import { stepSeed } from '../../../data/batch.js';
import {
  CIRCUIT_PROMPT_LEN,
  CIRCUIT_TOKENS,
  type CircuitPrompts,
  type CircuitTask,
  circuitPrompts,
  circuitTrainingBatch,
} from '../../../data/circuit-tasks.js';
import type { Figure, Trace } from '../../../display/plotly.js';
import type { ExperimentContext } from '../../../experiments/types.js';
import { ToyLM } from '../../../layers/toylm.js';
import { type StepRecord, train } from '../../../train/loop.js';
import { transformerRecipe } from '../../../train/recipe.js';
import { meanCi } from '../../../util/stats.js';
import {
  argmaxHits,
  baselines,
  type HeadSite,
  type HookSpec,
  headLabel,
  type PatchingPair,
  pathPatching,
} from '../patching/index.js';

export interface CircuitModelConfig {
  layers: number;
  heads: number;
  dModel: number;
  steps: number;
  batch: number;
  lr: number;
  /** Tasks trained jointly (default all three). */
  tasks?: CircuitTask[];
  /** Share of MCQ training prompts with mutated labels (half random letters, half shuffled A-D). */
  mutationShare: number;
}

/** Train the joint ToyLM. The caller disposes the model. */
export async function trainCircuitModel(
  cfg: CircuitModelConfig,
  ctx: Pick<ExperimentContext, 'seed' | 'progress'>,
): Promise<{ model: ToyLM; records: StepRecord[]; seconds: number }> {
  const t0 = performance.now();
  const model = new ToyLM({
    vocab: CIRCUIT_TOKENS.vocab,
    dModel: cfg.dModel,
    heads: cfg.heads,
    layers: cfg.layers,
    maxLen: CIRCUIT_PROMPT_LEN,
    positional: 'learned',
    seed: ctx.seed,
  });
  const tasks = cfg.tasks ?? ['ioi', 'co', 'mcq'];
  const batches = function* () {
    for (let step = 0; ; step++)
      yield circuitTrainingBatch({
        tasks,
        batch: cfg.batch,
        seed: stepSeed(ctx.seed, step),
        mutationShare: cfg.mutationShare,
      });
  };
  try {
    const run = await train({
      variables: model.variables(),
      batches: batches(),
      steps: cfg.steps,
      ...transformerRecipe(cfg.steps, cfg.lr),
      seed: ctx.seed,
      progress: ctx.progress,
      dataframe: false,
      loss: (_step, b) => {
        const t = b.toTensors();
        return model.loss(t.inputs, t.targets, t.lossMask);
      },
    });
    if (run.stopped) throw new Error(`circuits: training stopped: ${run.stopped.message}`);
    return { model, records: run.records, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** A prompt set as a patching pair (the caller disposes clean and corrupted). */
export function toPair(p: CircuitPrompts): PatchingPair {
  const { clean, corrupted } = p.toTensors();
  return { clean, corrupted, correct: p.correct, wrong: p.wrong };
}

/** Candidate answer tokens of a task (the argmax is taken over them). */
export function candidates(task: CircuitTask): number[] {
  const T = CIRCUIT_TOKENS;
  return task === 'ioi' ? T.names : task === 'co' ? T.colours : T.letters;
}

/** Per row 1 if the model's top candidate at the last position is the answer. */
export function answerHits(model: ToyLM, p: CircuitPrompts, hooks?: HookSpec[]): number[] {
  const t = tf.tensor2d(p.clean, [p.batch, p.seqLen], 'int32');
  const remove = (hooks ?? []).map(([n, f]) => model.hooks.add(n, f));
  try {
    const logits = model.forward(t);
    const hits = argmaxHits(logits, p.correct, candidates(p.task));
    logits.dispose();
    return hits;
  } finally {
    for (const r of remove) r();
    t.dispose();
  }
}

/** Mean and 95% normal-approximation half-width of 0/1 (or any) values. */
export { meanCi };

export interface CircuitEdge {
  sender: string;
  /** 'logits' or the receiver heads' labels joined, with the input patched: e.g. 'L2H1,L2H3 (q)'. */
  receiver: string;
  score: number;
}

export interface DiscoveredCircuit {
  /** Stage 0: heads with a direct path to the logits (movers). */
  movers: HeadSite[];
  /** Heads whose path into the movers' queries carries >= threshold (the inhibition role). */
  inhibition: HeadSite[];
  /** Every head found at any stage. */
  heads: HeadSite[];
  edges: CircuitEdge[];
  /** [layer][head] largest path-patching score of the head at any stage (0 where never a sender). */
  scores: number[][];
  clean: number;
  corrupted: number;
}

/**
 * Iterated path patching (see the header). `threshold` is the share of the gap a path must carry; `maxPerStage`
 * keeps the strongest heads of a stage only.
 */
export function discoverCircuit(
  model: ToyLM,
  pair: PatchingPair,
  opts: { threshold: number; maxPerStage?: number },
): DiscoveredCircuit {
  const { layers, heads } = model.config;
  const base = baselines(model, pair);
  const scores = Array.from({ length: layers }, () => new Array<number>(heads).fill(0));
  const edges: CircuitEdge[] = [];
  const all = new Map<string, HeadSite>();
  const keep = (cands: { site: HeadSite; score: number }[]) =>
    cands
      .filter((c) => c.score >= opts.threshold)
      .sort((a, b) => b.score - a.score)
      .slice(0, opts.maxPerStage ?? Number.POSITIVE_INFINITY);
  const note = (site: HeadSite, score: number, receiver: string) => {
    scores[site.layer][site.head] = Math.max(scores[site.layer][site.head], score);
    edges.push({ sender: headLabel(site), receiver, score });
  };
  try {
    const sendersBefore = (layer: number) =>
      Array.from({ length: layer }, (_, l) => Array.from({ length: heads }, (_, h) => ({ layer: l, head: h }))).flat();
    // Stage 0: direct paths.
    const direct = sendersBefore(layers).map((site) => ({
      site,
      score: pathPatching(model, pair, site, { receivers: 'logits' }, base),
    }));
    const movers = keep(direct).map((c) => c.site);
    for (const c of keep(direct)) note(c.site, c.score, 'logits');
    for (const m of movers) all.set(headLabel(m), m);
    // Stage 1 (queries of the movers): inhibition.
    let inhibition: HeadSite[] = [];
    let frontier = movers;
    let stage = 0;
    while (frontier.length) {
      const first = Math.min(...frontier.map((r) => r.layer));
      const label = frontier.map(headLabel).join(',');
      const next: HeadSite[] = [];
      for (const inputs of stage === 0 ? [['q'], ['k', 'v']] : [['q', 'k', 'v']]) {
        const cands = sendersBefore(first).map((site) => ({
          site,
          score: pathPatching(model, pair, site, { receivers: frontier, inputs: inputs as ('q' | 'k' | 'v')[] }, base),
        }));
        const kept = keep(cands);
        for (const c of kept) note(c.site, c.score, `${label} (${inputs.join('')})`);
        if (stage === 0 && inputs[0] === 'q') inhibition = kept.map((c) => c.site);
        for (const c of kept) if (!next.some((n) => headLabel(n) === headLabel(c.site))) next.push(c.site);
      }
      for (const n of next) all.set(headLabel(n), n);
      frontier = next.filter((n) => n.layer > 0);
      stage++;
    }
    const sorted = [...all.values()].sort((a, b) => a.layer - b.layer || a.head - b.head);
    return { movers, inhibition, heads: sorted, edges, scores, clean: base.clean, corrupted: base.corrupted };
  } finally {
    base.cleanCache.dispose();
    base.corruptedCache.dispose();
  }
}

/** Jaccard overlap |A ∩ B| / |A ∪ B| of two head sets (1 when both are empty). */
export function jaccard(a: HeadSite[], b: HeadSite[]): number {
  const A = new Set(a.map(headLabel));
  const B = new Set(b.map(headLabel));
  const inter = [...A].filter((x) => B.has(x)).length;
  const union = new Set([...A, ...B]).size;
  return union === 0 ? 1 : inter / union;
}

/** The IOI model and its patching ground truth (for SAE circuit discovery, #8). */
export interface IoiGroundTruth {
  model: ToyLM;
  circuit: DiscoveredCircuit;
  /** [layer][head] 1 if the head is in the circuit. */
  inCircuit: number[][];
  /** The validation prompts the circuit was found on. */
  prompts: CircuitPrompts;
  dispose(): void;
}

/**
 * Trains the joint ToyLM (or takes `model`) and returns its IOI circuit by path patching on `rows` validation prompts.
 * Defaults: the full `circuits` config (2 layers, 4 heads, d_model 48, 2500 steps of 128 rows), threshold 0.1.
 */
export async function ioiGroundTruth(
  opts: Partial<CircuitModelConfig> & { seed?: number; rows?: number; threshold?: number; model?: ToyLM } = {},
): Promise<IoiGroundTruth> {
  const cfg: CircuitModelConfig = {
    layers: opts.layers ?? 2,
    heads: opts.heads ?? 4,
    dModel: opts.dModel ?? 48,
    steps: opts.steps ?? 2500,
    batch: opts.batch ?? 128,
    lr: opts.lr ?? 5e-3,
    tasks: opts.tasks ?? ['ioi', 'co', 'co', 'co', 'mcq', 'mcq'],
    mutationShare: opts.mutationShare ?? 0.2,
  };
  const seed = opts.seed ?? 0;
  const model = opts.model ?? (await trainCircuitModel(cfg, { seed, progress: false })).model;
  const prompts = circuitPrompts({ task: 'ioi', batch: opts.rows ?? 64, seed, split: 'validation' });
  const pair = toPair(prompts);
  try {
    const circuit = discoverCircuit(model, pair, { threshold: opts.threshold ?? 0.1 });
    const inCircuit = Array.from({ length: model.config.layers }, (_, l) =>
      Array.from({ length: model.config.heads }, (_, h) =>
        circuit.heads.some((s) => s.layer === l && s.head === h) ? 1 : 0,
      ),
    );
    return { model, circuit, inCircuit, prompts, dispose: () => model.dispose() };
  } catch (e) {
    if (!opts.model) model.dispose();
    throw e;
  } finally {
    tf.dispose([pair.clean, pair.corrupted]);
  }
}

/**
 * The circuit as a plotly figure: every head a dot at (head, layer), the circuit's heads coloured by role (mover,
 * inhibition, other), each edge an arrow-less line from the sender to each receiver head (movers to a 'logits' node on
 * top), its width set by the path-patching score.
 */
export function circuitGraph(c: DiscoveredCircuit, layers: number, heads: number, title = 'Circuit'): Figure {
  const at = (label: string) => {
    if (label === 'logits') return { x: (heads - 1) / 2, y: layers };
    const m = /^L(\d+)H(\d+)$/.exec(label);
    return m ? { x: Number(m[2]), y: Number(m[1]) } : undefined;
  };
  const data: Trace[] = [];
  for (const e of c.edges) {
    const receivers = e.receiver === 'logits' ? ['logits'] : e.receiver.replace(/ \(.*\)$/, '').split(',');
    for (const r of receivers) {
      const [a, b] = [at(e.sender), at(r)];
      if (!a || !b) continue;
      data.push({
        type: 'scatter',
        mode: 'lines',
        x: [a.x, b.x],
        y: [a.y, b.y],
        line: { width: 1 + 6 * Math.min(1, Math.abs(e.score)), color: 'rgba(80,80,80,0.5)' },
        hoverinfo: 'text',
        text: `${e.sender} -> ${e.receiver}: ${e.score.toFixed(2)}`,
        showlegend: false,
      });
    }
  }
  const role = (l: number, h: number) => {
    const k = `L${l}H${h}`;
    if (c.movers.some((s) => headLabel(s) === k)) return 'mover';
    if (c.inhibition.some((s) => headLabel(s) === k)) return 'inhibition';
    if (c.heads.some((s) => headLabel(s) === k)) return 'other circuit head';
    return 'not in circuit';
  };
  const colours: Record<string, string> = {
    mover: '#d62728',
    inhibition: '#1f77b4',
    'other circuit head': '#2ca02c',
    'not in circuit': '#cccccc',
  };
  for (const name of Object.keys(colours)) {
    const pts = Array.from({ length: layers * heads }, (_, i) => ({ l: Math.floor(i / heads), h: i % heads })).filter(
      (p) => role(p.l, p.h) === name,
    );
    if (!pts.length) continue;
    data.push({
      type: 'scatter',
      mode: 'markers+text',
      name,
      x: pts.map((p) => p.h),
      y: pts.map((p) => p.l),
      text: pts.map((p) => `L${p.l}H${p.h}`),
      textposition: 'top center',
      marker: { size: 16, color: colours[name] },
    });
  }
  data.push({
    type: 'scatter',
    mode: 'markers+text',
    name: 'logits',
    x: [(heads - 1) / 2],
    y: [layers],
    text: ['logits'],
    textposition: 'top center',
    marker: { size: 18, symbol: 'square', color: '#444' },
  });
  return {
    data,
    layout: {
      title: { text: title },
      xaxis: { title: { text: 'head' }, dtick: 1 },
      yaxis: { title: { text: 'layer' }, dtick: 1 },
      height: 380,
    },
  };
}
