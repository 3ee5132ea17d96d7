/**
 * Visual-search displays: products on shelves (a rows × cols grid, like the yogurt and book-cover shelves of the OAT
 * paper) or scattered in clutter, each object with a category, colour, shape and size, and exactly one target.
 *
 * A display is available three ways: as a list of objects (what the object-level models read), as appearance feature
 * vectors (one-hot category, colour and shape, plus size), and rendered to an RGB image (what the pixel-level baseline
 * reads). Coordinates are in cell units: object j sits at (x, y) with integer grid indices (row, col) for the
 * position encoding; for clutter, (row, col) are x and y rounded down.
 *
 * Worked example, a 2 × 3 shelf (target: the large red circle of category 0, object 4):
 *
 *   row 0:  [0 juice blue square small]  [1 yogurt red circle small]  [2 soap green diamond large]
 *   row 1:  [3 cereal red triangle large] [4 yogurt red circle large] [5 juice yellow square small]
 *   features(object 4) = onehot(category 0 of 4) ⊕ onehot(colour 0 of 6) ⊕ onehot(shape 1 of 4) ⊕ [size 1]
 */
import type { Rng } from '../../util/random.js';
import { ShapeError } from '../../util/shapes.js';

/** Names of the attribute values; a loaded data set brings its own. */
export interface FeatureSpace {
  categories: readonly string[];
  colours: readonly string[];
  shapes: readonly string[];
}

/** The generator's catalogue: 4 categories × 6 colours × 4 shapes × 2 sizes = 192 products. */
export const CATALOGUE: FeatureSpace = {
  categories: ['yogurt', 'juice', 'cereal', 'soap'],
  colours: ['red', 'orange', 'yellow', 'green', 'blue', 'purple'],
  shapes: ['square', 'circle', 'triangle', 'diamond'],
};
/** Sizes of the generator's products (fraction of a cell); size feature is (s - small) / (large - small). */
export const SIZES = [0.55, 0.9] as const;

const PALETTE: [number, number, number][] = [
  [0.85, 0.15, 0.15],
  [0.95, 0.55, 0.1],
  [0.95, 0.85, 0.15],
  [0.2, 0.7, 0.25],
  [0.15, 0.35, 0.85],
  [0.55, 0.2, 0.7],
];

/** A product: what an object looks like, independent of where it is. `size` is in [0, 1]. */
export interface Product {
  category: number;
  colour: number;
  shape: number;
  size: number;
}

export interface VisualObject extends Product {
  /** Centre in cell units. */
  x: number;
  y: number;
  /** Integer grid indices for the position encoding. */
  row: number;
  col: number;
}

export interface SearchDisplay {
  id: string;
  layout: 'shelf' | 'clutter';
  /** Grid extent in cells. */
  rows: number;
  cols: number;
  objects: VisualObject[];
  /** Index of the target in `objects` (target-present search: exactly one). */
  target: number;
  space: FeatureSpace;
}

export const productCount = (space: FeatureSpace = CATALOGUE): number =>
  space.categories.length * space.colours.length * space.shapes.length * SIZES.length;

/** Product id ↔ attributes for the catalogue (id = ((category · C + colour) · S + shape) · 2 + size). */
export function productOf(id: number, space: FeatureSpace = CATALOGUE): Product {
  if (!(Number.isInteger(id) && id >= 0 && id < productCount(space))) {
    throw new ShapeError(`productOf: id must be an integer in [0, ${productCount(space)}), got ${id}`);
  }
  const size = id % 2;
  let r = (id - size) / 2;
  const shape = r % space.shapes.length;
  r = (r - shape) / space.shapes.length;
  const colour = r % space.colours.length;
  const category = (r - colour) / space.colours.length;
  return { category, colour, shape, size };
}

export function productId(p: Product, space: FeatureSpace = CATALOGUE): number {
  return ((p.category * space.colours.length + p.colour) * space.shapes.length + p.shape) * 2 + (p.size >= 0.5 ? 1 : 0);
}

export const featureDim = (space: FeatureSpace): number =>
  space.categories.length + space.colours.length + space.shapes.length + 1;

/** Appearance features of one product: onehot(category) ⊕ onehot(colour) ⊕ onehot(shape) ⊕ [size]. */
export function featureVector(p: Product, space: FeatureSpace): number[] {
  const v = new Array<number>(featureDim(space)).fill(0);
  v[p.category] = 1;
  v[space.categories.length + p.colour] = 1;
  v[space.categories.length + space.colours.length + p.shape] = 1;
  v[v.length - 1] = p.size;
  return v;
}

export interface DisplayOptions {
  layout?: 'shelf' | 'clutter';
  rows: number;
  cols: number;
  /** Clutter only: objects to place (default rows · cols / 2). */
  count?: number;
  /** Target product id. */
  target: number;
  /**
   * Fraction of distractors that share the target's colour (default 0.3). Shelves group look-alike products, and
   * colour is the strongest guiding feature, so this sets how hard the search is.
   */
  similarFraction?: number;
  id?: string;
}

/** One display; every random choice comes from `rng`. */
export function makeDisplay(opts: DisplayOptions, rng: Rng): SearchDisplay {
  const { rows, cols, target } = opts;
  const layout = opts.layout ?? 'shelf';
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1 && rows * cols >= 2)) {
    throw new ShapeError(
      `makeDisplay: rows and cols must be positive integers with at least 2 cells, got ${rows} × ${cols}`,
    );
  }
  const n = layout === 'shelf' ? rows * cols : (opts.count ?? Math.max(2, Math.floor((rows * cols) / 2)));
  if (layout === 'clutter' && !(Number.isInteger(n) && n >= 2 && n <= rows * cols)) {
    throw new ShapeError(`makeDisplay: clutter count must be an integer in [2, ${rows * cols}], got ${n}`);
  }
  const similar = opts.similarFraction ?? 0.3;
  const tp = productOf(target);
  const others: Product[] = [];
  while (others.length < n - 1) {
    const id = rng.int(0, productCount());
    if (id === target) continue;
    const p = productOf(id);
    if (rng.next() < similar) p.colour = tp.colour;
    if (productId(p) === target) continue;
    others.push(p);
  }
  const slot = rng.int(0, n);
  const products = [...others.slice(0, slot), tp, ...others.slice(slot)];
  const places: { x: number; y: number }[] = [];
  if (layout === 'shelf') {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) places.push({ x: c + 0.5, y: r + 0.5 });
  } else {
    // Cells drawn without replacement, jittered inside the cell: no two objects overlap.
    for (const cell of rng.sample(rows * cols, n)) {
      const r = Math.floor(cell / cols),
        c = cell % cols;
      places.push({ x: c + 0.2 + 0.6 * rng.next(), y: r + 0.2 + 0.6 * rng.next() });
    }
  }
  // Plain literals, not spreads: V8 builds these ~20x faster, which matters for tens of thousands of displays.
  const objects: VisualObject[] = products.map((p, j) => {
    const { x, y } = places[j];
    return {
      category: p.category,
      colour: p.colour,
      shape: p.shape,
      size: p.size,
      x,
      y,
      row: Math.floor(y),
      col: Math.floor(x),
    };
  });
  return { id: opts.id ?? `display-${rng.int(0, 1e9)}`, layout, rows, cols, objects, target: slot, space: CATALOGUE };
}

/** Appearance features [n][F] of a display's objects. */
export function displayFeatures(d: SearchDisplay): number[][] {
  return d.objects.map((o) => featureVector(o, d.space));
}

/** Euclidean distance between objects i and j, in cells. */
export function objectDistance(d: SearchDisplay, i: number, j: number): number {
  return Math.hypot(d.objects[i].x - d.objects[j].x, d.objects[i].y - d.objects[j].y);
}

/** A string that identifies the arrangement (which product where): the unseen-layout split is checked with it. */
export function layoutKey(d: SearchDisplay): string {
  return (
    `${d.layout}:${d.rows}x${d.cols}:` +
    d.objects.map((o) => `${o.x.toFixed(2)},${o.y.toFixed(2)}=${productId(o, d.space)}`).join(';')
  );
}

/** Pixels per cell of a rendered display. */
export const CELL_PX = 8;

export interface RenderedImage {
  height: number;
  width: number;
  /** RGB in [0, 1], row-major [height, width, 3]. */
  data: Float32Array;
}

function paint(img: RenderedImage, p: Product, cx: number, cy: number): void {
  const r = (CELL_PX / 2) * (SIZES[0] + p.size * (SIZES[1] - SIZES[0]));
  const rgb = PALETTE[p.colour % PALETTE.length];
  const inside = (dx: number, dy: number): boolean => {
    switch (p.shape % 4) {
      case 0:
        return Math.abs(dx) <= r && Math.abs(dy) <= r;
      case 1:
        return dx * dx + dy * dy <= r * r;
      case 2:
        return dy <= r && dy >= -r && Math.abs(dx) <= (dy + r) / 2;
      default:
        return Math.abs(dx) + Math.abs(dy) <= r;
    }
  };
  const x0 = Math.floor(cx - CELL_PX / 2),
    y0 = Math.floor(cy - CELL_PX / 2);
  for (let y = y0; y < y0 + CELL_PX; y++) {
    for (let x = x0; x < x0 + CELL_PX; x++) {
      if (y < 0 || x < 0 || y >= img.height || x >= img.width) continue;
      const o = (y * img.width + x) * 3;
      if (inside(x + 0.5 - cx, y + 0.5 - cy)) img.data.set(rgb, o);
    }
  }
  // Category: a 2 × 2 grey mark at the top-left corner of the object's cell.
  const grey = 0.1 + 0.8 * (p.category / 3);
  for (let y = y0; y < y0 + 2; y++) {
    for (let x = x0; x < x0 + 2; x++) {
      if (y >= 0 && x >= 0 && y < img.height && x < img.width)
        img.data.fill(grey, (y * img.width + x) * 3, (y * img.width + x) * 3 + 3);
    }
  }
}

/** The display as an RGB image, CELL_PX pixels per cell, on a light background with a shelf line under each row. */
export function renderDisplay(d: SearchDisplay): RenderedImage {
  const img: RenderedImage = {
    height: d.rows * CELL_PX,
    width: d.cols * CELL_PX,
    data: new Float32Array(d.rows * d.cols * CELL_PX * CELL_PX * 3).fill(0.92),
  };
  if (d.layout === 'shelf') {
    for (let r = 1; r <= d.rows; r++)
      img.data.fill(0.45, (r * CELL_PX - 1) * img.width * 3, r * CELL_PX * img.width * 3);
  }
  for (const o of d.objects) paint(img, o, o.x * CELL_PX, o.y * CELL_PX);
  return img;
}

/** The target template the searcher is shown: the target product alone in one cell. */
export function renderTarget(d: SearchDisplay): RenderedImage {
  const img: RenderedImage = {
    height: CELL_PX,
    width: CELL_PX,
    data: new Float32Array(CELL_PX * CELL_PX * 3).fill(0.92),
  };
  paint(img, d.objects[d.target], CELL_PX / 2, CELL_PX / 2);
  return img;
}
