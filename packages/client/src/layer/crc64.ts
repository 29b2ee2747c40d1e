// CRC-64/ISO (reflected polynomial 0xD800000000000000, init and xorout all ones; Go's
// crc64.ISO table): the checksum tar-split stores for each file's content, as 8 big-endian bytes.
// Uses the native addon when built (slicing-by-8 in C), else a slicing-by-8 JS implementation.
import { nativeCrc64Update } from "../native.js";

const HI: Uint32Array[] = [];
const LO: Uint32Array[] = [];
function tables(): void {
  if (HI.length) return;
  for (let t = 0; t < 8; t++) {
    HI.push(new Uint32Array(256));
    LO.push(new Uint32Array(256));
  }
  for (let i = 0; i < 256; i++) {
    let hi = 0;
    let lo = i;
    for (let k = 0; k < 8; k++) {
      const bit = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (bit) hi = (hi ^ 0xd8000000) >>> 0;
    }
    HI[0][i] = hi;
    LO[0][i] = lo;
  }
  for (let i = 0; i < 256; i++) {
    let hi = HI[0][i];
    let lo = LO[0][i];
    for (let t = 1; t < 8; t++) {
      const idx = lo & 0xff;
      const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
      const nhi = hi >>> 8;
      hi = (nhi ^ HI[0][idx]) >>> 0;
      lo = (nlo ^ LO[0][idx]) >>> 0;
      HI[t][i] = hi;
      LO[t][i] = lo;
    }
  }
}

function jsUpdate(state: Uint8Array, data: Uint8Array): void {
  tables();
  const dv = new DataView(state.buffer, state.byteOffset, 8);
  let hi = ~dv.getUint32(0) >>> 0;
  let lo = ~dv.getUint32(4) >>> 0;
  const n = data.length;
  let i = 0;
  const [H0, H1, H2, H3, H4, H5, H6, H7] = HI;
  const [L0, L1, L2, L3, L4, L5, L6, L7] = LO;
  for (; i + 8 <= n; i += 8) {
    const a = (lo ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    const b = (hi ^ (data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24))) >>> 0;
    const a0 = a & 0xff,
      a1 = (a >>> 8) & 0xff,
      a2 = (a >>> 16) & 0xff,
      a3 = a >>> 24;
    const b0 = b & 0xff,
      b1 = (b >>> 8) & 0xff,
      b2 = (b >>> 16) & 0xff,
      b3 = b >>> 24;
    hi = (H7[a0] ^ H6[a1] ^ H5[a2] ^ H4[a3] ^ H3[b0] ^ H2[b1] ^ H1[b2] ^ H0[b3]) >>> 0;
    lo = (L7[a0] ^ L6[a1] ^ L5[a2] ^ L4[a3] ^ L3[b0] ^ L2[b1] ^ L1[b2] ^ L0[b3]) >>> 0;
  }
  for (; i < n; i++) {
    const idx = (lo ^ data[i]) & 0xff;
    const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
    hi = (H0[idx] ^ (hi >>> 8)) >>> 0;
    lo = (L0[idx] ^ nlo) >>> 0;
  }
  dv.setUint32(0, ~hi >>> 0);
  dv.setUint32(4, ~lo >>> 0);
}

const native = nativeCrc64Update();

/** Updates `state` (8-byte big-endian CRC of the bytes so far; all zero for none) with `data`. */
export const crc64Update: (state: Uint8Array, data: Uint8Array) => void = native ?? jsUpdate;
/** The JS implementation (always available; used by tests to cross-check the native one). */
export const crc64UpdateJs = jsUpdate;

/** Incremental CRC-64/ISO. */
export class Crc64 {
  readonly state = Buffer.alloc(8);
  update(data: Uint8Array): this {
    if (data.length) crc64Update(this.state, data);
    return this;
  }
  /** 8 bytes, big-endian (tar-split's payload). */
  digest(): Buffer {
    return Buffer.from(this.state);
  }
}
