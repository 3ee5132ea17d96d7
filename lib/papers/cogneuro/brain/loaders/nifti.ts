/**
 * NIfTI-1 single-file volumes (.nii, and .nii.gz through node's zlib): a 348-byte header, then the voxels with x
 * fastest. Only what a response loader needs: dims, datatype, the data offset and the intensity scaling.
 * https://nifti.nimh.nih.gov/pub/dist/src/niftilib/nifti1.h
 *
 *   offset  0 int32   sizeof_hdr = 348 (also tells the byte order)
 *   offset 40 int16[8] dim: dim[0] = rank, dim[1..] = sizes (x, y, z, t, ...)
 *   offset 70 int16   datatype (2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32)
 *   offset 72 int16   bitpix
 *   offset 108 float32 vox_offset (>= 352)
 *   offset 112 float32 scl_slope, 116 scl_inter (value = slope * stored + inter, when slope != 0)
 *   offset 344 char[4] magic "n+1\0"
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface NiftiVolume {
  /** Sizes along x, y, z (, t, ...). */
  dims: number[];
  datatype: number;
  /** Scaled values, x fastest. */
  data: Float32Array;
}

const TYPES: Record<number, [number, (v: DataView, o: number, le: boolean) => number]> = {
  2: [1, (v, o) => v.getUint8(o)],
  4: [2, (v, o, le) => v.getInt16(o, le)],
  8: [4, (v, o, le) => v.getInt32(o, le)],
  16: [4, (v, o, le) => v.getFloat32(o, le)],
  64: [8, (v, o, le) => v.getFloat64(o, le)],
  256: [1, (v, o) => v.getInt8(o)],
  512: [2, (v, o, le) => v.getUint16(o, le)],
  768: [4, (v, o, le) => v.getUint32(o, le)],
};

export function parseNifti(raw: Uint8Array, name = 'volume'): NiftiVolume {
  const buf = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  if (buf.length < 348) throw new Error(`${name}: ${buf.length} bytes is too short for a NIfTI-1 header (348)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const le = view.getInt32(0, true) === 348;
  if (!le && view.getInt32(0, false) !== 348) throw new Error(`${name}: not a NIfTI-1 file (sizeof_hdr is not 348)`);
  const magic = String.fromCharCode(buf[344], buf[345], buf[346]);
  if (magic !== 'n+1')
    throw new Error(
      `${name}: magic is '${magic}', expected 'n+1' (single-file NIfTI-1; .hdr/.img pairs are not supported)`,
    );
  const rank = view.getInt16(40, le);
  if (rank < 1 || rank > 7) throw new Error(`${name}: dim[0] = ${rank}, expected 1..7`);
  const dims = Array.from({ length: rank }, (_, i) => view.getInt16(42 + 2 * i, le));
  const datatype = view.getInt16(70, le);
  const type = TYPES[datatype];
  if (!type)
    throw new Error(`${name}: datatype ${datatype} is not supported (one of ${Object.keys(TYPES).join(', ')})`);
  const offset = Math.round(view.getFloat32(108, le));
  const slope = view.getFloat32(112, le);
  const inter = view.getFloat32(116, le);
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length < offset + count * type[0]) {
    throw new Error(
      `${name}: dims [${dims.join(',')}] need ${count * type[0]} bytes from offset ${offset}, the file has ${buf.length - offset}`,
    );
  }
  const data = new Float32Array(count);
  const scale = slope !== 0 && Number.isFinite(slope);
  for (let i = 0; i < count; i++) {
    const v = type[1](view, offset + i * type[0], le);
    data[i] = scale ? slope * v + inter : v;
  }
  return { dims, datatype, data };
}

export function readNifti(path: string): NiftiVolume {
  return parseNifti(readFileSync(path), path);
}

/** Encode a float32 (datatype 16) or int32 (datatype 8) volume as single-file NIfTI-1, little-endian, 1 mm voxels. */
export function encodeNifti(dims: readonly number[], data: Float32Array | Int32Array): Buffer {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`encodeNifti: dims [${dims.join(',')}] hold ${count} voxels, data has ${data.length}`);
  if (dims.length < 1 || dims.length > 7) throw new Error(`encodeNifti: 1 to 7 dims, got ${dims.length}`);
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  h.writeInt16LE(dims.length, 40);
  dims.forEach((d, i) => h.writeInt16LE(d, 42 + 2 * i));
  for (let i = dims.length; i < 7; i++) h.writeInt16LE(1, 42 + 2 * i);
  const float = data instanceof Float32Array;
  h.writeInt16LE(float ? 16 : 8, 70);
  h.writeInt16LE(32, 72);
  for (let i = 0; i < 8; i++) h.writeFloatLE(1, 76 + 4 * i); // pixdim
  h.writeFloatLE(352, 108);
  h.writeFloatLE(0, 112); // scl_slope 0: no scaling
  h.write('n+1\0', 344, 'latin1');
  return Buffer.concat([h, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

export function writeNifti(path: string, dims: readonly number[], data: Float32Array | Int32Array): void {
  writeFileSync(path, encodeNifti(dims, data));
}
