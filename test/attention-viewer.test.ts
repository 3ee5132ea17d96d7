/**
 * The offline attention viewer: input shapes and errors, escaping, its MIME bundle, and in headless Chromium with the
 * network cut off (the fragment inside a page finished as `attnlab report` finishes an export): hovering a token
 * shades the keys by that query's weights, switching head or clicking a thumbnail changes them, and token text with
 * `<script>` stays text.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { finishPage } from '../lib/cli/report-html.js';
import { attentionViewer } from '../lib/display/attention-viewer.js';
import { toMimeBundle } from '../lib/display/mime.js';
import { CHROMIUM } from './kernel-support.js';

/** Row-stochastic [H][T][T] weights: head h at query q puts its mass on key (q - h) mod T (clamped causal). */
function shifted(H: number, T: number, offset = 0): number[][][] {
  return Array.from({ length: H }, (_, h) =>
    Array.from({ length: T }, (_, q) =>
      Array.from({ length: T }, (_, k) => (k === Math.max(0, q - ((h + offset) % T)) ? 0.9 : 0) + 0.1 / T),
    ),
  );
}

const TOKENS = ['<script>window.__pwned=1</script>', 'B', '&amp;', '"q"', 'E'];

describe('attentionViewer: inputs', () => {
  it('takes nested arrays, a [L,H,Q,K] tensor, a [L,B,H,Q,K] tensor and per-layer tensors alike', () => {
    const L = 2;
    const H = 3;
    const T = TOKENS.length;
    const nested = [shifted(H, T), shifted(H, T, 1)];
    const a = attentionViewer(TOKENS, nested);
    const before = tf.memory().numTensors;
    const t4 = tf.tensor(nested);
    const t5 = tf.tidy(() => tf.stack(nested.map((n) => tf.stack([tf.zeros([H, T, T]), tf.tensor(n)]))));
    const perLayer = tf.tidy(() => nested.map((n) => tf.tensor(n).expandDims(0)));
    const dataOf = (v: { html: string }) => /,\{"tokens"[\s\S]*"images"/.exec(v.html)![0];
    expect(dataOf(attentionViewer(TOKENS, t4))).toBe(dataOf(a));
    expect(dataOf(attentionViewer(TOKENS, t5, { batch: 1 }))).toBe(dataOf(a));
    expect(dataOf(attentionViewer(TOKENS, perLayer))).toBe(dataOf(a));
    tf.dispose([t4, t5, ...perLayer]);
    expect(tf.memory().numTensors).toBe(before);
    expect(a.text).toBe(`Attention viewer: ${L} layers x ${H} heads, ${T} tokens`);
  });

  it('escapes tokens, names and title in the markup and keeps "</script" out of the inline data', () => {
    const v = attentionViewer(TOKENS, [shifted(1, TOKENS.length)], {
      title: '<b>t</b>',
      layerNames: ['<i>L0</i>'],
      headNames: ['h"0'],
    });
    const [markup, script] = v.html.split('<script type="text/javascript">');
    expect(markup).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;');
    expect(markup).toContain('&amp;amp;');
    expect(markup).toContain('&lt;b&gt;t&lt;/b&gt;');
    expect(markup).toContain('&lt;i&gt;L0&lt;/i&gt;');
    expect(markup).toContain('h&quot;0');
    expect(markup).not.toMatch(/<script>|<b>|<i>/);
    // One script element, ending where the fragment ends: the data cannot close it early.
    expect(script!.match(/<\/script/gi)).toHaveLength(1);
    expect(script!.endsWith('</script>')).toBe(true);
    expect(v.html).not.toMatch(/\bsrc\s*=\s*"(?!data:image\/png;base64,)/);
  });

  it('displays as text/html with a text/plain summary', () => {
    const v = attentionViewer(
      ['a', 'b'],
      [
        [
          [
            [1, 0],
            [0.5, 0.5],
          ],
        ],
      ],
    );
    const b = toMimeBundle(v);
    expect(b['text/html']).toBe(v.html);
    expect(b['text/plain']).toBe('Attention viewer: 1 layer x 1 head, 2 tokens');
  });

  it('names the function, the argument, the expected and the actual value in errors', () => {
    const ok = [shifted(2, 3)];
    expect(() => attentionViewer(['a', 'b'], ok)).toThrow(
      /attentionViewer: patterns\[0\] has 3 queries and 3 keys, but tokens has 2 entries/,
    );
    expect(() => attentionViewer([], ok)).toThrow(/attentionViewer: tokens must be a non-empty array of strings/);
    expect(() => attentionViewer(['a', 'b', 'c'], [shifted(2, 3), shifted(3, 3)])).toThrow(
      /every layer must have 2 heads \(as patterns\[0\]\); patterns\[1\] has 3/,
    );
    expect(() =>
      attentionViewer(
        ['a', 'b', 'c'],
        [
          [
            [
              [1, 0, 0],
              [1, 0],
              [1, 0, 0],
            ],
          ],
        ],
      ),
    ).toThrow(/patterns\[0\]\[0\]\[1\] must have length 3 .*; got length 2/);
    expect(() => attentionViewer(['a'], [[[[-1]]]])).toThrow(
      /must be finite and >= 0; patterns\[0\] head 0 has -1 at query 0, key 0/,
    );
    expect(() => attentionViewer(['a'], [[[[Number.NaN]]]])).toThrow(/has NaN/);
    expect(() => attentionViewer(['a', 'b', 'c'], ok, { head: 2 })).toThrow(
      /opts.head must be an integer in \[0, 1\]; got 2/,
    );
    expect(() => attentionViewer(['a', 'b', 'c'], ok, { layer: -1 })).toThrow(/opts.layer .* got -1/);
    expect(() => attentionViewer(['a', 'b', 'c'], ok, { headNames: ['x'] })).toThrow(
      /opts.headNames must have 2 entries; got 1/,
    );
    expect(() => attentionViewer(['a', 'b', 'c'], [[shifted(2, 3)]], { batch: 1 })).toThrow(
      /opts.batch must be an integer in \[0, 0\] for patterns\[0\]; got 1/,
    );
    const t = tf.zeros([3, 3]);
    expect(() => attentionViewer(['a', 'b', 'c'], t)).toThrow(
      /patterns as one tensor must be \[layers, heads, q, k\] or \[layers, batch, heads, q, k\]; got shape \[3, 3\]/,
    );
    t.dispose();
    expect(() => attentionViewer(['a', 'b', 'c'], 5 as never)).toThrow(
      /patterns must be a tensor or an array.*got number/,
    );
    expect(() =>
      attentionViewer(
        ['a', 'b'],
        [
          [
            [
              [1, 0],
              [0, 1],
            ],
          ],
        ],
        { maxTokens: 1 },
      ),
    ).toThrow(/tokens has 2 entries, more than opts.maxTokens = 1/);
  });
});

describe.skipIf(!existsSync(CHROMIUM))(
  'attentionViewer in headless Chromium, offline, in a finished report page',
  () => {
    it('hovering a token shades its keys, switching head or clicking a thumbnail changes them, <script> stays text', async () => {
      const T = TOKENS.length;
      const patterns = [shifted(2, T), shifted(2, T, 2)];
      const v = attentionViewer(TOKENS, patterns, { title: 'test <viewer>' });
      // The shape of an nbconvert export's text/html output; finishPage is what `attnlab report` applies.
      const page = finishPage(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>' +
          '<div class="jp-Cell jp-CodeCell"><div class="jp-OutputArea-output jp-RenderedHTMLCommon" data-mime-type="text/html">' +
          `${v.html}</div></div></body></html>`,
        { mode: 'single' },
      );
      const file = join(mkdtempSync(join(tmpdir(), 'attnlab-viewer-')), 'page.html');
      writeFileSync(file, page);
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
      try {
        const p = await browser.newPage();
        const blocked: string[] = [];
        const errors: string[] = [];
        p.on('pageerror', (e) => errors.push(String(e)));
        await p.route('**/*', (route) => {
          const url = route.request().url();
          if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
          blocked.push(url);
          return route.abort();
        });
        await p.goto(`file://${file}`, { waitUntil: 'load' });
        await p.waitForSelector('.attnlab-av[data-ready="1"]', { timeout: 30_000 });
        const weights = () =>
          p.$$eval('.attnlab-av .av-tok', (els) => els.map((e) => e.getAttribute('data-weight') ?? ''));
        const state = () =>
          p.$eval('.attnlab-av', (e) => ({
            layer: e.getAttribute('data-layer'),
            head: e.getAttribute('data-head'),
            query: e.getAttribute('data-query'),
            status: e.querySelector('.av-status')?.textContent ?? '',
          }));
        expect(await weights()).toEqual(Array(T).fill(''));
        const row = (l: number, h: number, q: number) => patterns[l]![h]![q]!.map((x) => Math.round(x * 1e5) / 1e5);

        await p.hover('.av-tok[data-index="3"]');
        expect((await weights()).map(Number)).toEqual(row(0, 0, 3));
        expect(await state()).toMatchObject({ layer: '0', head: '0', query: '3' });
        expect((await state()).status).toContain('"\\"q\\"" (3) attends to "\\"q\\"" (3) 0.920');

        await p.hover('.av-tok[data-index="4"]');
        expect((await weights()).map(Number)).toEqual(row(0, 0, 4));

        await p.click('.av-tok[data-index="3"]'); // lock query 3, so the pointer can reach the controls
        await p.selectOption('.av-head', '1');
        expect((await weights()).map(Number)).toEqual(row(0, 1, 3));
        expect((await weights()).map(Number)).not.toEqual(row(0, 0, 3));

        await p.click('.av-thumb[data-layer="1"][data-head="0"]');
        expect(await state()).toMatchObject({ layer: '1', head: '0', query: '3' });
        expect((await weights()).map(Number)).toEqual(row(1, 0, 3));
        expect(await p.$eval('.av-layer', (e) => (e as HTMLSelectElement).value)).toBe('1');
        expect(await p.$$eval('.av-thumb.av-selected', (els) => els.length)).toBe(1);

        // Keyboard: focus moves the query once unlocked.
        await p.click('.av-tok[data-index="3"]');
        await p.focus('.av-tok[data-index="1"]');
        expect((await weights()).map(Number)).toEqual(row(1, 0, 1));

        const injected = await p.evaluate(() => ({
          pwned: (window as unknown as { __pwned?: number }).__pwned ?? null,
          firstToken: document.querySelector('.av-tok')?.textContent,
          title: document.querySelector('.av-title')?.textContent,
          scripts: document.querySelectorAll('.attnlab-av script').length,
        }));
        expect(injected).toEqual({
          pwned: null,
          firstToken: '<script>window.__pwned=1</script>',
          title: 'test <viewer>',
          scripts: 0,
        });
        const images = await p.$$eval('.attnlab-av img', (els) =>
          els.map((e) => (e as HTMLImageElement).complete && (e as HTMLImageElement).naturalWidth),
        );
        expect(images).toEqual(Array(5).fill(T));
        expect(blocked).toEqual([]);
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    }, 120_000);
  },
);
