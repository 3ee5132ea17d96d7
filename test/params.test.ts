/**
 * The seeded ParamFactory (lib/layers/params.ts) and the building blocks (lib/layers/functional.ts, weights.ts):
 * determinism, seed 0, distinct seeds, unique names, no leaks, argument errors; the factory's streams reproduce the
 * draws each model made before it (exactly), and the blocks equal their composition from plain ops (exactly).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { sdpa } from '../lib/attention/sdpa.js';
import {
  attentionForward,
  type BlockParams,
  blockForward,
  configMask,
  gelu,
  HookRegistry,
  type Init,
  KVCache,
  layerNorm,
  linear,
  makeAttention,
  makeBlock,
  makeMlp,
  makeNorm,
  mergeHeads,
  ParamFactory,
  type SeedStream,
  splitHeads,
  weightSeed,
  xavierLimit,
} from '../lib/layers/index.js';
import { seededInitializer } from '../lib/train/seed.js';
import { hashString, tfSeed } from '../lib/util/random.js';
import { BACKENDS, expectClose, expectNoLeak, useBackend } from './helpers.js';

const RANDOM_INITS: [string, Init][] = [
  ['normal', { normal: 0.5 }],
  ['uniform', { uniform: 0.3 }],
  ['glorotUniform', 'glorotUniform'],
  ['xavierUniform', 'xavierUniform'],
];
const STREAMS: [string, (seed: number) => SeedStream][] = [
  ['mixed', (seed) => ({ kind: 'mixed', seed })],
  ['mixed with prefix', (seed) => ({ kind: 'mixed', seed, prefix: 'model' })],
  ['joined', (seed) => ({ kind: 'joined', seed })],
  ['counter', (seed) => ({ kind: 'counter', start: seed })],
];

/** Values of a few variables drawn by a fresh factory (disposed before returning). */
function draw(seed: number | SeedStream, names = ['a', 'b', 'c', 'd']): number[][] {
  const f = new ParamFactory({ scope: 'draw', seed });
  try {
    return names.map((n, i) => Array.from(f.variable(n, [3, 4], RANDOM_INITS[i % RANDOM_INITS.length][1]).dataSync()));
  } finally {
    f.dispose();
  }
}

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe.each(BACKENDS)('ParamFactory on %s', (backendName) => {
  beforeAll(async () => useBackend(backendName));

  it.each(STREAMS)(
    'the %s stream is deterministic per seed, seed 0 included, and distinct seeds differ',
    (_, stream) => {
      for (const seed of [0, 1, 7]) expect(draw(stream(seed))).toEqual(draw(stream(seed)));
      const [zero, one] = [draw(stream(0)), draw(stream(1))];
      zero.forEach((v, i) => expect(v, `parameter ${i}`).not.toEqual(one[i]));
    },
  );

  it('seed 0 is a fixed seed, not tfjs\'s "no seed": the counter stream\'s first draw is tfSeed(0)', () => {
    expect(tfSeed(0)).not.toBe(0);
    const f = new ParamFactory({ scope: 'zero', seed: { kind: 'counter', start: 0 } });
    const w = f.variable('w', [4, 4], { normal: 1 });
    expect(values(w)).toEqual(values(tf.tidy(() => tf.randomNormal([4, 4], 0, 1, 'float32', tfSeed(0)))));
    f.dispose();
  });

  it('a key seeds its own variable: adding a parameter before it does not move it (mixed, joined)', () => {
    for (const kind of ['mixed', 'joined'] as const) {
      const a = new ParamFactory({ scope: 'a', seed: { kind, seed: 5 } });
      const b = new ParamFactory({ scope: 'b', seed: { kind, seed: 5 } });
      b.variable('extra', [2], { normal: 1 });
      expect(values(a.variable('w', [3], { normal: 1 })), kind).toEqual(values(b.variable('w', [3], { normal: 1 })));
      a.dispose();
      b.dispose();
    }
  });

  it("reproduces each model's draws from before the factory, exactly", () => {
    const seed = 11;
    const f = (stream: SeedStream) => new ParamFactory({ scope: 'repro', seed: stream });
    const check = (stream: SeedStream, make: (p: ParamFactory) => tf.Tensor[], expected: () => tf.Tensor[]) => {
      const p = f(stream);
      const want = tf.tidy(expected);
      make(p).forEach((t, i) => expect(values(t), `${stream.kind} draw ${i}`).toEqual(values(want[i])));
      p.dispose();
      tf.dispose(want);
    };
    // OAT, its pixel model and the pointer models: tf.randomUniform(±√(6/(fanIn+fanOut)) or ±scale, weightSeed(seed, key)).
    check(
      { kind: 'mixed', seed },
      (p) => [
        p.variable('enc.0.attn.wq', [8, 24], 'xavierUniform'),
        p.variable('enc.wh', [5, 20], { uniform: 0.08 }),
        p.variable('dec.bos', [8], { normal: 0.1 }),
      ],
      () => {
        const a = Math.sqrt(6 / (8 + 24));
        return [
          tf.randomUniform([8, 24], -a, a, 'float32', weightSeed(seed, 'enc.0.attn.wq')),
          tf.randomUniform([5, 20], -0.08, 0.08, 'float32', weightSeed(seed, 'enc.wh')),
          tf.randomNormal([8], 0, 0.1, 'float32', weightSeed(seed, 'dec.bos')),
        ];
      },
    );
    // The brain models: seededInitializer(seed, `${model}.${name}`, ...), i.e. tfjs's glorotUniform / randomNormal.
    check(
      { kind: 'mixed', seed, prefix: 'brain-tbe' },
      (p) => [p.variable('w_in', [6, 10], 'glorotUniform'), p.variable('queries', [3, 10], { normal: 1 })],
      () => [
        seededInitializer(seed, 'brain-tbe.w_in', 'glorotUniform').apply([6, 10]),
        seededInitializer(seed, 'brain-tbe.queries', 'randomNormal', 1).apply([3, 10]),
      ],
    );
    // ToyLM and the attention layers: randomNormal seeded by fnv1a(`${seed}:${key}`).
    check(
      { kind: 'joined', seed },
      (p) => [p.variable('blocks.0.attn.wq', [8, 8], { normal: 0.02 })],
      () => [
        tf.initializers
          .randomNormal({ mean: 0, stddev: 0.02, seed: hashString(`${seed}:blocks.0.attn.wq`) })
          .apply([8, 8]),
      ],
    );
    // SparseLM: tfSeed(1000·seed + n) for its n-th random weight (zeros and ones draw nothing); Seer: tfSeed(seed + n).
    check(
      { kind: 'counter', start: 1000 * seed },
      (p) => [
        p.variable('embed', [5, 4], { normal: 0.02 }),
        p.variable('ln.g', [4], 'ones'),
        p.variable('wq', [4, 4], { normal: 0.02 }),
      ],
      () => [
        tf.randomNormal([5, 4], 0, 0.02, 'float32', tfSeed(1000 * seed)),
        tf.ones([4]),
        tf.randomNormal([4, 4], 0, 0.02, 'float32', tfSeed(1000 * seed + 1)),
      ],
    );
  });

  it('glorotUniform and xavierUniform differ only in how the limit is rounded (both are kept for exact draws)', () => {
    expect(xavierLimit(1, 4)).not.toBe(Math.sqrt(3 * (1 / ((1 + 4) / 2))));
    expect(xavierLimit(1, 4)).toBeCloseTo(Math.sqrt(3 * (1 / ((1 + 4) / 2))), 14);
  });

  it('names: keys are unique within a factory; live factories of one scope get distinct tfjs names', () => {
    const a = new ParamFactory({ scope: 'same', seed: 1 });
    const b = new ParamFactory({ scope: 'same', seed: 1 });
    const va = a.child('enc').variable('w', [2], 'zeros');
    const vb = b.child('enc').variable('w', [2], 'zeros');
    expect(va.name).toBe('same/enc.w');
    expect(vb.name).toBe('same_1/enc.w');
    expect(Object.keys(a.params())).toEqual(['enc.w']);
    expect(() => a.variable('enc.w', [2], 'zeros')).toThrow(/'enc\.w' already exists in scope 'same'/);
    a.dispose();
    const c = new ParamFactory({ scope: 'same', seed: 1 });
    expect(c.variable('w', [1], 'ones').name).toBe('same/w');
    b.dispose();
    c.dispose();
  });

  it("makes a tf.layers.Layer's weights when given the layer, and leaves their disposal to it", () => {
    const layer = new (class extends tf.layers.Layer {})({ name: 'owner' });
    const f = new ParamFactory({ scope: 'owner', seed: 2, layer });
    const w = f.variable('w', [2, 3], { normal: 1 });
    expect(layer.trainableWeights.map((x) => x.originalName)).toEqual(['w']);
    expect(layer.trainableWeights[0].read()).toBe(w);
    expect(() => f.dispose()).toThrow(/weights of layer 'owner'; dispose the layer/);
    w.dispose();
  });

  it('draw: a tensor drawn as the variable of its key would be (the counter advances alike), owned by the caller', () => {
    for (const [label, stream] of STREAMS) {
      const [a, b] = [
        new ParamFactory({ scope: 'a', seed: stream(3) }),
        new ParamFactory({ scope: 'b', seed: stream(3) }),
      ];
      const t = a.draw('w', [3, 4], { normal: 1 });
      expect(t instanceof tf.Variable, label).toBe(false);
      expect(values(t), label).toEqual(values(b.variable('w', [3, 4], { normal: 1 })));
      expect(values(a.variable('v', [2], { uniform: 1 })), label).toEqual(values(b.variable('v', [2], { uniform: 1 })));
      expect(Object.keys(a.params()), label).toEqual(['v']);
      t.dispose();
      a.dispose();
      b.dispose();
    }
    expectNoLeak(() => {
      const f = new ParamFactory({ scope: 'd', seed: 1 });
      f.draw('w', [2], { normal: 1 }).dispose();
    });
    const f = new ParamFactory({ scope: 'd', seed: 1 });
    expect(() => f.draw('w', [0], 'zeros')).toThrow(/ParamFactory\.draw: 'w' needs a shape of positive integers/);
    expect(() => f.draw('w', [2], { normal: 0 })).toThrow(/ParamFactory\.draw: 'w': init must be/);
    f.dispose();
    expect(() => f.draw('w', [2], 'zeros')).toThrow(
      /ParamFactory\.draw: 'w': the factory of scope 'd' has been disposed/,
    );
  });

  it('leaks nothing: variables, blocks and their forward pass are freed by dispose()', () => {
    const vars = Object.keys(tf.engine().registeredVariables).length;
    expectNoLeak(() => {
      const f = new ParamFactory({ scope: 'leak', seed: 0 });
      const p = makeBlock(f.child('blocks.0'), { dModel: 8, heads: 2, causal: true });
      tf.tidy(() => {
        blockForward(p, tf.ones([1, 3, 8]), { dModel: 8, heads: 2, causal: true });
      });
      f.dispose();
    });
    expect(Object.keys(tf.engine().registeredVariables).length).toBe(vars);
  });

  it('rejects bad arguments with errors that name them', () => {
    expect(() => new ParamFactory({ scope: '', seed: 1 })).toThrow(
      /scope must be a non-empty name without '\/', got ""/,
    );
    expect(() => new ParamFactory({ scope: 's', seed: Number.NaN })).toThrow(
      /mixed stream's seed must be a finite number, got NaN/,
    );
    expect(() => new ParamFactory({ scope: 's', seed: { kind: 'counter', start: Infinity } })).toThrow(
      /counter stream's start must be a finite number/,
    );
    expect(() => new ParamFactory({ scope: 's', seed: { kind: 'other' } as unknown as SeedStream })).toThrow(
      /seed must be a number or a stream/,
    );
    const f = new ParamFactory({ scope: 's', seed: 1 });
    expect(() => f.variable('', [2], 'zeros')).toThrow(/name must be a non-empty name/);
    expect(() => f.child('a/b')).toThrow(/prefix must be a non-empty name without '\/', got "a\/b"/);
    expect(() => f.variable('w', [2, 0], 'zeros')).toThrow(/'w' needs a shape of positive integers, got \[2,0\]/);
    expect(() => f.variable('w', [2.5], 'zeros')).toThrow(/shape of positive integers/);
    expect(() => f.variable('w', [2], { normal: -1 })).toThrow(/'w': init must be .*got \{"normal":-1\}/);
    expect(() => f.variable('w', [2], { uniform: Number.NaN })).toThrow(/init must be/);
    expect(() => f.variable('w', [2], 'he' as Init)).toThrow(/got "he"/);
    expect(() => f.variable('w', [2, 3, 4], 'xavierUniform')).toThrow(
      /'xavierUniform' needs a 2-D \[fanIn, fanOut\] shape, got \[2,3,4\]/,
    );
    expect(() => f.variable('w', [2, 2], { values: [1, 2, 3] })).toThrow(
      /\{ values \} has 3 values for shape \[2,2\] \(4\)/,
    );
    expect(Object.keys(f.params())).toEqual([]);
    f.dispose();
    expect(() => f.variable('w', [2], 'zeros')).toThrow(/factory of scope 's' has been disposed/);
  });
});

describe.each(BACKENDS)('building blocks on %s', (backendName) => {
  beforeAll(async () => useBackend(backendName));
  const cfg = { dModel: 8, heads: 2 };

  it('a decoder block (self, cross, MLP) equals its composition from plain ops, exactly', () => {
    const f = new ParamFactory({ scope: 'dec', seed: 4 });
    const xavier = { weights: 'xavierUniform' } as const;
    const p: BlockParams = {
      attn: makeAttention(f.child('self'), cfg, xavier),
      cross: { attn: makeAttention(f.child('cross'), cfg, xavier), ln: makeNorm(f.child('ln2'), 8) },
      mlp: makeMlp(f.child('mlp'), 8, 16, xavier),
      ln1: makeNorm(f.child('ln1'), 8),
      ln2: makeNorm(f.child('ln3'), 8),
    };
    const [x, memory] = [
      tf.randomNormal([2, 3, 8], 0, 1, 'float32', 1),
      tf.randomNormal([2, 5, 8], 0, 1, 'float32', 2),
    ];
    const causal = tf.linalg.bandPart(tf.ones([3, 3]), -1, 0).reshape([1, 1, 3, 3]);
    const keyValid = tf.tensor4d([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [2, 1, 1, 5]);
    const mha = (a: BlockParams['attn'], xq: tf.Tensor, xkv: tf.Tensor, mask: tf.Tensor) => {
      const [q, k, v] = [linear(xq, a.wq!), linear(xkv, a.wk), linear(xkv, a.wv)].map((t) => splitHeads(t, 2, 4));
      return linear(mergeHeads(sdpa(q, k, v, { mask })), a.wo!);
    };
    const ln = (n: { gamma: tf.Tensor; beta: tf.Tensor }, t: tf.Tensor) => layerNorm(t, n.gamma, n.beta);
    let h: tf.Tensor = x;
    h = h.add(mha(p.attn, ln(p.ln1, h), ln(p.ln1, h), causal));
    h = h.add(mha(p.cross!.attn, ln(p.cross!.ln, h), memory, keyValid));
    h = h.add(linear(gelu(linear(ln(p.ln2, h), p.mlp.w1, p.mlp.b1)), p.mlp.w2, p.mlp.b2));
    const y = blockForward(p, x, cfg, { mask: causal, memory, memoryMask: keyValid });
    expect(values(y)).toEqual(values(h));
    expect(() => blockForward(p, x, cfg, { prefix: 'dec.0' })).toThrow(
      /block 'dec\.0' has cross-attention but the call gives no memory/,
    );
    tf.dispose([x, memory, causal, keyValid, y, h]);
    f.dispose();
  });

  it('learned queries without q/o projections and keys from their own input equal plain sdpa, exactly', () => {
    const f = new ParamFactory({ scope: 'queries', seed: 5 });
    const p = { wk: f.variable('wk', [8, 8], 'glorotUniform'), wv: f.variable('wv', [8, 8], 'glorotUniform') };
    const queries = f.variable('queries', [3, 8], { normal: 1 });
    const t = tf.randomNormal([2, 6, 8], 0, 1, 'float32', 3);
    const pe = tf.randomNormal([6, 8], 0, 1, 'float32', 4);
    const q = tf.tile(splitHeads(queries.expandDims(0), 2, 4), [2, 1, 1, 1]);
    const ref = sdpa(q, splitHeads(linear(t.add(pe), p.wk), 2, 4), splitHeads(linear(t, p.wv), 2, 4), {
      returnWeights: true,
    });
    const hooks = new HookRegistry();
    let pattern: tf.Tensor | undefined;
    hooks.add('attn.hook_pattern', (w) => {
      pattern = w.clone();
    });
    const y = attentionForward(p, tf.tile(queries.expandDims(0), [2, 1, 1]), t, cfg, { keyInput: t.add(pe), hooks });
    expect(y.shape).toEqual([2, 3, 8]);
    expect(values(y)).toEqual(values(mergeHeads(ref.output)));
    expect(values(pattern!)).toEqual(values(ref.weights));
    tf.dispose([t, pe, q, ref.output, ref.weights, pattern!, y]);
    f.dispose();
  });

  it('attend replaces sdpa and sees q, k before RoPE; lastOnly gives the last row of the full call', () => {
    const f = new ParamFactory({ scope: 'attend', seed: 7 });
    const rcfg = { ...cfg, causal: true, positional: 'rope' as const };
    const p = makeBlock(f, rcfg);
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 8);
    const hooks = new HookRegistry();
    const patterns: number[][] = [];
    hooks.add(/hook_pattern$/, (w) => {
      patterns.push(w.shape);
    });
    const seen: tf.Tensor[] = [];
    const attend = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, content: { q: tf.Tensor4D; k: tf.Tensor4D }) => {
      seen.push(content.q.clone(), content.k.clone());
      return sdpa(q, k, v, { mask: configMask(rcfg) });
    };
    const plain = blockForward(p, x, rcfg);
    const replaced = blockForward(p, x, rcfg, { attend, hooks });
    expect(values(replaced)).toEqual(values(plain));
    expect(patterns).toEqual([]);
    const a = layerNorm(x, p.ln1.gamma, p.ln1.beta);
    expect(values(seen[0])).toEqual(values(splitHeads(linear(a, p.attn.wq!), 2, 4)));
    expect(values(seen[1])).toEqual(values(splitHeads(linear(a, p.attn.wk), 2, 4)));
    const last = blockForward(p, x, rcfg, { attend, lastOnly: true });
    expect(last.shape).toEqual([2, 1, 8]);
    expect(seen[2].shape).toEqual([2, 2, 1, 4]); // the last query's content
    expect(values(seen[2])).toEqual(values(seen[0].slice([0, 0, 4, 0], [2, 2, 1, 4])));
    expectClose(last, plain.slice([0, 4, 0], [2, 1, 8]), { rtol: 1e-6, atol: 1e-6 }, 'lastOnly');
    const lastPlain = blockForward(p, x, rcfg, { lastOnly: true });
    expect(values(lastPlain)).toEqual(values(last));
    expect(() => blockForward(p, x, rcfg, { attend, cache: new KVCache(1, 8) })).toThrow(
      /attentionForward: call\.attend cannot run with call\.cache/,
    );
    tf.dispose([x, plain, replaced, a, last, lastPlain, ...seen]);
    f.dispose();
  });

  it('hook points: a block with cross-attention runs every named hook with its documented shape', () => {
    const f = new ParamFactory({ scope: 'hooks', seed: 6 });
    const init = { weights: { normal: 0.1 } };
    const p: BlockParams = {
      attn: makeAttention(f.child('attn'), cfg, init),
      ln1: makeNorm(f.child('ln1'), 8),
      cross: { attn: makeAttention(f.child('cross'), cfg, init), ln: makeNorm(f.child('lnc'), 8) },
      ln2: makeNorm(f.child('ln2'), 8),
      mlp: makeMlp(f.child('mlp'), 8, 32, init),
    };
    const seen: Record<string, number[]> = {};
    const hooks = new HookRegistry();
    hooks.add(/.*/, (x, { name }) => {
      seen[name] = x.shape;
    });
    tf.tidy(() => {
      blockForward(p, tf.ones([2, 3, 8]), cfg, { hooks, prefix: 'blocks.0', memory: tf.ones([2, 5, 8]) });
    });
    expect(seen).toEqual({
      'blocks.0.hook_resid_pre': [2, 3, 8],
      'blocks.0.attn.hook_q': [2, 2, 3, 4],
      'blocks.0.attn.hook_k': [2, 2, 3, 4],
      'blocks.0.attn.hook_v': [2, 2, 3, 4],
      'blocks.0.attn.hook_pattern': [2, 2, 3, 3],
      'blocks.0.attn.hook_z': [2, 2, 3, 4],
      'blocks.0.hook_attn_out': [2, 3, 8],
      'blocks.0.cross.hook_q': [2, 2, 3, 4],
      'blocks.0.cross.hook_k': [2, 2, 5, 4],
      'blocks.0.cross.hook_v': [2, 2, 5, 4],
      'blocks.0.cross.hook_pattern': [2, 2, 3, 5],
      'blocks.0.cross.hook_z': [2, 2, 3, 4],
      'blocks.0.hook_cross_out': [2, 3, 8],
      'blocks.0.mlp.hook_post': [2, 3, 32],
      'blocks.0.hook_mlp_out': [2, 3, 8],
      'blocks.0.hook_resid_post': [2, 3, 8],
    });
    f.dispose();
  });
});
