/**
 * The library's one seeded parameter factory: named trainable variables (and plain seeded draws), their initialisers,
 * the seed each random one is drawn with, unique tfjs names and disposal.
 *
 *   const f = new ParamFactory({ scope: 'oat', seed: 3 });
 *   const wq = f.child('enc.0.attn').variable('wq', [64, 64], 'xavierUniform');   // key 'enc.0.attn.wq'
 *   train({ variables: f.params(), ... });  ...  f.dispose();
 *
 * Seeds. A random parameter's tfjs seed comes from the factory's seed stream and the parameter's key, so adding a
 * parameter does not move the others. tfjs reads a seed of 0 as "no seed" (it draws from Math.random), so every stream
 * passes its result through `tfSeed`, which maps 0 to a fixed seed and leaves every other seed as it is. The streams are
 * the ones the library's models were drawn with, kept so that the same seed gives the same weights (and figures):
 *   mixed    weightSeed(seed, [prefix.]key) = hashSeed(hashSeed(seed) ^ fnv1a(key)) & 0x7fffffff   (the default;
 *            OAT, the pointer models, the brain models with prefix = their model name)
 *   joined   fnv1a(`${seed}:${key}`)                                   (ToyLM, TransformerBlock, MultiHeadAttention)
 *   counter  start + n for the factory's n-th random parameter (0, 1, ...) (SparseLM with start = 1000·seed, Seer and
 *            the routing centroids with start = seed)
 *
 * Names. tfjs refuses two live variables of one name, so each factory claims a scope no live variable uses (`oat`, or
 * `oat_1` while another model holds `oat`), found from tfjs's own registry: no module counter, no Math.random.
 */
import * as tf from '@tensorflow/tfjs';
import { hashSeed, hashString, tfSeed } from '../util/random.js';

/** What tf.layers.Layer.addWeight calls: a tfjs initializer, or an object with its `apply`. */
type TfInitializer = Pick<ReturnType<typeof tf.initializers.zeros>, 'apply'>;

/**
 * How a parameter starts. `{ normal: std }` is N(0, std²); `{ uniform: limit }` is U(−limit, limit); `{ values }` gives
 * every value (row-major), e.g. an LSTM's forget-gate bias of ones.
 * 'glorotUniform' is tf.initializers.glorotUniform (limit √(3 / ((fanIn + fanOut) / 2)), Keras's arithmetic);
 * 'xavierUniform' is the same distribution with the limit computed as √(6 / (fanIn + fanOut)) on a 2-D shape. The two
 * limits differ in the last bit for about one fan pair in seven, so each model keeps the one it was drawn with.
 */
export type Init =
  | 'zeros'
  | 'ones'
  | 'glorotUniform'
  | 'xavierUniform'
  | { constant: number }
  | { normal: number }
  | { uniform: number }
  | { values: ArrayLike<number> };

/** Where each random parameter's seed comes from (see the module header); a plain number n means `{ kind: 'mixed', seed: n }`. */
export type SeedStream =
  | { kind: 'mixed'; seed: number; prefix?: string }
  | { kind: 'joined'; seed: number }
  | { kind: 'counter'; start: number };

export interface ParamFactoryOptions {
  /** Scope of the tfjs variable names, `${scope}/${key}` (with a suffix while another live model holds the scope). */
  scope: string;
  seed: number | SeedStream;
  /**
   * Make the variables as this layer's weights (tf.layers.Layer.addWeight, under the layer's own names) so that the
   * layer lists, saves, loads and disposes them.
   */
  layer?: tf.layers.Layer;
}

/** The seed for parameter `key` under run seed `seed` in the mixed stream (a 31-bit integer). */
export function weightSeed(seed: number, key: string): number {
  return hashSeed(hashSeed(seed) ^ hashString(key)) & 0x7fffffff;
}

/** The limit of the 'xavierUniform' init for a [fanIn, fanOut] weight. */
export function xavierLimit(fanIn: number, fanOut: number): number {
  return Math.sqrt(6 / (fanIn + fanOut));
}

/** A factory's state, shared by its children. */
interface Store {
  readonly base: string;
  scope?: string;
  readonly seeds: SeedStream;
  draws: number;
  readonly layer?: tf.layers.Layer;
  readonly params: Record<string, tf.Variable>;
  disposed: boolean;
}

export class ParamFactory {
  private readonly store: Store;
  private readonly prefix: string;

  constructor(options: ParamFactoryOptions);
  constructor(options: ParamFactoryOptions | Store, prefix?: string);
  constructor(options: ParamFactoryOptions | Store, prefix = '') {
    this.prefix = prefix;
    if ('params' in options) {
      this.store = options;
      return;
    }
    if (typeof options.scope !== 'string' || options.scope === '' || options.scope.includes('/')) {
      throw new Error(`ParamFactory: scope must be a non-empty name without '/', got ${JSON.stringify(options.scope)}`);
    }
    const seeds = typeof options.seed === 'number' ? ({ kind: 'mixed', seed: options.seed } as const) : options.seed;
    checkSeeds(seeds);
    this.store = { base: options.scope, seeds, draws: 0, layer: options.layer, params: {}, disposed: false };
  }

  /** A view whose keys are prefixed with `${prefix}.`; it shares this factory's seeds, variables and disposal. */
  child(prefix: string): ParamFactory {
    checkKey('ParamFactory.child', 'prefix', prefix);
    return new ParamFactory(this.store, this.key(prefix));
  }

  /** A trainable float32 variable under key `${prefix}.${name}`, initialised by `init` (seeded from the key). */
  variable(name: string, shape: number[], init: Init): tf.Variable {
    const s = this.store;
    const key = this.checked('ParamFactory.variable', name, shape);
    if (key in s.params)
      throw new Error(
        `ParamFactory.variable: '${key}' already exists in scope '${s.base}'; parameter names must be unique`,
      );
    const initializer = this.initializer('ParamFactory.variable', key, shape, init);
    let v: tf.Variable;
    if (s.layer) {
      // addWeight is protected in the typings but is the documented way for custom layers to own weights.
      const add = (s.layer as unknown as { addWeight: tf.layers.Layer['addWeight'] }).addWeight.bind(s.layer);
      v = add(key, shape, 'float32', initializer as ReturnType<typeof tf.initializers.zeros>).read() as tf.Variable;
    } else {
      const tfName = this.tfName(key);
      v = tf.tidy(() => tf.variable(initializer.apply(shape, 'float32'), true, tfName));
    }
    s.params[key] = v;
    return v;
  }

  /**
   * A plain float32 tensor drawn as `variable` would draw key `${prefix}.${name}` (the counter stream advances alike),
   * but neither a variable nor kept by the factory: state that a model replaces rather than trains (routing centroids).
   * The caller disposes it.
   */
  draw(name: string, shape: number[], init: Init): tf.Tensor {
    const key = this.checked('ParamFactory.draw', name, shape);
    const initializer = this.initializer('ParamFactory.draw', key, shape, init);
    return tf.tidy(() => initializer.apply(shape, 'float32'));
  }

  /** Every variable this factory and its children made, by key, in the order they were made. */
  params(): Record<string, tf.Variable> {
    return { ...this.store.params };
  }

  /** Frees every variable the factory made. A layer's weights belong to the layer: dispose the layer instead. */
  dispose(): void {
    const s = this.store;
    if (s.layer)
      throw new Error(
        `ParamFactory.dispose: the variables of scope '${s.base}' are weights of layer '${s.layer.name}'; dispose the layer`,
      );
    if (s.disposed) return;
    tf.dispose(Object.values(s.params));
    s.disposed = true;
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** The key of `name` once the name, the shape and the factory's state are valid for a new parameter. */
  private checked(fn: string, name: string, shape: number[]): string {
    checkKey(fn, 'name', name);
    const key = this.key(name);
    if (this.store.disposed)
      throw new Error(`${fn}: '${key}': the factory of scope '${this.store.base}' has been disposed`);
    if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0))
      throw new Error(`${fn}: '${key}' needs a shape of positive integers, got ${JSON.stringify(shape)}`);
    return key;
  }

  /** The seed of the next random parameter, `key`. */
  private seed(key: string): number {
    const s = this.store.seeds;
    if (s.kind === 'mixed') return tfSeed(weightSeed(s.seed, s.prefix ? `${s.prefix}.${key}` : key));
    if (s.kind === 'joined') return tfSeed(hashString(`${s.seed}:${key}`));
    return tfSeed(s.start + this.store.draws++);
  }

  private initializer(method: string, key: string, shape: number[], init: Init): TfInitializer {
    const fn = `${method}: '${key}'`;
    if (init === 'zeros') return tf.initializers.zeros();
    if (init === 'ones') return tf.initializers.ones();
    if (init === 'glorotUniform') return tf.initializers.glorotUniform({ seed: this.seed(key) });
    if (init === 'xavierUniform') {
      if (shape.length !== 2)
        throw new Error(`${fn}: 'xavierUniform' needs a 2-D [fanIn, fanOut] shape, got [${shape}]`);
      const a = xavierLimit(shape[0], shape[1]);
      return tf.initializers.randomUniform({ minval: -a, maxval: a, seed: this.seed(key) });
    }
    if (typeof init === 'object' && init !== null) {
      if ('constant' in init && Number.isFinite(init.constant))
        return tf.initializers.constant({ value: init.constant });
      if ('normal' in init && init.normal > 0 && Number.isFinite(init.normal)) {
        return tf.initializers.randomNormal({ mean: 0, stddev: init.normal, seed: this.seed(key) });
      }
      if ('uniform' in init && init.uniform > 0 && Number.isFinite(init.uniform)) {
        return tf.initializers.randomUniform({ minval: -init.uniform, maxval: init.uniform, seed: this.seed(key) });
      }
      if ('values' in init && init.values?.length !== undefined) {
        const { values } = init;
        const size = shape.reduce((a, d) => a * d, 1);
        if (values.length !== size)
          throw new Error(`${fn}: { values } has ${values.length} values for shape [${shape}] (${size})`);
        return { apply: (sh: number[]) => tf.tensor(Array.from(values), sh, 'float32') };
      }
    }
    throw new Error(
      `${fn}: init must be 'zeros', 'ones', 'glorotUniform', 'xavierUniform', { constant: finite }, { normal: std > 0 }, { uniform: limit > 0 } or { values }, got ${JSON.stringify(init)}`,
    );
  }

  /** `${scope}/${key}` under a scope no other live variable uses (claimed at the first variable, again on a clash). */
  private tfName(key: string): string {
    const s = this.store;
    const live = tf.engine().registeredVariables;
    if (s.scope === undefined || `${s.scope}/${key}` in live) {
      const taken = new Set(Object.keys(live).map((n) => n.split('/', 1)[0]));
      let k = 0;
      while (taken.has(k ? `${s.base}_${k}` : s.base)) k++;
      s.scope = k ? `${s.base}_${k}` : s.base;
    }
    return `${s.scope}/${key}`;
  }
}

function checkKey(fn: string, arg: string, name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('/')) {
    throw new Error(`${fn}: ${arg} must be a non-empty name without '/', got ${JSON.stringify(name)}`);
  }
}

function checkSeeds(s: SeedStream): void {
  const value = s?.kind === 'counter' ? s.start : s?.kind === 'mixed' || s?.kind === 'joined' ? s.seed : undefined;
  if (value === undefined)
    throw new Error(
      `ParamFactory: seed must be a number or a stream { kind: 'mixed' | 'joined' | 'counter', ... }, got ${JSON.stringify(s)}`,
    );
  if (!Number.isFinite(value))
    throw new Error(
      `ParamFactory: the ${s.kind} stream's ${s.kind === 'counter' ? 'start' : 'seed'} must be a finite number, got ${value}`,
    );
}
