/**
 * Artifact codecs for the experiment cache (lib/experiments/cache.ts): how an experiment whose artifacts hold trained
 * model objects gets them stored as config + weights and rebuilt, so that a warm run (a report, a notebook) does not
 * retrain.
 *
 * Two pieces:
 *   - a model kind (`ModelKind`): recognises one model class, turns a model into plain data and tensors and back.
 *     `weightsKind` makes one for any model with a config and `variables()` (an array, or a record from a
 *     ParamFactory): stored as { config, weights }, rebuilt with `make(config)` and the weights assigned in order
 *     (dtype and shape checked); `toyLMKind` is the one for ToyLM.
 *   - `artifactCodec(kinds, { rebuild })`: walks the artifacts (plain objects, arrays and Map values), replaces every model a kind
 *     recognises by a reference (a model that appears twice is stored once and rebuilt once), and on decode rebuilds the
 *     models, puts them back and gives the restored artifacts a `dispose` that frees the rebuilt models and every
 *     restored tensor. Functions other than `dispose` cannot be stored: name them in `drop` and put them back in
 *     `rebuild(artifacts, config)` (e.g. a closure over the model). Anything else that is not plain data (an
 *     unrecognised class) is left for the cache to refuse, so such a run is not cached rather than cached wrongly.
 *
 *   export const myExperiment = defineExperiment<MyConfig, MyArtifacts>({
 *     ...,
 *     artifactCodec: artifactCodec([toyLMKind]),   // artifacts { models: { model: ToyLM, ... }[], test, dispose }
 *   });
 *
 * What decode cannot restore is what the weights and config do not hold: a model's hooks registered after training,
 * optimiser state, a training-time random stream. An experiment whose artifacts need those gives its own kind.
 */
import * as tf from '@tensorflow/tfjs';
import { type TokenBatch, withTokenBatchMethods } from '../data/batch.js';
import { CharTokenizer } from '../data/tokenizer.js';
import { ToyLM, type ToyLMConfig } from '../layers/toylm.js';
import type { ArtifactCodec } from './types.js';

/** One model class: recognise it, store it as plain data and tensors, rebuild it, free it. */
export interface ModelKind<M = unknown> {
  /** Names the kind in stored entries (a stored entry of an unknown kind does not restore). */
  name: string;
  test(x: unknown): x is M;
  /**
   * Plain data and tensors (the tensors may be the model's own variables: the cache copies them). A model built over
   * another one (heads over a backbone) stores `ref(backbone)` and gets the rebuilt backbone from `resolve` on decode.
   */
  encode(model: M, ref: (other: object) => unknown): unknown;
  /** The model, from what `encode` returned; it owns (keeps or disposes) the tensors it is given. */
  decode(stored: unknown, resolve: (ref: unknown) => unknown): M;
  dispose(model: M): void;
}

// biome-ignore lint/suspicious/noExplicitAny: a constructor of any arguments, for instanceof
type Ctor<M> = abstract new (...args: any[]) => M;

type Variables = tf.Variable[] | Record<string, tf.Variable>;

function variableList(vars: Variables): { names: string[]; values: tf.Variable[] } {
  if (Array.isArray(vars)) return { names: vars.map((v) => v.name), values: vars };
  const names = Object.keys(vars);
  return { names, values: names.map((k) => vars[k]!) };
}

/** Assign `weights` to `vars` in order, checking count, dtype and shape; disposes `weights`. */
export function assignWeights(fn: string, vars: Variables, weights: tf.Tensor[], names?: string[]): void {
  const { names: have, values } = variableList(vars);
  try {
    if (values.length !== weights.length)
      throw new Error(
        `${fn}: the stored model has ${weights.length} weights, the rebuilt one ${values.length} variables`,
      );
    values.forEach((v, i) => {
      const w = weights[i]!;
      if (names && !Array.isArray(vars) && names[i] !== have[i])
        throw new Error(
          `${fn}: stored weight ${i} is '${names[i]}', the rebuilt model's variable ${i} is '${have[i]}'`,
        );
      if (w.dtype !== v.dtype || w.shape.join(',') !== v.shape.join(','))
        throw new Error(
          `${fn}: weight ${i} (${have[i]}) is stored as ${w.dtype} [${w.shape}], the model's variable is ${v.dtype} [${v.shape}]`,
        );
      v.assign(w);
    });
  } finally {
    tf.dispose(weights);
  }
}

export interface WeightsKindOptions<M, Cfg> {
  /**
   * The config `make` takes (default: the model's `config` property). A model built over another one puts
   * `ref(other)` in it, and `make` gets the rebuilt other from `resolve`.
   */
  configOf?: (model: M, ref: (other: object) => unknown) => Cfg;
  /** The model's trainable state (default: `model.variables()`, an array or a record). */
  variablesOf?: (model: M) => Variables;
  /** Frees the model (default: `model.dispose()`). */
  dispose?: (model: M) => void;
  /**
   * State that is neither config nor variables (plain data and tensors), stored beside them and put back with
   * `restore` after the weights are assigned (restore owns the tensors it is given).
   */
  extra?: { encode(model: M): unknown; restore(model: M, stored: unknown): void };
}

/**
 * A model kind for a class with a config and variables: stored as { config, names, weights }, rebuilt with
 * `make(config)` and the weights assigned in order (a record's keys must match too).
 */
export function weightsKind<M extends object, Cfg>(
  name: string,
  cls: Ctor<M>,
  make: (config: Cfg, resolve: (ref: unknown) => unknown) => M,
  opts: WeightsKindOptions<M, Cfg> = {},
): ModelKind<M> {
  const configOf = opts.configOf ?? ((m: M) => (m as unknown as { config: Cfg }).config);
  const variablesOf = opts.variablesOf ?? ((m: M) => (m as unknown as { variables(): Variables }).variables());
  const dispose = opts.dispose ?? ((m: M) => (m as unknown as { dispose(): void }).dispose());
  return {
    name,
    test: (x): x is M => x instanceof cls,
    encode(model, ref) {
      const { names, values } = variableList(variablesOf(model));
      return {
        config: configOf(model, ref),
        names,
        weights: [...values],
        ...(opts.extra ? { extra: opts.extra.encode(model) } : {}),
      };
    },
    decode(stored, resolve) {
      const s = stored as { config: Cfg; names: string[]; weights: tf.Tensor[]; extra?: unknown };
      const model = make(s.config, resolve);
      try {
        assignWeights(`${name} codec`, variablesOf(model), s.weights, s.names);
        if (opts.extra) opts.extra.restore(model, s.extra);
      } catch (e) {
        dispose(model);
        throw e;
      }
      return model;
    },
    dispose,
  };
}

/** ToyLM: its config (seed included) and its variables. */
export const toyLMKind: ModelKind<ToyLM> = weightsKind('ToyLM', ToyLM, (c: ToyLMConfig) => new ToyLM(c));

/** A CharTokenizer (lib/data/tokenizer.ts): its characters. */
export const charTokenizerKind: ModelKind<CharTokenizer> = {
  name: 'CharTokenizer',
  test: (x): x is CharTokenizer => x instanceof CharTokenizer,
  encode: (t) => ({ chars: t.chars.slice(1), unkText: t.unkText }),
  decode: (s) => new CharTokenizer((s as { chars: string[] }).chars, (s as { unkText: string }).unkText),
  dispose: () => undefined,
};

/**
 * A kind for a plain data object that carries methods (a batch's `toTensors`, a video set's `toTensors`): stored as
 * its other fields (plain data and tensors), rebuilt as those fields plus `methods(fields)`. `test` must recognise only
 * objects whose functions are exactly the ones `methods` rebuilds.
 */
export function dataKind<D extends object>(
  name: string,
  test: (x: unknown) => x is D,
  methods: (fields: Record<string, unknown>) => Record<string, unknown>,
): ModelKind<D> {
  return {
    name,
    test,
    encode: (d) => Object.fromEntries(Object.entries(d).filter(([, v]) => typeof v !== 'function')),
    decode(stored) {
      const fields = stored as Record<string, unknown>;
      return { ...fields, ...methods(fields) } as D;
    },
    // Its tensors, if any, are freed with the rest of the restored artifacts.
    dispose: () => undefined,
  };
}

/** True when `x` is a plain object whose function-valued keys are exactly `names`. */
export function hasExactly(x: unknown, names: readonly string[]): x is Record<string, unknown> {
  if (!isPlainObject(x)) return false;
  const fns = Object.keys(x).filter((k) => typeof x[k] === 'function');
  return fns.length === names.length && names.every((n) => fns.includes(n));
}

/**
 * A TokenBatch of lib/data/batch.ts (and the batches that extend it with plain fields: RepeatBatch, NeedleBatch,
 * PromptBatch, KvFactsBatch): its arrays, with `toTensors` and `row` rebuilt over them.
 */
export const tokenBatchKind = dataKind(
  'TokenBatch',
  (x): x is TokenBatch =>
    hasExactly(x, ['toTensors', 'row']) &&
    x.inputs instanceof Int32Array &&
    x.targets instanceof Int32Array &&
    x.lossMask instanceof Float32Array,
  (f) => ({ ...withTokenBatchMethods(f as unknown as TokenBatch) }),
);

const REF = '$attnlabModel';

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

export interface ArtifactCodecOptions<A, C> {
  /** Function-valued keys (anywhere in the artifacts) left out when storing; `rebuild` puts them back. */
  drop?: string[];
  /** Called on the restored artifacts (models rebuilt, `dispose` set): put back what `drop` left out. */
  rebuild?: (artifacts: A, config: C) => void;
}

interface Stored {
  models: { kind: string; v: unknown }[];
  value: unknown;
}

/**
 * An `Experiment.artifactCodec` for artifacts of plain objects, arrays, tensors and the models of `kinds` (see the
 * module header).
 */
export function artifactCodec<A, C = unknown>(
  // biome-ignore lint/suspicious/noExplicitAny: kinds of different model classes
  kinds: ModelKind<any>[],
  opts: ArtifactCodecOptions<A, C> = {},
): ArtifactCodec<A, C> {
  const drop = new Set(opts.drop ?? []);
  return {
    encode(artifacts) {
      const models: Stored['models'] = [];
      const seen = new Map<object, number>();
      const walk = (x: unknown): unknown => {
        if (x === null || typeof x !== 'object') return x;
        const kind = kinds.find((k) => k.test(x));
        if (kind) {
          let id = seen.get(x);
          if (id === undefined) {
            // Models it refers to are stored first, so decode rebuilds them before it.
            const v = kind.encode(x, ref);
            id = models.length;
            seen.set(x, id);
            models.push({ kind: kind.name, v });
          }
          return { [REF]: id };
        }
        if (Array.isArray(x)) return x.map(walk);
        if (x instanceof Map) return new Map([...x.entries()].map(([k, v]) => [k, walk(v)]));
        if (!isPlainObject(x)) return x;
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(x)) {
          if (typeof v === 'function' && drop.has(k)) continue;
          out[k] = typeof v === 'function' ? v : walk(v);
        }
        return out;
      };
      const ref = (other: object): unknown => {
        if (!kinds.some((k) => k.test(other)))
          throw new Error('artifactCodec: a model refers to an object that none of the codec kinds stores');
        return walk(other);
      };
      const value = walk(artifacts);
      return { models, value } satisfies Stored;
    },
    decode(stored, config) {
      const s = stored as Stored;
      const leftovers = collectTensors(s.models);
      const built: { kind: ModelKind; model: unknown }[] = [];
      const free = () => {
        for (const b of built) b.kind.dispose(b.model);
      };
      const resolve = (r: unknown): unknown => {
        const id = isPlainObject(r) && REF in r ? (r[REF] as number) : -1;
        const b = built[id];
        if (!b) throw new Error(`artifactCodec: a stored model refers to model ${id}, not rebuilt before it`);
        return b.model;
      };
      try {
        for (const m of s.models) {
          const kind = kinds.find((k) => k.name === m.kind);
          if (!kind)
            throw new Error(`artifactCodec: the stored artifacts hold a model of kind '${m.kind}', unknown here`);
          built.push({ kind, model: kind.decode(m.v, resolve) });
        }
      } catch (e) {
        free();
        tf.dispose(collectTensors(s.value));
        throw e;
      }
      const walk = (x: unknown): unknown => {
        if (x === null || typeof x !== 'object') return x;
        if (Array.isArray(x)) return x.map(walk);
        if (x instanceof Map) {
          for (const [k, v] of x) x.set(k, walk(v));
          return x;
        }
        if (!isPlainObject(x)) return x;
        if (REF in x && Object.keys(x).length === 1) {
          const b = built[x[REF] as number];
          if (!b)
            throw new Error(`artifactCodec: the stored artifacts name model ${String(x[REF])}, which was not stored`);
          return b.model;
        }
        // In place: keeps the `dispose` the cache gave each object over its restored tensors.
        for (const [k, v] of Object.entries(x)) if (typeof v !== 'function') x[k] = walk(v);
        return x;
      };
      let value: unknown;
      try {
        value = walk(s.value);
      } catch (e) {
        free();
        tf.dispose(collectTensors(s.value));
        throw e;
      }
      if (isPlainObject(value)) {
        const own = typeof value.dispose === 'function' ? (value.dispose as () => void) : undefined;
        let disposed = false;
        value.dispose = () => {
          if (disposed) return;
          disposed = true;
          own?.();
          free();
          // Tensors the models were built over but do not own (a frozen block in a config): theirs to the end.
          tf.dispose(leftovers.filter((t) => !t.isDisposed));
        };
      }
      try {
        opts.rebuild?.(value as A, config);
      } catch (e) {
        if (isPlainObject(value)) (value.dispose as () => void)();
        else free();
        throw e;
      }
      return value as A;
    },
  };
}

/** Every tensor under a restored value (for freeing on a failed decode). */
function collectTensors(x: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (x instanceof tf.Tensor) out.push(x);
  else if (Array.isArray(x)) for (const v of x) collectTensors(v, out);
  else if (x instanceof Map) for (const v of x.values()) collectTensors(v, out);
  else if (isPlainObject(x)) for (const v of Object.values(x)) collectTensors(v, out);
  return out;
}
