/**
 * Every notebook in notebooks/ runs top to bottom in quick mode (ATTNLAB_QUICK=1) with the attnlab kernel, and its
 * exported report draws every figure in headless Chromium with no network.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { executeNotebooks, type NotebookResult, selfContained } from '../lib/cli/notebooks.js';
import { CHROMIUM, ensureBuilt, ROOT, renderInChromium } from './kernel-support.js';

const notebooks = readdirSync(join(ROOT, 'notebooks'))
  .filter((f) => f.endsWith('.ipynb'))
  .sort()
  .map((f) => join(ROOT, 'notebooks', f));

/**
 * Quick notebooks run one after another in one runner: the budget grows with their number (each takes well under a
 * minute or two on a quiet two-core machine; 5 minutes each leaves room for a loaded one).
 */
const NOTEBOOKS_BUDGET_MS = 300_000 * Math.max(3, notebooks.length);

describe('notebooks (quick mode)', () => {
  let out: string;
  let results: NotebookResult[] = [];

  beforeAll(async () => {
    ensureBuilt();
    out = mkdtempSync(join(tmpdir(), 'attnlab-notebooks-'));
    results = await executeNotebooks(notebooks, { quick: true, timeout: 600, htmlDir: out });
  }, NOTEBOOKS_BUDGET_MS);

  it('finds the notebooks', () => {
    expect(notebooks.length).toBeGreaterThan(0);
  });

  it.each(notebooks)('are committed without outputs: %s', (nb) => {
    const cells = (
      JSON.parse(readFileSync(nb, 'utf8')) as {
        cells: { cell_type: string; outputs?: unknown[]; execution_count?: unknown }[];
      }
    ).cells;
    for (const c of cells.filter((c) => c.cell_type === 'code')) {
      expect(c.outputs).toEqual([]);
      expect(c.execution_count).toBeNull();
    }
  });

  it.each(notebooks)('runs without errors: %s', (nb) => {
    const r = results.find((x) => x.notebook === nb);
    expect(r, `no result for ${nb}`).toBeDefined();
    expect(r!.ok, `${nb}: cell ${r!.cell} (${r!.source}): ${r!.ename}: ${r!.evalue}`).toBe(true);
  });

  it.skipIf(!existsSync(CHROMIUM)).each(notebooks)(
    'renders every figure of its report offline: %s',
    async (nb) => {
      const r = results.find((x) => x.notebook === nb)!;
      writeFileSync(r.html!, selfContained(readFileSync(r.html!, 'utf8')));
      const check = await renderInChromium(r.html!);
      expect(check.figures).toBeGreaterThan(0);
      expect(check.rendered).toBe(check.figures);
      expect(check.pageErrors).toEqual([]);
      expect(check.blocked).toEqual([]);
    },
    120_000,
  );
});
