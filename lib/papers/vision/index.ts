/**
 * Vision, video and embodied attention (issue #25): how does attention pick what matters across views, frames and time?
 * All data are procedural (lib/data: flatland, ego-clips, action-video, gridworld). One namespace per paper:
 *
 *   al.vision.dragview   Fan et al. 2023, DragView: novel views from unposed support views in flatland (the mechanism;
 *                        the model and experiment are in dragview/model.ts and experiment.ts)
 *   al.vision.codebook   Eftekhar et al., ICLR 2024: a softmax codebook bottleneck in a navigation policy
 *   al.vision.csa        Sridhar et al., ICCV 2021: class-semantics channel and temporal attention for localisation
 *   al.vision.gano       Thakur et al. 2023: detection boxes as guiding queries for next-active-object prediction
 *
 * Notebooks: 14-views-and-video (dragview, gano, csa), 15-embodied-codebook (codebook).
 */
export * as codebook from './codebook/index.js';
export * as csa from './csa/index.js';
export * as dragview from './dragview/index.js';
export * as gano from './gano/index.js';
