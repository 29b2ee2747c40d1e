/**
 * Streaming verification contract: bytes pass through unchanged; a wrong digest or size fails the stream
 * before 'end' is emitted, so a consumer that sees a clean end has exactly the expected content; content
 * over the limit fails as soon as the limit is crossed, without reading the rest of the source.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { createVerifier, DigestMismatchError, parseDigest, SizeMismatchError, type VerifierOptions, VerifyingStream } from "../src/index.js";

const hash = (alg: "sha256" | "sha512", b: Uint8Array) => parseDigest(`${alg}:${createHash(alg).update(b).digest("hex")}`);

function content(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 17) & 0xff;
  return b;
}

function chunked(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

interface Outcome {
  data: Buffer;
  ended: boolean;
  error: Error | undefined;
  /** Events in order: "data", "end", "error", "close". */
  events: string[];
}

/** Writes chunks into a verifier and records what a reader sees, in order. */
async function run(opts: VerifierOptions, chunks: Buffer[]): Promise<Outcome & { v: VerifyingStream }> {
  const v = createVerifier(opts);
  const got: Buffer[] = [];
  const events: string[] = [];
  let error: Error | undefined;
  let ended = false;
  await new Promise<void>((resolve) => {
    v.on("data", (c: Buffer) => {
      got.push(c);
      if (events.at(-1) !== "data") events.push("data");
    });
    v.on("end", () => {
      ended = true;
      events.push("end");
    });
    v.on("error", (e) => {
      error = e;
      events.push("error");
    });
    v.on("close", () => {
      events.push("close");
      resolve();
    });
    (async () => {
      for (const c of chunks) {
        if (v.destroyed) return;
        if (!v.write(c)) await new Promise((r) => v.once("drain", r).once("close", r));
      }
      if (!v.destroyed) v.end();
    })();
  });
  return { v, data: Buffer.concat(got), ended, error, events };
}

describe("createVerifier: correct content", () => {
  const body = content(70_000);

  it("passes bytes through unchanged, ends cleanly, exposes the digest and byte count", async () => {
    const d = hash("sha256", body);
    const r = await run({ digest: d, size: body.length }, chunked(body, 4096));
    assert.equal(r.error, undefined);
    assert.equal(r.ended, true);
    assert.ok(r.data.equals(body));
    assert.equal(r.v.digest, d);
    assert.equal(r.v.bytes, body.length);
    assert.ok(r.v instanceof VerifyingStream);
  });

  it("sha512 expected digests are verified with sha512", async () => {
    const d = hash("sha512", body);
    const r = await run({ digest: d, size: body.length }, chunked(body, 1000));
    assert.equal(r.error, undefined);
    assert.equal(r.ended, true);
    assert.equal(r.v.digest, d);
    const wrong = await run({ digest: hash("sha512", content(10)) }, chunked(body, 1000));
    assert.ok(wrong.error instanceof DigestMismatchError);
    assert.equal(wrong.ended, false);
    assert.equal((wrong.error as DigestMismatchError).actual, d);
  });

  it("without an expected digest it computes one (sha256 by default, or the algorithm asked for)", async () => {
    const r = await run({ size: body.length }, chunked(body, 333));
    assert.equal(r.ended, true);
    assert.equal(r.v.digest, hash("sha256", body));
    const r512 = await run({ algorithm: "sha512" }, chunked(body, 333));
    assert.equal(r512.ended, true);
    assert.equal(r512.v.digest, hash("sha512", body));
  });

  it("size -1 or absent means unknown size", async () => {
    for (const size of [-1, undefined]) {
      const r = await run({ digest: hash("sha256", body), size }, chunked(body, 5000));
      assert.equal(r.error, undefined);
      assert.equal(r.ended, true);
    }
  });

  it("exactly maxSize bytes are allowed", async () => {
    const r = await run({ maxSize: body.length }, chunked(body, 7000));
    assert.equal(r.error, undefined);
    assert.equal(r.ended, true);
  });

  it("empty content with size 0 and the empty digest", async () => {
    const r = await run({ digest: hash("sha256", Buffer.alloc(0)), size: 0 }, []);
    assert.equal(r.error, undefined);
    assert.equal(r.ended, true);
    assert.equal(r.v.digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("the digest is not available before the end", () => {
    const v = createVerifier({});
    assert.throws(() => v.digest);
  });

  it("works as a pipeline stage", async () => {
    const got: Buffer[] = [];
    const v = createVerifier({ digest: hash("sha256", body), size: body.length });
    await pipeline(
      Readable.from(chunked(body, 1500)),
      v,
      new Writable({
        write(c, _e, cb) {
          got.push(c);
          cb();
        },
      }),
    );
    assert.ok(Buffer.concat(got).equals(body));
    assert.equal(v.digest, hash("sha256", body));
  });
});

describe("createVerifier: failures come before 'end'", () => {
  const body = content(50_000);
  const d = hash("sha256", body);

  function assertFailedWithoutEnd(r: Outcome): void {
    assert.ok(r.error, "stream must fail");
    assert.equal(r.ended, false, "'end' must not be emitted");
    assert.ok(!r.events.includes("end"));
    assert.ok(r.events.indexOf("error") < r.events.indexOf("close"));
  }

  it("digest mismatch (one flipped byte)", async () => {
    const bad = Buffer.from(body);
    bad[bad.length - 1] ^= 1;
    const r = await run({ digest: d, size: body.length }, chunked(bad, 4096));
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof DigestMismatchError);
    const e = r.error as DigestMismatchError;
    assert.equal(e.expected, d);
    assert.equal(e.actual, hash("sha256", bad));
    assert.throws(() => r.v.digest);
  });

  it("digest mismatch with no size given", async () => {
    const r = await run({ digest: hash("sha256", content(100)) }, chunked(body, 4096));
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof DigestMismatchError);
  });

  it("short content: size mismatch even when the digest would match the short content", async () => {
    const short = body.subarray(0, body.length - 1);
    const r = await run({ digest: hash("sha256", short), size: body.length }, chunked(short, 4096));
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof SizeMismatchError);
    const e = r.error as SizeMismatchError;
    assert.equal(e.expected, body.length);
    assert.equal(e.actual, body.length - 1);
    assert.equal(e.exceeded, false);
  });

  it("empty content when bytes were expected", async () => {
    const r = await run({ digest: d, size: body.length }, []);
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof SizeMismatchError);
  });

  it("long content: one byte too many fails as exceeded", async () => {
    const long = Buffer.concat([body, Buffer.from([0])]);
    const r = await run({ digest: d, size: body.length }, chunked(long, 4096));
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof SizeMismatchError);
    const e = r.error as SizeMismatchError;
    assert.equal(e.exceeded, true);
    assert.equal(e.expected, body.length);
    // Bytes past the limit are never passed on.
    assert.ok(r.data.length <= body.length);
    assert.ok(r.data.equals(body.subarray(0, r.data.length)));
  });

  it("size 0 with any content fails", async () => {
    const r = await run({ size: 0 }, [Buffer.from("x")]);
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof SizeMismatchError);
    assert.equal(r.data.length, 0);
  });

  it("maxSize exceeded when the size is unknown", async () => {
    const r = await run({ maxSize: body.length - 1 }, chunked(body, 4096));
    assertFailedWithoutEnd(r);
    assert.ok(r.error instanceof SizeMismatchError);
    assert.equal((r.error as SizeMismatchError).exceeded, true);
  });

  it("a pipeline over wrong content rejects and the sink never finishes", async () => {
    let finished = false;
    await assert.rejects(
      pipeline(
        Readable.from(chunked(body, 4096)),
        createVerifier({ digest: hash("sha256", content(5)), size: body.length }),
        new Writable({
          write(_c, _e, cb) {
            cb();
          },
          final(cb) {
            finished = true;
            cb();
          },
        }),
      ),
      DigestMismatchError,
    );
    assert.equal(finished, false);
  });
});

describe("createVerifier: over-size stops early", () => {
  const CHUNK = 16 * 1024;
  const TOTAL_CHUNKS = 64 * 1024; // 1 GiB if it were all read
  const LIMIT = 100 * 1024;

  async function overSize(opts: VerifierOptions): Promise<{ produced: number; error: unknown; passed: number }> {
    let produced = 0;
    let passed = 0;
    const chunk = Buffer.alloc(CHUNK, 0x61);
    async function* source() {
      for (let i = 0; i < TOTAL_CHUNKS; i++) {
        produced++;
        yield chunk;
      }
    }
    let error: unknown;
    try {
      await pipeline(
        source(),
        createVerifier(opts),
        new Writable({
          write(c: Buffer, _e, cb) {
            passed += c.length;
            cb();
          },
        }),
      );
    } catch (e) {
      error = e;
    }
    return { produced, error, passed };
  }

  it("with an expected size, the source is abandoned shortly after the limit", async () => {
    const r = await overSize({ digest: hash("sha256", Buffer.alloc(LIMIT, 0x61)), size: LIMIT });
    assert.ok(r.error instanceof SizeMismatchError);
    assert.equal((r.error as SizeMismatchError).exceeded, true);
    assert.ok(r.produced < 64, `produced ${r.produced} chunks of ${TOTAL_CHUNKS}`);
    assert.ok(r.passed <= LIMIT);
  });

  it("with only maxSize, the source is abandoned shortly after the limit", async () => {
    const r = await overSize({ maxSize: LIMIT });
    assert.ok(r.error instanceof SizeMismatchError);
    assert.ok(r.produced < 64, `produced ${r.produced} chunks of ${TOTAL_CHUNKS}`);
    assert.ok(r.passed <= LIMIT);
  });

  it("an expected size takes precedence over a larger maxSize", async () => {
    const r = await overSize({ size: LIMIT, maxSize: 10 * LIMIT });
    assert.ok(r.error instanceof SizeMismatchError);
    assert.equal((r.error as SizeMismatchError).expected, LIMIT);
    assert.ok(r.produced < 64);
  });
});
