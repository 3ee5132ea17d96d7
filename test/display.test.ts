/** MIME bundles for values a notebook shows: the display protocol, tensors, danfojs frames, plotly figures, records. */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GRID_TITLE_PX } from '../lib/display/figures.js';
import type { MimeBundle } from '../lib/display/handle.js';
import * as d from '../lib/display/index.js';
import * as al from '../lib/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterEach(() => d.setDisplaySink(undefined));

describe('toMimeBundle', () => {
  it('uses the Jupyter.display protocol and adds text/plain when missing', () => {
    const x = { [d.JUPYTER_DISPLAY]: () => ({ 'text/html': '<b>x</b>' }), name: 'x' };
    const b = d.toMimeBundle(x);
    expect(b['text/html']).toBe('<b>x</b>');
    expect(typeof b['text/plain']).toBe('string');
  });

  it('rejects a display method that returns no bundle, naming the problem', () => {
    const x = { [d.JUPYTER_DISPLAY]: () => 'html' };
    expect(() => d.toMimeBundle(x)).toThrow(/not a MIME bundle/);
  });

  it('shows a small tensor as dtype, shape and a table of its values', () => {
    const t = tf.tensor2d([
      [1, 2.5],
      [3, 4],
    ]);
    const b = d.toMimeBundle(t);
    expect(b['text/plain']).toMatch(/^Tensor float32 \[2, 2\]\n\[\[1, 2\.5\],\n \[3, 4 *\]\]\nmin 1 {2}max 4/);
    expect(b['text/html']).toContain('<table');
    expect(b['text/html']).toContain('>2.5<');
    t.dispose();
  });

  it('shows a large matrix as a heatmap image and a disposed tensor without reading it', () => {
    const t = tf.randomUniform([64, 80]);
    const b = d.toMimeBundle(t);
    expect(b['image/png']).toMatch(/^iVBORw0KGgo/); // PNG signature in base64
    expect(b['text/html']).toContain('data:image/png;base64,');
    t.dispose();
    expect(d.toMimeBundle(t)['text/plain']).toContain('(disposed)');
  });

  it('escapes danfojs DataFrame cells in HTML and aligns text', async () => {
    const dfd = await import('danfojs-node');
    const df = new dfd.DataFrame({ name: ['<script>x</script>', 'b&c'], loss: [0.5, 0.25] });
    const b = d.toMimeBundle(df);
    expect(b['text/html']).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(b['text/html']).toContain('b&amp;c');
    expect(b['text/html']).not.toContain('<script>');
    expect(String(b['text/plain']).split('\n')[0]).toBe('DataFrame 2 x 2');
    const s = d.toMimeBundle(df.loss);
    expect(s['text/html']).toContain('Series 2');
  });

  it('sends a plotly figure as plotly JSON, HTML that embeds plotly.js only once, and text', () => {
    d.resetPlotlyEmbedding();
    const fig = d.lineChart([1, 2, 3], { title: 'line' });
    const first = d.toMimeBundle(fig);
    const second = d.toMimeBundle(fig);
    expect(first[d.PLOTLY_MIME]).toEqual({ data: fig.data, layout: fig.layout });
    expect(first['text/html']).toContain('data-attnlab-plotly=');
    expect((first['text/html'] as string).length).toBeGreaterThan(1_000_000);
    expect(second['text/html']).not.toContain('data-attnlab-plotly=');
    expect(second['text/html']).toContain('window.Plotly');
    expect(first['text/plain']).toBe('Figure "line": 1 trace (scatter)');
  });

  it('keeps "</script>" in figure data from closing the script element', () => {
    const html = d.figureHtml({ data: [{ type: 'bar', x: ['</script><b>'], y: [1] }] }, { includePlotly: false });
    expect(html).not.toContain('</script><b>');
    expect(html).toContain('\\u003c/script>');
  });

  it('shows lists of records and metric objects as tables', () => {
    const rows = d.toMimeBundle([
      { model: '1 layer', acc: 0.5 },
      { model: '2 layers', acc: 0.99 },
    ]);
    expect(rows['text/html']).toContain('<th style="padding:2px 8px;border-bottom:1px solid #ddd">acc</th>');
    expect(rows['text/plain']).toContain('2 layers');
    expect(d.toMimeBundle({ loss: 1.5, acc: 0.5 })['text/html']).toContain('metric');
    expect(d.toMimeBundle('text')['text/plain']).toBe("'text'");
  });

  it('prefers registered formatters', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    d.registerFormatter({
      name: 'point',
      test: (v): v is Point => v instanceof Point,
      format: (p) => ({ 'text/plain': `P(${p.x})` }),
    });
    expect(d.toMimeBundle(new Point(2))['text/plain']).toBe('P(2)');
  });
});

describe('display and handles', () => {
  it('sends bundles to the sink; handles update in place and clear', () => {
    const sent: unknown[] = [];
    d.setDisplaySink({
      send: (bundle, opts) => sent.push({ bundle, opts }),
      clear: (wait) => sent.push({ clear: wait }),
    });
    d.display({ data: [{ type: 'bar', y: [1] }] });
    const h = d.newDisplayHandle()!;
    h.update({ 'text/plain': 'a' });
    h.update({ 'text/plain': 'b' });
    d.clearOutput(true);
    expect(sent).toHaveLength(4);
    const [fig, first, second, clear] = sent as {
      bundle: Record<string, unknown>;
      opts: { displayId?: string; update?: boolean };
    }[];
    expect(Object.keys(fig!.bundle)).toContain(d.PLOTLY_MIME);
    expect(first!.opts.update).toBe(false);
    expect(second!.opts.update).toBe(true);
    expect(second!.opts.displayId).toBe(first!.opts.displayId);
    expect(clear).toEqual({ clear: true });
  });

  it('prints text outside a notebook', () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (s: string) => lines.push(s);
    try {
      d.display({ loss: 1 });
    } finally {
      console.log = log;
    }
    expect(lines).toEqual(['{ loss: 1 }']);
  });
});

describe('figure builders', () => {
  it('draws one head with repeated tokens kept apart, queries top to bottom', () => {
    const fig = d.attentionHeatmap(
      [
        [1, 0],
        [0.3, 0.7],
      ],
      { tokens: ['a', 'a'] },
    );
    expect(fig.data[0]).toMatchObject({
      type: 'heatmap',
      z: [
        [1, 0],
        [0.3, 0.7],
      ],
      zmin: 0,
      zmax: 1,
    });
    expect(fig.layout!.yaxis).toMatchObject({ autorange: 'reversed', tickvals: [0, 1], ticktext: ['a', 'a'] });
  });

  it('slices [b, h, q, k] tensors and reports bad shapes and labels', () => {
    const w = tf.tensor4d([1, 0, 0.5, 0.5, 1, 0, 0.9, 0.1], [1, 2, 2, 2]);
    expect(d.attentionHeatmap(w, { head: 1 }).data[0]!.z).toEqual(
      [
        [1, 0],
        [0.9, 0.1],
      ].map((r) => r.map((v) => Math.fround(v))),
    );
    expect(() => d.attentionHeatmap([1, 2] as unknown as number[][])).toThrow(
      /\[q, k\], \[h, q, k\] or \[b, h, q, k\]/,
    );
    expect(() => d.attentionHeatmap([[1]], { tokens: ['a', 'b'] })).toThrow(/2 labels for an axis of length 1/);
    expect(
      d.heatmap(
        [
          [1, 2],
          [3, 4],
        ],
        { zmin: 0 },
      ).data[0],
    ).toMatchObject({
      z: [
        [1, 2],
        [3, 4],
      ],
      zmin: 0,
    });
    w.dispose();
  });

  it('lays out layers x heads on independent axes with one colour bar', () => {
    const layer = tf.ones([1, 3, 4, 4]);
    const fig = d.attentionGrid([layer, layer]);
    expect(fig.data).toHaveLength(6);
    expect(fig.data.filter((t) => t.showscale)).toHaveLength(1);
    expect(fig.data[5]).toMatchObject({ xaxis: 'x6', yaxis: 'y6' });
    layer.dispose();
  });

  it.each([
    [1, 2],
    [3, 4],
    [8, 8],
  ])(
    'keeps each panel title in the gap above its panel, clear of the panel above (%i layers x %i heads)',
    (layers, heads) => {
      const fig = d.attentionGrid(Array.from({ length: layers }, () => Array.from({ length: heads }, () => [[1]])));
      const L = fig.layout as unknown as {
        height: number;
        margin: { t: number; b: number };
        annotations: { yshift: number }[];
        [axis: string]: unknown;
      };
      const domain = (axis: string) => (L[axis] as { domain: [number, number] }).domain;
      const plotH = L.height - L.margin.t - L.margin.b;
      const px = (f: number) => f * plotH;
      const titleHeight = 1.4 * GRID_TITLE_PX;
      for (let l = 0; l < layers; l++) {
        for (let h = 0; h < heads; h++) {
          const i = l * heads + h + 1;
          const suffix = i === 1 ? '' : String(i);
          const [bottom, top] = domain(`yaxis${suffix}`);
          const note = L.annotations[i - 1];
          expect(note).toMatchObject({ yref: `y${suffix} domain`, y: 1, yanchor: 'bottom' });
          const titleTop = px(top) + note.yshift + titleHeight;
          // The panel above (same head, previous layer) starts above the title; the top row's titles fit in the margin.
          const above = l === 0 ? plotH + L.margin.t - 40 : px(domain(`yaxis${i - heads === 1 ? '' : i - heads}`)[0]);
          expect(titleTop, `title of L${l} H${h}`).toBeLessThanOrEqual(above);
          expect(px(top - bottom)).toBeGreaterThan(50);
          const [x0, x1] = domain(`xaxis${suffix}`);
          expect(x0).toBeGreaterThanOrEqual(0);
          expect(x1).toBeLessThanOrEqual(1);
        }
      }
    },
  );

  it('plots training curves from records or columns, skipping missing values', () => {
    const fig = d.trainingCurves([
      { step: 0, loss: 3, acc: undefined },
      { step: 5, loss: 2, acc: 0.5 },
    ]);
    expect(fig.data.map((t) => t.name)).toEqual(['loss', 'acc']);
    expect(fig.data[1]).toMatchObject({ x: [5], y: [0.5] });
    const cols = d.trainingCurves({ loss: [3, 2, 1] }, { logY: true });
    expect(cols.data[0]).toMatchObject({ x: [0, 1, 2], y: [3, 2, 1] });
    expect(cols.layout!.yaxis).toMatchObject({ type: 'log' });
  });

  it('makes line and scatter charts from arrays or named series', () => {
    expect(d.lineChart([1, 4]).data[0]).toMatchObject({ mode: 'lines+markers', x: [0, 1], y: [1, 4] });
    const s = d.scatterChart([
      { x: [1, 2], y: [3, 4], name: 'a' },
      { y: [1], name: 'b' },
    ]);
    expect(s.data.map((t) => t.name)).toEqual(['a', 'b']);
    expect(s.layout!.showlegend).toBe(true);
  });
});

describe('callable display module', () => {
  it('is a function that shows a value and carries the module functions', async () => {
    const { display } = await import('../lib/display/callable.js');
    const sent: unknown[] = [];
    d.setDisplaySink({ send: (bundle) => sent.push(bundle) });
    display({ loss: 1 });
    expect(sent).toHaveLength(1);
    expect(display.attentionHeatmap).toBe(d.attentionHeatmap);
    expect(display.newDisplayHandle()).toBeDefined();
  });
});

describe('library results', () => {
  it('shows an experiment result as summary, metrics and tables', () => {
    const r = {
      experiment: 'induction-heads',
      seed: 0,
      quick: true,
      config: {},
      seconds: 12.5,
      metrics: { test_accuracy_2layer: 0.9 },
      tables: { models: [{ layers: 2, best_head: 'L1H3' }] },
      summary: 'The 2-layer model <wins>.',
    };
    const b = d.toMimeBundle(r);
    expect(b['text/plain']).toContain('induction-heads (quick, seed 0, 12.5 s)');
    expect(b['text/html']).toContain('The 2-layer model &lt;wins&gt;.');
    expect(b['text/html']).toContain('L1H3');
  });

  it('shows a training result as its loss curve', () => {
    const r = {
      history: undefined,
      steps: 2,
      records: [
        { step: 0, loss: 2, lr: 1, grad_norm: 1, seconds: 0 },
        { step: 1, loss: 1, lr: 1, grad_norm: 1, seconds: 1 },
      ],
    };
    const b = d.toMimeBundle(r);
    expect(b['text/plain']).toBe('Training: 2 steps, final loss 1.0000');
    expect(b[d.PLOTLY_MIME]).toBeDefined();
  });
});

/** A display handle whose sink keeps what it was sent. */
function recordingHandle(): { handle: d.DisplayHandle; sent: d.MimeBundle[] } {
  const sent: MimeBundle[] = [];
  return { handle: new d.DisplayHandle({ send: (b) => void sent.push(b) }), sent };
}

describe('display handle', () => {
  it('update() shows any displayable value, and MIME bundles as they are', () => {
    const { handle, sent } = recordingHandle();
    handle.update({ loss: 1.5, acc: 0.5 });
    handle.update(d.lineChart([1, 2, 3]));
    handle.update({ 'text/plain': 'as is', 'text/html': '<b>as is</b>' });
    expect(sent[0]!['text/html']).toContain('metric');
    expect(sent[1]![d.PLOTLY_MIME]).toBeDefined();
    expect(sent[2]).toEqual({ 'text/plain': 'as is', 'text/html': '<b>as is</b>' });
  });
});

describe('al.progress', () => {
  it('yields the items unchanged and ends with a count, rate and total time', () => {
    const { handle, sent } = recordingHandle();
    const items = ['a', 'b', 'c', 'd', 'e'];
    const seen = [...al.progress(items, { target: { display: handle, throttleMs: 0 } })];
    expect(seen).toEqual(items);
    const last = sent.at(-1)!;
    expect(last['text/plain']).toMatch(/^it 5\/5 {2}[\d.]+ it\/s {2}0:00 total$/);
    expect(last['text/html']).toContain('<progress value="5" max="5"');
  });

  it('ends the display on break, and counts an iterable without a length', () => {
    const { handle, sent } = recordingHandle();
    for (const i of al.progress([1, 2, 3, 4], { target: { display: handle, throttleMs: 0 } })) if (i === 2) break;
    expect(sent.at(-1)!['text/plain']).toMatch(/^it 1\/4 /);

    const lines: string[] = [];
    const stream = { write: (s: string) => void lines.push(s) };
    function* gen() {
      for (let i = 0; i < 25; i++) yield i;
    }
    let sum = 0;
    for (const i of al.progress(gen(), { mode: 'lines', unit: 'batch', target: { stream } })) sum += i;
    expect(sum).toBe(300);
    expect(lines.map((l) => l.split('  ')[0])).toEqual(['batch 1', 'batch 10', 'batch 25']);
  });
});

describe('model.fit progress (verbose: 1)', () => {
  async function fitTiny(verbose: number, callbacks?: tf.CustomCallbackArgs | tf.Callback[]) {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const x = tf.randomNormal([40, 2], 0, 1, 'float32', 1);
    const y = tf.randomNormal([40, 1], 0, 1, 'float32', 2);
    await model.fit(x, y, {
      epochs: 3,
      batchSize: 10,
      verbose,
      validationSplit: 0.25,
      callbacks: callbacks as tf.Callback[],
    });
    tf.dispose([x, y]);
    model.dispose();
  }

  it('shows batches of all epochs, the loss and each epoch metrics in the notebook display', async () => {
    const sent: MimeBundle[] = [];
    d.setDisplaySink({ send: (bundle) => sent.push(bundle) });
    await fitTiny(1);
    expect(sent.length).toBeGreaterThan(0);
    const last = String(sent.at(-1)!['text/plain']);
    // 30 training rows in batches of 10, 3 epochs: 9 batches.
    expect(last).toMatch(/^batch 9\/9 {2}loss \d/);
    expect(last).toMatch(/epoch 3/);
    expect(last).toMatch(/val_loss \d/);
    expect(String(sent.at(-1)!['text/html'])).toContain('<progress value="9" max="9"');
  });

  it('shows nothing with verbose: 0, and goes where a FitProgress callback says', async () => {
    const sent: MimeBundle[] = [];
    d.setDisplaySink({ send: (bundle) => sent.push(bundle) });
    await fitTiny(0);
    expect(sent).toEqual([]);
    const lines: string[] = [];
    await fitTiny(0, [
      new al.FitProgress({ mode: 'lines', target: { stream: { write: (s: string) => lines.push(s) } } }),
    ]);
    expect(lines.join('')).toMatch(/batch 9\/9/);
    expect(sent).toEqual([]);
  });
});
