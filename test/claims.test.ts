/**
 * Claims (lib/display/claim.ts): a result sentence renders as shown only when its numbers show it, and the notebook
 * check fails on marked prose whose claim is missing or does not hold (fixture notebooks, no kernel).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CLAIM_MIME,
  type ClaimRecord,
  checkNotebookClaims,
  claim,
  formatClaimNumber,
  markedClaims,
  type NotebookJson,
  toMimeBundle,
} from '../lib/display/index.js';

/** The output a code cell holds after `al.display(claim(...))`, as nbformat stores it. */
function output(id: string, holds: boolean, mustHold = false) {
  const bundle = toMimeBundle(claim(id, { holds, text: `claim ${id}`, mustHold }));
  return { output_type: 'display_data', data: bundle, metadata: {} };
}

function notebook(...cells: NotebookJson['cells']): NotebookJson {
  return { cells };
}

const md = (source: string) => ({ cell_type: 'markdown', source });
const code = (...outputs: ReturnType<typeof output>[]) => ({ cell_type: 'code', source: 'x', outputs });

describe('claim()', () => {
  let quick: string | undefined;
  beforeEach(() => {
    quick = process.env.ATTNLAB_QUICK;
  });
  afterEach(() => {
    if (quick === undefined) delete process.env.ATTNLAB_QUICK;
    else process.env.ATTNLAB_QUICK = quick;
  });

  it('renders a claim that holds as shown, with its numbers in place', () => {
    const c = claim('layer', {
      holds: true,
      text: 'Layer 1 wins: {l1} against {l0}.',
      numbers: { l0: 0.18234, l1: 0.9123, n: 512 },
    });
    expect(c.record.sentence).toBe('Shown by this run: Layer 1 wins: 0.912 against 0.182. (n = 512)');
    const b = toMimeBundle(c);
    expect(b['text/plain']).toBe('[layer] Shown by this run: Layer 1 wins: 0.912 against 0.182. (n = 512)');
    expect(b['text/html']).toContain('data-holds="true"');
    expect((b[CLAIM_MIME] as ClaimRecord).holds).toBe(true);
  });

  it('never renders a claim that does not hold as true: the "not shown" version carries the numbers', () => {
    const plain = claim('layer', {
      holds: false,
      text: 'Layer 1 wins: {l1} against {l0}.',
      numbers: { l0: 0.18, l1: 0.12 },
    });
    expect(plain.record.sentence).toBe('Not shown by this run: “Layer 1 wins: 0.12 against 0.18.”');
    const b = toMimeBundle(plain);
    expect(b['text/html']).toContain('Not shown by this run');
    expect(b['text/html']).toContain('data-holds="false"');
    expect(b['text/html']).not.toContain('Shown by this run:</strong> Layer');
    const other = claim('layer', {
      holds: false,
      text: 'Layer 1 wins: {l1} against {l0}.',
      otherwise: 'Layer 0 ({l0}) beats layer 1 ({l1}).',
      numbers: { l0: 0.18, l1: 0.12 },
    });
    expect(other.record.sentence).toBe(
      'Not shown by this run: “Layer 1 wins: 0.12 against 0.18.” This run: Layer 0 (0.18) beats layer 1 (0.12).',
    );
    expect(other.record.claim).toBe('Layer 1 wins: 0.12 against 0.18.');
  });

  it('escapes its HTML and records quick mode and mustHold', () => {
    process.env.ATTNLAB_QUICK = '1';
    const b = toMimeBundle(
      claim('x', { holds: true, text: '<b>a</b> & {s}', numbers: { s: '<script>' }, mustHold: true }),
    );
    expect(b['text/html']).toContain('&lt;b&gt;a&lt;/b&gt; &amp; &lt;script&gt;');
    expect(b['text/html']).not.toContain('<script>');
    const r = b[CLAIM_MIME] as ClaimRecord;
    expect(r.quick).toBe(true);
    expect(r.mustHold).toBe(true);
  });

  it('formats numbers compactly', () => {
    expect(formatClaimNumber(0.123456)).toBe('0.123');
    expect(formatClaimNumber(12.3456)).toBe('12.3');
    expect(formatClaimNumber(12345.6)).toBe('12346');
    expect(formatClaimNumber(42)).toBe('42');
    expect(formatClaimNumber(0.000012345)).toBe('1.23e-5');
    expect(formatClaimNumber(Number.NaN)).toBe('NaN');
    expect(formatClaimNumber(0.98765, 2)).toBe('0.99');
  });

  it('names the function, the argument, the expected and the actual value on bad input', () => {
    expect(() => claim('', { holds: true, text: 'a' })).toThrow(/claim: id must be .* got ""/);
    expect(() => claim('bad id', { holds: true, text: 'a' })).toThrow(/claim: id .* got "bad id"/);
    expect(() => claim('a', { holds: 1 as unknown as boolean, text: 'a' })).toThrow(
      /claim\('a'\): spec.holds must be a boolean, got 1/,
    );
    expect(() => claim('a', { holds: true, text: ' ' })).toThrow(/claim\('a'\): spec.text must be a non-empty/);
    expect(() => claim('a', { holds: true, text: 'x {y}', numbers: { z: 1 } })).toThrow(
      /claim: spec.text names \{y\}, expected one of the numbers \(z\), got no number called "y"/,
    );
    expect(() => claim('a', { holds: false, text: 'x', otherwise: 'w {q}' })).toThrow(/spec.otherwise names \{q\}/);
    expect(() => claim('a', { holds: true, text: 'x', numbers: { z: [1] as unknown as number } })).toThrow(
      /spec.numbers.z must be a number or a string, got \[1\]/,
    );
    expect(() => claim('a', { holds: true, text: 'x', digits: 0 })).toThrow(
      /spec.digits must be an integer in 1..12, got 0/,
    );
    expect(() => claim('a', { holds: true, text: 'x', mustHold: 'yes' as unknown as boolean })).toThrow(
      /spec.mustHold must be a boolean when given, got "yes"/,
    );
  });
});

describe('checkNotebookClaims', () => {
  it('finds marked ids in markdown, in either quote style', () => {
    expect(markedClaims(`a <span data-claim="one">x</span> and <em class="k" data-claim='two'>y</em>`)).toEqual([
      'one',
      'two',
    ]);
    expect(markedClaims('data-claim="outside a tag" stays text')).toEqual([]);
  });

  it('passes a notebook whose marked claims are shown and hold, and whose conditional claims do not', () => {
    const nb = notebook(
      md('The head sits in <span data-claim="layer">layer 1</span>.'),
      code(output('layer', true)),
      code(output('conditional', false)),
      code(output('guard', true, true)),
    );
    const r = checkNotebookClaims(nb, 'ok.ipynb');
    expect(r.problems).toEqual([]);
    expect(r.marked).toEqual([{ id: 'layer', cell: 1 }]);
    expect(r.claims.map((c) => [c.id, c.cell, c.holds])).toEqual([
      ['layer', 2, true],
      ['conditional', 3, false],
      ['guard', 4, true],
    ]);
  });

  it('fails a marked claim that the run does not show', () => {
    const nb = notebook(md('The head sits in <span data-claim="layer">layer 1</span>.'), code(output('layer', false)));
    const { problems } = checkNotebookClaims(nb, 'nb.ipynb');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /nb.ipynb: cell 1 states claim 'layer' as true, but this run does not show it \(cell 2/,
    );
  });

  it('fails a marked claim with no backing claim output (also when its cell never ran)', () => {
    const nb = notebook(md('<span data-claim="layer">layer 1</span>'), code(output('other', true)), {
      cell_type: 'code',
      source: 'al.display(al.display.claim("layer", ...))',
      outputs: [],
    });
    const { problems } = checkNotebookClaims(nb, 'nb.ipynb');
    expect(problems).toEqual([
      "nb.ipynb: cell 1 marks claim 'layer', but no code cell's output shows a claim with that id",
    ]);
  });

  it('fails a mustHold claim that does not hold, without any markdown', () => {
    const { problems } = checkNotebookClaims(notebook(code(output('guard', false, true))), 'nb.ipynb');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/claim 'guard' \(cell 1\) must hold in this run but does not: Not shown by this run/);
  });

  it('fails duplicate ids, malformed marks and malformed claim outputs', () => {
    const nb = notebook(
      md('<span data-claim="bad id">x</span>'),
      code(output('twice', true), output('twice', true)),
      code({ output_type: 'display_data', data: { [CLAIM_MIME]: { id: 'x' } }, metadata: {} } as never),
    );
    const { problems } = checkNotebookClaims(nb, 'nb.ipynb');
    expect(problems.some((p) => /malformed id "bad id"/.test(p))).toBe(true);
    expect(problems.some((p) => /claim 'twice' is shown 2 times \(cells 2, 2\)/.test(p))).toBe(true);
    expect(problems.some((p) => /cell 3 has a malformed claim output/.test(p))).toBe(true);
  });

  it('fails a cell that ran and makes a claim but shows none (a block whose last expression is not displayed)', () => {
    const hidden = {
      cell_type: 'code',
      source: "{\n  al.display.claim('x', { holds: true, text: 'a' })\n}",
      execution_count: 3,
      outputs: [],
    };
    const { problems } = checkNotebookClaims(notebook(hidden), 'nb.ipynb');
    expect(problems).toEqual([
      "nb.ipynb: cell 1 makes a claim but shows none: display it with al.display(...) or as the cell's last top-level expression",
    ]);
    // Shown, or never run (the suite reports the failed run itself): no problem here.
    const shown = { ...hidden, outputs: [output('x', true)] };
    expect(checkNotebookClaims(notebook(shown)).problems).toEqual([]);
    expect(checkNotebookClaims(notebook({ ...hidden, execution_count: null })).problems).toEqual([]);
  });

  it('reads nbformat list sources and rejects what is not a notebook', () => {
    const nb = notebook(
      { cell_type: 'markdown', source: ['a <span ', 'data-claim="s">b</span>'] },
      code(output('s', true)),
    );
    expect(checkNotebookClaims(nb).problems).toEqual([]);
    expect(() => checkNotebookClaims({} as NotebookJson)).toThrow(/checkNotebookClaims: nb must be a notebook object/);
  });
});
