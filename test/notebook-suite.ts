/**
 * Every notebook in notebooks/ runs top to bottom in quick mode (ATTNLAB_QUICK=1) with the attnlab kernel, and its
 * exported report draws every figure in headless Chromium with no network.
 *
 * The notebooks are dealt to SHARDS test files (notebooks-1.test.ts, notebooks-2.test.ts, ...: the k-th notebook in
 * name order goes to shard k % SHARDS) so that vitest's two workers share them: one file holding every notebook kept
 * one worker busy long after the other had run out of files.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { executeNotebooks, type NotebookResult, selfContained } from '../lib/cli/notebooks.js';
import { CHROMIUM, ensureBuilt, ROOT, renderInChromium } from './kernel-support.js';

/** How many test files share the notebooks (each file is one `notebooks-<k>.test.ts` calling notebookSuite(k)). */
export const SHARDS = 2;

/** Every notebook, in name order. */
export const ALL_NOTEBOOKS = readdirSync(join(ROOT, 'notebooks'))
  .filter((f) => f.endsWith('.ipynb'))
  .sort()
  .map((f) => join(ROOT, 'notebooks', f));

/** The notebooks of shard `k` (1-based). */
export function shardNotebooks(k: number): string[] {
  return ALL_NOTEBOOKS.filter((_, i) => i % SHARDS === k - 1);
}

/** The suite for shard k: run its notebooks, check they are committed clean, ran, and render offline. */
export function notebookSuite(k: number): void {
  const notebooks = shardNotebooks(k);

  /**
   * Quick notebooks run one after another in one runner: the budget grows with their number (each takes well under a
   * minute or two on a quiet two-core machine; 5 minutes each leaves room for a loaded one).
   */
  const NOTEBOOKS_BUDGET_MS = 300_000 * Math.max(3, notebooks.length);

  describe(`notebooks (quick mode), shard ${k} of ${SHARDS}`, () => {
    let out: string;
    let results: NotebookResult[] = [];

    beforeAll(async () => {
      ensureBuilt();
      out = mkdtempSync(join(tmpdir(), 'attnlab-notebooks-'));
      results = await executeNotebooks(notebooks, { quick: true, timeout: 600, htmlDir: out });
    }, NOTEBOOKS_BUDGET_MS);

    it('finds the notebooks, and the shards hold each one exactly once', () => {
      expect(notebooks.length).toBeGreaterThan(0);
      const dealt = Array.from({ length: SHARDS }, (_, i) => shardNotebooks(i + 1)).flat();
      expect(dealt.sort()).toEqual([...ALL_NOTEBOOKS].sort());
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
}
