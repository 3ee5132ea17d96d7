/**
 * Object crops of a rendered display: what a CNN appearance encoder reads (the OAT paper crops each product from the
 * shelf photo by its bounding box and resizes it, 150 × 93 px, before a trainable CNN; ours are the CELL_PX × CELL_PX
 * cell around each object's centre, which holds the whole product and its category mark).
 *
 * Worked example, a 1 × 2 shelf rendered at CELL_PX = 8 (an 8 × 16 RGB image):
 *
 *   objectCrops(d)            // Float32Array of 2 · 8 · 8 · 3: crop j = pixels [y0, y0 + 8) × [x0, x0 + 8) of the
 *                             // render, x0 = floor(x_j · 8 − 4), y0 = floor(y_j · 8 − 4); outside the image = background
 *   targetCrop(d)             // Float32Array of 8 · 8 · 3: the target alone in one cell (renderTarget), as the
 *                             // searcher is shown it
 *
 * Both are cached per display object (displays are immutable once made), so a training loop that sees a display many
 * times renders it once.
 */
import { CELL_PX, renderDisplay, renderTarget, type SearchDisplay } from './displays.js';

/** Side of a crop in pixels (one cell). */
export const CROP_PX = CELL_PX;
/** Background grey of a render (what a crop reads outside the image). */
export const CROP_BACKGROUND = 0.92;

const cropCache = new WeakMap<SearchDisplay, Float32Array>();
const targetCache = new WeakMap<SearchDisplay, Float32Array>();

/** Crops [n, CROP_PX, CROP_PX, 3] (row-major, RGB in [0, 1]) of every object of `d`, in object order. */
export function objectCrops(d: SearchDisplay): Float32Array {
  const hit = cropCache.get(d);
  if (hit) return hit;
  const img = renderDisplay(d);
  const s = CROP_PX;
  const out = new Float32Array(d.objects.length * s * s * 3).fill(CROP_BACKGROUND);
  d.objects.forEach((o, j) => {
    const x0 = Math.floor(o.x * CELL_PX - CELL_PX / 2),
      y0 = Math.floor(o.y * CELL_PX - CELL_PX / 2);
    for (let y = 0; y < s; y++) {
      const iy = y0 + y;
      if (iy < 0 || iy >= img.height) continue;
      for (let x = 0; x < s; x++) {
        const ix = x0 + x;
        if (ix < 0 || ix >= img.width) continue;
        const src = (iy * img.width + ix) * 3;
        out.set(img.data.subarray(src, src + 3), ((j * s + y) * s + x) * 3);
      }
    }
  });
  cropCache.set(d, out);
  return out;
}

/** The target template [CROP_PX, CROP_PX, 3]: the target product alone in one cell (renderTarget). */
export function targetCrop(d: SearchDisplay): Float32Array {
  const hit = targetCache.get(d);
  if (hit) return hit;
  const out = renderTarget(d).data;
  targetCache.set(d, out);
  return out;
}
