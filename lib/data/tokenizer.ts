/**
 * Character and byte tokenizers for the text corpus.
 *
 * Round-trip guarantees:
 * - {@link ByteTokenizer}: `decode(encode(s)) === s` for every well-formed string (UTF-8; a lone surrogate becomes U+FFFD).
 * - {@link CharTokenizer}: `decode(encode(s)) === s` whenever every character (code point) of `s` is in the vocabulary,
 *   which holds for the text it was built from; an unknown character encodes to UNK (id 0) and decodes to `unkText`.
 */

export interface Tokenizer {
  readonly kind: 'char' | 'byte';
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  /** A plain object that `tokenizerFromJSON` turns back into an equal tokenizer. */
  toJSON(): TokenizerJSON;
}

export type TokenizerJSON = { kind: 'char'; chars: string[]; unkText: string } | { kind: 'byte' };

/** UTF-8 bytes, vocabulary 256. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte';
  readonly vocabSize = 256;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  encode(text: string): Int32Array {
    return Int32Array.from(this.encoder.encode(text));
  }

  /** Invalid UTF-8 (e.g. a window cut mid-character) decodes to U+FFFD rather than throwing. */
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id > 255)
        throw new RangeError(`ByteTokenizer.decode: ids[${i}] (${id}) is not a byte in [0, 256)`);
      bytes[i] = id;
    }
    return this.decoder.decode(bytes);
  }

  toJSON(): TokenizerJSON {
    return { kind: 'byte' };
  }
}

/** One id per code point seen in the text it was built from, sorted by code point; id 0 is UNK. */
export class CharTokenizer implements Tokenizer {
  readonly kind = 'char';
  static readonly UNK = 0;
  /** `chars[id]` for ids >= 1; `chars[0]` is the UNK placeholder and never matches input. */
  readonly chars: readonly string[];
  readonly vocabSize: number;
  private readonly ids: Map<string, number>;

  /**
   * @param chars the known characters (each one code point, distinct).
   * @param unkText what UNK decodes to; default U+FFFD.
   */
  constructor(
    chars: readonly string[],
    readonly unkText = '\uFFFD',
  ) {
    this.ids = new Map();
    chars.forEach((c, i) => {
      if ([...c].length !== 1)
        throw new RangeError(`CharTokenizer: chars[${i}] (${JSON.stringify(c)}) must be exactly one code point`);
      if (this.ids.has(c)) throw new RangeError(`CharTokenizer: chars[${i}] (${JSON.stringify(c)}) is a duplicate`);
      this.ids.set(c, i + 1);
    });
    this.chars = ['', ...chars];
    this.vocabSize = chars.length + 1;
  }

  /** Vocabulary of every code point in `text` (build it from the train split only). */
  static fromText(text: string, unkText?: string): CharTokenizer {
    const set = [...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    return new CharTokenizer(set, unkText);
  }

  encode(text: string): Int32Array {
    const out: number[] = [];
    for (const c of text) out.push(this.ids.get(c) ?? CharTokenizer.UNK);
    return Int32Array.from(out);
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `CharTokenizer.decode: ids[${i}] (${id}) is outside the vocabulary [0, ${this.vocabSize})`,
        );
      }
      s += id === CharTokenizer.UNK ? this.unkText : this.chars[id];
    }
    return s;
  }

  toJSON(): TokenizerJSON {
    return { kind: 'char', chars: this.chars.slice(1), unkText: this.unkText };
  }
}

export function tokenizerFromJSON(json: TokenizerJSON): Tokenizer {
  if (json.kind === 'byte') return new ByteTokenizer();
  if (json.kind === 'char') return new CharTokenizer(json.chars, json.unkText);
  throw new RangeError(
    `tokenizerFromJSON: kind must be 'char' or 'byte', got ${String((json as { kind: unknown }).kind)}`,
  );
}
