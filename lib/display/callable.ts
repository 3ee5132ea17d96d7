/**
 * `al.display` as both a function and the display module: `al.display(x)` shows `x`, and
 * `al.display.attentionHeatmap(...)`, `al.display.newDisplayHandle()` ... are this module's functions.
 *
 * lib/index.ts can export it as `display` instead of `export * as display`; the module's types (Figure, MimeBundle,
 * ...) then need their own export, e.g. `export type * as displayTypes from './display/index.js'`.
 */
import * as ns from './index.js';

type DisplayModule = typeof ns;

export const display: DisplayModule['display'] & DisplayModule = Object.assign(
  (x: unknown, opts?: { metadata?: Record<string, unknown> }) => ns.display(x, opts),
  ns,
);
