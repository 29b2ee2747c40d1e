/**
 * Digests per the OCI image-spec "Digests" section:
 *   digest ::= algorithm ":" encoded; algorithm ::= component ([+._-] component)*; component ::= [a-z0-9]+;
 *   encoded ::= [a-zA-Z0-9=_-]+; sha256 encoded is /[a-f0-9]{64}/, sha512 encoded is /[a-f0-9]{128}/.
 * Known-answer vectors are the FIPS 180-4 test vectors ("" and "abc").
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  createDigester,
  DIGEST_HEX_LENGTH,
  digestAlgorithm,
  digestFrom,
  digestHex,
  digestOf,
  InvalidDigestError,
  parseChainID,
  parseDiffID,
  parseDigest,
  tryParseDigest,
  UnsupportedDigestError,
} from "../src/index.js";

const SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA512_EMPTY = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const SHA256_ABC = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA512_ABC = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

function rejects(input: unknown, cls: new (...args: never[]) => Error = InvalidDigestError): void {
  assert.throws(() => parseDigest(input), cls, `expected ${String(input)} to be rejected with ${cls.name}`);
  assert.equal(tryParseDigest(input), undefined);
}

describe("parseDigest: accepted", () => {
  it("accepts a sha256 digest of 64 lowercase hex and returns it unchanged", () => {
    assert.equal(parseDigest(SHA256_EMPTY), SHA256_EMPTY);
    assert.equal(tryParseDigest(SHA256_EMPTY), SHA256_EMPTY);
  });
  it("accepts a sha512 digest of 128 lowercase hex", () => {
    assert.equal(parseDigest(SHA512_EMPTY), SHA512_EMPTY);
  });
  it("parseDiffID and parseChainID accept the same strings", () => {
    assert.equal(parseDiffID(SHA256_ABC), SHA256_ABC);
    assert.equal(parseChainID(SHA512_ABC), SHA512_ABC);
    assert.throws(() => parseDiffID("sha256:abc"), InvalidDigestError);
    assert.throws(() => parseChainID("nope"), InvalidDigestError);
  });
  it("splits algorithm and encoded part", () => {
    const d = parseDigest(SHA512_ABC);
    assert.equal(digestAlgorithm(d), "sha512");
    assert.equal(digestHex(d), SHA512_ABC.slice("sha512:".length));
    assert.equal(digestAlgorithm(parseDigest(SHA256_ABC)), "sha256");
  });
  it("registered hex lengths", () => {
    assert.deepEqual(DIGEST_HEX_LENGTH, { sha256: 64, sha512: 128 });
  });
});

describe("parseDigest: rejected", () => {
  it("rejects uppercase hex for registered algorithms (encoded must be [a-f0-9])", () => {
    rejects(SHA256_EMPTY.toUpperCase());
    rejects(`sha256:${SHA256_EMPTY.slice(7).toUpperCase()}`);
    rejects(`sha256:${SHA256_EMPTY.slice(7, 70)}A`);
    rejects(`sha512:${SHA512_EMPTY.slice(7).toUpperCase()}`);
  });
  it("rejects an uppercase algorithm as a grammar violation, not as unsupported", () => {
    assert.throws(
      () => parseDigest(`SHA256:${SHA256_EMPTY.slice(7)}`),
      (e: unknown) => e instanceof InvalidDigestError && !(e instanceof UnsupportedDigestError),
    );
  });
  it("rejects wrong lengths", () => {
    const hex = SHA256_EMPTY.slice(7);
    rejects(`sha256:${hex.slice(1)}`); // 63
    rejects(`sha256:${hex}0`); // 65
    rejects(`sha256:${hex}${hex}`); // 128 under sha256
    rejects(`sha512:${hex}`); // 64 under sha512
    rejects(`sha512:${SHA512_EMPTY.slice(7)}0`); // 129
  });
  it("rejects non-hex characters allowed by the grammar but not by sha256", () => {
    const hex = SHA256_EMPTY.slice(7);
    rejects(`sha256:${hex.slice(0, 63)}g`);
    rejects(`sha256:${hex.slice(0, 63)}=`);
    rejects(`sha256:${hex.slice(0, 63)}_`);
    rejects(`sha256:${hex.slice(0, 63)}-`);
  });
  it("rejects grammar violations with InvalidDigestError that is not UnsupportedDigestError", () => {
    const hex = SHA256_EMPTY.slice(7);
    for (const bad of [
      "",
      "sha256",
      "sha256:",
      ":abc",
      `:${hex}`,
      hex,
      `sha256::${hex}`,
      `sha256:${hex}:`,
      `sha256 :${hex}`,
      `sha256: ${hex}`,
      ` ${SHA256_EMPTY}`,
      `${SHA256_EMPTY} `,
      `${SHA256_EMPTY}\n`,
      `sha256:${hex}/`,
      `sha256:${hex.slice(0, 32)}+${hex.slice(33)}`,
      `+sha256:${hex}`,
      `sha256+:${hex}`,
      `sha256++b64u:${hex}`,
      `Sha256:${hex}`,
    ]) {
      assert.throws(
        () => parseDigest(bad),
        (e: unknown) => e instanceof InvalidDigestError && !(e instanceof UnsupportedDigestError),
        `expected ${JSON.stringify(bad)} to be a grammar violation`,
      );
      assert.equal(tryParseDigest(bad), undefined);
    }
  });
  it("rejects grammar-valid digests of unregistered algorithms with UnsupportedDigestError", () => {
    for (const [input, alg] of [
      ["sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "sha256+b64u"],
      ["multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "multihash+base58"],
      [`sha384:${"a".repeat(96)}`, "sha384"],
      [`md5:${"a".repeat(32)}`, "md5"],
      [`sha1:${"a".repeat(40)}`, "sha1"],
      [`sha256.v2:${SHA256_EMPTY.slice(7)}`, "sha256.v2"],
      ["blake3:abc", "blake3"],
    ]) {
      assert.throws(
        () => parseDigest(input),
        (e: unknown) => e instanceof UnsupportedDigestError && e instanceof InvalidDigestError && e.message.includes(alg),
        input,
      );
      assert.equal(tryParseDigest(input), undefined);
    }
  });
  it("rejects non-string input", () => {
    for (const v of [undefined, null, 42, {}, [SHA256_EMPTY], Buffer.from(SHA256_EMPTY), { toString: () => SHA256_EMPTY }]) {
      rejects(v);
    }
  });
  it("digestFrom validates the hex part", () => {
    assert.equal(digestFrom("sha256", SHA256_ABC.slice(7)), SHA256_ABC);
    assert.throws(() => digestFrom("sha256", "abc"), InvalidDigestError);
    assert.throws(() => digestFrom("sha512", SHA256_ABC.slice(7)), InvalidDigestError);
  });
  it("error messages of huge inputs stay bounded", () => {
    const huge = `sha256:${"z".repeat(100_000)}!`;
    assert.throws(
      () => parseDigest(huge),
      (e: unknown) => e instanceof InvalidDigestError && e.message.length < 1000,
    );
  });
});

describe("digestOf", () => {
  it("matches the FIPS 180-4 vectors for the empty input", () => {
    assert.equal(digestOf(""), SHA256_EMPTY);
    assert.equal(digestOf(new Uint8Array(0)), SHA256_EMPTY);
    assert.equal(digestOf("", "sha256"), SHA256_EMPTY);
    assert.equal(digestOf("", "sha512"), SHA512_EMPTY);
  });
  it('matches the FIPS 180-4 vectors for "abc"', () => {
    assert.equal(digestOf("abc"), SHA256_ABC);
    assert.equal(digestOf(Buffer.from("abc")), SHA256_ABC);
    assert.equal(digestOf(new Uint8Array([0x61, 0x62, 0x63]), "sha512"), SHA512_ABC);
  });
  it("hashes strings as UTF-8", () => {
    assert.equal(digestOf("é"), digestOf(Buffer.from([0xc3, 0xa9])));
  });
  it("hashes only the viewed range of a Uint8Array", () => {
    const big = Buffer.from("xxabcyy");
    assert.equal(digestOf(big.subarray(2, 5)), SHA256_ABC);
  });
  it("produces values parseDigest accepts", () => {
    assert.equal(parseDigest(digestOf("strata")), digestOf("strata"));
    assert.equal(parseDigest(digestOf("strata", "sha512")), digestOf("strata", "sha512"));
  });
});

describe("createDigester", () => {
  it("incremental hashing equals one-shot hashing for sha256 and sha512", () => {
    const data = Buffer.alloc(100_003);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    for (const alg of ["sha256", "sha512"] as const) {
      const d = createDigester(alg);
      assert.equal(d.algorithm, alg);
      for (let off = 0; off < data.length; ) {
        const n = 1 + ((off * 7) % 4099);
        d.update(data.subarray(off, off + n));
        off += n;
      }
      assert.equal(d.digest(), digestOf(data, alg));
    }
  });
  it("defaults to sha256 and handles no updates", () => {
    const d = createDigester();
    assert.equal(d.algorithm, "sha256");
    assert.equal(d.digest(), SHA256_EMPTY);
    assert.equal(createDigester("sha512").digest(), SHA512_EMPTY);
  });
  it("a byte-by-byte update gives the known vector", () => {
    const d = createDigester("sha256");
    for (const b of Buffer.from("abc")) d.update(Uint8Array.of(b));
    assert.equal(d.digest(), SHA256_ABC);
  });
});
