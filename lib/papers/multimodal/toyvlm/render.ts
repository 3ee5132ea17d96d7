/**
 * Drawing ToyVLM scenes for notebooks: a scene upscaled, with an attention map over its 4x4 patch grid blended on top,
 * as a PNG; and an HTML gallery (text escaped) of scenes with one panel per decoding method.
 */

import { CELL, GRID, IMAGE_SIZE } from '../../../data/scenes.js';
import { escapeHtml } from '../../../display/html.js';
import { encodePng, viridis } from '../../../display/png.js';

/**
 * PNG of a [32, 32, 3] scene, `scale`x larger; with `attention` (16 values, raster order), each patch is blended with
 * its viridis colour (scaled so the largest value is 1) at `opacity`.
 */
export function scenePng(pixels: ArrayLike<number>, attention?: ArrayLike<number>, scale = 6, opacity = 0.55): Buffer {
  if (pixels.length !== IMAGE_SIZE * IMAGE_SIZE * 3)
    throw new Error(`scenePng: pixels must hold 32*32*3 = 3072 values, got ${pixels.length}`);
  if (attention && attention.length !== GRID * GRID)
    throw new Error(`scenePng: attention must hold ${GRID * GRID} values (one per patch), got ${attention.length}`);
  if (!(Number.isInteger(scale) && scale >= 1))
    throw new Error(`scenePng: scale must be an integer >= 1, got ${scale}`);
  const W = IMAGE_SIZE * scale;
  const out = new Uint8Array(W * W * 3);
  const max = attention ? Math.max(1e-12, ...Array.from(attention)) : 1;
  for (let y = 0; y < W; y++)
    for (let x = 0; x < W; x++) {
      const sy = Math.floor(y / scale);
      const sx = Math.floor(x / scale);
      const cell = Math.floor(sy / CELL) * GRID + Math.floor(sx / CELL);
      const heat = attention ? viridis(attention[cell] / max) : undefined;
      const edge = attention && (sy % CELL === 0 || sx % CELL === 0) && (y % scale === 0 || x % scale === 0);
      for (let k = 0; k < 3; k++) {
        let v = pixels[(sy * IMAGE_SIZE + sx) * 3 + k] * 255;
        if (heat) v = (1 - opacity) * v + opacity * heat[k];
        out[(y * W + x) * 3 + k] = edge ? 255 : Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  return encodePng(W, W, out);
}

export interface GalleryRow {
  title: string;
  pixels: ArrayLike<number>;
  panels: { label: string; answer: string; attention?: ArrayLike<number> }[];
}

/** An HTML table: one row per scene (its title, then one image per panel with its label and answer). */
export function sceneGalleryHtml(rows: readonly GalleryRow[], scale = 4): string {
  const img = (p: ArrayLike<number>, a?: ArrayLike<number>) =>
    `<img alt="scene" src="data:image/png;base64,${scenePng(p, a, scale).toString('base64')}">`;
  const body = rows
    .map(
      (r) =>
        `<tr><td style="max-width:12em">${escapeHtml(r.title)}<br>${img(r.pixels)}</td>` +
        r.panels
          .map(
            (p) =>
              `<td style="text-align:center">${img(r.pixels, p.attention)}<br><b>${escapeHtml(p.label)}</b>: ${escapeHtml(p.answer)}</td>`,
          )
          .join('') +
        '</tr>',
    )
    .join('');
  return `<table>${body}</table>`;
}
