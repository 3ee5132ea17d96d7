/**
 * Real scanpath data in a plain CSV format (documented with an example in data/oat/README.md), so eye-tracking data can
 * go through the same models and metrics as the simulation. Two files:
 *
 *   objects.csv    display,object,x,y,row,col,category,colour,shape,size,target
 *   fixations.csv  display,subject,fixation,object
 *
 * One line per object (ids 0..n-1 within a display; x, y the centre in cell units; row, col the integer grid slot;
 * category/colour/shape any labels; size in [0, 1]; target 1 on exactly one object) and one line per fixation (numbered
 * 1, 2, 3, ... per display and subject, in order). Extra columns are ignored; blank lines and lines starting with '#'
 * are skipped; fields cannot contain commas or quotes. Integers are plain decimals (object ids 0..n-1, row and col
 * 0..MAX_GRID-1, fixations 1, 2, ...) and numbers plain decimals ('0x10', '1e999', 'NaN' are refused): a value out of
 * range is an error, never a dropped line. Every error names the file and line.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { packageRoot } from '../../util/paths.js';
import type { FeatureSpace, SearchDisplay, VisualObject } from './displays.js';
import type { Trial } from './splits.js';

export class ScanpathFormatError extends Error {
  override name = 'ScanpathFormatError';
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file} line ${line}: ${message}`);
  }
}

export const OBJECT_COLUMNS = [
  'display',
  'object',
  'x',
  'y',
  'row',
  'col',
  'category',
  'colour',
  'shape',
  'size',
  'target',
] as const;
export const FIXATION_COLUMNS = ['display', 'subject', 'fixation', 'object'] as const;

interface Row {
  line: number;
  get(column: string): string;
}

function parseCsv(text: string, file: string, required: readonly string[]): Row[] {
  const lines = text.split(/\r?\n/);
  let h = 0;
  while (h < lines.length && (lines[h].trim() === '' || lines[h].startsWith('#'))) h++;
  if (h === lines.length)
    throw new ScanpathFormatError(file, 1, `no header line; expected the columns ${required.join(',')}`);
  const header = lines[h].split(',').map((c) => c.trim());
  const missing = required.filter((c) => !header.includes(c));
  if (missing.length)
    throw new ScanpathFormatError(
      file,
      h + 1,
      `header lacks column(s) ${missing.join(', ')}; expected ${required.join(',')}, got ${header.join(',')}`,
    );
  const index = new Map(header.map((c, i) => [c, i]));
  const rows: Row[] = [];
  for (let i = h + 1; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === '' || raw.startsWith('#')) continue;
    if (raw.includes('"'))
      throw new ScanpathFormatError(
        file,
        i + 1,
        'quoted fields are not supported; labels cannot contain commas or quotes',
      );
    const cells = raw.split(',').map((c) => c.trim());
    if (cells.length !== header.length)
      throw new ScanpathFormatError(file, i + 1, `has ${cells.length} fields but the header has ${header.length}`);
    rows.push({ line: i + 1, get: (c) => cells[index.get(c)!] });
  }
  return rows;
}

/** Grid rows and columns above this are refused (a display is drawn at CELL_PX pixels per cell). */
export const MAX_GRID = 256;

function int(file: string, r: Row, column: string, min: number, max = Number.MAX_SAFE_INTEGER, why = ''): number {
  const s = r.get(column);
  const v = /^\+?[0-9]+$/.test(s) ? Number(s) : Number.NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new ScanpathFormatError(
      file,
      r.line,
      `column '${column}' must be an integer in ${min}..${max}${why}, got '${s}'`,
    );
  return v;
}

const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

function num(file: string, r: Row, column: string, lo = -Infinity, hi = Infinity): number {
  const s = r.get(column);
  const v = DECIMAL.test(s) ? Number(s) : Number.NaN;
  if (!Number.isFinite(v) || v < lo || v > hi) {
    const range = lo > -Infinity ? ` in [${lo}, ${hi}]` : '';
    throw new ScanpathFormatError(file, r.line, `column '${column}' must be a finite number${range}, got '${s}'`);
  }
  return v;
}

function label(file: string, r: Row, column: string): string {
  const s = r.get(column);
  if (s === '') throw new ScanpathFormatError(file, r.line, `column '${column}' is empty`);
  return s;
}

export interface LoadedScanpaths {
  displays: SearchDisplay[];
  /** One trial per (display, subject), in the order the fixation file first names them. */
  trials: Trial[];
  /** Label vocabularies (sorted), shared by every display; features are one-hot over them. */
  space: FeatureSpace;
}

/**
 * Parse the two files' text. `names` are the file names used in errors (default 'objects.csv', 'fixations.csv').
 */
export interface ParseOptions {
  /** File names used in errors (default 'objects.csv', 'fixations.csv'). */
  objects?: string;
  fixations?: string;
  /**
   * The label vocabularies to encode with, e.g. CATALOGUE for a model trained on the simulation (every label must be
   * in it). Default: the file's own labels, sorted.
   */
  space?: FeatureSpace;
}

export function parseScanpathCsv(objectsText: string, fixationsText: string, opts: ParseOptions = {}): LoadedScanpaths {
  const fo = opts.objects ?? 'objects.csv';
  const ff = opts.fixations ?? 'fixations.csv';
  const objRows = parseCsv(objectsText, fo, OBJECT_COLUMNS);
  if (objRows.length === 0) throw new ScanpathFormatError(fo, 1, 'has a header but no object lines');
  const vocab = (c: string) => [...new Set(objRows.map((r) => label(fo, r, c)))].sort();
  const space: FeatureSpace = opts.space ?? {
    categories: vocab('category'),
    colours: vocab('colour'),
    shapes: vocab('shape'),
  };
  const lookup = (r: Row, column: 'category' | 'colour' | 'shape', names: readonly string[]): number => {
    const i = names.indexOf(label(fo, r, column));
    if (i < 0)
      throw new ScanpathFormatError(
        fo,
        r.line,
        `column '${column}' has '${r.get(column)}', which is not one of the given labels (${names.join(', ')})`,
      );
    return i;
  };

  const byDisplay = new Map<
    string,
    { rows: Row[]; objects: (VisualObject | undefined)[]; target: number; targetLine: number }
  >();
  for (const r of objRows) {
    const id = label(fo, r, 'display');
    const entry = byDisplay.get(id) ?? { rows: [], objects: [], target: -1, targetLine: 0 };
    byDisplay.set(id, entry);
    const j = int(
      fo,
      r,
      'object',
      0,
      objRows.length - 1,
      ` (ids are 0..n-1 within a display and ${fo} has ${objRows.length} object lines)`,
    );
    if (entry.objects[j]) throw new ScanpathFormatError(fo, r.line, `object ${j} of display '${id}' is listed twice`);
    const t = r.get('target');
    if (t !== '0' && t !== '1') throw new ScanpathFormatError(fo, r.line, `column 'target' must be 0 or 1, got '${t}'`);
    if (t === '1') {
      if (entry.target >= 0)
        throw new ScanpathFormatError(
          fo,
          r.line,
          `display '${id}' has a second target (object ${j}; the first is object ${entry.target} on line ${entry.targetLine})`,
        );
      entry.target = j;
      entry.targetLine = r.line;
    }
    entry.rows.push(r);
    entry.objects[j] = {
      x: num(fo, r, 'x'),
      y: num(fo, r, 'y'),
      row: int(fo, r, 'row', 0, MAX_GRID - 1),
      col: int(fo, r, 'col', 0, MAX_GRID - 1),
      category: lookup(r, 'category', space.categories),
      colour: lookup(r, 'colour', space.colours),
      shape: lookup(r, 'shape', space.shapes),
      size: num(fo, r, 'size', 0, 1),
    };
  }
  const displays = new Map<string, SearchDisplay>();
  for (const [id, e] of byDisplay) {
    const first = e.rows[0].line;
    // biome-ignore lint/complexity/useIndexOf: indexOf skips an array's holes (a display numbered from 1); findIndex sees them
    const gap = e.objects.findIndex((o) => o === undefined);
    if (gap >= 0)
      throw new ScanpathFormatError(
        fo,
        first,
        `display '${id}' (from this line) has objects up to ${e.objects.length - 1} but no object ${gap}; number objects 0..n-1`,
      );
    if (e.objects.length < 2)
      throw new ScanpathFormatError(
        fo,
        first,
        `display '${id}' has ${e.objects.length} object; a search display needs at least 2`,
      );
    if (e.target < 0)
      throw new ScanpathFormatError(
        fo,
        first,
        `display '${id}' (from this line) has no target; mark one object with target = 1`,
      );
    const objects = e.objects as VisualObject[];
    const rows = Math.max(...objects.map((o) => o.row)) + 1,
      cols = Math.max(...objects.map((o) => o.col)) + 1;
    const full =
      objects.length === rows * cols && new Set(objects.map((o) => o.row * cols + o.col)).size === objects.length;
    displays.set(id, { id, layout: full ? 'shelf' : 'clutter', rows, cols, objects, target: e.target, space });
  }

  const fixRows = parseCsv(fixationsText, ff, FIXATION_COLUMNS);
  const trials = new Map<string, Trial>();
  for (const r of fixRows) {
    const id = label(ff, r, 'display');
    const d = displays.get(id);
    if (!d) throw new ScanpathFormatError(ff, r.line, `display '${id}' is not in ${fo}`);
    const subject = label(ff, r, 'subject');
    const key = `${id}\u0000${subject}`;
    const trial = trials.get(key) ?? { display: d, scanpath: [], subject };
    trials.set(key, trial);
    const k = int(ff, r, 'fixation', 1);
    if (k !== trial.scanpath.length + 1) {
      throw new ScanpathFormatError(
        ff,
        r.line,
        `fixation ${k} of display '${id}', subject '${subject}' should be ${trial.scanpath.length + 1} (fixations are numbered 1, 2, ... in order)`,
      );
    }
    const j = int(ff, r, 'object', 0);
    if (j >= d.objects.length)
      throw new ScanpathFormatError(
        ff,
        r.line,
        `object ${j} is not in display '${id}' (it has objects 0..${d.objects.length - 1})`,
      );
    trial.scanpath.push(j);
  }
  return { displays: [...displays.values()], trials: [...trials.values()], space };
}

/** Read the two files from disk (Node); `space` as in parseScanpathCsv. */
export async function loadScanpathCsv(
  objectsPath: string,
  fixationsPath: string,
  opts: { space?: FeatureSpace } = {},
): Promise<LoadedScanpaths> {
  const [o, f] = await Promise.all([readFile(objectsPath, 'utf8'), readFile(fixationsPath, 'utf8')]);
  return parseScanpathCsv(o, f, {
    objects: basename(objectsPath),
    fixations: basename(fixationsPath),
    space: opts.space,
  });
}

/** Paths of the example files shipped in data/oat (written from the simulated searcher; see data/oat/README.md). */
export function exampleScanpathFiles(): { objects: string; fixations: string } {
  const dir = join(packageRoot(), 'data', 'oat');
  return { objects: join(dir, 'example-objects.csv'), fixations: join(dir, 'example-fixations.csv') };
}

/** The two files' text for trials (the inverse of parseScanpathCsv; each display is written once). */
export function scanpathsToCsv(trials: readonly Trial[]): { objects: string; fixations: string } {
  const objects = [OBJECT_COLUMNS.join(',')];
  const fixations = [FIXATION_COLUMNS.join(',')];
  const written = new Set<string>();
  for (const t of trials) {
    const d = t.display;
    if (!written.has(d.id)) {
      written.add(d.id);
      d.objects.forEach((o, j) => {
        objects.push(
          [
            d.id,
            j,
            +o.x.toFixed(3),
            +o.y.toFixed(3),
            o.row,
            o.col,
            d.space.categories[o.category],
            d.space.colours[o.colour],
            d.space.shapes[o.shape],
            o.size,
            +(j === d.target),
          ].join(','),
        );
      });
    }
    t.scanpath.forEach((j, k) => fixations.push([d.id, t.subject, k + 1, j].join(',')));
  }
  return { objects: `${objects.join('\n')}\n`, fixations: `${fixations.join('\n')}\n` };
}
