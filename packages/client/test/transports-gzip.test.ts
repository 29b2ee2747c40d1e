/**
 * The layer compressor: valid gzip (read back by the gzip CLI), the same bytes whatever the
 * input's chunking, a fixed header, random blocks stored and text compressed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import * as zlib from "node:zlib";
import { compressor, crc32Table, sampledEntropy } from "../src/transports/gzip.js";

async function gzip(input: Buffer, chunk: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  const out: Buffer[] = [];
  for await (const c of Readable.from(parts).pipe(compressor("gzip"))) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe("layer gzip", () => {
  const line = "usr/lib/x86_64-linux-gnu/libexample.so.1 -> libexample.so.1.2.3\n";
  const text = Buffer.from(line.repeat(Math.ceil((3 << 20) / line.length))).subarray(0, 3 << 20);
  const input = Buffer.concat([text.subarray(0, 1500_000), randomBytes(2 << 20), text.subarray(1500_000), Buffer.from("tail")]);

  it("is valid gzip that the gzip CLI decompresses to the input, with a fixed header", async () => {
    const gz = await gzip(input, 65536);
    assert.ok(execFileSync("gzip", ["-d", "-c"], { input: gz, maxBuffer: 1 << 26 }).equals(input));
    // magic, deflate, no flags (no name, no comment), mtime 0
    assert.deepEqual([...gz.subarray(0, 8)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  });

  it("gives the same bytes whatever the chunking of its input", async () => {
    const a = await gzip(input, 65536);
    for (const chunk of [4093, 1 << 20, 3_000_001, input.length]) {
      assert.ok((await gzip(input, chunk)).equals(a), `chunk ${chunk}`);
    }
  });

  it("the CRC-32 fallback (Node < 20.15) agrees with zlib's", { skip: typeof (zlib as { crc32?: unknown }).crc32 !== "function" && "no zlib.crc32" }, () => {
    const z = (zlib as unknown as { crc32: (d: Uint8Array, v: number) => number }).crc32;
    const d = randomBytes(100_000);
    assert.equal(crc32Table(d, 0), z(d, 0));
    assert.equal(crc32Table(d.subarray(500), crc32Table(d.subarray(0, 500), 0)), z(d, 0));
    assert.equal(crc32Table(Buffer.from("123456789"), 0), 0xcbf43926);
  });

  it("stores random blocks and compresses text", async () => {
    assert.ok(sampledEntropy(randomBytes(1 << 20)) > 7.9);
    assert.ok(sampledEntropy(text.subarray(0, 1 << 20)) < 6);
    const rnd = randomBytes(4 << 20);
    const g = await gzip(rnd, 1 << 16);
    assert.ok(g.length > rnd.length && g.length < rnd.length + 4096, `${g.length}`);
    const t = await gzip(text, 1 << 16);
    assert.ok(t.length < text.length / 50, `${t.length}`);
  });
});
