/**
 * Issue #15, items 3 and 4: the loaders, the checkpoint reader and the CLI on bad input.
 *
 * Property tests (fast-check, fixed seeds so CI is deterministic) feed random valid files and random corruptions of
 * them to each reader: a valid file reads back the values written; anything else either reads as a self-consistent
 * array (a flipped data byte is still a valid file) or throws an Error that names the file, and never a crash (an
 * error without the file name, a RangeError from an allocation, a stack overflow), a hang or a result bigger than its
 * input can hold. The counts of inputs tried and errors raised are printed at the end as the issue's table.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../lib/cli/args.js';
import { executeNotebooks, reportCommand, runCommand } from '../lib/cli/notebooks.js';
import { exampleScanpathFiles, parseScanpathCsv, ScanpathFormatError } from '../lib/data/visual-search/loader.js';
import { isHeader, splitCsvLine } from '../lib/papers/cogneuro/brain/loaders/csv.js';
import { encodeNifti, parseNifti, readNifti } from '../lib/papers/cogneuro/brain/loaders/nifti.js';
import { encodeNpy, MAX_NPY_HEADER, parseNpy, readNpy } from '../lib/papers/cogneuro/brain/loaders/npy.js';
import { loadNiftiResponses, readLabels, readResponses } from '../lib/papers/cogneuro/brain/loaders/responses.js';
import { fileHandler, loadCheckpoint, removeStaleTemporaries, saveCheckpoint } from '../lib/train/checkpoint.js';
import { crc32 } from '../lib/util/crc32.js';

const dir = mkdtempSync(join(tmpdir(), 'attnlab-robust-'));
const f = (name: string) => join(dir, name);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Inputs tried, errors raised (each naming the file), crashes, per reader: the table of the issue's closing note. */
const table = new Map<string, { tried: number; errors: number; crashes: number }>();
function count(reader: string, outcome: 'ok' | 'error' | 'crash'): void {
  const row = table.get(reader) ?? { tried: 0, errors: 0, crashes: 0 };
  row.tried++;
  if (outcome === 'error') row.errors++;
  if (outcome === 'crash') row.crashes++;
  table.set(reader, row);
}
afterAll(() => {
  const rows = [...table.entries()].map(([reader, r]) => ({ reader, ...r }));
  console.log(
    `robustness-data | reader | inputs tried | errors raised | crashes\n${rows.map((r) => `| ${r.reader} | ${r.tried} | ${r.errors} | ${r.crashes} |`).join('\n')}`,
  );
  expect(rows.every((r) => r.crashes === 0)).toBe(true);
});

/**
 * Run `read` on one input: a result must pass `check`; an error must be an Error naming `name` (and not a RangeError
 * or a stack overflow from the reader's insides). Anything else is counted as a crash and fails the property.
 */
function expectCleanOutcome<T>(reader: string, name: string, read: () => T, check: (r: T) => void): void {
  let r: T;
  try {
    r = read();
  } catch (e) {
    const clean = e instanceof Error && e.constructor === Error && e.message.includes(name);
    count(reader, clean ? 'error' : 'crash');
    if (!clean) throw new Error(`${reader}: not a clean error: ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
    return;
  }
  count(reader, 'ok');
  check(r);
}

/** A corruption of `bytes`: truncation, byte overwrites (some in the first `headerBytes`), or appended garbage. */
function corrupt(original: Uint8Array, headerBytes: number): fc.Arbitrary<Uint8Array> {
  // A plain copy: Buffer's slice() shares memory, and the edits below must not reach the original.
  const bytes = Uint8Array.from(original);
  const n = bytes.length;
  return fc.oneof(
    fc.nat({ max: n - 1 }).map((k) => bytes.slice(0, k)),
    fc
      .array(fc.tuple(fc.nat({ max: headerBytes - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      })
      .map((edits) => {
        const b = bytes.slice();
        for (const [i, v] of edits) b[i % n] = v;
        return b;
      }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
      const b = bytes.slice();
      for (const [i, v] of edits) b[i % n] = v;
      return b;
    }),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail) => Uint8Array.from([...bytes, ...tail])),
  );
}

const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

describe('.npy', () => {
  const shapes = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 4 });
  const typed = (kind: 'f4' | 'f8' | 'i4', n: number, seed: number) =>
    kind === 'f4'
      ? Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed + i) * 1e3))
      : kind === 'f8'
        ? Float64Array.from({ length: n }, (_, i) => Math.sin(seed + i) * 1e300)
        : Int32Array.from({ length: n }, (_, i) => ((seed + i) * 2654435761) | 0);

  it('valid files read back the values written', () => {
    fc.assert(
      fc.property(shapes, fc.constantFrom('f4' as const, 'f8' as const, 'i4' as const), fc.integer(), (s, k, seed) => {
        const data = typed(k, product(s), seed);
        expectCleanOutcome(
          'npy (valid)',
          'v.npy',
          () => parseNpy(encodeNpy(data, s), 'v.npy'),
          (r) => {
            expect(r.shape).toEqual(s);
            expect(Array.from(r.data)).toEqual(Array.from(data));
          },
        );
      }),
      { seed: 15, numRuns: 300 },
    );
  });

  it('corrupted files give a self-consistent array or an error naming the file', () => {
    fc.assert(
      fc.property(
        shapes.chain((s) => corrupt(encodeNpy(typed('f4', product(s), 1), s), 128).map((b) => [s, b] as const)),
        ([, b]) =>
          expectCleanOutcome(
            'npy (corrupted)',
            'c.npy',
            () => parseNpy(b, 'c.npy'),
            (r) => {
              expect(r.data.length).toBe(product(r.shape));
              expect(r.data.length).toBeLessThanOrEqual(b.length);
            },
          ),
      ),
      { seed: 15, numRuns: 1500 },
    );
  });

  it('random shape fields and header lengths give an error naming the file, never a RangeError', () => {
    const dim = fc.oneof(
      fc.integer({ min: -1e6, max: 1e6 }).map(String),
      fc.double({ noNaN: false }).map(String),
      fc.constantFrom('2**40', '1e3', '0x10', '-0', '', ' ', 'None', '9007199254740993', `1${'0'.repeat(400)}`),
    );
    fc.assert(
      fc.property(fc.array(dim, { minLength: 1, maxLength: 4 }), fc.constantFrom(1, 2, 3), (dims, major) => {
        const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}), }\n`;
        const pre = Buffer.alloc(major === 1 ? 10 : 12);
        pre.write('\x93NUMPY', 0, 'latin1');
        pre[6] = major;
        if (major === 1) pre.writeUInt16LE(dict.length, 8);
        else pre.writeUInt32LE(dict.length, 8);
        const b = Buffer.concat([pre, Buffer.from(dict, 'latin1'), Buffer.alloc(64)]);
        expectCleanOutcome(
          'npy (random shapes)',
          's.npy',
          () => parseNpy(b, 's.npy'),
          (r) => {
            expect(r.shape.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
            expect(r.data.length * 4).toBeLessThanOrEqual(64);
          },
        );
      }),
      { seed: 15, numRuns: 500 },
    );
  });

  it('the issue #15 cases: negative, fractional and overflowing shapes and a 2 MB header name the file', () => {
    const npy = (shape: string, major = 1, pad = 0) => {
      const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }${' '.repeat(pad)}\n`;
      const pre = Buffer.alloc(major === 1 ? 10 : 12);
      pre.write('\x93NUMPY', 0, 'latin1');
      pre[6] = major;
      if (major === 1) pre.writeUInt16LE(dict.length, 8);
      else pre.writeUInt32LE(dict.length, 8);
      return Buffer.concat([pre, Buffer.from(dict, 'latin1'), Buffer.alloc(64)]);
    };
    writeFileSync(f('neg.npy'), npy('(-2, -3)'));
    expect(() => readNpy(f('neg.npy'))).toThrow(
      `${f('neg.npy')}: shape (-2, -3) has the dimension '-2'; dimensions must be integers >= 0`,
    );
    expect(() => parseNpy(npy('(1.5, 2)'), 'frac.npy')).toThrow("frac.npy: shape (1.5, 2) has the dimension '1.5'");
    expect(() => parseNpy(npy('(-1, 5)'), 'm1.npy')).toThrow("m1.npy: shape (-1, 5) has the dimension '-1'");
    expect(() => parseNpy(npy('(1099511627776, 1099511627776)'), 'big.npy')).toThrow(
      'big.npy: header says shape [1099511627776,1099511627776] of <f4 (4835703278458516698824704 bytes) but only 64 bytes follow',
    );
    expect(() => parseNpy(npy('(2, 3)', 2, 2 * 1024 * 1024), 'huge.npy')).toThrow(
      new RegExp(
        `^huge\\.npy: the \\.npy header is 20972\\d\\d bytes, more than the ${MAX_NPY_HEADER} this reader accepts`,
      ),
    );
    expect(() => parseNpy(npy('(2, 3)', 7), 'v7.npy')).toThrow('v7.npy: .npy format version 7.0 is not supported');
    // A zero-size dimension after a huge one is a legal empty array, not an overflow.
    expect(parseNpy(npy('(1099511627776, 0)'), 'zero.npy').shape).toEqual([1099511627776, 0]);
  });
});

describe('NIfTI-1', () => {
  const dimsArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });
  const volume = (dims: number[], int: boolean) =>
    int
      ? Int32Array.from({ length: product(dims) }, (_, i) => i * 7 - 11)
      : Float32Array.from({ length: product(dims) }, (_, i) => Math.fround(i / 3 - 1));

  it('valid .nii and .nii.gz files read back the values written', () => {
    fc.assert(
      fc.property(dimsArb, fc.boolean(), fc.boolean(), (dims, int, gz) => {
        const data = volume(dims, int);
        const raw = encodeNifti(dims, data);
        expectCleanOutcome(
          'nifti (valid)',
          'v.nii',
          () => parseNifti(gz ? gzipSync(raw) : raw, 'v.nii'),
          (r) => {
            expect(r.dims).toEqual(dims);
            expect(Array.from(r.data)).toEqual(Array.from(data));
          },
        );
      }),
      { seed: 15, numRuns: 200 },
    );
  });

  it('corrupted .nii, corrupted .nii.gz bytes and gzipped corrupted headers give a consistent volume or an error naming the file', () => {
    const base = encodeNifti([3, 2, 2, 2], volume([3, 2, 2, 2], false));
    const check = (input: Uint8Array) => (r: ReturnType<typeof parseNifti>) => {
      expect(r.data.length).toBe(product(r.dims));
      expect(r.data.length).toBeLessThanOrEqual(input.length * 1032 + 4096);
    };
    fc.assert(
      fc.property(corrupt(base, 352), (b) =>
        expectCleanOutcome('nifti (corrupted .nii)', 'c.nii', () => parseNifti(b, 'c.nii'), check(b)),
      ),
      { seed: 15, numRuns: 800 },
    );
    const gz = gzipSync(base);
    fc.assert(
      fc.property(corrupt(gz, 64), (b) =>
        expectCleanOutcome('nifti (corrupted .gz bytes)', 'c.nii.gz', () => parseNifti(b, 'c.nii.gz'), check(b)),
      ),
      { seed: 15, numRuns: 800 },
    );
    fc.assert(
      fc.property(corrupt(base, 352), (b) => {
        const z = gzipSync(b);
        expectCleanOutcome('nifti (gzipped corrupted header)', 'h.nii.gz', () => parseNifti(z, 'h.nii.gz'), check(z));
      }),
      { seed: 15, numRuns: 500 },
    );
  });

  it('the issue #15 cases: vox_offset 0, NaN or inside the header, negative dims, truncated .gz, a gz bomb', () => {
    const base = encodeNifti([2, 2, 2], volume([2, 2, 2], false));
    const withVox = (v: number) => {
      const b = Buffer.from(base);
      b.writeFloatLE(v, 108);
      return b;
    };
    for (const v of [0, Number.NaN, 348, 100.5, -352])
      expect(() => parseNifti(withVox(v), 'vox.nii')).toThrow(
        `vox.nii: vox_offset is ${v}; a single-file NIfTI-1 stores its voxels at an integer offset >= 352`,
      );
    const negative = Buffer.from(base);
    negative.writeInt16LE(-2, 44);
    expect(() => parseNifti(negative, 'neg.nii')).toThrow('neg.nii: dim[2] = -2; sizes must be >= 1 (dims [2,-2,2])');
    writeFileSync(f('cut.nii.gz'), gzipSync(base).subarray(0, 60));
    expect(() => readNifti(f('cut.nii.gz'))).toThrow(`${f('cut.nii.gz')}: `);
    // A header declaring 2 GB of voxels behind a few hundred gzip bytes is refused before inflating anything more.
    const lying = Buffer.from(base);
    lying.writeInt16LE(4, 40);
    for (let i = 0; i < 4; i++) lying.writeInt16LE(i < 3 ? 1024 : 512, 42 + 2 * i);
    expect(() => parseNifti(gzipSync(lying), 'lie.nii.gz')).toThrow(
      /lie\.nii\.gz: dims \[1024,1024,1024,512\] need \d+ bytes, more than \d+ gzip bytes can hold/,
    );
    // A bad header in front of 64 MB of zeros (64 KB gzipped) is rejected from the header alone.
    const bomb = gzipSync(Buffer.concat([withVox(0), Buffer.alloc(64 * 1024 * 1024)]));
    expect(() => parseNifti(bomb, 'bomb.nii.gz')).toThrow('bomb.nii.gz: vox_offset is 0');
    // The header is looked for in at most 64 KiB of compressed bytes: a gzip comment of 1 KB is fine, one of 100 KB
    // (before a stream that could inflate to anything) is refused.
    const withComment = (bytes: number) => {
      const head = Buffer.from([0x1f, 0x8b, 8, 0x10, 0, 0, 0, 0, 0, 3]);
      const tail = Buffer.alloc(8);
      tail.writeUInt32LE(crc32(base, 0) >>> 0, 0);
      tail.writeUInt32LE(base.length, 4);
      return Buffer.concat([head, Buffer.alloc(bytes, 0x61), Buffer.from([0]), deflateRawSync(base), tail]);
    };
    expect(parseNifti(withComment(1000), 'c.nii.gz').dims).toEqual([2, 2, 2]);
    expect(() => parseNifti(withComment(100_000), 'c.nii.gz')).toThrow(
      'c.nii.gz: the first 65536 gzip bytes inflate to 0 bytes, not the 348 of a NIfTI-1 header',
    );
    // A good header whose stream inflates past the declared size is cut off at that size.
    const long = gzipSync(Buffer.concat([base, Buffer.alloc(64 * 1024 * 1024)]));
    expect(() => parseNifti(long, 'long.nii.gz')).toThrow(
      `long.nii.gz: inflates to more than the ${base.length} bytes its header declares (vox_offset 352 + dims [2,2,2])`,
    );
  });
});

describe('CSV responses, labels and atlas names', () => {
  const matrix = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 })).chain(([r, c]) =>
    fc.array(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: c, maxLength: c }), {
      minLength: r,
      maxLength: r,
    }),
  );

  it('valid CSVs (with or without a header, quoted header names, CRLF, blank lines) read back the values', () => {
    fc.assert(
      fc.property(matrix, fc.boolean(), fc.boolean(), (m, header, crlf) => {
        const nl = crlf ? '\r\n' : '\n';
        const lines = m.map((r) => r.map(String).join(','));
        if (header) lines.unshift(m[0].map((_, j) => `"voxel ${j}, left"`).join(','));
        writeFileSync(f('m.csv'), `${lines.join(`${nl}${nl}`)}${nl}`);
        expectCleanOutcome(
          'responses csv (valid)',
          f('m.csv'),
          () => readResponses(f('m.csv')),
          (r) => {
            expect([r.rows, r.cols]).toEqual([m.length, m[0].length]);
            expect(Array.from(r.data)).toEqual(m.flat().map((v) => (v === 0 ? 0 : v))); // String(-0) is '0'
          },
        );
      }),
      { seed: 15, numRuns: 200 },
    );
  });

  const tokens = fc.oneof(
    fc.constantFrom('', 'NaN', 'nan', 'inf', '-Infinity', '1e999', '0x10', '1,5', '"1"', '"open', 'x"y', 'v0', ' 3 '),
    fc.string({ maxLength: 6 }),
  );

  it('a field replaced by anything gives the matrix or an error naming the file and the line', () => {
    fc.assert(
      fc.property(matrix, fc.boolean(), fc.nat(), fc.nat(), tokens, (m, header, i, j, token) => {
        const rows = m.map((r) => r.map(String));
        if (header) rows.unshift(m[0].map((_, k) => `v${k}`));
        const line = i % rows.length;
        rows[line][j % rows[line].length] = token;
        writeFileSync(f('bad.csv'), `${rows.map((r) => r.join(',')).join('\n')}\n`);
        let message = '';
        expectCleanOutcome(
          'responses csv (one field replaced)',
          f('bad.csv'),
          () => {
            try {
              return readResponses(f('bad.csv'));
            } catch (e) {
              message = (e as Error).message;
              throw e;
            }
          },
          (r) => {
            // Read without error: every non-blank line is the header (by the header rule) or a row; all finite.
            const text = readFileSync(f('bad.csv'), 'utf8');
            const lines = text.split(/\r\n|\n|\r/).filter((l) => l.trim() !== '');
            const header = isHeader(splitCsvLine(lines[0], 'first line')) ? 1 : 0;
            expect(r.rows).toBe(lines.length - header);
            expect(Array.from(r.data).every(Number.isFinite)).toBe(true);
          },
        );
        if (message)
          expect(message).toMatch(new RegExp(`^${f('bad.csv').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}( line \\d+)?`));
      }),
      { seed: 15, numRuns: 600 },
    );
  });

  it('the issue #15 case: a first row holding NaN is data (rejected at its line), not a header', () => {
    writeFileSync(f('nan.csv'), '1,NaN\n3,4\n5,6\n');
    expect(() => readResponses(f('nan.csv'))).toThrow(
      `${f('nan.csv')} line 1, column 2: 'NaN' is not a finite number (the first line is read as a header only when none of its fields is empty or a number)`,
    );
    writeFileSync(f('mixed.csv'), 'id,v1\n1,2\n');
    expect(() => readResponses(f('mixed.csv'))).not.toThrow();
    writeFileSync(f('mixed2.csv'), 'id,1\n1,2\n');
    expect(() => readResponses(f('mixed2.csv'))).toThrow(
      `${f('mixed2.csv')} line 1, column 1: 'id' is not a finite number`,
    );
    writeFileSync(f('late.csv'), 'a,b\n\n1,2\n# x,3\n');
    expect(() => readResponses(f('late.csv'))).toThrow(
      `${f('late.csv')} line 4, column 1: '# x' is not a finite number`,
    );
    writeFileSync(f('open.csv'), 'a,b\n1,"2\n3,4\n');
    expect(() => readResponses(f('open.csv'))).toThrow(
      `${f('open.csv')} line 2: a quoted field is not closed on this line`,
    );
    writeFileSync(f('hdr.csv'), 'a,b\n');
    expect(() => readResponses(f('hdr.csv'))).toThrow(`${f('hdr.csv')}: line 1 is a header and no numeric rows follow`);
  });

  it('labels: one name per line, or all on one line; a multi-field line among many is an error naming the line', () => {
    writeFileSync(f('l.csv'), 'FFA\n"PPA, left"\nnone\n');
    expect(readLabels(f('l.csv'))).toEqual(['FFA', 'PPA, left', '']);
    writeFileSync(f('l2.csv'), 'FFA\nPPA,V1\n');
    expect(() => readLabels(f('l2.csv'))).toThrow(
      `${f('l2.csv')} line 2: has 2 fields; a labels file holds one name per line`,
    );
    writeFileSync(f('l.npy'), encodeNpy(Float64Array.from([1, 2.5]), [2]));
    expect(() => readLabels(f('l.npy'))).toThrow(`${f('l.npy')}: labels[1] is 2.5; region ids must be integers`);
  });

  it('non-finite .npy responses and bad atlas name lines are errors naming the file', () => {
    writeFileSync(f('r.npy'), encodeNpy(Float32Array.from([1, 2, Number.NaN, 4]), [2, 2]));
    expect(() => readResponses(f('r.npy'))).toThrow(`${f('r.npy')}: responses[1, 0] is NaN; responses must be finite`);
    writeFileSync(f('bold.nii'), encodeNifti([2, 1, 1, 3], new Float32Array(6)));
    writeFileSync(f('atlas.nii'), encodeNifti([2, 1, 1], Int32Array.from([1, 2])));
    writeFileSync(f('names.csv'), 'id,name\n1,V1\n1e21,FFA\n');
    expect(() => loadNiftiResponses({ series: f('bold.nii'), atlas: f('atlas.nii'), names: f('names.csv') })).toThrow(
      `${f('names.csv')} line 3: the id '1e21' is not an integer`,
    );
    writeFileSync(f('names2.csv'), '1,V1\n1,FFA\n');
    expect(() => loadNiftiResponses({ series: f('bold.nii'), atlas: f('atlas.nii'), names: f('names2.csv') })).toThrow(
      `${f('names2.csv')} line 2: id 1 is named twice`,
    );
  });
});

describe('scanpath CSV', () => {
  const files = exampleScanpathFiles();
  const objects = readFileSync(files.objects, 'utf8');
  const fixations = readFileSync(files.fixations, 'utf8');
  const dataLines = (t: string) => t.split('\n').filter((l) => l.trim() && !l.startsWith('#')).length - 1;

  it('the example files load, every line accounted for', () => {
    const r = parseScanpathCsv(objects, fixations);
    expect(r.displays.reduce((a, d) => a + d.objects.length, 0)).toBe(dataLines(objects));
    expect(r.trials.reduce((a, t) => a + t.scanpath.length, 0)).toBe(dataLines(fixations));
  });

  const tokens = fc.oneof(
    fc.constantFrom(
      '4294967295',
      '1e21',
      '-1',
      '1.5',
      '0x1',
      '9007199254740993',
      '',
      'NaN',
      '1e999',
      '+1',
      '255',
      '256',
    ),
    fc.integer({ min: -3, max: 40 }).map(String),
    fc.string({ maxLength: 5 }),
  );

  it('a field replaced by anything loads with no line dropped, or fails naming the file and a line it has', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.nat(), tokens, (inObjects, i, j, token) => {
        const text = inObjects ? objects : fixations;
        const lines = text.split('\n');
        const k = 1 + (i % (lines.length - 2)); // a data line
        const fields = lines[k].split(',');
        fields[j % fields.length] = token;
        lines[k] = fields.join(',');
        const o = inObjects ? lines.join('\n') : objects;
        const x = inObjects ? fixations : lines.join('\n');
        let r: ReturnType<typeof parseScanpathCsv>;
        try {
          r = parseScanpathCsv(o, x);
        } catch (e) {
          const clean =
            e instanceof ScanpathFormatError &&
            (e.file === 'objects.csv' || e.file === 'fixations.csv') &&
            e.line >= 1 &&
            e.line <= (e.file === 'objects.csv' ? o : x).split('\n').length;
          count('scanpath csv (one field replaced)', clean ? 'error' : 'crash');
          if (!clean) throw e;
          return;
        }
        count('scanpath csv (one field replaced)', 'ok');
        expect(r.displays.reduce((a, d) => a + d.objects.length, 0)).toBe(dataLines(o));
        expect(r.trials.reduce((a, t) => a + t.scanpath.length, 0)).toBe(dataLines(x));
      }),
      { seed: 15, numRuns: 1000 },
    );
  });

  it('the issue #15 cases: object ids 4294967295 and 1e21 are errors naming the file and line', () => {
    const O = 'display,object,x,y,row,col,category,colour,shape,size,target';
    const obj = (id: string) => `${O}\nd1,0,0.5,0.5,0,0,a,red,circle,0,1\nd1,${id},1.5,0.5,0,1,b,blue,square,1,0\n`;
    const F = 'display,subject,fixation,object\nd1,s1,1,0\n';
    expect(() => parseScanpathCsv(obj('4294967295'), F)).toThrow(
      "objects.csv line 3: column 'object' must be an integer in 0..1 (ids are 0..n-1 within a display and objects.csv has 2 object lines), got '4294967295'",
    );
    expect(() => parseScanpathCsv(obj('1e21'), F)).toThrow(/^objects\.csv line 3: column 'object' must be an integer/);
    expect(() => parseScanpathCsv(obj('1'), `${F}d1,s1,2,4294967295\n`)).toThrow(
      "fixations.csv line 3: object 4294967295 is not in display 'd1' (it has objects 0..1)",
    );
    expect(() => parseScanpathCsv(obj('1'), `${F}d1,s1,2,1e21\n`)).toThrow(
      "fixations.csv line 3: column 'object' must be an integer in 0..9007199254740991, got '1e21'",
    );
    expect(() => parseScanpathCsv(obj('1').replace('0,1,b,blue', '0,100000,b,blue'), F)).toThrow(
      "objects.csv line 3: column 'col' must be an integer in 0..255, got '100000'",
    );
  });
});

describe('checkpoint reader', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  const tensorsArb = fc.array(
    fc.record({
      shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
      dtype: fc.constantFrom('float32' as const, 'int32' as const, 'bool' as const),
      seed: fc.integer({ min: 0, max: 1000 }),
    }),
    { minLength: 1, maxLength: 4 },
  );
  const make = (spec: { shape: number[]; dtype: 'float32' | 'int32' | 'bool'; seed: number }) => {
    const n = product(spec.shape);
    const v = Array.from({ length: n }, (_, i) =>
      spec.dtype === 'bool'
        ? (spec.seed + i) % 2
        : spec.dtype === 'int32'
          ? spec.seed * 31 - i * 7
          : (spec.seed + i) / 7,
    );
    return tf.tensor(v, spec.shape, spec.dtype);
  };

  it('valid checkpoints read back the tensors, config and step written', async () => {
    await fc.assert(
      fc.asyncProperty(tensorsArb, fc.integer({ min: 0, max: 1e6 }), async (specs, step) => {
        const named = Object.fromEntries(specs.map((s, i) => [`t${i}`, make(s)]));
        const file = f('valid.ckpt');
        await saveCheckpoint(file, { namedTensors: named, config: { specs }, step });
        const before = tf.memory().numTensors;
        const ck = await loadCheckpoint(file);
        count('checkpoint (valid)', 'ok');
        expect(ck.step).toBe(step);
        expect(ck.config).toEqual({ specs });
        for (const [k, t] of Object.entries(named)) {
          expect(ck.tensors[k].shape).toEqual(t.shape);
          expect(ck.tensors[k].dtype).toBe(t.dtype);
          expect(Array.from(ck.tensors[k].dataSync())).toEqual(Array.from(t.dataSync()));
        }
        ck.dispose();
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose(Object.values(named));
      }),
      { seed: 15, numRuns: 60 },
    );
  });

  /** Load `bytes` as a file: the tensors made must be consistent and freed, or the error must name the file. */
  async function loadBytes(reader: string, bytes: Uint8Array): Promise<void> {
    const file = f('corrupt.ckpt');
    await fsp.writeFile(file, bytes);
    const before = tf.memory().numTensors;
    try {
      const ck = await loadCheckpoint(file);
      count(reader, 'ok');
      for (const e of ck.meta.tensors) expect(ck.tensors[e.name] ?? ck.optimizerState?.slots[e.name]).toBeDefined();
      ck.dispose();
    } catch (e) {
      const clean = e instanceof Error && e.constructor === Error && e.message.includes(file);
      count(reader, clean ? 'error' : 'crash');
      if (!clean) throw e;
    }
    expect(tf.memory().numTensors).toBe(before);
  }

  /** A checkpoint file around `json` and `data`, with a correct checksum. */
  const rebuild = (json: string, data: Uint8Array) => {
    const body = Buffer.from(json, 'utf8');
    const head = Buffer.alloc(Math.ceil((16 + body.length) / 8) * 8);
    head.write('ATNLCKPT', 0, 'latin1');
    head.writeUInt32LE(1, 8);
    head.writeUInt32LE(body.length, 12);
    body.copy(head, 16);
    const all = Buffer.concat([head, data]);
    const tail = Buffer.alloc(4);
    tail.writeUInt32LE(crc32(all, 0) >>> 0, 0);
    return Buffer.concat([all, tail]);
  };

  it('corrupted bytes give an error naming the file', async () => {
    const file = f('base.ckpt');
    const named = { a: tf.ones([3, 4]), b: tf.tensor1d([1, 2, 3], 'int32') };
    await saveCheckpoint(file, { namedTensors: named, config: { x: 1 }, step: 3 });
    tf.dispose(Object.values(named));
    const base = new Uint8Array(readFileSync(file));
    await fc.assert(
      fc.asyncProperty(corrupt(base, 200), (b) => loadBytes('checkpoint (corrupted bytes)', b)),
      { seed: 15, numRuns: 300 },
    );
  });

  it('metadata rewritten with a valid checksum (bad shapes, offsets, dtypes, JSON) gives an error naming the file', async () => {
    const file = f('meta.ckpt');
    const named = { a: tf.ones([3, 4]), b: tf.tensor1d([1, 2, 3], 'int32') };
    await saveCheckpoint(file, { namedTensors: named, config: null, step: 3 });
    tf.dispose(Object.values(named));
    const base = readFileSync(file);
    const n = base.readUInt32LE(12);
    const meta = JSON.parse(base.toString('utf8', 16, 16 + n));
    const dataStart = Math.ceil((16 + n) / 8) * 8;
    const data = base.subarray(dataStart, base.length - 4);
    const value = fc.oneof(
      fc.integer({ min: -1e12, max: 1e12 }),
      fc.double(),
      fc.constant(null),
      fc.string({ maxLength: 8 }),
      fc.constantFrom('float32', 'int32', 'bool', 'complex64', 'weights', 'optimizer', 'model'),
      fc.array(fc.oneof(fc.integer({ min: -5, max: 1e10 }), fc.double()), { maxLength: 4 }),
    );
    const field = fc.constantFrom('shape', 'byteLength', 'offset', 'dtype', 'group', 'name');
    const top = fc.constantFrom('format', 'kind', 'step', 'tensors', 'model');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.nat({ max: 1 }), field, value).map(([i, k, v]) => {
            const m = structuredClone(meta);
            m.tensors[i][k] = v;
            return JSON.stringify(m);
          }),
          fc.tuple(top, value).map(([k, v]) => JSON.stringify({ ...meta, [k]: v })),
          fc.string({ maxLength: 40 }),
          fc.nat({ max: JSON.stringify(meta).length - 1 }).map((k) => JSON.stringify(meta).slice(0, k)),
        ),
        (json) => loadBytes('checkpoint (rewritten metadata)', rebuild(json, data)),
      ),
      { seed: 15, numRuns: 500 },
    );
  });

  it('a model file (fileHandler) with rewritten weight specs gives the weights or an error naming the file', async () => {
    const file = f('model.ckpt');
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4] })] });
    await model.save(fileHandler(file));
    model.dispose();
    const base = readFileSync(file);
    const n = base.readUInt32LE(12);
    const meta = JSON.parse(base.toString('utf8', 16, 16 + n));
    const data = base.subarray(Math.ceil((16 + n) / 8) * 8, base.length - 4);
    const spec = fc.record({
      name: fc.constantFrom('a', 'b'),
      shape: fc.array(fc.oneof(fc.integer({ min: -3, max: 40 }), fc.double()), { maxLength: 3 }),
      dtype: fc.constantFrom('float32', 'int32', 'bool', 'string', 'complex64', 'x'),
    });
    const weightData = fc.record({
      offset: fc.oneof(fc.integer({ min: -8, max: 200 }), fc.double()),
      byteLength: fc.oneof(fc.integer({ min: -8, max: 200 }), fc.double()),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(spec, { maxLength: 3 }), fc.option(weightData), async (specs, wd) => {
        const m = structuredClone(meta);
        m.model.artifacts.weightSpecs = specs;
        if (wd) m.model.weightData = wd;
        await loadBytes('checkpoint (model file, rewritten specs)', rebuild(JSON.stringify(m), data));
      }),
      { seed: 15, numRuns: 200 },
    );
  });

  it("a model weight spec of dtype 'string' and a huge shape is refused before tfjs loops over it", async () => {
    const file = f('model2.ckpt');
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [2] })] });
    await model.save(fileHandler(file));
    model.dispose();
    const base = readFileSync(file);
    const n = base.readUInt32LE(12);
    const meta = JSON.parse(base.toString('utf8', 16, 16 + n));
    const data = base.subarray(Math.ceil((16 + n) / 8) * 8, base.length - 4);
    meta.model.artifacts.weightSpecs = [{ name: 'w', shape: [1e9, 15], dtype: 'string' }];
    writeFileSync(file, rebuild(JSON.stringify(meta), data));
    await expect(loadCheckpoint(file)).rejects.toThrow(
      `loadCheckpoint: ${file} is not a valid attnlab checkpoint: model weight "w" has dtype "string"; float32, int32 or bool are read`,
    );
    meta.model.artifacts.weightSpecs = [{ name: 'w', shape: [1000, 1000], dtype: 'float32' }];
    writeFileSync(file, rebuild(JSON.stringify(meta), data));
    await expect(loadCheckpoint(file)).rejects.toThrow(
      `${file} is not a valid attnlab checkpoint: the model's weightSpecs need 4000000 bytes, its weight data has 24`,
    );
  });

  it('a save killed mid-way leaves a .tmp that the next save or load in the folder removes (fake dead pid)', async () => {
    const sub = f('tmps');
    mkdirSync(sub);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // a process that has exited
    const tag = (crc32(Buffer.from(hostname(), 'utf8'), 0) >>> 0).toString(16).padStart(8, '0');
    const stale = join(sub, `.big.ckpt.${dead}.${tag}.0badc0de.tmp`);
    const empty = join(sub, `.other.ckpt.${dead}.${tag}.12345678.tmp`);
    const live = join(sub, `.big.ckpt.${process.pid}.${tag}.aaaaaaaa.tmp`); // a save in progress in this process
    const foreignHost = join(sub, `.big.ckpt.${dead}.ffffffff.bbbbbbbb.tmp`); // another machine's save on a shared disk
    const notOurs = join(sub, `.notes.${dead}.${tag}.cccccccc.tmp`); // same pattern, not a checkpoint
    writeFileSync(stale, Buffer.concat([Buffer.from('ATNLCKPT'), Buffer.alloc(1024)]));
    writeFileSync(empty, '');
    writeFileSync(live, 'ATNLCKPT');
    writeFileSync(foreignHost, 'ATNLCKPT');
    writeFileSync(notOurs, 'some notes');
    const ones = tf.ones([2]);
    await saveCheckpoint(join(sub, 'new.ckpt'), { namedTensors: { ones } });
    ones.dispose();
    const left = (await fsp.readdir(sub)).sort();
    expect(left).toEqual(
      [
        'new.ckpt',
        `.big.ckpt.${process.pid}.${tag}.aaaaaaaa.tmp`,
        `.big.ckpt.${dead}.ffffffff.bbbbbbbb.tmp`,
        `.notes.${dead}.${tag}.cccccccc.tmp`,
      ].sort(),
    );
    // The same at a load.
    writeFileSync(stale, 'ATNLCKPT');
    (await loadCheckpoint(join(sub, 'new.ckpt'))).dispose();
    expect((await fsp.readdir(sub)).includes(`.big.ckpt.${dead}.${tag}.0badc0de.tmp`)).toBe(false);
    expect(await removeStaleTemporaries(join(sub, 'no-such-folder'))).toEqual([]);
  });
});

describe('CLI', () => {
  it('experiment --out is checked before anything runs (a folder, a path under a file)', async () => {
    const { experimentCommand } = await import('../lib/cli/experiment.js');
    writeFileSync(f('a-file'), '');
    await expect(experimentCommand(['no-such-experiment', '--out', dir])).rejects.toThrow(
      new UsageError(`attnlab experiment: --out ${dir}: ${dir} is a folder; give a file name`),
    );
    await expect(experimentCommand(['no-such-experiment', '--out', f('a-file/x/out.json')])).rejects.toThrow(
      `attnlab experiment: --out ${f('a-file/x/out.json')}: ${f('a-file')} is a file, so no folder can be made under it`,
    );
    const { benchCommand } = await import('../lib/cli/bench.js');
    const err = console.error;
    const seen: string[] = [];
    console.error = (...a: unknown[]) => seen.push(a.join(' '));
    try {
      expect(await benchCommand(['--out', dir])).toBe(2);
    } finally {
      console.error = err;
    }
    expect(seen).toEqual([`bench: --out ${dir}: ${dir} is a folder; give a file name`]);
    // A good --out in a folder still to be made passes the check and the command goes on (to the unknown name).
    await expect(experimentCommand(['no-such-experiment', '--out', f('new/dir/out.json')])).rejects.toThrow(
      /no-such-experiment/,
    );
  });

  // A stand-in for scripts/kernel-nbrun.py: same protocol, no Jupyter; it dies on a notebook whose metadata says so.
  const runnerScript = f('fake-runner.cjs');
  writeFileSync(
    runnerScript,
    `const fs = require('fs'), path = require('path');
const a = process.argv.slice(2); const nbs = []; let html;
for (let i = 0; i < a.length; i++) { if (a[i] === '--timeout') i++; else if (a[i] === '--html-dir') html = a[++i]; else nbs.push(a[i]); }
for (const nb of nbs) {
  const j = JSON.parse(fs.readFileSync(nb, 'utf8'));
  if (j.metadata && j.metadata.crash) { console.error('Traceback (most recent call last):\\nnbformat.validator.ValidationError: fake'); process.exit(1); }
  const out = html ? path.join(html, path.basename(nb, '.ipynb') + '.html') : undefined;
  if (out) fs.writeFileSync(out, '<html><head></head><body>ok</body></html>');
  console.log('@@attnlab ' + JSON.stringify({ notebook: nb, title: 'T ' + path.basename(nb), ok: true, seconds: 0.01, html: out }));
}`,
  );
  const runner = { command: process.execPath, args: [runnerScript] };
  const nb = (name: string, text: string) => {
    writeFileSync(f(name), text);
    return f(name);
  };
  const good = JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [] });

  it('report on a batch with malformed notebooks names each, runs the others and writes index.html listing the failures', async () => {
    const list = [
      nb('a.ipynb', good),
      nb('broken.ipynb', '{"cells": [\n  {"cell_type": "code",\n}'),
      nb('b.ipynb', good),
      nb('array.ipynb', '[1, 2]'),
      nb('crash.ipynb', JSON.stringify({ nbformat: 4, metadata: { crash: true }, cells: [] })),
      nb('c.ipynb', good),
    ];
    const out = f('reports');
    const logs: string[] = [];
    const err = console.error;
    const log = console.log;
    console.error = (...a: unknown[]) => logs.push(a.join(' '));
    console.log = (...a: unknown[]) => logs.push(a.join(' '));
    let code: number;
    try {
      code = await reportCommand(['--out', out, ...list], runner);
    } finally {
      console.error = err;
      console.log = log;
    }
    expect(code).toBe(1);
    const index = readFileSync(join(out, 'index.html'), 'utf8');
    // One table row per notebook, found by its file name; its status cell says ok or why it failed.
    const row = (name: string) => index.split('<tr>').find((r) => r.includes(`<div class="file">${name}</div>`)) ?? '';
    for (const name of ['a.ipynb', 'b.ipynb', 'c.ipynb']) expect(row(name)).toContain('<td>ok</td>');
    expect(row('broken.ipynb')).toMatch(
      /<td>failed at before any cell ran: NotebookFormatError: not valid notebook JSON at line 3, column 1/,
    );
    expect(row('array.ipynb')).toContain(
      '<td>failed at before any cell ran: NotebookFormatError: a notebook is a JSON object, this file holds an array</td>',
    );
    expect(row('crash.ipynb')).toContain(
      '<td>failed at before any cell ran: RunnerError: the notebook runner stopped on this notebook: nbformat.validator.ValidationError: fake</td>',
    );
    expect(logs.some((l) => l.startsWith(`FAIL  ${f('broken.ipynb')}: before any cell ran: NotebookFormatError`))).toBe(
      true,
    );
    expect(logs.some((l) => l.startsWith(`wrote 3 report(s) and ${join(out, 'index.html')} in `))).toBe(true);
  });

  it('run continues the batch past a malformed notebook; report refuses an --out that is a file before running', async () => {
    const results = await executeNotebooks([f('broken.ipynb'), f('crash.ipynb'), f('a.ipynb')], { runner });
    expect(results.map((r) => [r.ok, r.ename])).toEqual([
      [false, 'NotebookFormatError'],
      [false, 'RunnerError'],
      [true, undefined],
    ]);
    const err = console.error;
    const seen: string[] = [];
    console.error = (...a: unknown[]) => seen.push(a.join(' '));
    try {
      expect(await runCommand([f('broken.ipynb')], runner)).toBe(1);
      // The runner would write this folder's reports; it must not start at all.
      expect(await reportCommand(['--out', f('a-file'), f('a.ipynb')], { command: '/nonexistent', args: [] })).toBe(2);
    } finally {
      console.error = err;
    }
    expect(seen.join('\n')).toContain(`attnlab report: --out ${f('a-file')}: ${f('a-file')} is a file, not a folder`);
  });
});
