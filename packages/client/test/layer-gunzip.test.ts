// GzipDecoder (layer/gunzip.ts), the addon's inflate into one reused output buffer: checked
// against node:zlib's gunzipSync on valid input of many sizes and chunkings, and against
// RFC 1952 framing (multi-member, optional header fields, padding, garbage, truncation,
// corruption).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { deflateRawSync, gunzipSync, gzipSync } from "node:zlib";
import { GzipDecoder, GzipFormatError } from "../src/layer/gunzip.js";
import { nativeAvailable } from "../src/native.js";

const MiB = 1024 * 1024;
const WHOLE = Number.MAX_SAFE_INTEGER;
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Text-like data (compresses well, but with real Huffman codes and matches), deterministic. */
function compressible(n: number, seed = 1): Buffer {
  const words = ["layer", "blob", "sha256", "manifest", "registry", "usr/lib/", "etc/", "0000644", "\n", " ", "tar", "digest", "ustar\0"];
  let a = seed >>> 0;
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    const w = (a >>> 16) % 17 < words.length ? words[(a >>> 16) % words.length] : String(a % 1000);
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

/** Feeds `gz` in pieces of `size` bytes, copying every yielded view before resuming; calls end(). */
function decodeAll(gz: Uint8Array, size: number, dec = new GzipDecoder()): Buffer {
  const out: Buffer[] = [];
  // an empty input is still one (empty) decode() call
  for (let i = 0; i === 0 || i < gz.length; i += size) {
    for (const b of dec.decode(gz.subarray(i, Math.min(gz.length, i + size)))) {
      assert.ok(Buffer.isBuffer(b));
      out.push(Buffer.from(b));
    }
  }
  dec.end();
  return Buffer.concat(out);
}

/** Runs a decode() to its end, discarding the output. */
function drain(g: Iterable<Buffer>): void {
  for (const _ of g) {
    // discarded
  }
}

/** Runs `fn`, expecting a GzipFormatError; returns it. */
function formatError(fn: () => unknown): GzipFormatError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GzipFormatError, `expected a GzipFormatError, got ${String(e)}`);
    assert.equal(e.name, "GzipFormatError");
    return e;
  }
  assert.fail("expected a GzipFormatError");
}

/** What node:zlib says about `gz`: the output, or the error code. */
function oracle(gz: Buffer): { out: Buffer } | { code: string } {
  try {
    return { out: gunzipSync(gz) };
  } catch (e) {
    return { code: (e as { code: string }).code };
  }
}

// CRC-32 (IEEE), for hand-built gzip headers with FHCRC
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

describe("GzipDecoder", () => {
  test("the native addon is built", () => assert.equal(nativeAvailable(), true));

  const payloads: Array<[string, Buffer]> = [
    ["empty", Buffer.alloc(0)],
    ["1 byte", Buffer.from([0x42])],
    ["1 MiB - 1 random", randomBytes(MiB - 1)],
    ["1 MiB random", randomBytes(MiB)],
    ["1 MiB + 1 compressible", compressible(MiB + 1)],
    ["3 MiB random", randomBytes(3 * MiB)],
    ["6 MiB compressible", compressible(6 * MiB, 7)],
  ];
  const gzipped = payloads.map(([name, p]) => [name, p, gzipSync(p)] as const);

  for (const size of [1, 7, 4096, 65536, WHOLE]) {
    test(`matches gunzipSync on each payload, fed ${size === WHOLE ? "whole" : `in ${size}-byte pieces`}`, () => {
      for (const [name, payload, gz] of gzipped) {
        // single-byte feeding of the largest inputs costs seconds and adds nothing over ~1 MiB
        if (size === 1 && gz.length > 1.1 * MiB) continue;
        const expected = gunzipSync(gz);
        assert.ok(expected.equals(payload));
        const got = decodeAll(gz, size);
        assert.equal(got.length, expected.length, name);
        assert.equal(sha256(got), sha256(expected), name);
      }
    });
  }

  test("yielded views stay intact until the generator is resumed", () => {
    const payload = compressible(3 * MiB + 17, 3);
    const gz = gzipSync(payload);
    const dec = new GzipDecoder();
    let off = 0;
    let yields = 0;
    for (let i = 0; i < gz.length; i += 100_000) {
      for (const b of dec.decode(gz.subarray(i, i + 100_000))) {
        // compared in place, before resuming: each view must hold the next bytes of the output
        assert.ok(b.length > 0);
        assert.ok(b.equals(payload.subarray(off, off + b.length)), `view at ${off}`);
        off += b.length;
        yields++;
      }
    }
    dec.end();
    assert.equal(off, payload.length);
    assert.ok(yields >= 4);
  });

  test("10 MiB of zeros from a ~10 KiB input: output far larger than the 1 MiB buffer", () => {
    const payload = Buffer.alloc(10 * MiB);
    const gz = gzipSync(payload, { level: 9 });
    assert.ok(gz.length < 64 * 1024);
    for (const size of [1, 7, WHOLE]) {
      const got = decodeAll(gz, size);
      assert.equal(got.length, payload.length, `pieces of ${size}`);
      assert.ok(got.equals(payload), `pieces of ${size}`);
    }
  });

  test("input as plain Uint8Array views with a byte offset", () => {
    const payload = compressible(200_000, 9);
    const gz = gzipSync(payload);
    const backing = new Uint8Array(gz.length + 13);
    backing.set(gz, 13);
    const view = new Uint8Array(backing.buffer, 13, gz.length);
    assert.ok(decodeAll(view, 999).equals(payload));
  });

  test("multi-member input (RFC 1952 §2.2) decodes to the concatenation, for any split", () => {
    const a = randomBytes(300_000);
    const b = compressible(2 * MiB + 3, 5);
    const two = Buffer.concat([gzipSync(a), gzipSync(b)]);
    const expected = gunzipSync(two);
    assert.ok(expected.equals(Buffer.concat([a, b])));
    for (const size of [1, 7, 4096, 65536, WHOLE]) assert.equal(sha256(decodeAll(two, size)), sha256(expected), `pieces of ${size}`);
    // each member in its own decode() call, with an empty member between
    const dec = new GzipDecoder();
    const out: Buffer[] = [];
    for (const m of [gzipSync(a), gzipSync(Buffer.alloc(0)), gzipSync(b)]) for (const v of dec.decode(m)) out.push(Buffer.from(v));
    dec.end();
    assert.ok(Buffer.concat(out).equals(expected));
  });

  test("header fields FEXTRA, FNAME, FCOMMENT and FHCRC (RFC 1952 §2.3) are skipped, also byte by byte", () => {
    const payload = compressible(70_000, 11);
    const plain = gzipSync(payload);
    const extra = Buffer.from([0x41, 0x70, 4, 0, 1, 2, 3, 4]); // SI1 SI2 LEN(4) data
    const head = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 0, 0, 0, 0, 0, 3]),
      Buffer.from([extra.length, 0]),
      extra,
      Buffer.from("layer.tar\0", "latin1"),
      Buffer.from("a comment\0", "latin1"),
    ]);
    const hcrc = Buffer.alloc(2);
    hcrc.writeUInt16LE(crc32(head) & 0xffff);
    const gz = Buffer.concat([head, hcrc, deflateRawSync(payload), plain.subarray(plain.length - 8)]);
    const expected = gunzipSync(gz);
    assert.ok(expected.equals(payload));
    for (const size of [1, 7, WHOLE]) assert.ok(decodeAll(gz, size).equals(expected), `pieces of ${size}`);
    // and a wrong header CRC is corrupt data
    const bad = Buffer.from(gz);
    bad[head.length] ^= 0xff;
    assert.deepEqual(oracle(bad), { code: "Z_DATA_ERROR" });
    assert.equal(formatError(() => decodeAll(bad, 7)).code, "Z_DATA_ERROR");
  });

  test("a member followed by zero bytes (padding) is accepted, also when the padding comes in later calls", () => {
    const payload = compressible(100_000, 2);
    const gz = gzipSync(payload);
    const padded = Buffer.concat([gz, Buffer.alloc(1000)]);
    assert.ok(gunzipSync(padded).equals(payload));
    for (const size of [1, 7, 4096, WHOLE]) assert.ok(decodeAll(padded, size).equals(payload), `pieces of ${size}`);
    const dec = new GzipDecoder();
    const out: Buffer[] = [];
    for (const part of [gz, Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(511)]) for (const v of dec.decode(part)) out.push(Buffer.from(v));
    dec.end();
    assert.ok(Buffer.concat(out).equals(payload));
  });

  test("a member followed by garbage is a GzipFormatError", () => {
    const payload = compressible(50_000, 4);
    const gz = gzipSync(payload);
    const cases: Array<[string, Buffer]> = [
      ["xyz", Buffer.from("xyz")],
      ["a zlib (not gzip) stream", Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])],
      ["a gzip magic with a bad method", Buffer.from([0x1f, 0x8b, 0x07, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])],
      ["padding, then a byte that is not zero", Buffer.from([0, 0, 0, 0x78])],
      ["a single stray byte", Buffer.from("x")],
    ];
    for (const [name, tail] of cases) {
      for (const size of [1, 7, WHOLE]) {
        const e = formatError(() => decodeAll(Buffer.concat([gz, tail]), size));
        assert.match(e.code, /^Z_(DATA|BUF)_ERROR$/, `${name}, pieces of ${size}`);
      }
      // and in a call of its own after the member
      const dec = new GzipDecoder();
      drain(dec.decode(gz));
      formatError(() => {
        drain(dec.decode(tail));
        dec.end();
      });
    }
    // "xyz" is what node:zlib also calls corrupt data
    assert.deepEqual(oracle(Buffer.concat([gz, Buffer.from("xyz")])), { code: "Z_DATA_ERROR" });
    assert.equal(formatError(() => decodeAll(Buffer.concat([gz, Buffer.from("xyz")]), WHOLE)).code, "Z_DATA_ERROR");
  });

  test("truncated input: decode() hands on what it can, end() throws", () => {
    const payload = compressible(300_000, 6);
    const gz = gzipSync(payload);
    for (const cut of [1, 2, 9, 10, 20, gz.length >> 1, gz.length - 8, gz.length - 4, gz.length - 1]) {
      const part = gz.subarray(0, cut);
      assert.deepEqual(oracle(part), { code: "Z_BUF_ERROR" }, `cut at ${cut}`);
      for (const size of [7, WHOLE]) {
        const dec = new GzipDecoder();
        const out: Buffer[] = [];
        for (let i = 0; i < part.length; i += size) for (const v of dec.decode(part.subarray(i, i + size))) out.push(Buffer.from(v));
        const got = Buffer.concat(out);
        assert.ok(payload.subarray(0, got.length).equals(got), `cut at ${cut}: output is a prefix`);
        const e = formatError(() => dec.end());
        assert.equal(e.code, "Z_BUF_ERROR");
      }
    }
    // a second member cut short
    const two = Buffer.concat([gz, gzipSync(payload)]);
    formatError(() => decodeAll(two.subarray(0, two.length - 3), 4096));
  });

  test("empty input: end() throws, with or without an empty decode() call", () => {
    assert.equal(formatError(() => new GzipDecoder().end()).code, "Z_BUF_ERROR");
    const dec = new GzipDecoder();
    assert.equal([...dec.decode(new Uint8Array(0))].length, 0);
    formatError(() => dec.end());
  });

  test("corrupt deflate data, CRC-32 or ISIZE: a GzipFormatError with code Z_DATA_ERROR, like node:zlib", () => {
    const payload = compressible(MiB + 4321, 8);
    const gz = gzipSync(payload);
    const positions: Array<[string, number]> = [
      ["magic", 0],
      ["compression method", 2],
      ["deflate block header", 10],
      ["deflate data, early", 200],
      ["deflate data, middle", gz.length >> 1],
      ["CRC-32", gz.length - 8],
      ["CRC-32, last byte", gz.length - 5],
      ["ISIZE", gz.length - 4],
    ];
    for (const [what, at] of positions) {
      for (const flip of [0x01, 0x80]) {
        const bad = Buffer.from(gz);
        bad[at] ^= flip;
        assert.deepEqual(oracle(bad), { code: "Z_DATA_ERROR" }, `node:zlib on ${what} ^ ${flip}`);
        for (const size of [7, 65536, WHOLE]) {
          const e = formatError(() => decodeAll(bad, size));
          assert.equal(e.code, "Z_DATA_ERROR", `${what} ^ ${flip}, pieces of ${size}`);
          assert.ok(e.message.length > 0);
        }
      }
    }
    // the trailer checks are never skipped: these flips are always corrupt data
    for (const at of [gz.length - 8, gz.length - 1]) {
      const bad = Buffer.from(gz);
      bad[at] ^= 0x10;
      assert.equal(formatError(() => decodeAll(bad, WHOLE)).code, "Z_DATA_ERROR");
    }
  });

  test("a corrupt second member fails after the first member's output", () => {
    const a = compressible(MiB + MiB / 2, 12);
    const b = compressible(50_000, 13);
    const bGz = Buffer.from(gzipSync(b));
    bGz[bGz.length - 6] ^= 0x20; // its CRC-32
    const dec = new GzipDecoder();
    const out: Buffer[] = [];
    const e = formatError(() => {
      for (const v of dec.decode(Buffer.concat([gzipSync(a), bGz]))) out.push(Buffer.from(v));
    });
    assert.equal(e.code, "Z_DATA_ERROR");
    // what was handed on before the error is correct output
    const got = Buffer.concat(out);
    assert.ok(got.length >= MiB);
    assert.ok(Buffer.concat([a, b]).subarray(0, got.length).equals(got));
  });
});
