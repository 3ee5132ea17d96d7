/**
 * ToyLM's fused decoding kernel (src/addon.cc ToylmGenerate, ToyLM.generateFused) against the tfjs forward pass it
 * replaces: the logits each generated token was chosen from equal the tfjs logits for the same tokens (teacher
 * forcing over prompt + generated tokens), the tokens are their argmax, and `generate` gives the same tokens fused or
 * not, for every positional scheme, grouped-query heads, tied embeddings, batches and a deeper model. Also: what the
 * kernel refuses falls back to the tfjs path, bad prompts name the token, nothing leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../lib/backend/native.js';
import { ToyLM, type ToyLMConfig } from '../lib/layers/index.js';
import { expectClose, expectNoLeak, useBackend } from './helpers.js';

const hasNative = (await nativeAvailable()) === null;

const base: ToyLMConfig = { vocab: 23, dModel: 16, heads: 4, layers: 2, maxLen: 40, seed: 3 };

/** A model whose logits are well separated (weights scaled up), so argmax ties cannot blur a token comparison. */
function model(cfg: Partial<ToyLMConfig> = {}): ToyLM {
  const lm = new ToyLM({ ...base, ...cfg });
  for (const v of lm.variables()) if (!v.name.includes('gamma') && !v.name.includes('beta')) v.assign(v.mul(25));
  return lm;
}

/** tfjs logits [b, steps, vocab] for the tokens the fused kernel chose (teacher forcing, one forward pass). */
function tfjsLogits(lm: ToyLM, prompt: tf.Tensor2D, tokens: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [, s] = prompt.shape;
    const steps = tokens.shape[1];
    const seq = tf.concat([prompt, tokens.slice([0, 0], [-1, steps - 1])], 1);
    const logits = lm.forward(seq);
    return logits.slice([0, s - 1, 0], [-1, steps, -1]) as tf.Tensor3D;
  });
}

describe.runIf(hasNative)('ToyLM fused decoding (wasm-native)', () => {
  beforeAll(async () => {
    await useBackend('wasm-native');
  });

  const cases: [string, Partial<ToyLMConfig>, number][] = [
    ['learned positions', {}, 1],
    ['sinusoidal positions', { positional: 'sinusoidal' }, 2],
    ['RoPE', { positional: 'rope', ropeBase: 500 }, 1],
    ['no positions', { positional: 'none' }, 1],
    ['grouped-query heads', { kvHeads: 2 }, 3],
    ['tied embeddings, mlpRatio 2, 3 layers', { tieEmbeddings: true, mlpRatio: 2, layers: 3 }, 2],
  ];
  it.each(cases)('%s: logits equal the tfjs forward pass, tokens are their argmax', (_name, cfg, batch) => {
    const lm = model(cfg);
    expect(lm.fusedDecodeSupport()).toEqual([]);
    const prompt = tf.tensor2d(
      Array.from({ length: batch * 5 }, (_, i) => (i * 7 + 3) % base.vocab),
      [batch, 5],
      'int32',
    );
    const steps = 12;
    const r = lm.generateFused(prompt, steps, { logits: true })!;
    expect(r.tokens.shape).toEqual([batch, steps]);
    expect(r.tokens.dtype).toBe('int32');
    const ref = tfjsLogits(lm, prompt, r.tokens);
    expectClose(r.logits!, ref, { rtol: 1e-4, atol: 1e-4 }, 'fused logits vs tfjs');
    const argmax = ref.argMax(-1);
    expect(Array.from(r.tokens.dataSync())).toEqual(Array.from(argmax.dataSync()));
    // The same tokens from the tfjs path's own greedy loop (its KV cache), and from generate() by default.
    const unfused = lm.generate(prompt, steps, { fused: false });
    const fused = lm.generate(prompt, steps);
    expect(Array.from(unfused.dataSync())).toEqual(Array.from(r.tokens.dataSync()));
    expect(Array.from(fused.dataSync())).toEqual(Array.from(r.tokens.dataSync()));
    tf.dispose([prompt, r.tokens, r.logits!, ref, argmax, unfused, fused]);
    lm.dispose();
  });

  it('falls back to the tfjs path where the kernel does not apply, and says why', () => {
    const prompt = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    const lm = model();
    const off = lm.hooks.add('blocks.0.hook_resid_pre', () => undefined);
    expect(lm.fusedDecodeSupport()).toEqual(['1 hook(s) are registered (the kernel has no hook points)']);
    expect(lm.generateFused(prompt, 4)).toBeUndefined();
    const viaTfjs = lm.generate(prompt, 4);
    off();
    const viaKernel = lm.generate(prompt, 4);
    expect(Array.from(viaTfjs.dataSync())).toEqual(Array.from(viaKernel.dataSync()));
    for (const [cfg, reason] of [
      [{ positional: 'alibi' }, "positional 'alibi'"],
      [{ window: 4 }, 'window 4'],
    ] as [Partial<ToyLMConfig>, string][]) {
      const other = model(cfg);
      expect(other.fusedDecodeSupport()).toEqual([reason]);
      other.generate(prompt, 3).dispose(); // the tfjs path
      other.dispose();
    }
    // Past maxLen: no fused run; the tfjs path throws its own error.
    expect(lm.generateFused(prompt, base.maxLen)).toBeUndefined();
    expect(() => lm.generate(prompt, base.maxLen)).toThrow(/exceed maxLen 40/);
    tf.dispose([prompt, viaTfjs, viaKernel]);
    lm.dispose();
  });

  it('names a prompt token outside the vocabulary; leaks nothing', () => {
    const lm = model();
    const bad = tf.tensor2d([[1, 99]], [1, 2], 'int32');
    expect(() => lm.generate(bad, 2)).toThrow(/prompt token 99 at 1 is outside \[0, 23\)/);
    const prompt = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    expectNoLeak(() => lm.generate(prompt, 5).dispose());
    expectNoLeak(() => {
      const r = lm.generateFused(prompt, 5, { logits: true })!;
      tf.dispose([r.tokens, r.logits!]);
    });
    tf.dispose([bad, prompt]);
    lm.dispose();
  });
});
