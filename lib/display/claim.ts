/**
 * Claim sentences that are true of the numbers on the page (issue #16).
 *
 * A notebook sentence that states a result is either generated from the run's numbers or backed by a claim that the
 * notebook suite checks. `claim(id, spec)` is the one place a result sentence is decided: it renders the sentence with
 * its numbers when `holds` is true, and an explicit "not shown by this run" version, with the same numbers, when it is
 * false; it never renders the claim as true when the run does not show it.
 *
 *   const [l0, l1] = [Math.max(...scores[0]), Math.max(...scores[1])];
 *   al.display.claim('induction-layer', {
 *     holds: l1 > l0,
 *     text: "The best induction head sits in layer 1: its score {l1} beats layer 0's best, {l0}.",
 *     otherwise: "Layer 1's best induction score ({l1}) does not beat layer 0's ({l0}).",
 *     numbers: { l0, l1 },
 *   })
 *   // holds:     "Shown by this run: The best induction head sits in layer 1: its score 0.912 beats layer 0's best, 0.213."
 *   // otherwise: "Not shown by this run: “The best induction head sits in layer 1: its score 0.121 beats layer 0's best,
 *   //             0.183.” This run: Layer 1's best induction score (0.121) does not beat layer 0's (0.183)."
 *
 * Markdown that states a result marks it, `<span data-claim="induction-layer">the induction head sits in layer
 * 1</span>`, and some code cell of the same notebook must show a claim with that id. Static markdown cannot change with
 * the run, so a marked sentence is a promise: the notebook suite (quick mode) fails when its claim is missing or does
 * not hold. A claim with `mustHold: true` is held to the same promise without markdown; every other claim is
 * conditional, generated from the numbers, and passes by construction. `checkNotebookClaims(executedNotebookJson)` is
 * that check; test/notebook-suite.ts runs it on every notebook's quick run.
 *
 * The claim reaches the executed notebook as its own MIME type, CLAIM_MIME (a JSON record: id, holds, mustHold, the
 * rendered sentence and its numbers), beside text/html and text/plain; that JSON is what the checker reads.
 */
import { JUPYTER_DISPLAY, type MimeBundle } from './handle.js';
import { escapeHtml } from './html.js';

/** The MIME type of a claim's machine-readable record in a notebook output. */
export const CLAIM_MIME = 'application/vnd.attnlab.claim+json';

/** A claim id: letters, digits, '-', '_' and '.', starting with a letter or digit (at most 80 characters). */
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;
/** `{name}` placeholders in a claim's sentences. */
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export interface ClaimSpec {
  /** Whether this run's numbers show the claim (decide it from the numbers, with their intervals where they have one). */
  holds: boolean;
  /** The claim, stated as true; `{name}` is replaced by `numbers[name]`. */
  text: string;
  /**
   * What the run shows instead when the claim does not hold (same placeholders): rendered after the quoted claim as
   * `Not shown by this run: “<text>” This run: <otherwise>`. Without it, only the quoted claim is shown.
   */
  otherwise?: string;
  /** The numbers the claim is decided on: shown in the sentence where a placeholder names them, else after it. */
  numbers?: Record<string, number | string>;
  /** Significant digits for numbers that are not integers (default 3). */
  digits?: number;
  /**
   * The notebook suite, which runs every notebook in quick mode, fails when this claim does not hold. Use it for what
   * even the quick run must show (a regression guard); claims that only the full run can show leave it false.
   */
  mustHold?: boolean;
}

/** A claim as the executed notebook stores it (CLAIM_MIME) and the checker reads it. */
export interface ClaimRecord {
  id: string;
  holds: boolean;
  mustHold: boolean;
  /** The sentence as rendered (numbers filled in), with its "Shown by this run" / "Not shown by this run" prefix. */
  sentence: string;
  /** The claim as stated (numbers filled in), whether or not it holds. */
  claim: string;
  numbers: Record<string, number | string>;
  /** ATTNLAB_QUICK was set when the claim was made. */
  quick: boolean;
}

function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x);
  if (x === null || typeof x !== 'object') return String(x);
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return Object.prototype.toString.call(x);
  }
}

/** A number as a claim shows it: integers whole, others to `digits` significant digits (never in exponent form above 1). */
export function formatClaimNumber(v: number, digits = 3): string {
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 10 ** digits) return String(Math.round(v));
  if (abs < 1e-4) return v.toExponential(Math.max(0, digits - 1));
  return String(Number(v.toPrecision(digits)));
}

function fill(
  fn: string,
  arg: string,
  template: string,
  numbers: Record<string, number | string>,
  digits: number,
  used: Set<string>,
): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    if (!(name in numbers))
      throw new RangeError(
        `${fn}: ${arg} names {${name}}, expected one of the numbers (${Object.keys(numbers).join(', ') || 'none given'}), got no number called ${JSON.stringify(name)}`,
      );
    used.add(name);
    const v = numbers[name]!;
    return typeof v === 'number' ? formatClaimNumber(v, digits) : v;
  });
}

/** A claim, decided: display it (`al.display(c)`, or as a cell's last expression). */
export class Claim {
  readonly record: ClaimRecord;

  constructor(id: string, spec: ClaimSpec) {
    const fn = 'claim';
    if (typeof id !== 'string' || !ID.test(id))
      throw new TypeError(
        `${fn}: id must be 1-80 letters, digits, '-', '_' or '.' starting with a letter or digit, got ${describe(id)}`,
      );
    if (spec === null || typeof spec !== 'object')
      throw new TypeError(`${fn}('${id}'): spec must be an object { holds, text, ... }, got ${describe(spec)}`);
    if (typeof spec.holds !== 'boolean')
      throw new TypeError(`${fn}('${id}'): spec.holds must be a boolean, got ${describe(spec.holds)}`);
    if (typeof spec.text !== 'string' || !spec.text.trim())
      throw new TypeError(`${fn}('${id}'): spec.text must be a non-empty sentence, got ${describe(spec.text)}`);
    if (spec.otherwise !== undefined && (typeof spec.otherwise !== 'string' || !spec.otherwise.trim()))
      throw new TypeError(
        `${fn}('${id}'): spec.otherwise must be a non-empty sentence when given, got ${describe(spec.otherwise)}`,
      );
    if (spec.mustHold !== undefined && typeof spec.mustHold !== 'boolean')
      throw new TypeError(`${fn}('${id}'): spec.mustHold must be a boolean when given, got ${describe(spec.mustHold)}`);
    const digits = spec.digits ?? 3;
    if (!Number.isInteger(digits) || digits < 1 || digits > 12)
      throw new RangeError(`${fn}('${id}'): spec.digits must be an integer in 1..12, got ${describe(spec.digits)}`);
    const numbers = spec.numbers ?? {};
    if (numbers === null || typeof numbers !== 'object' || Array.isArray(numbers))
      throw new TypeError(
        `${fn}('${id}'): spec.numbers must be a record of numbers or strings, got ${describe(spec.numbers)}`,
      );
    for (const [k, v] of Object.entries(numbers))
      if (typeof v !== 'number' && typeof v !== 'string')
        throw new TypeError(`${fn}('${id}'): spec.numbers.${k} must be a number or a string, got ${describe(v)}`);
    const used = new Set<string>();
    const claim = fill(fn, 'spec.text', spec.text.trim(), numbers, digits, used);
    let body: string;
    if (spec.holds) body = claim;
    else if (spec.otherwise)
      body = `“${claim}” This run: ${fill(fn, 'spec.otherwise', spec.otherwise.trim(), numbers, digits, used)}`;
    else body = `“${claim}”`;
    const rest = Object.entries(numbers)
      .filter(([k]) => !used.has(k))
      .map(([k, v]) => `${k} = ${typeof v === 'number' ? formatClaimNumber(v, digits) : v}`);
    const sentence = `${spec.holds ? 'Shown by this run' : 'Not shown by this run'}: ${body}${rest.length ? ` (${rest.join(', ')})` : ''}`;
    this.record = {
      id,
      holds: spec.holds,
      mustHold: spec.mustHold ?? false,
      sentence,
      claim,
      numbers: { ...numbers },
      quick: process.env.ATTNLAB_QUICK === '1',
    };
  }

  /** The bundle: HTML (escaped), plain text, and the CLAIM_MIME record the notebook check reads. */
  [JUPYTER_DISPLAY](): MimeBundle {
    const r = this.record;
    const colour = r.holds ? '#2a7d2a' : '#b36b00';
    const background = r.holds ? '#f3faf3' : '#fff8e6';
    const prefix = r.holds ? 'Shown by this run' : 'Not shown by this run';
    const body = r.sentence.slice(prefix.length + 2);
    const html =
      `<div class="attnlab-claim" data-claim-id="${escapeHtml(r.id)}" data-holds="${r.holds}" ` +
      `style="border-left:4px solid ${colour};background:${background};padding:4px 10px;margin:4px 0">` +
      `<strong style="color:${colour}">${r.holds ? '&#10003;' : '&#10007;'} ${prefix}:</strong> ${escapeHtml(body)}</div>`;
    return { 'text/html': html, 'text/plain': `[${r.id}] ${r.sentence}`, [CLAIM_MIME]: { ...r } };
  }

  toString(): string {
    return `[${this.record.id}] ${this.record.sentence}`;
  }
}

/**
 * Decide and render one claim of a notebook (see the module comment). Returns a displayable Claim; show it with
 * `al.display(...)` or as the cell's last expression, since only a shown claim backs the notebook's marked prose.
 */
export function claim(id: string, spec: ClaimSpec): Claim {
  return new Claim(id, spec);
}

// ---------------------------------------------------------------------------------------------------------------------
// The check: an executed notebook's marked prose against its claim outputs.

/** The parts of a notebook (nbformat 4) the check reads. */
export interface NotebookJson {
  cells: {
    cell_type: string;
    source: string | string[];
    execution_count?: number | null;
    outputs?: { output_type?: string; data?: Record<string, unknown> }[];
  }[];
}

export interface ClaimCheck {
  /** Every claim shown in the notebook's outputs, with its 1-based cell index. */
  claims: (ClaimRecord & { cell: number })[];
  /** Every claim id marked in markdown, with its 1-based cell index. */
  marked: { id: string; cell: number }[];
  /** What is wrong; empty when the notebook's prose is backed by its numbers. */
  problems: string[];
}

const MARK = /<[A-Za-z][^>]*?\sdata-claim\s*=\s*("([^"]*)"|'([^']*)')/g;
/** A code cell that makes a claim: `claim('id'` (also `al.display.claim(` and `new Claim(`). */
const MAKES_CLAIM = /\b(?:claim|Claim)\(\s*['"`]/;

function text(source: string | string[]): string {
  return Array.isArray(source) ? source.join('') : source;
}

function isRecord(x: unknown): x is ClaimRecord {
  const r = x as ClaimRecord;
  return (
    r !== null &&
    typeof r === 'object' &&
    typeof r.id === 'string' &&
    typeof r.holds === 'boolean' &&
    typeof r.mustHold === 'boolean' &&
    typeof r.sentence === 'string'
  );
}

/** The claim ids marked in a markdown source (`data-claim="id"` on any element). */
export function markedClaims(markdown: string): string[] {
  return [...markdown.matchAll(MARK)].map((m) => m[2] ?? m[3] ?? '');
}

/**
 * Check an executed notebook: every claim id marked in its markdown is shown by a code cell's output and holds;
 * every claim shown with `mustHold` holds; claim ids are unique and well formed; a cell that ran and makes a claim
 * shows at least one (a claim inside a `{ ... }` block that is not passed to al.display is never shown). `name`
 * labels the problems.
 */
export function checkNotebookClaims(nb: NotebookJson, name = 'notebook'): ClaimCheck {
  if (nb === null || typeof nb !== 'object' || !Array.isArray(nb.cells))
    throw new TypeError(
      `checkNotebookClaims: nb must be a notebook object with a cells array, got ${describe(nb).slice(0, 80)}`,
    );
  const claims: ClaimCheck['claims'] = [];
  const marked: ClaimCheck['marked'] = [];
  const problems: string[] = [];
  nb.cells.forEach((c, i) => {
    const cell = i + 1;
    if (c.cell_type === 'markdown') {
      for (const id of markedClaims(text(c.source))) {
        if (!ID.test(id))
          problems.push(`${name}: cell ${cell} marks a claim with a malformed id ${JSON.stringify(id)}`);
        marked.push({ id, cell });
      }
    } else if (c.cell_type === 'code') {
      const before = claims.length;
      for (const out of c.outputs ?? []) {
        if (!out.data || !(CLAIM_MIME in out.data)) continue;
        const r = out.data[CLAIM_MIME];
        if (!isRecord(r)) {
          problems.push(`${name}: cell ${cell} has a malformed claim output: ${describe(r).slice(0, 120)}`);
          continue;
        }
        claims.push({ ...r, cell });
      }
      // A claim that is made but never shown backs nothing (a block's last expression is not displayed).
      if (typeof c.execution_count === 'number' && claims.length === before && MAKES_CLAIM.test(text(c.source)))
        problems.push(
          `${name}: cell ${cell} makes a claim but shows none: display it with al.display(...) or as the cell's last top-level expression`,
        );
    }
  });
  const byId = new Map<string, ClaimCheck['claims']>();
  for (const c of claims) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
  for (const [id, cs] of byId)
    if (cs.length > 1)
      problems.push(
        `${name}: claim '${id}' is shown ${cs.length} times (cells ${cs.map((c) => c.cell).join(', ')}); ids are unique`,
      );
  for (const m of marked) {
    const backing = byId.get(m.id);
    if (!backing)
      problems.push(
        `${name}: cell ${m.cell} marks claim '${m.id}', but no code cell's output shows a claim with that id`,
      );
    else if (!backing.some((c) => c.holds))
      problems.push(
        `${name}: cell ${m.cell} states claim '${m.id}' as true, but this run does not show it (cell ${backing[0]!.cell}: ${backing[0]!.sentence})`,
      );
  }
  for (const c of claims)
    if (c.mustHold && !c.holds)
      problems.push(`${name}: claim '${c.id}' (cell ${c.cell}) must hold in this run but does not: ${c.sentence}`);
  return { claims, marked, problems };
}
