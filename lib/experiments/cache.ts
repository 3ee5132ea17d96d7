/**
 * The experiment cache: a finished run's result (metrics, tables, references, summary) and its artifacts, stored by
 * a hash of (experiment name, resolved config, seed, quick flag, library version, a hash of the library's sources),
 * and returned by `runExperimentWith` instead of running the experiment again.
 *
 *   folder   ATTNLAB_CACHE=DIR, or RunOptions.cache = DIR; default <user cache dir>/attnlab/experiments
 *            ($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows).
 *            ATTNLAB_CACHE=off (or RunOptions.cache = false) turns it off. Under vitest it is off unless a test
 *            passes `cache` itself, so tests never read a user's cache.
 *   entry    <folder>/<experiment>/<key>/result.json (+ tensors.ckpt, a checkpoint of lib/train/checkpoint.ts, when the
 *            artifacts hold tensors), written to a temporary folder, read back and restored once, then renamed into
 *            place: an entry is complete or absent.
 *
 * Artifacts are stored when they are plain data and tensors: numbers (NaN and infinities too), strings, booleans,
 * null, arrays, plain objects, Maps, Sets, typed arrays and tf.Tensors (float32, int32, bool). A plain object's
 * `dispose` method is allowed; the restored object's `dispose` frees the tensors restored under it. An experiment
 * whose artifacts hold anything else (trained model objects) can give `Experiment.artifactCodec`, which turns them into
 * such data and back; without one, its runs are not cached at all (never a result without its artifacts).
 *
 * What invalidates an entry: any change of the config (every key, after the overrides are merged), the seed, the quick
 * flag, the package version, any byte of a `.ts`/`.js` file under the package's `lib/` (the source hash), or the size
 * or modification time of a file the config names (a data set). An entry that cannot be read or restored is removed
 * and the experiment runs. Not covered: data an experiment reads from a path its config does not name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { packageRoot } from '../util/paths.js';
import type { ArtifactCodec, Experiment, ExperimentOutput, ExperimentResult } from './types.js';

export type { ArtifactCodec };

/** The default cache folder: `<user cache dir>/attnlab/experiments`. */
export function defaultCacheDir(): string {
  const home = homedir();
  const base =
    process.platform === 'win32'
      ? (process.env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'))
      : process.platform === 'darwin'
        ? join(home, 'Library', 'Caches')
        : process.env.XDG_CACHE_HOME || join(home, '.cache');
  return join(base, 'attnlab', 'experiments');
}

/**
 * The cache folder to use, or undefined when caching is off: `option` (a folder, or false) wins over ATTNLAB_CACHE
 * (a folder, or `off`); then off under vitest, else the default folder.
 */
export function resolveCacheDir(option?: string | false): string | undefined {
  if (option === false) return undefined;
  if (typeof option === 'string') return option === 'off' ? undefined : option;
  const env = process.env.ATTNLAB_CACHE;
  if (env !== undefined && env !== '') return env === 'off' ? undefined : env;
  if (process.env.VITEST) return undefined;
  return defaultCacheDir();
}

let sourceHashMemo: string | undefined;

/**
 * The package version and a sha256 over every `.ts`/`.js` file under the package's `lib/` (path and bytes), computed
 * once per process (`root`: another package folder, not memoized). A changed library (or a different build of it) never reuses an entry.
 */
export function codeVersion(root?: string): string {
  if (root === undefined && sourceHashMemo) return sourceHashMemo;
  const memo = root === undefined;
  root ??= packageRoot();
  const h = createHash('sha256');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string };
  h.update(`attnlab@${pkg.version ?? 'unknown'}\n`);
  const lib = join(root, 'lib');
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|js|mjs)$/.test(e.name)) files.push(p);
    }
  };
  if (existsSync(lib)) walk(lib);
  files.sort();
  for (const f of files) {
    h.update(`${relative(root, f)}\0`);
    h.update(readFileSync(f));
    h.update('\0');
  }
  const version = `${pkg.version ?? 'unknown'}+${h.digest('hex').slice(0, 16)}`;
  if (memo) sourceHashMemo = version;
  return version;
}

/** Forget the memoized code version, or set it (tests: a changed library without changing files). */
export function resetCodeVersion(value?: string): void {
  sourceHashMemo = value;
}

/** JSON with object keys sorted, so equal configs hash equally whatever their key order. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  if (typeof x === 'number' && !Number.isFinite(x)) return JSON.stringify(String(x));
  return JSON.stringify(x) ?? 'null';
}

export interface CacheKeyParts {
  experiment: string;
  config: unknown;
  seed: number;
  quick: boolean;
  /** Defaults to `codeVersion()`. */
  version?: string;
  /** Defaults to `inputFiles(config)`. */
  files?: Record<string, string>;
}

/**
 * Every string of `config` that names an existing file (a data set a loader reads), with its size and modification
 * time: a data file replaced under the same path is another key.
 */
export function inputFiles(config: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (x: unknown) => {
    if (typeof x === 'string') {
      if (x.length === 0 || x.length > 4096 || x in out) return;
      try {
        const st = statSync(x);
        if (st.isFile()) out[x] = `${st.size}:${st.mtimeMs}`;
      } catch {
        // not a file
      }
    } else if (Array.isArray(x)) x.forEach(visit);
    else if (x !== null && typeof x === 'object') Object.values(x).forEach(visit);
  };
  visit(config);
  return out;
}

/** The entry's key: sha256 of the canonical JSON of its parts (hex, 32 characters). */
export function cacheKey(parts: CacheKeyParts): string {
  const { version = codeVersion(), files = inputFiles(parts.config), ...rest } = parts;
  return createHash('sha256')
    .update(canonical({ ...rest, version, files }))
    .digest('hex')
    .slice(0, 32);
}

/** Why a value cannot be stored: names where in the artifacts it is and what it is. */
export class NotCacheable extends Error {
  override name = 'NotCacheable';
}

type Encoded = unknown;
const TYPED = {
  Float32Array,
  Float64Array,
  Int8Array,
  Int16Array,
  Int32Array,
  Uint8Array,
  Uint16Array,
  Uint32Array,
  Uint8ClampedArray,
} as const;

/** Encode plain data and tensors as JSON, collecting the tensors into `tensors` (keys t0, t1, ...). */
export function encodeValue(x: unknown, tensors: Record<string, tf.Tensor>, path = 'artifacts'): Encoded {
  if (x === null || typeof x === 'string' || typeof x === 'boolean') return x;
  if (x === undefined) return { $t: 'undef' };
  if (typeof x === 'number') return Number.isFinite(x) ? x : { $t: 'num', v: String(x) };
  if (x instanceof tf.Tensor) {
    if (x.isDisposed) throw new NotCacheable(`${path} is a disposed tensor`);
    if (x.dtype !== 'float32' && x.dtype !== 'int32' && x.dtype !== 'bool')
      throw new NotCacheable(`${path} is a ${x.dtype} tensor (float32, int32 and bool are stored)`);
    const seen = Object.entries(tensors).find(([, t]) => t === x);
    if (seen) return { $t: 'tensor', id: seen[0] };
    const id = `t${Object.keys(tensors).length}`;
    tensors[id] = x;
    return { $t: 'tensor', id };
  }
  if (Array.isArray(x)) return x.map((v, i) => encodeValue(v, tensors, `${path}[${i}]`));
  if (ArrayBuffer.isView(x)) {
    const kind = x.constructor.name as keyof typeof TYPED;
    if (!(kind in TYPED)) throw new NotCacheable(`${path} is a ${x.constructor.name}`);
    const bytes = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    return { $t: 'typed', kind, b64: bytes.toString('base64') };
  }
  if (x instanceof Map)
    return {
      $t: 'map',
      v: [...x.entries()].map(([k, v], i) => [
        encodeValue(k, tensors, `${path}.key${i}`),
        encodeValue(v, tensors, `${path}.get(${String(k)})`),
      ]),
    };
  if (x instanceof Set) return { $t: 'set', v: [...x].map((v, i) => encodeValue(v, tensors, `${path}[set ${i}]`)) };
  if (typeof x === 'object') {
    const proto = Object.getPrototypeOf(x);
    if (proto !== Object.prototype && proto !== null)
      throw new NotCacheable(`${path} is a ${proto?.constructor?.name ?? 'class'} instance, not plain data`);
    const o = x as Record<string, unknown>;
    const v: Record<string, Encoded> = {};
    let dispose = false;
    for (const [k, val] of Object.entries(o)) {
      if (k === 'dispose' && typeof val === 'function') {
        dispose = true;
        continue;
      }
      v[k] = encodeValue(val, tensors, `${path}.${k}`);
    }
    return { $t: 'obj', v, ...(dispose ? { dispose: true } : {}) };
  }
  throw new NotCacheable(`${path} is a ${typeof x}`);
}

/** Rebuild what `encodeValue` encoded, with the tensors it named; `owned` collects the tensors placed. */
export function decodeValue(x: Encoded, tensors: Record<string, tf.Tensor>, owned: tf.Tensor[] = []): unknown {
  if (x === null || typeof x !== 'object') return x;
  if (Array.isArray(x)) return x.map((v) => decodeValue(v, tensors, owned));
  const e = x as { $t: string; [k: string]: unknown };
  switch (e.$t) {
    case 'undef':
      return undefined;
    case 'num':
      return Number(e.v);
    case 'tensor': {
      const t = tensors[e.id as string];
      if (!t) throw new Error(`the stored artifacts name tensor ${String(e.id)}, which the checkpoint lacks`);
      owned.push(t);
      return t;
    }
    case 'typed': {
      const bytes = Buffer.from(e.b64 as string, 'base64');
      const Ctor = TYPED[e.kind as keyof typeof TYPED];
      if (!Ctor) throw new Error(`unknown typed array ${String(e.kind)}`);
      const buf = new ArrayBuffer(bytes.byteLength);
      new Uint8Array(buf).set(bytes);
      return new Ctor(buf);
    }
    case 'map':
      return new Map(
        (e.v as [Encoded, Encoded][]).map(([k, v]) => [decodeValue(k, tensors, owned), decodeValue(v, tensors, owned)]),
      );
    case 'set':
      return new Set((e.v as Encoded[]).map((v) => decodeValue(v, tensors, owned)));
    case 'obj': {
      const mine: tf.Tensor[] = [];
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(e.v as Record<string, Encoded>)) o[k] = decodeValue(v, tensors, mine);
      owned.push(...mine);
      if (e.dispose) o.dispose = () => tf.dispose(mine);
      return o;
    }
    default:
      throw new Error(`unknown stored value kind ${JSON.stringify(e.$t)}`);
  }
}

/** What an entry's result.json holds. */
export interface StoredResult {
  format: 'attnlab-experiment-cache';
  key: string;
  experiment: string;
  seed: number;
  quick: boolean;
  version: string;
  config: unknown;
  savedAt: string;
  /** The run's own seconds. */
  seconds: number;
  output: {
    metrics: Record<string, number>;
    tables?: unknown;
    references?: unknown;
    summary: string;
  };
  /** The encoded artifacts, absent when the run had none. */
  artifacts?: Encoded;
  /** The artifacts' tensors are in tensors.ckpt. */
  hasTensors: boolean;
  /** Encoded through the experiment's `artifactCodec`. */
  codec: boolean;
}

export interface CacheEntryRef {
  dir: string;
  key: string;
  path: string;
}

export function entryPath(dir: string, experiment: string, key: string): string {
  return join(dir, experiment, key);
}

/**
 * Store a run. Returns the entry's folder, or a reason it was not stored (artifacts that cannot be encoded or do not
 * restore, a folder that cannot be written); nothing is left behind in that case.
 */
export async function storeEntry(
  ref: CacheEntryRef,
  meta: Omit<StoredResult, 'format' | 'savedAt' | 'artifacts' | 'hasTensors' | 'codec' | 'key'>,
  artifacts: unknown,
  codec: ArtifactCodec<unknown, unknown> | undefined,
): Promise<{ stored: true } | { stored: false; reason: string }> {
  const tensors: Record<string, tf.Tensor> = {};
  let encoded: Encoded | undefined;
  try {
    if (artifacts !== undefined) encoded = encodeValue(codec ? codec.encode(artifacts) : artifacts, tensors);
  } catch (e) {
    return { stored: false, reason: `artifacts cannot be stored: ${(e as Error).message}` };
  }
  const parent = join(ref.dir, meta.experiment);
  const tmp = join(parent, `.${ref.key}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(tmp, { recursive: true });
    const hasTensors = Object.keys(tensors).length > 0;
    if (hasTensors) {
      const { saveCheckpoint } = await import('../train/checkpoint.js');
      await saveCheckpoint(join(tmp, 'tensors.ckpt'), { namedTensors: tensors });
    }
    const stored: StoredResult = {
      format: 'attnlab-experiment-cache',
      key: ref.key,
      ...meta,
      savedAt: new Date().toISOString(),
      ...(encoded !== undefined ? { artifacts: encoded } : {}),
      hasTensors,
      codec: codec !== undefined,
    };
    writeFileSync(join(tmp, 'result.json'), JSON.stringify(stored));
    // Read back and restore once: an entry that would not restore is never put in place.
    const back = await loadEntry(tmp, true, codec);
    disposeRestored(back.artifacts);
    if (existsSync(ref.path)) rmSync(tmp, { recursive: true, force: true });
    else renameSync(tmp, ref.path);
    return { stored: true };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    return { stored: false, reason: `the entry could not be written or restored: ${(e as Error).message}` };
  }
}

function disposeRestored(a: unknown): void {
  if (a !== null && typeof a === 'object' && typeof (a as { dispose?: unknown }).dispose === 'function')
    (a as { dispose(): void }).dispose();
}

/**
 * Read an entry's result, and with `withArtifacts` restore its artifacts (the caller owns their tensors). Throws when
 * the entry is missing, unreadable or incomplete.
 */
export async function loadEntry(
  path: string,
  withArtifacts: boolean,
  codec: ArtifactCodec<unknown, unknown> | undefined,
): Promise<{ stored: StoredResult; artifacts?: unknown }> {
  const stored = JSON.parse(readFileSync(join(path, 'result.json'), 'utf8')) as StoredResult;
  if (stored.format !== 'attnlab-experiment-cache') throw new Error(`${path}/result.json is not a cache entry`);
  if (stored.codec !== (codec !== undefined))
    throw new Error(`${path} was stored ${stored.codec ? 'with' : 'without'} an artifact codec`);
  if (!withArtifacts || stored.artifacts === undefined) return { stored };
  let tensors: Record<string, tf.Tensor> = {};
  let disposeAll = () => undefined as void;
  if (stored.hasTensors) {
    const { loadCheckpoint } = await import('../train/checkpoint.js');
    const ck = await loadCheckpoint(join(path, 'tensors.ckpt'));
    tensors = ck.tensors;
    disposeAll = ck.dispose;
  }
  try {
    const owned: tf.Tensor[] = [];
    const plain = decodeValue(stored.artifacts, tensors, owned);
    const unused = Object.values(tensors).filter((t) => !owned.includes(t));
    tf.dispose(unused);
    if (!codec) return { stored, artifacts: plain };
    const artifacts = await codec.decode(plain, stored.config);
    return { stored, artifacts };
  } catch (e) {
    disposeAll();
    throw e;
  }
}

/** Entries of the cache folder: experiment, key, size in bytes (for `du`-style listings and tests). */
export function listEntries(dir: string): { experiment: string; key: string; bytes: number }[] {
  if (!existsSync(dir)) return [];
  const out: { experiment: string; key: string; bytes: number }[] = [];
  for (const exp of readdirSync(dir, { withFileTypes: true })) {
    if (!exp.isDirectory()) continue;
    for (const k of readdirSync(join(dir, exp.name), { withFileTypes: true })) {
      if (!k.isDirectory() || k.name.startsWith('.')) continue;
      const p = join(dir, exp.name, k.name);
      const bytes = readdirSync(p).reduce((s, f) => s + statSync(join(p, f)).size, 0);
      out.push({ experiment: exp.name, key: k.name, bytes });
    }
  }
  return out;
}

/** The cache as `runExperimentWith` uses it for one run: look the run up, or store it once it has run. */
export interface RunCache<C, A> {
  path: string;
  /** The stored result (artifacts restored when `keep`), or undefined on a miss or an entry that does not restore. */
  lookup(keep: boolean): Promise<ExperimentResult<C, A> | undefined>;
  /** Store a finished run (before its artifacts are disposed). */
  store(output: ExperimentOutput<A>, seconds: number): Promise<void>;
}

/** The cache for one run of `e`, or undefined when caching is off (`option` false/'off', ATTNLAB_CACHE=off, vitest). */
export function openRunCache<C, A>(
  e: Experiment<C, A>,
  run: { config: C; seed: number; quick: boolean; option?: string | false; log: (line: string) => void },
): RunCache<C, A> | undefined {
  const dir = resolveCacheDir(run.option);
  if (dir === undefined) return undefined;
  const version = codeVersion();
  const key = cacheKey({ experiment: e.name, config: run.config, seed: run.seed, quick: run.quick, version });
  const path = entryPath(dir, e.name, key);
  const codec = e.artifactCodec as ArtifactCodec<unknown, unknown> | undefined;
  return {
    path,
    async lookup(keep) {
      if (!existsSync(join(path, 'result.json'))) return undefined;
      try {
        const { stored, artifacts } = await loadEntry(path, keep, codec);
        run.log(
          `${e.name}: from the cache (${path}, stored ${stored.savedAt}, the run took ${stored.seconds.toFixed(1)} s)`,
        );
        return {
          experiment: e.name,
          seed: run.seed,
          quick: run.quick,
          config: run.config,
          ...(stored.output as ExperimentOutput<A>),
          ...(keep && artifacts !== undefined ? { artifacts: artifacts as A } : {}),
          seconds: stored.seconds,
          cached: { key, path, savedAt: stored.savedAt },
        };
      } catch (err) {
        run.log(`${e.name}: cache entry ${path} does not restore (${(err as Error).message}); removed, running`);
        rmSync(path, { recursive: true, force: true });
        return undefined;
      }
    },
    async store(output, seconds) {
      const { artifacts, metrics, tables, references, summary } = output;
      const r = await storeEntry(
        { dir, key, path },
        {
          experiment: e.name,
          seed: run.seed,
          quick: run.quick,
          version,
          config: run.config,
          seconds,
          output: { metrics, tables, references, summary },
        },
        artifacts,
        codec,
      );
      run.log(r.stored ? `${e.name}: stored in the cache (${path})` : `${e.name}: not cached: ${r.reason}`);
    },
  };
}

/** A model as the cache stores it: its config and its variables' values, in `variables()` order. */
export interface StoredModel<Cfg> {
  config: Cfg;
  weights: tf.Tensor[];
}

/**
 * Building block for an `artifactCodec`: a model with a config and `variables()` (ToyLM and the models built on
 * lib/layers) stored as its config and weights, and rebuilt with `make(config)` and the weights assigned in order.
 *
 *   const lm = modelCodec((c: ToyLMConfig) => new ToyLM(c), (m) => m.config);
 *   artifactCodec: {
 *     encode: (a) => ({ ...a, models: a.models.map((t) => ({ ...t, model: lm.encode(t.model) })) }),
 *     decode: (s) => { const o = s as ...; const models = o.models.map((t) => ({ ...t, model: lm.decode(t.model) }));
 *                      return { ...o, models, dispose: () => models.forEach((t) => t.model.dispose()) }; },
 *   }
 */
export function modelCodec<M extends { variables(): tf.Variable[] }, Cfg>(
  make: (config: Cfg) => M,
  configOf: (model: M) => Cfg,
): { encode(model: M): StoredModel<Cfg>; decode(stored: StoredModel<Cfg>): M } {
  return {
    encode: (model) => ({ config: configOf(model), weights: [...model.variables()] }),
    decode(stored) {
      const model = make(stored.config);
      const vars = model.variables();
      try {
        if (vars.length !== stored.weights.length)
          throw new Error(
            `modelCodec.decode: the stored model has ${stored.weights.length} weights, the rebuilt one ${vars.length} variables`,
          );
        vars.forEach((v, i) => {
          const w = stored.weights[i]!;
          if (w.dtype !== v.dtype || w.shape.join(',') !== v.shape.join(','))
            throw new Error(
              `modelCodec.decode: weight ${i} (${v.name}) is ${w.dtype} [${w.shape}], the model's variable ${v.dtype} [${v.shape}]`,
            );
          v.assign(w);
        });
      } catch (e) {
        (model as unknown as { dispose?: () => void }).dispose?.();
        throw e;
      } finally {
        tf.dispose(stored.weights);
      }
      return model;
    },
  };
}
