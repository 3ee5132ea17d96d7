/**
 * NIfTI-1 single-file volumes (.nii, and .nii.gz through node's zlib): a 348-byte header, then the voxels with x
 * fastest. Only what a response loader needs: dims, datatype, the data offset and the intensity scaling.
 * https://nifti.nimh.nih.gov/pub/dist/src/niftilib/nifti1.h
 *
 * Hand-written rather than nifti-reader-js (its documented use inflates the whole .nii.gz before the header is read,
 * the 1.5 GB case of issue #15, and it would be a new dependency for 100 lines). Checked before any voxel is read: sizeof_hdr, magic, dims (1..7 of them, each
 * >= 1), datatype, vox_offset (an integer >= 352) and that the file holds vox_offset + voxels bytes. A .nii.gz is
 * inflated in two steps: the first bytes (enough for the header), then the whole stream capped at the size the header
 * declares. Every error names the file.
 *
 *   offset  0 int32   sizeof_hdr = 348 (also tells the byte order)
 *   offset 40 int16[8] dim: dim[0] = rank, dim[1..] = sizes (x, y, z, t, ...)
 *   offset 70 int16   datatype (2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32)
 *   offset 72 int16   bitpix
 *   offset 108 float32 vox_offset (an integer >= 352)
 *   offset 112 float32 scl_slope, 116 scl_inter (value = slope * stored + inter, when slope != 0)
 *   offset 344 char[4] magic "n+1\0"
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, constants as zlibConstants } from 'node:zlib';

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

/** Deflate never expands more than 1032:1, so a .nii.gz of n bytes cannot hold more than this many. */
const maxInflated = (n: number) => n * 1032 + 4096;

interface Header {
  le: boolean;
  dims: number[];
  datatype: number;
  type: [number, (v: DataView, o: number, le: boolean) => number];
  offset: number;
  slope: number;
  inter: number;
  count: number;
  /** vox_offset + the voxels' bytes: the size the file must have. */
  size: number;
}

function parseHeader(buf: Uint8Array, name: string): Header {
  if (buf.length < 348) throw new Error(`${name}: ${buf.length} bytes is too short for a NIfTI-1 header (348)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const le = view.getInt32(0, true) === 348;
  if (!le && view.getInt32(0, false) !== 348) throw new Error(`${name}: not a NIfTI-1 file (sizeof_hdr is not 348)`);
  const magic = String.fromCharCode(buf[344], buf[345], buf[346]);
  if (magic !== 'n+1')
    throw new Error(
      `${name}: magic is ${JSON.stringify(magic)}, expected 'n+1' (single-file NIfTI-1; .hdr/.img pairs are not supported)`,
    );
  const rank = view.getInt16(40, le);
  if (rank < 1 || rank > 7) throw new Error(`${name}: dim[0] = ${rank}, expected 1..7`);
  const dims = Array.from({ length: rank }, (_, i) => view.getInt16(42 + 2 * i, le));
  const bad = dims.findIndex((d) => d < 1);
  if (bad >= 0)
    throw new Error(`${name}: dim[${bad + 1}] = ${dims[bad]}; sizes must be >= 1 (dims [${dims.join(',')}])`);
  const datatype = view.getInt16(70, le);
  const type = TYPES[datatype];
  if (!type)
    throw new Error(`${name}: datatype ${datatype} is not supported (one of ${Object.keys(TYPES).join(', ')})`);
  const vox = view.getFloat32(108, le);
  if (!(Number.isInteger(vox) && vox >= 352))
    throw new Error(
      `${name}: vox_offset is ${vox}; a single-file NIfTI-1 stores its voxels at an integer offset >= 352, after the header`,
    );
  const slope = view.getFloat32(112, le);
  const inter = view.getFloat32(116, le);
  const scaled = slope !== 0 && Number.isFinite(slope);
  if (scaled && !Number.isFinite(inter)) throw new Error(`${name}: scl_slope is ${slope} but scl_inter is ${inter}`);
  const count = dims.reduce((a, b) => a * b, 1); // <= 32767^7 < 2^105: exact enough to compare
  return { le, dims, datatype, type, offset: vox, slope, inter, count, size: vox + count * type[0] };
}

/** Compressed bytes read to find the header: a gzip stream whose first 348 bytes need more is refused. */
const PREFIX_LIMIT = 65536;

/**
 * The first bytes of a gzip stream, inflating no more input than it takes to get `want` bytes (at most PREFIX_LIMIT
 * compressed bytes, so at most ~66 MB inflated even for a crafted stream).
 */
function inflatePrefix(raw: Uint8Array, want: number, name: string): Buffer {
  for (let k = 512; ; k *= 8) {
    let out: Buffer;
    try {
      k = Math.min(k, PREFIX_LIMIT);
      out = gunzipSync(raw.subarray(0, k), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch (e) {
      throw new Error(`${name}: corrupt gzip data (${(e as Error).message})`);
    }
    if (out.length >= want || k >= raw.length) return out; // all there is: a short one fails as too short
    if (k >= PREFIX_LIMIT)
      throw new Error(
        `${name}: the first ${PREFIX_LIMIT} gzip bytes inflate to ${out.length} bytes, not the ${want} of a NIfTI-1 header`,
      );
  }
}

export function parseNifti(raw: Uint8Array, name = 'volume'): NiftiVolume {
  const gz = raw[0] === 0x1f && raw[1] === 0x8b;
  // The header is checked before the whole of a .nii.gz is inflated, and the inflated size is capped by it.
  const h = parseHeader(gz ? inflatePrefix(raw, 348, name) : raw, name);
  let buf: Uint8Array = raw;
  if (gz) {
    if (h.size > maxInflated(raw.length))
      throw new Error(
        `${name}: dims [${h.dims.join(',')}] need ${h.size} bytes, more than ${raw.length} gzip bytes can hold (truncated file?)`,
      );
    try {
      buf = gunzipSync(raw, { maxOutputLength: h.size });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_BUFFER_TOO_LARGE')
        throw new Error(
          `${name}: inflates to more than the ${h.size} bytes its header declares (vox_offset ${h.offset} + dims [${h.dims.join(',')}])`,
        );
      throw new Error(`${name}: truncated or corrupt gzip data (${err.message})`);
    }
  }
  if (buf.length < h.size) {
    throw new Error(
      `${name}: dims [${h.dims.join(',')}] need ${h.size - h.offset} bytes from offset ${h.offset}, the file has ${Math.max(0, buf.length - h.offset)}`,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const { le, type, offset, slope, inter, count } = h;
  const data = new Float32Array(count);
  const scale = slope !== 0 && Number.isFinite(slope);
  for (let i = 0; i < count; i++) {
    const v = type[1](view, offset + i * type[0], le);
    data[i] = scale ? slope * v + inter : v;
  }
  return { dims: h.dims, datatype: h.datatype, data };
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
  if (!dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 32767))
    throw new Error(`encodeNifti: dims must be integers in 1..32767 (int16), got [${dims.join(',')}]`);
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
