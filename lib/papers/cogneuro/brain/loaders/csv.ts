/**
 * The CSV reading shared by the brain loaders: numbers and labels, one record per line, errors that name the file and
 * its line (1-based, counting blank lines too).
 *
 * Hand-written rather than a library: these files hold numbers and short labels, so a record never spans lines, and
 * what a user needs from an error is the file's own line number. Fields may be quoted ("a, b" and "" for a quote, as
 * RFC 4180 writes them); a quote left open at the end of a line is an error rather than a record continued on the next.
 */
import { readFileSync } from 'node:fs';

export interface CsvLine {
  /** 1-based line number in the file. */
  line: number;
  fields: string[];
}

/** Split one line into trimmed fields; `where` (e.g. "f.csv line 3") prefixes errors. */
export function splitCsvLine(text: string, where: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (text[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error(`${where}: a quoted field is not closed on this line`);
        v += text.slice(i, q);
        if (text[q + 1] === '"') {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (i < text.length && text[i] !== ',')
        throw new Error(`${where}: text after the closing quote of field ${fields.length + 1}`);
      fields.push(v);
    } else {
      const c = text.indexOf(',', i);
      const raw = text.slice(i, c < 0 ? text.length : c);
      if (raw.includes('"'))
        throw new Error(`${where}: field ${fields.length + 1} has a quote inside an unquoted value`);
      fields.push(raw.trim());
      i = c < 0 ? text.length : c;
    }
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

/** The non-blank lines of a CSV file (a UTF-8 byte order mark is dropped), split into fields. */
export function readCsv(path: string): CsvLine[] {
  let text = readFileSync(path, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: CsvLine[] = [];
  text.split(/\r\n|\n|\r/).forEach((l, i) => {
    if (l.trim() !== '') out.push({ line: i + 1, fields: splitCsvLine(l, `${path} line ${i + 1}`) });
  });
  return out;
}

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:nan|inf|infinity)$/i;

/** A field written as a number, finite or not ('1', '-2.5e3', 'NaN', 'inf'); hex, '' and words are not. */
export function looksNumeric(s: string): boolean {
  return DECIMAL.test(s) || NON_FINITE.test(s);
}

/** The value of a field that must be a finite decimal number, or undefined. */
export function finiteNumber(s: string): number | undefined {
  if (!DECIMAL.test(s)) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

/**
 * The header rule: the first non-blank line is a header when every one of its fields is non-empty and none looks like
 * a number. So `v0,v1` is a header, while `1,NaN` and `id,1` are data (and then rejected if not all finite numbers).
 */
export function isHeader(fields: readonly string[]): boolean {
  return fields.length > 0 && fields.every((f) => f !== '' && !looksNumeric(f));
}
