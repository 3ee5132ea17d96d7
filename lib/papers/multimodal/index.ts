/**
 * Multimodal (issue #24): one ToyVLM and the attention interventions that steer it. One namespace per paper:
 *
 *   al.multimodal.toyvlm      the ToyVLM (patch encoder + causal decoder with replaceable attention hooks), training with
 *                             checkpoints, and the scene/attention gallery renderer
 *   al.multimodal.causalmm    Zhou et al., ICLR 2025: counterfactual attention and the causal logit combination
 *   al.multimodal.paint       Arif et al. 2025 (and PAI, Liu et al. ECCV 2024): boosting scores to informed image tokens
 *   al.multimodal.lqcd        Zhao et al. 2024: leading-query contrastive decoding
 *   al.multimodal.visualSink  Kang et al., ICLR 2025 (VAR): visual sink tokens and attention redistribution
 *   al.multimodal.steer       the interventions as decoding methods of a ToyVLM, and the evaluation sets
 *   al.multimodal.frozenBlock Pang et al., ICLR 2024: a frozen text-transformer block between two linear maps in a ViT
 *
 * Notebook: 13-vision-language.
 */
export * as causalmm from './causalmm/index.js';
export * as steer from './experiments/steer.js';
export * as frozenBlock from './frozen-lm-block/index.js';
export * as lqcd from './lqcd/index.js';
export * as paint from './paint/index.js';
export * as toyvlm from './toyvlm/index.js';
export * as visualSink from './var/index.js';
