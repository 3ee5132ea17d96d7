/**
 * Real data in the layout the models take: stimuli x voxels responses, one region label per voxel, and optionally the
 * stimulus images. Formats (data/brain/README.md):
 *
 *   responses  .npy [n, V] (any numeric dtype, finite) or .csv (n rows of V finite numbers; the first line is a header
 *              only when none of its fields is empty or a number, so `1,NaN` is data and rejected, never skipped)
 *   labels     .npy [V] integers (region k is named `region{k}`; 0 = no region) or .csv/.txt: V names, one per line
 *              or comma-separated on one line ('' , '0' or 'none' = no region)
 *   images     .npy [n, S, S, 3] or [n, S, S] (grey), float in [0, 1] or uint8 (scaled by 1/255)
 *   NIfTI      a 4-D series (x, y, z, n) and a 3-D atlas (x, y, z) of integer region ids (0 = outside), optional
 *              names (.csv lines "id,name"); voxels are the atlas's non-zero voxels in x-fastest order
 *
 * Mismatched shapes are rejected with both files and both shapes in the message.
 */
import { writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { RegionVoxels } from '../encoder/model.js';
import { type Mat, mat } from '../stats.js';
import { finiteNumber, isHeader, looksNumeric, readCsv } from './csv.js';
import { readNifti } from './nifti.js';
import { readNpy, writeNpy } from './npy.js';

export interface LoadedResponses {
  responses: Mat;
  regions: RegionVoxels[];
  /** Images [n, S, S, 3] in [0, 1], when given. */
  images?: { data: Float32Array; size: number };
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function readMatrixCsv(path: string): Mat {
  const lines = readCsv(path);
  if (!lines.length) throw new Error(`${path}: no lines; expected one row of numbers per stimulus`);
  const body = isHeader(lines[0].fields) ? lines.slice(1) : lines;
  if (!body.length) throw new Error(`${path}: line ${lines[0].line} is a header and no numeric rows follow`);
  const first = body[0];
  const cols = first.fields.length;
  const values = new Float64Array(body.length * cols);
  body.forEach((r, i) => {
    if (r.fields.length !== cols)
      throw new Error(
        `${path} line ${r.line}: has ${r.fields.length} values but line ${first.line} (the first row) has ${cols}`,
      );
    r.fields.forEach((x, j) => {
      const v = finiteNumber(x);
      if (v === undefined) {
        const hint =
          r === lines[0]
            ? ' (the first line is read as a header only when none of its fields is empty or a number)'
            : '';
        throw new Error(`${path} line ${r.line}, column ${j + 1}: '${x}' is not a finite number${hint}`);
      }
      values[i * cols + j] = v;
    });
  });
  return mat(body.length, cols, values);
}

export function readResponses(path: string): Mat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return readMatrixCsv(path);
  if (ext === '.npy') {
    const a = readNpy(path);
    if (a.shape.length !== 2)
      throw new Error(`${path}: responses must be 2-D [stimuli, voxels], got shape ${shapeText(a.shape)}`);
    const bad = a.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const [r, c] = [Math.floor(bad / a.shape[1]), bad % a.shape[1]];
      throw new Error(`${path}: responses[${r}, ${c}] is ${a.data[bad]}; responses must be finite`);
    }
    return mat(a.shape[0], a.shape[1], a.data);
  }
  throw new Error(`${path}: responses must be .npy or .csv, got '${ext}'`);
}

const NO_REGION = new Set(['', '0', 'none', '-']);
const noRegion = (s: string) => (NO_REGION.has(s.toLowerCase()) ? '' : s);

/** One label per voxel, as names ('' for none). */
export function readLabels(path: string): string[] {
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') {
    const a = readNpy(path);
    if (a.shape.length !== 1) throw new Error(`${path}: labels must be 1-D [voxels], got shape ${shapeText(a.shape)}`);
    const bad = a.data.findIndex((k) => !Number.isSafeInteger(k));
    if (bad >= 0) throw new Error(`${path}: labels[${bad}] is ${a.data[bad]}; region ids must be integers`);
    return Array.from(a.data, (k) => (k === 0 ? '' : `region${k}`));
  }
  if (ext === '.csv' || ext === '.txt') {
    const lines = readCsv(path);
    if (lines.length === 1) return lines[0].fields.map(noRegion);
    return lines.map((l) => {
      if (l.fields.length !== 1)
        throw new Error(
          `${path} line ${l.line}: has ${l.fields.length} fields; a labels file holds one name per line (or all names comma-separated on one line)`,
        );
      return noRegion(l.fields[0]);
    });
  }
  throw new Error(`${path}: labels must be .npy, .csv or .txt, got '${ext}'`);
}

/** Group voxels by label, in order of first appearance; unlabelled voxels belong to no region. */
export function regionsFromLabels(labels: readonly string[]): RegionVoxels[] {
  const byName = new Map<string, number[]>();
  labels.forEach((l, v) => {
    if (l) (byName.get(l) ?? byName.set(l, []).get(l)!).push(v);
  });
  return [...byName.entries()].map(([name, voxels]) => ({ name, voxels }));
}

export function readImages(path: string): { data: Float32Array; size: number; count: number } {
  const a = readNpy(path);
  const s = a.shape;
  const grey = s.length === 3;
  if (!(grey || (s.length === 4 && s[3] === 3)) || s[1] !== s[2]) {
    throw new Error(`${path}: images must be [n, S, S, 3] or [n, S, S] (square), got shape ${shapeText(s)}`);
  }
  const scale = a.descr.endsWith('u1') ? 1 / 255 : 1;
  const n = s[0];
  const S = s[1];
  const data = new Float32Array(n * S * S * 3);
  for (let i = 0; i < n * S * S; i++)
    for (let c = 0; c < 3; c++) data[i * 3 + c] = a.data[grey ? i : i * 3 + c] * scale;
  return { data, size: S, count: n };
}

export function loadResponses(files: { responses: string; labels: string; images?: string }): LoadedResponses {
  const responses = readResponses(files.responses);
  const labels = readLabels(files.labels);
  if (labels.length !== responses.cols) {
    throw new Error(
      `loadResponses: ${files.responses} has shape ${shapeText([responses.rows, responses.cols])} (stimuli x voxels) but ${files.labels} has ${labels.length} labels; one label per voxel (column) is needed`,
    );
  }
  const regions = regionsFromLabels(labels);
  if (!regions.length) throw new Error(`loadResponses: ${files.labels} assigns no voxel to a region`);
  if (!files.images) return { responses, regions };
  const img = readImages(files.images);
  if (img.count !== responses.rows) {
    throw new Error(
      `loadResponses: ${files.images} holds ${img.count} images (shape [${img.count}, ${img.size}, ${img.size}, 3]) but ${files.responses} has ${responses.rows} stimuli (shape ${shapeText([responses.rows, responses.cols])})`,
    );
  }
  return { responses, regions, images: { data: img.data, size: img.size } };
}

/** Names of atlas ids from a CSV of "id,name" lines (a first line whose id is not a number is a header). */
function readAtlasNames(path: string): Map<number, string> {
  const out = new Map<number, string>();
  const lines = readCsv(path);
  for (const [i, { line, fields }] of lines.entries()) {
    const [id, ...name] = fields;
    if (i === 0 && !looksNumeric(id)) continue; // header
    const k = /^[+-]?[0-9]+$/.test(id) ? Number(id) : Number.NaN;
    if (!Number.isSafeInteger(k))
      throw new Error(`${path} line ${line}: the id '${id}' is not an integer; lines are "id,name"`);
    if (out.has(k)) throw new Error(`${path} line ${line}: id ${k} is named twice`);
    out.set(k, name.join(',').trim());
  }
  return out;
}

/** A 4-D NIfTI series and a 3-D NIfTI atlas -> responses [n, V] over the atlas's non-zero voxels, grouped by id. */
export function loadNiftiResponses(files: {
  series: string;
  atlas: string;
  names?: string;
}): LoadedResponses & { coords: [number, number, number][] } {
  const series = readNifti(files.series);
  const atlas = readNifti(files.atlas);
  if (series.dims.length !== 4)
    throw new Error(
      `loadNiftiResponses: ${files.series} must be 4-D (x, y, z, stimuli), has dims ${shapeText(series.dims)}`,
    );
  const spatial = atlas.dims.length === 4 && atlas.dims[3] === 1 ? atlas.dims.slice(0, 3) : atlas.dims;
  if (spatial.length !== 3 || spatial.some((d, i) => d !== series.dims[i])) {
    throw new Error(
      `loadNiftiResponses: ${files.atlas} has dims ${shapeText(atlas.dims)} but ${files.series} has ${shapeText(series.dims)}; the atlas must match the series' x, y, z`,
    );
  }
  const [X, Y, Z, n] = series.dims;
  const names = files.names ? readAtlasNames(files.names) : new Map<number, string>();
  const voxels: number[] = [];
  for (let i = 0; i < X * Y * Z; i++) if (Math.round(atlas.data[i]) !== 0) voxels.push(i);
  if (!voxels.length) throw new Error(`loadNiftiResponses: ${files.atlas} has no non-zero voxel`);
  const responses = mat(n, voxels.length);
  for (let t = 0; t < n; t++)
    voxels.forEach((i, v) => (responses.data[t * voxels.length + v] = series.data[t * X * Y * Z + i]));
  const labels = voxels.map((i) => {
    const k = Math.round(atlas.data[i]);
    return names.get(k) ?? `region${k}`;
  });
  const coords = voxels.map((i) => [i % X, Math.floor(i / X) % Y, Math.floor(i / (X * Y))] as [number, number, number]);
  return { responses, regions: regionsFromLabels(labels), coords };
}

/**
 * Write a simulated split in the loadResponses layout: `responses.npy` [n, V] (float32), `labels.csv` (one region
 * name per voxel) and `images.npy` [n, S, S, 3] (float32 in [0, 1]). Returns the three paths.
 */
export function exportSimulation(
  split: { responses: Mat; scenes: readonly { size: number; pixels: Float32Array }[] },
  regions: readonly RegionVoxels[],
  dir: string,
): { responses: string; labels: string; images: string } {
  const V = split.responses.cols;
  const names = new Array<string>(V).fill('none');
  for (const r of regions) for (const v of r.voxels) names[v] = r.name;
  const S = split.scenes[0].size;
  const images = new Float32Array(split.scenes.length * S * S * 3);
  split.scenes.forEach((s, i) => images.set(s.pixels, i * S * S * 3));
  const paths = {
    responses: join(dir, 'responses.npy'),
    labels: join(dir, 'labels.csv'),
    images: join(dir, 'images.npy'),
  };
  writeNpy(paths.responses, Float32Array.from(split.responses.data), [split.responses.rows, V]);
  writeFileSync(paths.labels, `${names.join('\n')}\n`);
  writeNpy(paths.images, images, [split.scenes.length, S, S, 3]);
  return paths;
}
