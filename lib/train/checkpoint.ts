/**
 * Checkpoints: weights, config, optimizer state and step in one file, written atomically.
 *
 * File format (version 1), all integers little-endian:
 *   offset 0   8 bytes   magic "ATNLCKPT"
 *   offset 8   u32       format version (1)
 *   offset 12  u32       N, byte length of the metadata
 *   offset 16  N bytes   metadata, UTF-8 JSON (`CheckpointMeta`)
 *              zeros     padding to a multiple of 8
 *              blobs     the data section; each tensor's raw values at `offset` (relative to the section start, 8-aligned):
 *                        float32 and int32 as 4-byte little-endian, bool as 1 byte per value
 *   end - 4    u32       CRC-32 (IEEE) of every byte before it
 *
 * Atomicity: a save writes a temporary file in the target's directory, fsyncs it, then renames it over the target
 * (rename within one file system is atomic on POSIX), then fsyncs the directory. A save that fails or is killed
 * leaves the previous file untouched. A save killed mid-way leaves its `.<name>.<pid>.<host>.<random>.tmp` file behind;
 * it is never read, and the next save or load in that folder removes it once its pid is dead (a process of this
 * host that is not running; temporary files of other hosts sharing the folder, and of live pids, are left alone).
 *
 * Reading checks, before any tensor is made: magic, version, CRC, that the metadata is JSON of the expected form, and
 * that every tensor's dtype, shape (integers >= 0), byte length and offset fit the data section. Every error names the
 * file.
 */

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { crc32 } from '../util/crc32.js';
import { type Adam, type OptimizerState, type VariableSet, variableEntries } from './optim.js';

const MAGIC = 'ATNLCKPT';
const VERSION = 1;
const HEADER = 16;

export type StoredDtype = 'float32' | 'int32' | 'bool';

export interface TensorEntry {
  name: string;
  /** 'weights' for model tensors, 'optimizer' for optimizer slots (`<variable>/m`, `<variable>/v`). */
  group: 'weights' | 'optimizer';
  dtype: StoredDtype;
  shape: number[];
  offset: number;
  byteLength: number;
}

export interface CheckpointMeta {
  format: 'attnlab-checkpoint';
  kind: 'checkpoint' | 'model';
  step: number;
  config: unknown;
  savedAt: string;
  tensors: TensorEntry[];
  /** Optimizer settings; its slots are the tensors of group 'optimizer'. */
  optimizer?: Omit<OptimizerState, 'slots'>;
  /** kind 'model': the tfjs ModelArtifacts without weightData, and where weightData lies. */
  model?: { artifacts: Omit<tf.io.ModelArtifacts, 'weightData'>; weightData: { offset: number; byteLength: number } };
}

export interface SaveCheckpointOptions {
  /** Saved under their `name`, or under the record's keys (stable across model instances; see `variablesOf`). */
  variables?: VariableSet;
  /** Saved under their keys (in addition to `variables`). */
  namedTensors?: Record<string, tf.Tensor>;
  /** Any JSON-serializable value, e.g. the model config. */
  config?: unknown;
  /** An optimizer or its `state()`. Slots are saved as `<key>/m`, `<key>/v` with the keys of `variables`. */
  optimizer?: Adam | OptimizerState;
  step?: number;
}

export interface Checkpoint<C = unknown> {
  /** Weights by name. The caller owns them (see `dispose`). */
  tensors: Record<string, tf.Tensor>;
  config: C;
  step: number;
  /** Present when the checkpoint holds optimizer state; its slots are owned with `tensors`. */
  optimizerState?: OptimizerState;
  meta: CheckpointMeta;
  /** Dispose every tensor this checkpoint created. */
  dispose(): void;
}

interface Blob {
  byteLength: number;
  bytes(): Promise<Uint8Array>;
}

/** Save weights, config, optimizer state and step to `file`, atomically. */
export async function saveCheckpoint(file: string, options: SaveCheckpointOptions): Promise<void> {
  const named: [string, tf.Tensor, TensorEntry['group']][] = [];
  const vars = variableEntries(options.variables ?? []);
  for (const [k, v] of vars) named.push([k, v, 'weights']);
  for (const [k, t] of Object.entries(options.namedTensors ?? {})) named.push([k, t, 'weights']);
  const opt = options.optimizer;
  const state = opt === undefined ? undefined : 'apply' in opt ? opt.state() : opt;
  const keyOf = new Map(vars.map(([k, v]) => [v.name, k]));
  if (state) for (const [k, t] of Object.entries(renameSlots(state.slots, keyOf))) named.push([k, t, 'optimizer']);

  const seen = new Set<string>();
  const tensors: TensorEntry[] = [];
  const blobs: Blob[] = [];
  let offset = 0;
  for (const [name, t, group] of named) {
    const key = `${group}:${name}`;
    if (seen.has(key)) throw new Error(`saveCheckpoint: tensor name "${name}" appears twice`);
    seen.add(key);
    if (t.isDisposed) throw new Error(`saveCheckpoint: tensor "${name}" is disposed`);
    if (t.dtype !== 'float32' && t.dtype !== 'int32' && t.dtype !== 'bool') {
      throw new Error(
        `saveCheckpoint: tensor "${name}" has dtype ${t.dtype}; only float32, int32 and bool can be stored`,
      );
    }
    const byteLength = t.size * (t.dtype === 'bool' ? 1 : 4);
    tensors.push({ name, group, dtype: t.dtype, shape: [...t.shape], offset, byteLength });
    blobs.push({ byteLength, bytes: async () => toLittleEndian(await t.data()) });
    offset = align8(offset + byteLength);
  }
  let optimizer: Omit<OptimizerState, 'slots'> | undefined;
  if (state) {
    const { slots: _, ...settings } = state;
    optimizer = settings;
  }
  const meta: CheckpointMeta = {
    format: 'attnlab-checkpoint',
    kind: 'checkpoint',
    step: options.step ?? state?.step ?? 0,
    config: options.config ?? null,
    savedAt: new Date().toISOString(),
    tensors,
    ...(optimizer ? { optimizer } : {}),
  };
  await writeAtomic(file, meta, blobs);
}

/** Read a checkpoint (or a model file written by `fileHandler`, whose weights come back as tensors). */
export async function loadCheckpoint<C = unknown>(file: string): Promise<Checkpoint<C>> {
  const { meta, data } = await readContainer(file);
  const tensors: Record<string, tf.Tensor> = {};
  const slots: Record<string, tf.Tensor> = {};
  const all: tf.Tensor[] = [];
  try {
    if (meta.kind === 'model' && meta.model) {
      const { offset, byteLength } = meta.model.weightData;
      const buf = data.slice(offset, offset + byteLength);
      const specs = meta.model.artifacts.weightSpecs ?? [];
      // In a tidy, so tensors decoded before a bad spec throws are freed.
      Object.assign(
        tensors,
        tf.tidy(() => tf.io.decodeWeights(copyToArrayBuffer(buf), specs)),
      );
      all.push(...Object.values(tensors));
    }
    for (const e of meta.tensors) {
      const t = tf.tensor(
        fromLittleEndian(data.subarray(e.offset, e.offset + e.byteLength), e.dtype),
        e.shape,
        e.dtype,
      );
      (e.group === 'optimizer' ? slots : tensors)[e.name] = t;
      all.push(t);
    }
  } catch (e) {
    tf.dispose(all);
    throw new Error(`loadCheckpoint: ${file} is not a valid attnlab checkpoint: ${(e as Error).message}`);
  }
  return {
    tensors,
    config: meta.config as C,
    step: meta.step,
    optimizerState: meta.optimizer ? { ...meta.optimizer, slots } : undefined,
    meta,
    dispose: () => tf.dispose(all),
  };
}

/**
 * Assign checkpoint tensors to variables of the same name. Throws, before assigning anything, if a variable is missing
 * from `tensors` (unless `strict` is false) or has a different shape or dtype.
 */
export function restoreVariables(
  variables: VariableSet,
  tensors: Record<string, tf.Tensor>,
  options: { strict?: boolean } = {},
): void {
  const strict = options.strict ?? true;
  const entries = variableEntries(variables);
  const missing = entries.filter(([k]) => !(k in tensors)).map(([k]) => k);
  if (strict && missing.length > 0) {
    const have = Object.keys(tensors);
    throw new Error(
      `restoreVariables: the checkpoint has no tensor for ${missing.map((n) => `"${n}"`).join(', ')}` +
        ` (it has ${have.length}: ${have
          .slice(0, 8)
          .map((n) => `"${n}"`)
          .join(', ')}${have.length > 8 ? ', ...' : ''})`,
    );
  }
  for (const [k, v] of entries) {
    const t = tensors[k];
    if (!t) continue;
    if (!shapesEqual(v.shape, t.shape)) {
      throw new Error(
        `restoreVariables: variable "${k}" has shape [${v.shape}] but the checkpoint's tensor has [${t.shape}]`,
      );
    }
    if (v.dtype !== t.dtype) {
      throw new Error(
        `restoreVariables: variable "${k}" has dtype ${v.dtype} but the checkpoint's tensor has ${t.dtype}`,
      );
    }
  }
  for (const [k, v] of entries) if (tensors[k]) v.assign(tensors[k]);
}

/**
 * Load `file` into existing variables (and optimizer, when given and the file has its state); frees what it loaded.
 * Returns the saved step and config.
 */
export async function restoreCheckpoint<C = unknown>(
  file: string,
  target: { variables: VariableSet; optimizer?: Adam; strict?: boolean },
): Promise<{ step: number; config: C }> {
  const ck = await loadCheckpoint<C>(file);
  try {
    restoreVariables(target.variables, ck.tensors, { strict: target.strict });
    if (target.optimizer && ck.optimizerState) {
      const nameOf = new Map(variableEntries(target.variables).map(([k, v]) => [k, v.name]));
      target.optimizer.loadState({ ...ck.optimizerState, slots: renameSlots(ck.optimizerState.slots, nameOf) });
    }
    return { step: ck.step, config: ck.config };
  } finally {
    ck.dispose();
  }
}

/**
 * A `tf.io.IOHandler` that saves and loads a tfjs model in one checkpoint file (atomically), since pure tfjs has no
 * file:// handler in Node: `await model.save(fileHandler('m.ckpt'))`, `await tf.loadLayersModel(fileHandler('m.ckpt'))`.
 */
export function fileHandler(file: string): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const { weightData, ...rest } = artifacts;
      const weights = weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(weightData);
      const meta: CheckpointMeta = {
        format: 'attnlab-checkpoint',
        kind: 'model',
        step: 0,
        config: null,
        savedAt: new Date().toISOString(),
        tensors: [],
        model: { artifacts: rest, weightData: { offset: 0, byteLength: weights.byteLength } },
      };
      await writeAtomic(file, meta, [{ byteLength: weights.byteLength, bytes: async () => new Uint8Array(weights) }]);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON({ ...artifacts, weightData: weights }) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const { meta, data } = await readContainer(file);
      if (meta.kind !== 'model' || !meta.model) {
        throw new Error(`fileHandler: ${file} is a training checkpoint, not a model; read it with loadCheckpoint`);
      }
      const { offset, byteLength } = meta.model.weightData;
      return { ...meta.model.artifacts, weightData: copyToArrayBuffer(data.subarray(offset, offset + byteLength)) };
    },
  };
}

/** Rename slot keys `<a>/m` to `<b>/m` through `map` (names not in it stay). */
function renameSlots(slots: Record<string, tf.Tensor>, map: Map<string, string>): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [key, t] of Object.entries(slots)) {
    const cut = key.lastIndexOf('/');
    const name = key.slice(0, cut);
    out[`${map.get(name) ?? name}${key.slice(cut)}`] = t;
  }
  return out;
}

async function writeAtomic(file: string, meta: CheckpointMeta, blobs: Blob[]): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await removeStaleTemporaries(dir);
  const tmp = path.join(
    dir,
    `.${path.basename(file)}.${process.pid}.${HOST_TAG}.${randomBytes(4).toString('hex')}.tmp`,
  );
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const head = Buffer.alloc(align8(HEADER + json.length));
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  json.copy(head, HEADER);

  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx');
    let crc = 0;
    const write = async (b: Uint8Array): Promise<void> => {
      crc = crc32(b, crc);
      await fh!.write(b);
    };
    await write(head);
    for (const blob of blobs) {
      const bytes = await blob.bytes();
      if (bytes.byteLength !== blob.byteLength) {
        throw new Error(`saveCheckpoint: a tensor gave ${bytes.byteLength} bytes, expected ${blob.byteLength}`);
      }
      await write(bytes);
      const pad = align8(bytes.byteLength) - bytes.byteLength;
      if (pad > 0) await write(new Uint8Array(pad));
    }
    const tail = Buffer.alloc(4);
    tail.writeUInt32LE(crc >>> 0, 0);
    await fh.write(tail);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // Make the rename itself durable; some file systems do not allow fsync on a directory, which is harmless here.
  const d = await fsp.open(dir, 'r').catch(() => undefined);
  await d?.sync().catch(() => {});
  await d?.close();
}

/** This host, in temporary file names: 8 hex digits of its name's CRC-32. */
const HOST_TAG = (crc32(Buffer.from(os.hostname(), 'utf8'), 0) >>> 0).toString(16).padStart(8, '0');

/** `.<name>.<pid>.<host>.<8 hex>.tmp`, as writeAtomic names its temporary files. */
const TEMPORARY = /^\..+\.([0-9]+)\.([0-9a-f]{8})\.[0-9a-f]{8}\.tmp$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
}

/**
 * Remove the temporary files of saves killed mid-way in `dir`: names written by writeAtomic on this host whose pid is
 * not a running process, and whose content is empty or starts with the checkpoint magic. Never throws (a file another
 * process removes first, or a folder that cannot be listed, is not an error here).
 */
export async function removeStaleTemporaries(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = TEMPORARY.exec(name);
    if (!m || m[2] !== HOST_TAG) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const file = path.join(dir, name);
    try {
      const fh = await fsp.open(file, 'r');
      const head = Buffer.alloc(MAGIC.length);
      const { bytesRead } = await fh.read(head, 0, MAGIC.length, 0).finally(() => fh.close());
      if (bytesRead > 0 && head.toString('latin1', 0, bytesRead) !== MAGIC.slice(0, bytesRead)) continue;
      await fsp.rm(file);
      removed.push(file);
    } catch {
      // gone already, or not readable: leave it
    }
  }
  return removed;
}

const STORED: Record<StoredDtype, number> = { float32: 4, int32: 4, bool: 1 };

function checkMeta(meta: unknown, dataLength: number, bad: (why: string) => Error): CheckpointMeta {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!isObject(meta) || meta.format !== 'attnlab-checkpoint')
    throw bad('the metadata is not an attnlab-checkpoint object');
  if (meta.kind !== 'checkpoint' && meta.kind !== 'model')
    throw bad(`kind ${JSON.stringify(meta.kind)}, expected "checkpoint" or "model"`);
  if (!Number.isSafeInteger(meta.step)) throw bad(`step ${JSON.stringify(meta.step)} is not an integer`);
  if (!Array.isArray(meta.tensors)) throw bad('the metadata has no tensors list');
  const inData = (offset: unknown, byteLength: unknown, what: string) => {
    if (!isCount(offset) || !isCount(byteLength) || offset + byteLength > dataLength)
      throw bad(`${what} lies at offset ${offset}, ${byteLength} bytes, outside the ${dataLength}-byte data section`);
  };
  for (const [i, e] of (meta.tensors as unknown[]).entries()) {
    if (!isObject(e) || typeof e.name !== 'string') throw bad(`tensors[${i}] has no name`);
    const what = `tensor "${e.name}"`;
    if (e.group !== 'weights' && e.group !== 'optimizer') throw bad(`${what} has group ${JSON.stringify(e.group)}`);
    if (typeof e.dtype !== 'string' || !(e.dtype in STORED)) throw bad(`${what} has dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every(isCount))
      throw bad(`${what} has shape ${JSON.stringify(e.shape)}; dimensions must be integers >= 0`);
    const size = (e.shape as number[]).reduce((a, b) => a * b, 1);
    const expected = size * STORED[e.dtype as StoredDtype];
    if (e.byteLength !== expected)
      throw bad(`${what} of shape [${e.shape}] ${e.dtype} needs ${expected} bytes, the metadata says ${e.byteLength}`);
    inData(e.offset, e.byteLength, what);
  }
  if (meta.kind === 'model') {
    const m = meta.model;
    if (!isObject(m) || !isObject(m.artifacts) || !isObject(m.weightData))
      throw bad('a model file without model artifacts');
    inData(m.weightData.offset, m.weightData.byteLength, 'the model weights');
    // tfjs's decodeWeights loops once per value of a 'string' weight, whatever the data holds: check the specs first.
    const specs = m.artifacts.weightSpecs ?? [];
    if (!Array.isArray(specs)) throw bad('the model weightSpecs is not a list');
    let total = 0;
    for (const [i, w] of (specs as unknown[]).entries()) {
      if (!isObject(w) || typeof w.name !== 'string') throw bad(`weightSpecs[${i}] has no name`);
      if (w.dtype !== 'float32' && w.dtype !== 'int32' && w.dtype !== 'bool')
        throw bad(`model weight "${w.name}" has dtype ${JSON.stringify(w.dtype)}; float32, int32 or bool are read`);
      if ('quantization' in w) throw bad(`model weight "${w.name}" is quantized; quantized weights are not read`);
      if (!Array.isArray(w.shape) || !w.shape.every(isCount))
        throw bad(`model weight "${w.name}" has shape ${JSON.stringify(w.shape)}; dimensions must be integers >= 0`);
      total += (w.shape as number[]).reduce((a, b) => a * b, 1) * STORED[w.dtype];
    }
    if (total > (m.weightData.byteLength as number))
      throw bad(`the model's weightSpecs need ${total} bytes, its weight data has ${m.weightData.byteLength}`);
  }
  return meta as unknown as CheckpointMeta;
}

async function readContainer(file: string): Promise<{ meta: CheckpointMeta; data: Uint8Array }> {
  await removeStaleTemporaries(path.dirname(path.resolve(file)));
  const bad = (why: string): Error => new Error(`loadCheckpoint: ${file} is not a valid attnlab checkpoint: ${why}`);
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    throw new Error(`loadCheckpoint: cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf.length < HEADER + 4 || buf.toString('latin1', 0, 8) !== MAGIC) throw bad('wrong magic header');
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw bad(`format version ${version}, this library reads ${VERSION}`);
  const stored = buf.readUInt32LE(buf.length - 4);
  const actual = crc32(buf.subarray(0, buf.length - 4), 0) >>> 0;
  if (stored !== actual) throw bad('checksum mismatch (truncated or corrupted)');
  const n = buf.readUInt32LE(12);
  if (align8(HEADER + n) > buf.length - 4)
    throw bad(`metadata of ${n} bytes does not fit in a ${buf.length}-byte file`);
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8', HEADER, HEADER + n));
  } catch (e) {
    throw bad(`the metadata is not JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(align8(HEADER + n), buf.length - 4);
  return { meta: checkMeta(json, data.length, bad), data };
}

const BIG_ENDIAN = os.endianness() === 'BE';

function toLittleEndian(values: Float32Array | Int32Array | Uint8Array | ArrayLike<unknown>): Uint8Array {
  if (values instanceof Uint8Array) return values;
  if (!(values instanceof Float32Array || values instanceof Int32Array))
    throw new Error('saveCheckpoint: unsupported tensor data');
  const bytes = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  if (BIG_ENDIAN) swap4(bytes);
  return bytes;
}

function fromLittleEndian(bytes: Uint8Array, dtype: StoredDtype): Float32Array | Int32Array | Uint8Array {
  const copy = new Uint8Array(bytes); // a copy: Buffer's slice() would share (and misalign) the file's memory
  if (dtype === 'bool') return copy;
  if (BIG_ENDIAN) swap4(copy);
  return dtype === 'float32' ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer);
}

function swap4(b: Uint8Array): void {
  for (let i = 0; i < b.length; i += 4) {
    [b[i], b[i + 1], b[i + 2], b[i + 3]] = [b[i + 3], b[i + 2], b[i + 1], b[i]];
  }
}

function copyToArrayBuffer(b: Uint8Array): ArrayBuffer {
  return new Uint8Array(b).buffer as ArrayBuffer;
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
