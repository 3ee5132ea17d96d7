/** Loaders for real responses: .npy, CSV and NIfTI-1, written here into a temp dir, and the shape errors. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import * as brain from '../lib/papers/cogneuro/brain/index.js';

const dir = mkdtempSync(join(tmpdir(), 'attnlab-brain-'));
const f = (name: string) => join(dir, name);

describe('npy', () => {
  it('round-trips float32, float64 and int32 arrays and rejects what it cannot read', () => {
    const a = Float32Array.from({ length: 12 }, (_, i) => i / 3);
    brain.writeNpy(f('a.npy'), a, [3, 4]);
    const r = brain.readNpy(f('a.npy'));
    expect(r.shape).toEqual([3, 4]);
    expect(r.descr).toBe('<f4');
    expect(Array.from(r.data)).toEqual(Array.from(a));
    brain.writeNpy(f('b.npy'), Int32Array.from([1, 2, 0]), [3]);
    expect(brain.readNpy(f('b.npy')).shape).toEqual([3]);
    writeFileSync(f('bad.npy'), 'hello');
    expect(() => brain.readNpy(f('bad.npy'))).toThrow(`${f('bad.npy')}: not a .npy file`);
    const truncated = brain.encodeNpy(a, [3, 4]).subarray(0, 150);
    expect(() => brain.parseNpy(truncated, 'cut.npy')).toThrow(
      'cut.npy: header says shape [3,4] of <f4 (48 bytes) but only',
    );
  });
});

describe('responses + labels', () => {
  it('loads .npy responses with CSV labels and .npy images, grouping voxels by region', () => {
    brain.writeNpy(
      f('resp.npy'),
      Float32Array.from({ length: 5 * 4 }, (_, i) => i),
      [5, 4],
    );
    writeFileSync(f('labels.csv'), 'FFA\nPPA\nFFA\nnone\n');
    brain.writeNpy(f('img.npy'), new Float32Array(5 * 8 * 8 * 3), [5, 8, 8, 3]);
    const d = brain.loadResponses({ responses: f('resp.npy'), labels: f('labels.csv'), images: f('img.npy') });
    expect(d.regions).toEqual([
      { name: 'FFA', voxels: [0, 2] },
      { name: 'PPA', voxels: [1] },
    ]);
    expect(d.responses.rows).toBe(5);
    expect(d.images!.size).toBe(8);
  });

  it('loads CSV responses with a header row', () => {
    writeFileSync(f('resp.csv'), 'v0,v1\n1,2\n3,4\n5,6\n');
    writeFileSync(f('l1.txt'), 'V1,V1');
    const d = brain.loadResponses({ responses: f('resp.csv'), labels: f('l1.txt') });
    expect(Array.from(d.responses.data)).toEqual([1, 2, 3, 4, 5, 6]);
    writeFileSync(f('ragged.csv'), '1,2\n3\n');
    expect(() => brain.readResponses(f('ragged.csv'))).toThrow(
      `${f('ragged.csv')} line 2: has 1 values but line 1 (the first row) has 2`,
    );
  });

  it('rejects mismatched shapes, naming both files and shapes', () => {
    writeFileSync(f('labels3.csv'), 'A\nB\nC\n');
    expect(() => brain.loadResponses({ responses: f('resp.npy'), labels: f('labels3.csv') })).toThrow(
      `loadResponses: ${f('resp.npy')} has shape [5, 4] (stimuli x voxels) but ${f('labels3.csv')} has 3 labels`,
    );
    brain.writeNpy(f('img6.npy'), new Float32Array(6 * 8 * 8 * 3), [6, 8, 8, 3]);
    expect(() =>
      brain.loadResponses({ responses: f('resp.npy'), labels: f('labels.csv'), images: f('img6.npy') }),
    ).toThrow(
      `loadResponses: ${f('img6.npy')} holds 6 images (shape [6, 8, 8, 3]) but ${f('resp.npy')} has 5 stimuli (shape [5, 4])`,
    );
    brain.writeNpy(f('resp3d.npy'), new Float32Array(8), [2, 2, 2]);
    expect(() => brain.readResponses(f('resp3d.npy'))).toThrow(
      `${f('resp3d.npy')}: responses must be 2-D [stimuli, voxels], got shape [2, 2, 2]`,
    );
  });
});

describe('NIfTI-1', () => {
  const series = Float32Array.from({ length: 3 * 2 * 2 * 4 }, (_, i) => i);
  const atlas = Int32Array.from([0, 1, 1, 0, 2, 0, 0, 0, 2, 0, 0, 0]); // 3 x 2 x 2

  it('round-trips a volume (also gzipped) and loads a series through an atlas', () => {
    brain.writeNifti(f('bold.nii'), [3, 2, 2, 4], series);
    writeFileSync(f('atlas.nii.gz'), gzipSync(brain.encodeNifti([3, 2, 2], atlas)));
    writeFileSync(f('names.csv'), 'id,name\n1,V1\n2,FFA\n');
    const v = brain.readNifti(f('bold.nii'));
    expect(v.dims).toEqual([3, 2, 2, 4]);
    expect(Array.from(v.data)).toEqual(Array.from(series));
    const d = brain.loadNiftiResponses({ series: f('bold.nii'), atlas: f('atlas.nii.gz'), names: f('names.csv') });
    expect(d.regions).toEqual([
      { name: 'V1', voxels: [0, 1] },
      { name: 'FFA', voxels: [2, 3] },
    ]);
    expect(d.responses.rows).toBe(4);
    // Stimulus 1, atlas voxel index 4 (x=1, y=1, z=0): value 12 + 4.
    expect(d.responses.data[1 * 4 + 2]).toBe(16);
    expect(d.coords[2]).toEqual([1, 1, 0]);
  });

  it('rejects an atlas whose grid does not match the series, naming both files and dims', () => {
    brain.writeNifti(f('atlas-bad.nii'), [3, 2, 3], new Int32Array(18));
    expect(() => brain.loadNiftiResponses({ series: f('bold.nii'), atlas: f('atlas-bad.nii') })).toThrow(
      `loadNiftiResponses: ${f('atlas-bad.nii')} has dims [3, 2, 3] but ${f('bold.nii')} has [3, 2, 2, 4]; the atlas must match the series' x, y, z`,
    );
    writeFileSync(f('junk.nii'), Buffer.alloc(400));
    expect(() => brain.readNifti(f('junk.nii'))).toThrow(`${f('junk.nii')}: not a NIfTI-1 file`);
  });
});

describe('a simulated split through the loaders', () => {
  it('exports and loads back the same responses, regions and images', async () => {
    const tf = await import('@tensorflow/tfjs');
    const backend = await import('../lib/backend/index.js');
    await backend.ready();
    const sim = brain.simulate(
      { ...brain.DEFAULT_SIMULATION, voxelsPerRegion: 2, train: 12, validation: 4, test: 4, repeats: 2 },
      1,
    );
    const paths = brain.exportSimulation(sim.train, sim.system.regions, dir);
    const d = brain.loadResponses(paths);
    expect(d.regions.map((r) => r.name)).toEqual(sim.system.regions.map((r) => r.name));
    expect(d.regions.map((r) => r.voxels)).toEqual(sim.system.regions.map((r) => r.voxels));
    expect(Array.from(d.responses.data)).toEqual(Array.from(Float32Array.from(sim.train.responses.data)));
    expect(Array.from(d.images!.data.subarray(3 * 32 * 32 * 3, 4 * 32 * 32 * 3))).toEqual(
      Array.from(sim.train.scenes[3].pixels),
    );
    brain.disposeSimulation(sim);
    expect(tf.memory().numTensors).toBe(0);
  });
});
