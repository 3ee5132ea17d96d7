/** The folder's public face: the mechanism (toolkit.ts) and the handbuilt (handbuilt.ts). */

export { HB, handBuiltCopier, handBuiltPair } from './handbuilt.js';
export * from './toolkit.js';
