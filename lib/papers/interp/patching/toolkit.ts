/**
 * A patching toolkit on the hook points of lib/layers/hooks.ts: activation patching per head and position (clean ->
 * corrupted and back), path patching (sender head -> receiver heads' q/k/v, or -> the logits), mean ablation, direct
 * logit attribution per head, attention-pattern edits and low-rank q/k projections.
 *
 * After: Meng et al. 2022 (causal tracing, https://arxiv.org/abs/2202.05262), Wang et al. 2023 ("Interpretability in
 * the Wild", path patching, https://arxiv.org/abs/2211.00593), and TransformerLens's HookPoint.
 *
 * Every intervention is a hook on `blocks.{l}.attn.hook_z` (per-head outputs before the output projection), `hook_q`,
 * `hook_k`, `hook_v` or `hook_pattern`; the model only needs `hooks` and `forward` (ToyLM has both). The equations:
 *
 *   patched z[b, h, s, :] = source z[b, h, s, :] where (h, s) is patched, else the run's own z          (patchHeadSlice)
 *   DLA_{l,h}(b) = Σ_m ((z_{l,h} W_O^{l,h})_m − mean(z_{l,h} W_O^{l,h})) / σ_b · γ_m · (U[:, c] − U[:, w])_m
 *                  σ_b the final layer norm's std on row b (frozen), U the unembedding         (headLogitContributions)
 *   edited z_{l,h} = A' v_{l,h}, A' [b, s, t] the edited attention pattern                       (withPatternEdits)
 *   projected q_{l,h} = q P Pᵀ, P [d, r] orthonormal (top-r eigenvectors of E[q qᵀ]); likewise k    (projectRows)
 *
 * Effects are normalised by the clean-corrupted gap of a metric (mean logit difference correct − wrong at the last
 * position): denoising (corrupted run, clean activation patched in) gives (m − m_corr) / (m_clean − m_corr), 1 = the
 * site restores everything; noising (clean run, corrupted activation in) and path patching give
 * (m_clean − m) / (m_clean − m_corr), 1 = the path carries the whole gap.
 *
 * Shapes: z [b, h, s, d] (batch, head, position, head dim), pattern [b, h, s, t] (t key positions), logits [b, s, V].
 */
import * as tf from '@tensorflow/tfjs';
import type { ActivationCache, HookFn, HookRegistry } from '../../../layers/hooks.js';
import { fmt, ShapeError } from '../../../util/shapes.js';

/** What the toolkit needs from a model: named hooks, a forward pass, and its layer/head counts. */
export interface PatchableModel {
  hooks: HookRegistry;
  forward(tokens: tf.Tensor): tf.Tensor3D;
  config: { layers: number; heads: number; vocab: number; dModel: number };
}

/** A head, optionally at one query position (undefined = every position). */
export interface HeadSite {
  layer: number;
  head: number;
  pos?: number;
}

/** A prompt pair and the answer tokens the metric compares: logit(correct) − logit(wrong) at the last position. */
export interface PatchingPair {
  /** [b, s] int32 clean prompts. */
  clean: tf.Tensor2D;
  /** [b, s] int32 corrupted prompts (same length: positions line up). */
  corrupted: tf.Tensor2D;
  /** Per row: the clean answer and the competing token. */
  correct: ArrayLike<number>;
  wrong: ArrayLike<number>;
}

export const zName = (layer: number) => `blocks.${layer}.attn.hook_z`;
export const headLabel = (s: HeadSite) => `L${s.layer}H${s.head}`;

// ---------------------------------------------------------------------------------------------------------------
// Pure functions and their float64 references

/**
 * z [b, h, s, d] with the (head, position) slices in `heads` x `positions` taken from `source` (same shape, or [1, h,
 * s, d] broadcast over the batch). positions undefined = every position. Gradients flow to both inputs.
 */
export function patchHeadSlice(z: tf.Tensor, source: tf.Tensor, heads: number[], positions?: number[]): tf.Tensor4D {
  const fn = 'patchHeadSlice';
  if (z.rank !== 4)
    throw new ShapeError(`${fn}: z must have rank 4 [batch, head, pos, dim], got shape ${fmt(z.shape)}`);
  const [b, h, s, d] = z.shape;
  const okSource = source.rank === 4 && (source.shape[0] === b || source.shape[0] === 1);
  if (!okSource || source.shape[1] !== h || source.shape[2] !== s || source.shape[3] !== d)
    throw new ShapeError(`${fn}: source must have shape [${b} or 1,${h},${s},${d}], got shape ${fmt(source.shape)}`);
  for (const x of heads)
    if (!Number.isInteger(x) || x < 0 || x >= h) throw new ShapeError(`${fn}: heads must be in [0, ${h}), got ${x}`);
  for (const x of positions ?? [])
    if (!Number.isInteger(x) || x < 0 || x >= s)
      throw new ShapeError(`${fn}: positions must be in [0, ${s}), got ${x}`);
  return tf.tidy(() => {
    const mask = new Float32Array(h * s);
    for (const hh of heads) for (let p = 0; p < s; p++) if (!positions || positions.includes(p)) mask[hh * s + p] = 1;
    const m = tf.tensor4d(mask, [1, h, s, 1]);
    return z.mul(tf.onesLike(m).sub(m)).add(source.mul(m)) as tf.Tensor4D;
  });
}

/** Float64 reference of {@link patchHeadSlice} on row-major arrays (source with batch `sb`, 1 or b). */
export function patchHeadSliceReference(
  z: ArrayLike<number>,
  source: ArrayLike<number>,
  shape: [number, number, number, number],
  heads: number[],
  positions?: number[],
): Float64Array {
  const [b, h, s, d] = shape;
  const sb = source.length === h * s * d ? 1 : b;
  const out = new Float64Array(b * h * s * d);
  for (let i = 0; i < b; i++)
    for (let hh = 0; hh < h; hh++)
      for (let p = 0; p < s; p++)
        for (let k = 0; k < d; k++) {
          const at = ((i * h + hh) * s + p) * d + k;
          const use = heads.includes(hh) && (!positions || positions.includes(p));
          out[at] = use ? source[(((sb === 1 ? 0 : i) * h + hh) * s + p) * d + k] : z[at];
        }
  return out;
}

/**
 * Direct logit attribution of each head at one position: z [b, h, d] (the heads' outputs there), wo [h*d, m] (the
 * output projection), scale [b] (the final layer norm's std on each row, frozen), gamma [m] (its gain), direction [b, m]
 * (U[:, correct] − U[:, wrong] per row) -> [b, h]. Summed with the other components' terms it gives the logit
 * difference (the layer norm's bias and the centring of the direction aside; see directLogitAttribution).
 */
export function headLogitContributions(
  z: tf.Tensor,
  wo: tf.Tensor,
  scale: tf.Tensor,
  gamma: tf.Tensor,
  direction: tf.Tensor,
): tf.Tensor2D {
  const fn = 'headLogitContributions';
  if (z.rank !== 3) throw new ShapeError(`${fn}: z must have rank 3 [batch, head, dim], got shape ${fmt(z.shape)}`);
  const [b, h, d] = z.shape;
  if (wo.rank !== 2 || wo.shape[0] !== h * d)
    throw new ShapeError(`${fn}: wo must have shape [${h * d}, d_model], got shape ${fmt(wo.shape)}`);
  const m = wo.shape[1];
  if (scale.rank !== 1 || scale.shape[0] !== b)
    throw new ShapeError(`${fn}: scale must have shape [${b}], got shape ${fmt(scale.shape)}`);
  if (gamma.rank !== 1 || gamma.shape[0] !== m)
    throw new ShapeError(`${fn}: gamma must have shape [${m}], got shape ${fmt(gamma.shape)}`);
  if (direction.rank !== 2 || direction.shape[0] !== b || direction.shape[1] !== m)
    throw new ShapeError(`${fn}: direction must have shape [${b},${m}], got shape ${fmt(direction.shape)}`);
  return tf.tidy(() => {
    const w = wo.reshape([h, d, m]); // [h, d, m]
    const out = tf.matMul(z.transpose([1, 0, 2]), w).transpose([1, 0, 2]); // [b, h, m] each head's write
    const centred = out.sub(out.mean(-1, true));
    const dir = direction.mul(gamma).div(scale.expandDims(1)); // [b, m]
    return centred.mul(dir.expandDims(1)).sum(-1) as tf.Tensor2D;
  });
}

/** Float64 reference of {@link headLogitContributions}. */
export function headLogitContributionsReference(
  z: ArrayLike<number>,
  wo: ArrayLike<number>,
  scale: ArrayLike<number>,
  gamma: ArrayLike<number>,
  direction: ArrayLike<number>,
  b: number,
  h: number,
  d: number,
  m: number,
): Float64Array {
  const out = new Float64Array(b * h);
  for (let i = 0; i < b; i++)
    for (let hh = 0; hh < h; hh++) {
      const w = new Float64Array(m);
      for (let k = 0; k < d; k++) {
        const zk = z[(i * h + hh) * d + k];
        for (let j = 0; j < m; j++) w[j] += zk * wo[(hh * d + k) * m + j];
      }
      let mean = 0;
      for (let j = 0; j < m; j++) mean += w[j] / m;
      let acc = 0;
      for (let j = 0; j < m; j++) acc += ((w[j] - mean) / scale[i]) * gamma[j] * direction[i * m + j];
      out[i * h + hh] = acc;
    }
  return out;
}

/** x [..., d] projected onto the span of the orthonormal columns of basis [d, r]: x P Pᵀ. */
export function projectRows(x: tf.Tensor, basis: tf.Tensor): tf.Tensor {
  const fn = 'projectRows';
  const d = x.shape[x.rank - 1];
  if (basis.rank !== 2 || basis.shape[0] !== d)
    throw new ShapeError(`${fn}: basis must have shape [${d}, r], got shape ${fmt(basis.shape)}`);
  return tf.tidy(() => {
    const flat = x.reshape([-1, d]);
    return flat.matMul(basis).matMul(basis, false, true).reshape(x.shape);
  });
}

/** Float64 reference of {@link projectRows}: rows [n, d], basis [d, r]. */
export function projectRowsReference(
  x: ArrayLike<number>,
  basis: ArrayLike<number>,
  d: number,
  r: number,
): Float64Array {
  const n = x.length / d;
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < r; c++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k] * basis[k * r + c];
      for (let k = 0; k < d; k++) out[i * d + k] += dot * basis[k * r + c];
    }
  return out;
}

/**
 * The top-r eigenvectors of the second-moment matrix (1/n) Σ x xᵀ of rows [n, d] (cyclic Jacobi, float64), as an
 * orthonormal basis [d, r] row-major, with their eigenvalues (descending).
 */
export function topDirections(
  rows: ArrayLike<number>,
  d: number,
  r: number,
): { basis: Float64Array; values: number[] } {
  const fn = 'topDirections';
  if (!Number.isInteger(d) || d <= 0 || rows.length % d !== 0 || rows.length === 0)
    throw new ShapeError(`${fn}: rows must be a non-empty multiple of d = ${d} values, got ${rows.length}`);
  if (!Number.isInteger(r) || r < 1 || r > d)
    throw new ShapeError(`${fn}: r must be an integer in [1, ${d}], got ${r}`);
  const n = rows.length / d;
  const a = new Float64Array(d * d);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < d; p++) for (let q = 0; q < d; q++) a[p * d + q] += (rows[i * d + p] * rows[i * d + q]) / n;
  const v = new Float64Array(d * d);
  for (let p = 0; p < d; p++) v[p * d + p] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < d; p++)
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p];
          const akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k];
          const aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
  }
  const order = Array.from({ length: d }, (_, i) => i).sort((x, y) => a[y * d + y] - a[x * d + x]);
  const basis = new Float64Array(d * r);
  for (let c = 0; c < r; c++) for (let k = 0; k < d; k++) basis[k * r + c] = v[k * d + order[c]];
  return { basis, values: order.slice(0, r).map((i) => a[i * d + i]) };
}

// ---------------------------------------------------------------------------------------------------------------
// Running a model with interventions

/** A hook to install for one forward pass. */
export type HookSpec = [name: string | RegExp, fn: HookFn];

function checkSite(fn: string, model: PatchableModel, s: HeadSite): void {
  const { layers, heads } = model.config;
  if (!Number.isInteger(s.layer) || s.layer < 0 || s.layer >= layers)
    throw new ShapeError(`${fn}: layer must be in [0, ${layers}), got ${s.layer}`);
  if (!Number.isInteger(s.head) || s.head < 0 || s.head >= heads)
    throw new ShapeError(`${fn}: head must be in [0, ${heads}), got ${s.head}`);
}

/** Logits [b, s, V] of `tokens` with `hooks` installed for this one pass (removed afterwards, also on error). */
export function runWithHooks(model: PatchableModel, tokens: tf.Tensor, hooks: HookSpec[]): tf.Tensor3D {
  const removers = hooks.map(([n, f]) => model.hooks.add(n, f));
  try {
    return model.forward(tokens);
  } finally {
    for (const r of removers) r();
  }
}

/** Logits and the recorded activations (default every head's z); the caller disposes both. */
export function runAndRecord(
  model: PatchableModel,
  tokens: tf.Tensor,
  names: string | RegExp = /attn\.hook_z$/,
  hooks: HookSpec[] = [],
): { logits: tf.Tensor3D; cache: ActivationCache } {
  const removers = hooks.map(([n, f]) => model.hooks.add(n, f));
  try {
    const { value, cache } = model.hooks.record(names, () => model.forward(tokens));
    return { logits: value, cache };
  } finally {
    for (const r of removers) r();
  }
}

/** Per row: logit(correct) − logit(wrong) at position `pos` (default the last). */
export function logitDiffs(
  logits: tf.Tensor3D,
  correct: ArrayLike<number>,
  wrong: ArrayLike<number>,
  pos?: number,
): number[] {
  const [b, s, V] = logits.shape;
  if (correct.length !== b || wrong.length !== b)
    throw new ShapeError(
      `logitDiffs: correct and wrong must have one token per row (${b}), got ${correct.length} and ${wrong.length}`,
    );
  const p = pos ?? s - 1;
  const last = tf.tidy(() => logits.slice([0, p, 0], [b, 1, V]).dataSync());
  return Array.from({ length: b }, (_, i) => last[i * V + correct[i]] - last[i * V + wrong[i]]);
}

/** Per row: is argmax at position `pos` (default last) over `candidates` (default the whole vocabulary) = target? */
export function argmaxHits(
  logits: tf.Tensor3D,
  target: ArrayLike<number>,
  candidates?: number[],
  pos?: number,
): number[] {
  const [b, s, V] = logits.shape;
  const p = pos ?? s - 1;
  const last = tf.tidy(() => logits.slice([0, p, 0], [b, 1, V]).dataSync());
  const cands = candidates ?? Array.from({ length: V }, (_, i) => i);
  return Array.from({ length: b }, (_, i) => {
    let best = cands[0];
    for (const c of cands) if (last[i * V + c] > last[i * V + best]) best = c;
    return best === target[i] ? 1 : 0;
  });
}

const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);

/** Mean logit difference of a pair's clean and corrupted runs, and both runs' caches of every head's z. */
export function baselines(
  model: PatchableModel,
  pair: PatchingPair,
): { clean: number; corrupted: number; cleanCache: ActivationCache; corruptedCache: ActivationCache } {
  const a = runAndRecord(model, pair.clean);
  const c = runAndRecord(model, pair.corrupted);
  try {
    return {
      clean: mean(logitDiffs(a.logits, pair.correct, pair.wrong)),
      corrupted: mean(logitDiffs(c.logits, pair.correct, pair.wrong)),
      cleanCache: a.cache,
      corruptedCache: c.cache,
    };
  } finally {
    tf.dispose([a.logits, c.logits]);
  }
}

/** A hook on hook_z that patches `heads` at `positions` from `source` [b or 1, h, s, d]. */
export function patchHook(source: tf.Tensor, heads: number[], positions?: number[]): HookFn {
  return (z) => patchHeadSlice(z, source, heads, positions);
}

export interface ActivationPatchingResult {
  /** [layer][head] normalised effect (see the header). */
  grid: number[][];
  /** [layer][head][pos] normalised effect of each (head, position) alone, with perPosition. */
  positions?: number[][][];
  clean: number;
  corrupted: number;
}

/**
 * Activation patching of each head's output (all positions at once, and with `perPosition` each position alone).
 * 'denoise': run the corrupted prompts with the clean activation patched in; 'noise': run the clean prompts with the
 * corrupted activation patched in (see the header for the normalisations).
 */
export function activationPatching(
  model: PatchableModel,
  pair: PatchingPair,
  opts: { direction?: 'denoise' | 'noise'; perPosition?: boolean } = {},
): ActivationPatchingResult {
  const direction = opts.direction ?? 'denoise';
  if (direction !== 'denoise' && direction !== 'noise')
    throw new ShapeError(`activationPatching: direction must be 'denoise' or 'noise', got '${direction}'`);
  const base = baselines(model, pair);
  const gap = base.clean - base.corrupted;
  const { layers, heads } = model.config;
  const run = direction === 'denoise' ? pair.corrupted : pair.clean;
  const src = direction === 'denoise' ? base.cleanCache : base.corruptedCache;
  const effect = (m: number) =>
    gap === 0 ? 0 : direction === 'denoise' ? (m - base.corrupted) / gap : (base.clean - m) / gap;
  const S = pair.clean.shape[1];
  const measure = (l: number, h: number, positions?: number[]) => {
    const logits = runWithHooks(model, run, [[zName(l), patchHook(src.get(zName(l)), [h], positions)]]);
    try {
      return effect(mean(logitDiffs(logits, pair.correct, pair.wrong)));
    } finally {
      logits.dispose();
    }
  };
  try {
    const grid = Array.from({ length: layers }, (_, l) => Array.from({ length: heads }, (_, h) => measure(l, h)));
    const positions = opts.perPosition
      ? Array.from({ length: layers }, (_, l) =>
          Array.from({ length: heads }, (_, h) => Array.from({ length: S }, (_, p) => measure(l, h, [p]))),
        )
      : undefined;
    return { grid, positions, clean: base.clean, corrupted: base.corrupted };
  } finally {
    base.cleanCache.dispose();
    base.corruptedCache.dispose();
  }
}

/** Which input of a receiver head path patching replaces. */
export type ReceiverInput = 'q' | 'k' | 'v';

export interface PathPatchingOptions {
  /** The receivers: heads (their q/k/v inputs are patched), or 'logits' (the sender's direct path to the output). */
  receivers: HeadSite[] | 'logits';
  /** Default ['q', 'k', 'v']. */
  inputs?: ReceiverInput[];
}

/**
 * Path patching (Wang et al. 2023): the share of the clean-corrupted gap that flows from `sender` to the receivers.
 * 1) clean run with the sender's z from the corrupted run and every other head frozen to its clean z (MLPs recompute);
 *    record the receivers' q/k/v there (or take its logits, for receivers 'logits');
 * 2) clean run with only the receivers' q/k/v replaced by the recorded ones; measure.
 * Returns (m_clean − m) / (m_clean − m_corr). Pass `base` (from {@link baselines}) to reuse the clean/corrupted caches.
 */
export function pathPatching(
  model: PatchableModel,
  pair: PatchingPair,
  sender: HeadSite,
  opts: PathPatchingOptions,
  base?: ReturnType<typeof baselines>,
): number {
  checkSite('pathPatching', model, sender);
  const inputs = opts.inputs ?? ['q', 'k', 'v'];
  for (const i of inputs)
    if (i !== 'q' && i !== 'k' && i !== 'v')
      throw new ShapeError(`pathPatching: inputs must be 'q', 'k' or 'v', got '${i}'`);
  if (opts.receivers !== 'logits') {
    for (const r of opts.receivers) {
      checkSite('pathPatching', model, r);
      if (r.layer <= sender.layer)
        throw new ShapeError(
          `pathPatching: a receiver must be in a later layer than the sender (layer ${sender.layer}), got layer ${r.layer}`,
        );
    }
  }
  const own = !base;
  const b = base ?? baselines(model, pair);
  const gap = b.clean - b.corrupted;
  try {
    const freeze: HookSpec[] = [];
    for (let l = 0; l < model.config.layers; l++) {
      const others = Array.from({ length: model.config.heads }, (_, h) => h).filter(
        (h) => !(l === sender.layer && h === sender.head),
      );
      freeze.push([
        zName(l),
        (z) => {
          const frozen = patchHeadSlice(z, b.cleanCache.get(zName(l)), others);
          if (l !== sender.layer) return frozen;
          const out = patchHeadSlice(frozen, b.corruptedCache.get(zName(l)), [sender.head], posList(sender));
          frozen.dispose();
          return out;
        },
      ]);
    }
    let m: number;
    if (opts.receivers === 'logits') {
      const logits = runWithHooks(model, pair.clean, freeze);
      m = mean(logitDiffs(logits, pair.correct, pair.wrong));
      logits.dispose();
    } else {
      const receivers = opts.receivers;
      const names = [...new Set(receivers.flatMap((r) => inputs.map((i) => `blocks.${r.layer}.attn.hook_${i}`)))];
      const rec = runAndRecord(model, pair.clean, new RegExp(`^(${names.map(escapeRe).join('|')})$`), freeze);
      rec.logits.dispose();
      const patch: HookSpec[] = names.map((name) => {
        const layer = Number(name.split('.')[1]);
        const hs = receivers.filter((r) => r.layer === layer);
        return [name, (x) => patchHeadSlice(x, rec.cache.get(name), [...new Set(hs.map((r) => r.head))], posOf(hs))];
      });
      try {
        const logits = runWithHooks(model, pair.clean, patch);
        m = mean(logitDiffs(logits, pair.correct, pair.wrong));
        logits.dispose();
      } finally {
        rec.cache.dispose();
      }
    }
    return gap === 0 ? 0 : (b.clean - m) / gap;
  } finally {
    if (own) {
      b.cleanCache.dispose();
      b.corruptedCache.dispose();
    }
  }
}

const posList = (s: HeadSite) => (s.pos === undefined ? undefined : [s.pos]);
const posOf = (hs: HeadSite[]) =>
  hs.some((r) => r.pos === undefined) ? undefined : [...new Set(hs.map((r) => r.pos as number))];
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Path patching from every head of the layers before the receivers' earliest layer: [layer][head] (NaN after). */
export function pathPatchingGrid(model: PatchableModel, pair: PatchingPair, opts: PathPatchingOptions): number[][] {
  const base = baselines(model, pair);
  const first = opts.receivers === 'logits' ? model.config.layers : Math.min(...opts.receivers.map((r) => r.layer));
  try {
    return Array.from({ length: model.config.layers }, (_, l) =>
      Array.from({ length: model.config.heads }, (_, h) =>
        l < first ? pathPatching(model, pair, { layer: l, head: h }, opts, base) : Number.NaN,
      ),
    );
  } finally {
    base.cleanCache.dispose();
    base.corruptedCache.dispose();
  }
}

/** Per layer, every head's z averaged over the batch of `tokens`: [1, h, s, d] (the caller disposes them). */
export function meanHeadOutputs(model: PatchableModel, tokens: tf.Tensor2D): tf.Tensor4D[] {
  const { logits, cache } = runAndRecord(model, tokens);
  try {
    return Array.from({ length: model.config.layers }, (_, l) =>
      tf.tidy(() => cache.get(zName(l)).mean(0, true) as tf.Tensor4D),
    );
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

/** Hooks that replace the heads' outputs by their means (from {@link meanHeadOutputs}) at every position. */
export function meanAblationHooks(sites: HeadSite[], means: tf.Tensor4D[]): HookSpec[] {
  const layers = [...new Set(sites.map((s) => s.layer))];
  return layers.map((l) => {
    if (!means[l]) throw new ShapeError(`meanAblationHooks: no mean for layer ${l} (means has ${means.length} layers)`);
    const hs = sites.filter((s) => s.layer === l);
    return [zName(l), patchHook(means[l], [...new Set(hs.map((s) => s.head))], posOf(hs))] as HookSpec;
  });
}

/** Logits [b, s, V] with the heads mean-ablated. */
export function meanAblate(
  model: PatchableModel,
  tokens: tf.Tensor2D,
  sites: HeadSite[],
  means: tf.Tensor4D[],
): tf.Tensor3D {
  for (const s of sites) checkSite('meanAblate', model, s);
  return runWithHooks(model, tokens, meanAblationHooks(sites, means));
}

/** The weights direct logit attribution reads, by ToyLM's parameter names (variablesOf: `blocks.{l}.attn.wo`...). */
export interface DlaWeights {
  wo: tf.Tensor[];
  lnGamma: tf.Tensor;
  unembed: tf.Tensor; // [m, V]
}

/** The DLA weights of a ToyLM-like layer (untied unembedding; tied: the embedding transposed). */
export function dlaWeights(model: {
  trainableWeights: { originalName: string; read(): tf.Tensor }[];
  config: { layers: number };
  build?: () => void;
}): DlaWeights {
  model.build?.();
  const byName = new Map(model.trainableWeights.map((w) => [w.originalName, w.read()]));
  const get = (n: string) => {
    const t = byName.get(n);
    if (!t) throw new ShapeError(`dlaWeights: the model has no weight '${n}'; has ${[...byName.keys()].join(', ')}`);
    return t;
  };
  const wo = Array.from({ length: model.config.layers }, (_, l) => get(`blocks.${l}.attn.wo`));
  const unembed = byName.get('unembed') ?? get('embed').transpose();
  return { wo, lnGamma: get('ln_final.gamma'), unembed };
}

/**
 * Direct logit attribution per head at position `pos` (default last): [layer][head] mean over rows of each head's
 * direct contribution to logit(correct) − logit(wrong), through the final layer norm with its scale frozen at the run's.
 */
export function directLogitAttribution(
  model: PatchableModel,
  weights: DlaWeights,
  tokens: tf.Tensor2D,
  correct: ArrayLike<number>,
  wrong: ArrayLike<number>,
  pos?: number,
): { heads: number[][]; perRow: number[][][] } {
  const { layers, heads } = model.config;
  const last = `blocks.${layers - 1}.hook_resid_post`;
  const { logits, cache } = runAndRecord(model, tokens, new RegExp(`attn\\.hook_z$|^${escapeRe(last)}$`));
  logits.dispose();
  const [b, s] = tokens.shape;
  const p = pos ?? s - 1;
  try {
    const out = tf.tidy(() => {
      const resid = cache.get(last).slice([0, p, 0], [b, 1, -1]).squeeze([1]); // [b, m]
      const centred = resid.sub(resid.mean(-1, true));
      const scale = centred.square().mean(-1).add(1e-5).sqrt(); // [b]
      const ids = (a: ArrayLike<number>) => tf.tensor1d(Array.from(a), 'int32');
      const direction = tf
        .gather(weights.unembed, ids(correct), 1)
        .sub(tf.gather(weights.unembed, ids(wrong), 1))
        .transpose(); // [b, m]
      return Array.from({ length: layers }, (_, l) => {
        const z = cache.get(zName(l));
        const zp = z.slice([0, 0, p, 0], [b, heads, 1, z.shape[3] as number]).squeeze([2]); // [b, h, d]
        return headLogitContributions(zp, weights.wo[l], scale, weights.lnGamma, direction).arraySync();
      });
    });
    const perRow = out; // [layer][b][h]
    return {
      heads: perRow.map((rows) => Array.from({ length: heads }, (_, h) => mean(rows.map((r) => r[h])))),
      perRow,
    };
  } finally {
    cache.dispose();
  }
}

/** One attention-pattern edit: the pattern [b, s, t] of (layer, head) -> the new pattern (rows should sum to 1). */
export interface PatternEdit {
  layer: number;
  head: number;
  edit: (pattern: tf.Tensor3D) => tf.Tensor3D;
}

/**
 * Hooks that apply attention-pattern edits: each edited head's output becomes A' v (A' the edited pattern, v its values
 * from the same pass), the other heads keep theirs. Install them for a forward pass (runWithHooks). Multi-head
 * attention only (kv heads = heads).
 */
export function patternEditHooks(model: PatchableModel, edits: PatternEdit[]): HookSpec[] {
  for (const e of edits) checkSite('patternEditHooks', model, e);
  const layers = [...new Set(edits.map((e) => e.layer))];
  const hooks: HookSpec[] = [];
  for (const l of layers) {
    const state: { v?: tf.Tensor; pattern?: tf.Tensor } = {};
    const mine = edits.filter((e) => e.layer === l);
    hooks.push([`blocks.${l}.attn.hook_v`, (v) => void (state.v = v)]);
    hooks.push([`blocks.${l}.attn.hook_pattern`, (w) => void (state.pattern = w)]);
    hooks.push([
      zName(l),
      (z) => {
        const { v, pattern } = state;
        if (!v || !pattern) throw new Error(`patternEditHooks: layer ${l}: no values or pattern seen in this pass`);
        if (v.shape[1] !== z.shape[1])
          throw new ShapeError(
            `patternEditHooks: layer ${l} has ${v.shape[1]} kv heads for ${z.shape[1]} heads; needs multi-head attention`,
          );
        const [b, h, s, d] = z.shape as [number, number, number, number];
        const t = v.shape[2] as number;
        const parts: tf.Tensor[] = [];
        for (let hh = 0; hh < h; hh++) {
          const e = mine.find((x) => x.head === hh);
          const own = z.slice([0, hh, 0, 0], [b, 1, s, d]);
          if (!e) {
            parts.push(own);
            continue;
          }
          const a = pattern.slice([0, hh, 0, 0], [b, 1, s, t]).reshape([b, s, t]) as tf.Tensor3D;
          const edited = e.edit(a);
          if (edited.shape.join() !== a.shape.join())
            throw new ShapeError(
              `patternEditHooks: the edit of L${l}H${hh} must return shape ${fmt(a.shape)}, got ${fmt(edited.shape)}`,
            );
          const vh = v.slice([0, hh, 0, 0], [b, 1, t, d]).reshape([b, t, d]);
          parts.push(edited.matMul(vh).reshape([b, 1, s, d]));
        }
        return tf.concat(parts, 1);
      },
    ]);
  }
  return hooks;
}

/** Hooks that project (layer, head)'s queries and keys onto bases [d, r] (see {@link topDirections}). */
export function lowRankQKHooks(sites: { layer: number; head: number; q: tf.Tensor; k: tf.Tensor }[]): HookSpec[] {
  const out: HookSpec[] = [];
  for (const which of ['q', 'k'] as const)
    for (const s of sites)
      out.push([
        `blocks.${s.layer}.attn.hook_${which}`,
        (x) =>
          tf.tidy(() => {
            const [b, h, n, d] = x.shape;
            const own = x.slice([0, s.head, 0, 0], [b, 1, n, d]);
            const proj = projectRows(own, s[which]);
            const parts = [];
            if (s.head > 0) parts.push(x.slice([0, 0, 0, 0], [b, s.head, n, d]));
            parts.push(proj);
            if (s.head < h - 1) parts.push(x.slice([0, s.head + 1, 0, 0], [b, h - s.head - 1, n, d]));
            return tf.concat(parts, 1);
          }),
      ]);
  return out;
}
