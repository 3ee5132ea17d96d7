/**
 * Every notebook in notebooks/ runs top to bottom in quick mode (ATTNLAB_QUICK=1) with the attnlab kernel, and its
 * exported report draws every figure in headless Chromium with no network. Its prose states only what the run shows
 * (issue #16): every claim its markdown marks (`<span data-claim="id">`) is backed by a claim output that holds, and
 * every claim output marked `mustHold` holds (lib/display/claim.ts, checked on the executed notebook).
 *
 * The notebooks are dealt to SHARDS test files (notebooks-1.test.ts, notebooks-2.test.ts, ...: the k-th notebook in
 * name order goes to shard k % SHARDS) so that vitest's two workers share them: one file holding every notebook kept
 * one worker busy long after the other had run out of files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installKernelSpec, KERNEL_NAME } from '../kernel/install.js';
import { executeNotebooks, type NotebookResult, selfContained } from '../lib/cli/notebooks.js';
import { checkNotebookClaims, type NotebookJson } from '../lib/display/claim.js';
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

/** A Python 3 that can run scripts/kernel-nbrun.py (nbclient and nbconvert), as `attnlab run` picks it. */
function nbrunPython(): string {
  for (const candidate of [process.env.ATTNLAB_PYTHON, '/usr/bin/python3', 'python3']) {
    if (candidate && spawnSync(candidate, ['-c', 'import nbclient, nbconvert'], { stdio: 'ignore' }).status === 0)
      return candidate;
  }
  throw new Error('needs Python 3 with nbclient and nbconvert: apt-get install -y python3-nbclient jupyter-nbconvert');
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
    let kernelPrefix: string | undefined;
    let results: (NotebookResult & { executed?: string })[] = [];

    beforeAll(async () => {
      ensureBuilt();
      out = mkdtempSync(join(tmpdir(), 'attnlab-notebooks-'));
      // `attnlab run`'s own runner, plus --executed-dir: the claim check reads each executed notebook's outputs. The
      // kernelspec goes to a private prefix, as executeNotebooks does for its default runner.
      kernelPrefix = mkdtempSync(join(tmpdir(), 'attnlab-kernelspec-'));
      installKernelSpec({ prefix: kernelPrefix, root: ROOT });
      const jupyterPath = process.env.JUPYTER_PATH;
      process.env.JUPYTER_PATH = [join(kernelPrefix, 'share', 'jupyter'), jupyterPath].filter(Boolean).join(delimiter);
      try {
        results = await executeNotebooks(notebooks, {
          quick: true,
          timeout: 600,
          htmlDir: out,
          runner: {
            command: nbrunPython(),
            args: [
              join(ROOT, 'scripts', 'kernel-nbrun.py'),
              '--kernel',
              KERNEL_NAME,
              '--executed-dir',
              join(out, 'executed'),
            ],
          },
        });
      } finally {
        if (jupyterPath === undefined) delete process.env.JUPYTER_PATH;
        else process.env.JUPYTER_PATH = jupyterPath;
      }
    }, NOTEBOOKS_BUDGET_MS);

    afterAll(() => {
      if (kernelPrefix) rmSync(kernelPrefix, { recursive: true, force: true });
    });

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

    it.each(notebooks)('states only results its quick run shows (claims, #16): %s', (nb) => {
      const r = results.find((x) => x.notebook === nb)!;
      expect(r.ok, `${nb} did not run to the end, so its claims cannot be checked`).toBe(true);
      expect(r.executed, `${nb}: the runner wrote no executed notebook`).toBeDefined();
      const executed = JSON.parse(readFileSync(r.executed!, 'utf8')) as NotebookJson;
      const { problems } = checkNotebookClaims(executed, nb);
      expect(problems).toEqual([]);
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
