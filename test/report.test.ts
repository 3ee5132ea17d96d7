/**
 * `attnlab report` end to end on a small notebook: executed by the kernel, exported to one HTML file that renders
 * every figure in headless Chromium with the network cut off.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, ensureBuilt, ROOT, renderInChromium } from './kernel-support.js';

function notebook(cells: { type: 'markdown' | 'code'; source: string }[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'attnlab', display_name: 'TypeScript (attnlab)', language: 'typescript' } },
    cells: cells.map((c, i) =>
      c.type === 'markdown'
        ? { id: `c${i}`, cell_type: 'markdown', metadata: {}, source: c.source }
        : { id: `c${i}`, cell_type: 'code', metadata: {}, source: c.source, outputs: [], execution_count: null },
    ),
  });
}

const FIGURES = [
  `import * as d from 'attnlab/display';
const w = [[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]];
d.attentionHeatmap(w, { tokens: ['a', 'b', 'a'], title: 'one head' })`,
  `d.display(d.trainingCurves([{ step: 0, loss: 3 }, { step: 10, loss: 2 }, { step: 20, loss: 1.2 }]))`,
  `d.attentionGrid([[[[1, 0], [0.4, 0.6]], [[1, 0], [0.9, 0.1]]], [[[1, 0], [0.2, 0.8]], [[1, 0], [0.5, 0.5]]]])`,
  `d.lineChart([{ y: [1, 4, 9], name: 'squares' }, { y: [1, 2, 3], name: 'linear' }], { title: 'lines' })`,
];

describe('attnlab report', () => {
  let dir: string;
  let code: number;
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'attnlab-report-'));
    writeFileSync(
      join(dir, 'figures.ipynb'),
      notebook([
        { type: 'markdown', source: '# Figures <check> & "escapes"' },
        ...FIGURES.map((source) => ({ type: 'code' as const, source })),
        { type: 'code', source: `console.log('quick:', process.env.ATTNLAB_QUICK ?? 'unset')` },
      ]),
    );
    const { reportCommand } = await import('../lib/cli/notebooks.js');
    code = await reportCommand(['--out', join(dir, 'out'), '--quick', join(dir, 'figures.ipynb')]);
  }, 240_000);

  it('writes a report and an index, exit code 0', () => {
    expect(code).toBe(0);
    expect(existsSync(join(dir, 'out', 'figures.html'))).toBe(true);
    const index = readFileSync(join(dir, 'out', 'index.html'), 'utf8');
    expect(index).toContain('href="figures.html"');
    expect(index).toContain('Figures &lt;check&gt; &amp; &quot;escapes&quot;');
  });

  it('is self-contained: no external scripts, plotly.js exactly once, quick mode set', () => {
    const html = readFileSync(join(dir, 'out', 'figures.html'), 'utf8');
    expect(html).not.toMatch(/<script\b[^>]*\bsrc=/i);
    expect(html.match(/data-attnlab-plotly=/g)).toHaveLength(1);
    expect(html).toContain('quick: 1');
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'renders every figure offline in headless Chromium',
    async () => {
      const r = await renderInChromium(join(dir, 'out', 'figures.html'));
      expect(r.figures).toBe(FIGURES.length);
      expect(r.rendered).toBe(r.figures);
      expect(r.pageErrors).toEqual([]);
      expect(r.blocked).toEqual([]);
    },
    120_000,
  );
});

describe('attnlab run', () => {
  it('exits non-zero naming the notebook and the failing cell', async () => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-run-'));
    const nb = join(dir, 'broken.ipynb');
    writeFileSync(
      nb,
      notebook([
        { type: 'markdown', source: '# Broken' },
        { type: 'code', source: 'const fine = 1;' },
        { type: 'code', source: 'throw new Error("cell three fails")' },
        { type: 'code', source: 'fine' },
      ]),
    );
    const { runCommand } = await import('../lib/cli/notebooks.js');
    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args.join(' '));
    let code: number;
    try {
      code = await runCommand([nb]);
    } finally {
      console.error = original;
    }
    expect(code).toBe(1);
    expect(errors.join('\n')).toContain(`${nb}: cell 3 (throw new Error("cell three fails")): Error: cell three fails`);
  }, 120_000);
});

/**
 * A notebook page reloaded (or opened in a second tab) holds later figures' HTML but not the first figure's, which
 * carried plotly.js: each figure loads plotly.js from the Jupyter server (the kernelspec's copy), or says why it cannot.
 */
describe.skipIf(!existsSync(CHROMIUM))('figures on a page without the first figure', () => {
  let dir: string;
  let page: string;
  let plotlyFile: string;
  const server = 'http://jupyter.test';
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'attnlab-reload-'));
    const { installKernelSpec } = await import('../kernel/install.js');
    const d = await import('../lib/display/index.js');
    const specDir = installKernelSpec({ prefix: join(dir, 'prefix'), root: ROOT });
    plotlyFile = d.plotlyFileName();
    expect(existsSync(join(specDir, plotlyFile))).toBe(true);
    const later = [1, 2].map((i) => d.figureHtml(d.lineChart([1, i, 3]), { includePlotly: false }));
    expect(later.join('')).not.toContain('data-attnlab-plotly=');
    // JupyterLab and Notebook 7 put the base URL in #jupyter-config-data.
    page = join(dir, 'page.html');
    writeFileSync(
      page,
      '<!DOCTYPE html><html><head><script id="jupyter-config-data" type="application/json">' +
        `{"baseUrl": "/user/me/"}</script></head><body>${later.join('')}</body></html>`,
    );
  });

  it('loads plotly.js from the Jupyter server and draws every figure', async () => {
    const r = await renderInChromium(page, {
      url: `${server}/user/me/lab/tree/x.ipynb`,
      serve: {
        [`${server}/user/me/kernelspecs/attnlab/${plotlyFile}`]: join(
          dir,
          'prefix',
          'share',
          'jupyter',
          'kernels',
          'attnlab',
          plotlyFile,
        ),
      },
    });
    expect(r).toMatchObject({ figures: 2, rendered: 2, blocked: [], pageErrors: [], undrawn: [] });
  }, 120_000);

  it('says why when the server does not serve plotly.js', async () => {
    const r = await renderInChromium(page, { url: `${server}/user/me/lab/tree/x.ipynb` });
    expect(r.rendered).toBe(0);
    expect(r.blocked).toEqual([`${server}/user/me/kernelspecs/attnlab/${plotlyFile}`]);
    expect(r.undrawn).toHaveLength(2);
    for (const text of r.undrawn) {
      expect(text).toContain('This figure cannot be drawn: plotly.js is not on this page');
      expect(text).toContain(`the Jupyter server did not serve /user/me/kernelspecs/attnlab/${plotlyFile}`);
    }
  }, 120_000);

  it('says why in a file that is not served by Jupyter', async () => {
    const r = await renderInChromium(page);
    expect(r.rendered).toBe(0);
    expect(r.undrawn).toHaveLength(2);
    expect(r.undrawn[0]).toContain('this file is not served by Jupyter');
  }, 120_000);
});
