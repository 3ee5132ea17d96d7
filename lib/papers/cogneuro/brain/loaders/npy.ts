/**
 * NumPy .npy files (format versions 1-3): a magic string, a little header that is a Python dict literal
 * (`{'descr': '<f4', 'fortran_order': False, 'shape': (100, 512), }`), then the raw array in C order.
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 *
 * Hand-written (no npm package reads .npy with these checks): the header is at most MAX_NPY_HEADER bytes (numpy's own
 * reader refuses more than 10000 by default), every dimension is a decimal integer >= 0, and the byte count the shape
 * asks for is checked against the bytes that follow before anything is allocated. Every error names the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export interface NpyArray {
  shape: number[];
  /** dtype as numpy writes it, e.g. '<f4'. */
  descr: string;
  /** The values, converted to float64. */
  data: Float64Array;
}

const MAGIC = '\x93NUMPY';

/** The longest header read, in bytes (numpy's `max_header_size` default is 10000). */
export const MAX_NPY_HEADER = 65536;

const READERS: Record<string, [number, (v: DataView, o: number) => number]> = {
  f4: [4, (v, o) => v.getFloat32(o, true)],
  f8: [8, (v, o) => v.getFloat64(o, true)],
  i1: [1, (v, o) => v.getInt8(o)],
  u1: [1, (v, o) => v.getUint8(o)],
  b1: [1, (v, o) => v.getUint8(o)],
  i2: [2, (v, o) => v.getInt16(o, true)],
  u2: [2, (v, o) => v.getUint16(o, true)],
  i4: [4, (v, o) => v.getInt32(o, true)],
  u4: [4, (v, o) => v.getUint32(o, true)],
  i8: [8, (v, o) => Number(v.getBigInt64(o, true))],
  u8: [8, (v, o) => Number(v.getBigUint64(o, true))],
};

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

export function parseNpy(buf: Uint8Array, name = 'array'): NpyArray {
  if (buf.length < 10 || latin1(buf.subarray(0, 6)) !== MAGIC)
    throw new Error(`${name}: not a .npy file (no \\x93NUMPY magic)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const major = buf[6];
  if (major !== 1 && major !== 2 && major !== 3)
    throw new Error(`${name}: .npy format version ${major}.${buf[7]} is not supported (1.0, 2.0 or 3.0)`);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start) throw new Error(`${name}: ${buf.length} bytes is too short for a .npy v${major} preamble`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerLen > MAX_NPY_HEADER)
    throw new Error(
      `${name}: the .npy header is ${headerLen} bytes, more than the ${MAX_NPY_HEADER} this reader accepts`,
    );
  if (start + headerLen > buf.length)
    throw new Error(
      `${name}: the .npy header says it is ${headerLen} bytes but only ${buf.length - start} bytes follow the preamble`,
    );
  const bytes = buf.subarray(start, start + headerLen);
  const header = major === 3 ? Buffer.from(bytes).toString('utf8') : latin1(bytes);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined)
    throw new Error(`${name}: unreadable .npy header ${JSON.stringify(header.slice(0, 200))}`);
  if (fortran === 'True')
    throw new Error(`${name}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray(x)`);
  const parts = shapeText.split(',').map((s) => s.trim());
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop(); // the trailing comma of (n,)
  if (parts.length === 1 && parts[0] === '') parts.pop(); // () is a scalar
  const shape = parts.map((s) => {
    const d = /^[0-9]+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(d))
      throw new Error(`${name}: shape (${shapeText}) has the dimension '${s}'; dimensions must be integers >= 0`);
    return d;
  });
  const kind = descr.slice(1);
  if (descr[0] === '>' && kind !== 'i1' && kind !== 'u1')
    throw new Error(`${name}: big-endian dtype ${descr} is not supported; save with x.astype('<${kind}')`);
  const reader = READERS[kind];
  if (!reader) throw new Error(`${name}: dtype ${descr} is not supported (one of ${Object.keys(READERS).join(', ')})`);
  const offset = start + headerLen;
  const available = buf.length - offset;
  // In BigInt, so a shape like (2**40, 2**40) is rejected rather than overflowing to a wrong count.
  const need = shape.reduce((a, d) => a * BigInt(d), BigInt(reader[0]));
  if (need > BigInt(available))
    throw new Error(
      `${name}: header says shape [${shape.join(',')}] of ${descr} (${need} bytes) but only ${available} bytes follow`,
    );
  const count = Number(need) / reader[0];
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = reader[1](view, offset + i * reader[0]);
  return { shape, descr, data };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}

/** Encode a float32 ('<f4'), float64 ('<f8') or int32 ('<i4') array as .npy version 1.0. */
export function encodeNpy(data: Float32Array | Float64Array | Int32Array, shape: readonly number[]): Buffer {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new Error(`encodeNpy: shape must be integers >= 0, got [${shape.join(',')}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`encodeNpy: shape [${shape.join(',')}] holds ${count} values, data has ${data.length}`);
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Float64Array ? '<f8' : '<i4';
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + dict.length + 1;
  const header = `${dict + ' '.repeat((64 - (total % 64)) % 64)}\n`;
  const head = Buffer.alloc(10);
  head.write(MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    head,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

export function writeNpy(path: string, data: Float32Array | Float64Array | Int32Array, shape: readonly number[]): void {
  writeFileSync(path, encodeNpy(data, shape));
}
