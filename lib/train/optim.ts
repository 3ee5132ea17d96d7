/**
 * Adam and AdamW over `tf.Variable[]`, written on tf ops (tfjs ships Adam but neither AdamW nor state export).
 *
 * Adam (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980), with t the 1-based update count:
 *   m_t = β1·m_{t-1} + (1-β1)·g          v_t = β2·v_{t-1} + (1-β2)·g²
 *   p  -= lr · (m_t / (1-β1^t)) / (sqrt(v_t / (1-β2^t)) + eps)
 * Adam's `weightDecay` is the classic L2 term (g += wd·p, coupled with the adaptive scaling).
 * AdamW (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101) decouples it, as PyTorch does:
 *   p *= 1 - lr·wd   before the Adam step.
 *
 * State: two slot variables (m, v) per parameter, created on first use. They are real tensors, counted by
 * `tf.memory().numTensors`, until `dispose()`.
 */
import * as tf from '@tensorflow/tfjs';
import { adamUpdate } from '../backend/native.js';

export type OptimizerType = 'adam' | 'adamw';

export interface AdamOptions {
  /** Learning rate used when `apply` is given none (a schedule passes its own each step). Default 1e-3. */
  lr?: number;
  /** [β1, β2]; default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** L2 penalty (Adam) or decoupled decay (AdamW). Default 0 for Adam, 0.01 for AdamW (PyTorch's defaults). */
  weightDecay?: number;
  /**
   * Variables whose name (their key, when variables are given as a record) makes this return true get no weight decay
   * (e.g. `noDecayBiasNorm` for biases and norms). Default: every variable is decayed.
   */
  noDecay?: (name: string) => boolean;
}

/** Serializable optimizer settings: the `optimizer` option of `train`. */
export interface OptimizerConfig extends Omit<AdamOptions, 'noDecay'> {
  type: OptimizerType;
  noDecay?: (name: string) => boolean;
}

/** A snapshot of an optimizer for checkpoints: plain JSON plus the slot tensors, keyed `<variable>/m`, `<variable>/v`. */
export interface OptimizerState {
  type: OptimizerType;
  /** Updates applied so far (the `t` of the bias correction). */
  step: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  slots: Record<string, tf.Tensor>;
}

/**
 * Names like `.../bias`, `mlp.b1`, `ln1.gamma`, `.../beta` (with tfjs's `_N` uniqueness suffix or not), or containing
 * `norm`: the usual no-decay set.
 */
export function noDecayBiasNorm(name: string): boolean {
  return /(^|[/_.])(bias|b\d*|gamma|beta)(_\d+)?$/i.test(name) || /norm/i.test(name);
}

type Grads = tf.NamedTensorMap | tf.Tensor[];

/**
 * Variables as a list, or keyed by a stable name (`variablesOf(layer)`). tfjs makes every variable name unique per
 * process (a second model's `embed` becomes `embed_1`), so checkpoints use the keys, when given, to match a fresh model.
 */
export type VariableSet = readonly tf.Variable[] | Readonly<Record<string, tf.Variable>>;

/** [checkpoint key, variable] pairs: the record's keys, or each variable's own name. */
export function variableEntries(vs: VariableSet): [string, tf.Variable][] {
  return isVariableList(vs) ? vs.map((v) => [v.name, v]) : Object.entries(vs);
}

function isVariableList(vs: VariableSet): vs is readonly tf.Variable[] {
  return Array.isArray(vs);
}

export class Adam {
  readonly type: OptimizerType = 'adam';
  readonly variables: readonly tf.Variable[];
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly noDecay: (name: string) => boolean;
  /** Updates applied so far. */
  step = 0;
  /** Names of the variables that get weight decay. */
  private readonly decayed: Set<string>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(variableSet: VariableSet, options: AdamOptions = {}) {
    const entries = variableEntries(variableSet);
    const variables = entries.map(([, v]) => v);
    const names = new Set<string>();
    for (const x of variables) {
      if (names.has(x.name)) throw new Error(`${this.constructor.name}: variable name "${x.name}" appears twice`);
      names.add(x.name);
    }
    this.variables = [...variables];
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? this.defaultWeightDecay();
    this.noDecay = options.noDecay ?? (() => false);
    this.decayed = new Set(entries.filter(([key]) => !this.noDecay(key)).map(([, v]) => v.name));
    const [b1, b2] = this.betas;
    for (const [arg, x] of [
      ['lr', this.lr],
      ['eps', this.eps],
      ['weightDecay', this.weightDecay],
    ] as const) {
      if (!(x >= 0)) throw new Error(`${this.constructor.name}: ${arg} must be >= 0, got ${x}`);
    }
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) {
      throw new Error(`${this.constructor.name}: betas must lie in [0, 1), got [${b1}, ${b2}]`);
    }
  }

  protected defaultWeightDecay(): number {
    return 0;
  }

  /**
   * One update. `grads` is what `tf.variableGrads` returns (keyed by variable name; variables without a gradient are
   * skipped, decay included, as in PyTorch) or an array aligned with `variables`. Does not dispose `grads`.
   */
  apply(grads: Grads, lr: number = this.lr): void {
    const named = Array.isArray(grads) ? this.alignedToNamed(grads) : grads;
    for (const p of this.variables) {
      const g = named[p.name];
      if (g != null && !shapesEqual(g.shape, p.shape)) {
        throw new Error(
          `${this.type}: gradient for "${p.name}" has shape [${g.shape}] but the variable has [${p.shape}]`,
        );
      }
    }
    this.step += 1;
    const t = this.step;
    const [b1, b2] = this.betas;
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    tf.tidy(() => {
      for (const p of this.variables) {
        const g0 = named[p.name];
        if (g0 == null) continue;
        const decay = this.weightDecay > 0 && this.decayed.has(p.name) ? this.weightDecay : 0;
        // wasm-native: one fused kernel per variable (same formula), instead of ~13 ops.
        const [m, v] = this.slotsFor(p);
        const fused = adamUpdate(p, m, v, g0, {
          lr,
          beta1: b1,
          beta2: b2,
          eps: this.eps,
          biasCorrection1: bc1,
          biasCorrection2: bc2,
          l2: decay > 0 && this.type === 'adam' ? decay : 0,
          decoupledDecay: decay > 0 && this.type === 'adamw' ? lr * decay : 0,
        });
        if (fused) {
          m.assign(fused[1]);
          v.assign(fused[2]);
          p.assign(fused[0]);
          continue;
        }
        let g: tf.Tensor = g0;
        let w: tf.Tensor = p;
        if (decay > 0 && this.type === 'adam') g = tf.add(g, tf.mul(p, decay));
        if (decay > 0 && this.type === 'adamw') w = tf.mul(p, 1 - lr * decay);
        const m1 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        m.assign(m1);
        v.assign(v1);
        const denom = tf.add(tf.sqrt(tf.div(v1, bc2)), this.eps);
        p.assign(tf.sub(w, tf.mul(tf.div(m1, denom), lr / bc1)));
      }
    });
  }

  /** The optimizer's state for a checkpoint. The slot tensors are the live ones: read or save them, do not dispose them. */
  state(): OptimizerState {
    const slots: Record<string, tf.Tensor> = {};
    for (const [name, m] of this.m) slots[`${name}/m`] = m;
    for (const [name, v] of this.v) slots[`${name}/v`] = v;
    return {
      type: this.type,
      step: this.step,
      lr: this.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.weightDecay,
      slots,
    };
  }

  /**
   * Restore a state from `state()` or a checkpoint. Slots are copied, so the caller may dispose `state.slots` after.
   * Throws if a slot's shape differs from its variable's or names a variable this optimizer does not have.
   */
  loadState(state: OptimizerState): void {
    if (state.type !== this.type)
      throw new Error(`${this.type}.loadState: state is for '${state.type}', not '${this.type}'`);
    const byName = new Map(this.variables.map((p) => [p.name, p]));
    for (const [key, t] of Object.entries(state.slots)) {
      const cut = key.lastIndexOf('/');
      const name = key.slice(0, cut);
      const kind = key.slice(cut + 1);
      const p = byName.get(name);
      if (!p || (kind !== 'm' && kind !== 'v')) {
        throw new Error(`${this.type}.loadState: slot "${key}" matches no variable of this optimizer`);
      }
      if (!shapesEqual(t.shape, p.shape)) {
        throw new Error(
          `${this.type}.loadState: slot "${key}" has shape [${t.shape}] but variable "${name}" has [${p.shape}]`,
        );
      }
    }
    this.disposeSlots();
    for (const [key, t] of Object.entries(state.slots)) {
      const cut = key.lastIndexOf('/');
      const map = key.slice(cut + 1) === 'm' ? this.m : this.v;
      map.set(
        key.slice(0, cut),
        tf.tidy(() => tf.variable(tf.cast(t, 'float32'), false)),
      );
    }
    this.step = state.step;
    this.lr = state.lr;
  }

  /** Free the slot tensors. The optimizer can still be used; slots are recreated as zeros. */
  dispose(): void {
    this.disposeSlots();
  }

  /** Number of tensors the optimizer holds (2 per variable that has received a gradient). */
  get numTensors(): number {
    return this.m.size + this.v.size;
  }

  private disposeSlots(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }

  private slotsFor(p: tf.Variable): [tf.Variable, tf.Variable] {
    let m = this.m.get(p.name);
    let v = this.v.get(p.name);
    if (!m || !v) {
      // Variables outlive any enclosing tidy; only the zeros they copy are freed.
      m = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
      v = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
      this.m.set(p.name, m);
      this.v.set(p.name, v);
    }
    return [m, v];
  }

  private alignedToNamed(grads: tf.Tensor[]): tf.NamedTensorMap {
    if (grads.length !== this.variables.length) {
      throw new Error(`${this.type}.apply: got ${grads.length} gradients for ${this.variables.length} variables`);
    }
    const named: tf.NamedTensorMap = {};
    this.variables.forEach((p, i) => (named[p.name] = grads[i]));
    return named;
  }
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  override readonly type: OptimizerType = 'adamw';

  protected override defaultWeightDecay(): number {
    return 0.01;
  }
}

/** Build an optimizer from its config. */
export function makeOptimizer(variables: VariableSet, config: OptimizerConfig): Adam {
  const { type, ...options } = config;
  if (type === 'adam') return new Adam(variables, options);
  if (type === 'adamw') return new AdamW(variables, options);
  throw new Error(`makeOptimizer: unknown optimizer type '${String(type)}'; expected 'adam' or 'adamw'`);
}

/** sqrt(Σ‖g‖²) over all gradients, as a scalar tensor. */
export function globalNorm(grads: Grads): tf.Scalar {
  const list = Array.isArray(grads) ? grads : Object.values(grads);
  return tf.tidy(() => {
    if (list.length === 0) return tf.scalar(0);
    return tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
  });
}

/**
 * Scale gradients so their global norm is at most `maxNorm` (PyTorch's `clip_grad_norm_`: factor maxNorm/(norm+1e-6),
 * capped at 1). Returns new tensors (the caller disposes them and the inputs) and the norm before clipping.
 * Pass `norm` when it is already known to skip the read.
 */
export function clipByGlobalNorm<G extends Grads>(
  grads: G,
  maxNorm: number,
  norm?: number,
): { grads: G; norm: number } {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const n = norm ?? tf.tidy(() => globalNorm(grads).dataSync()[0]);
  const factor = Math.min(1, maxNorm / (n + 1e-6));
  const scale = (g: tf.Tensor): tf.Tensor => (factor < 1 ? tf.mul(g, factor) : tf.clone(g));
  if (Array.isArray(grads)) return { grads: grads.map(scale) as G, norm: n };
  const out: tf.NamedTensorMap = {};
  for (const [k, g] of Object.entries(grads)) out[k] = scale(g);
  return { grads: out as G, norm: n };
}

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
