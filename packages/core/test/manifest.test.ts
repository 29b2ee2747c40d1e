/**
 * Manifests, indexes and configs per the OCI image-spec (manifest.md, image-index.md, descriptor.md,
 * config.md) and Docker's image manifest v2 schema 2 / manifest list, checked against the golden OCI
 * layout in test/fixtures/docker-golden/edge/oci (pushed to and pulled from a real registry).
 * Platform matching follows containerd's variant normalisation (arm64 → v8, arm → v7 when absent).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  formatPlatform,
  hostPlatform,
  InvalidManifestError,
  jsonDepth,
  MAX_JSON_DEPTH,
  MediaTypes,
  manifestDigest,
  type Platform,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  platformMatches,
} from "../src/index.js";

/** The golden fixture in the repository (test/fixtures/docker-golden; dist/test/x.test.js is four levels below the root). */
const EDGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../test/fixtures/docker-golden/edge");
const expected = JSON.parse(readFileSync(path.join(EDGE, "expected.json"), "utf8")) as {
  manifest_digest: string;
  manifest_media_type: string;
  config_digest: string;
  image_id: string;
  layers: { n: number; blob_digest: string; blob_size: number; diff_id: string }[];
};
const blob = (digest: string) => readFileSync(path.join(EDGE, "oci/blobs/sha256", digest.slice("sha256:".length)));
const sha256 = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

const D1 = sha256("one");
const D2 = sha256("two");
const D3 = sha256("three");

function ociManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaTypes.OciManifest,
    config: { mediaType: MediaTypes.OciConfig, digest: D1, size: 10 },
    layers: [{ mediaType: MediaTypes.OciLayerGzip, digest: D2, size: 20 }],
    ...extra,
  };
}
const bytes = (o: unknown) => Buffer.from(JSON.stringify(o));
function invalid(raw: Uint8Array | string, contentType?: string, msg?: string): void {
  assert.throws(() => parseManifest(typeof raw === "string" ? Buffer.from(raw) : raw, contentType), InvalidManifestError, msg);
}

describe("golden OCI layout", () => {
  const raw = blob(expected.manifest_digest);

  it("the golden manifest parses as an OCI image manifest", () => {
    const m = parseManifest(raw, expected.manifest_media_type);
    assert.equal(m.kind, "manifest");
    assert.equal(m.mediaType, MediaTypes.OciManifest);
    if (m.kind !== "manifest") return;
    assert.equal(m.config.mediaType, MediaTypes.OciConfig);
    assert.equal(m.config.digest, expected.config_digest);
    assert.equal(m.config.size, blob(expected.config_digest).length);
    const layers = [...expected.layers].sort((a, b) => a.n - b.n);
    assert.deepEqual(
      m.layers.map((l) => [l.mediaType, l.digest, l.size]),
      layers.map((l) => [MediaTypes.OciLayerGzip, l.blob_digest, l.blob_size]),
    );
  });

  it("manifestDigest equals the registry's manifest digest and the blob's file name", () => {
    const m = parseManifest(raw);
    assert.equal(manifestDigest(m), expected.manifest_digest);
    assert.equal(manifestDigest(m), "sha256:9d5c8d05ca05bcdf6a747afcdae1500a41430b726241cd54503c063a5fcb0dd0");
    assert.ok(m.raw.equals(raw));
  });

  it("every layer blob in the layout hashes to its descriptor digest and size", () => {
    const m = parseManifest(raw);
    if (m.kind !== "manifest") assert.fail("not a manifest");
    for (const l of [m.config, ...m.layers]) {
      const b = blob(l.digest);
      assert.equal(sha256(b), l.digest);
      assert.equal(b.length, l.size);
    }
  });

  it("the config parses and its rootfs.diff_ids match expected.json", () => {
    const cfgRaw = blob(expected.config_digest);
    const c = parseImageConfig(cfgRaw);
    assert.ok(c.raw.equals(cfgRaw));
    assert.equal(sha256(c.raw), expected.image_id);
    assert.equal(c.config.architecture, "amd64");
    assert.equal(c.config.os, "linux");
    assert.equal(c.config.rootfs.type, "layers");
    const layers = [...expected.layers].sort((a, b) => a.n - b.n);
    assert.deepEqual(
      c.config.rootfs.diff_ids,
      layers.map((l) => l.diff_id),
    );
    // Unknown and history fields survive (loose schema), empty_layer entries included.
    assert.equal(c.config.history?.filter((h) => h.empty_layer).length, 2);
    assert.deepEqual((c.config.config as { Cmd: string[] }).Cmd, ["/bin/hello.sh"]);
  });

  it("the layout's index.json parses as an OCI index (media type inferred) pointing at the manifest", () => {
    const idxRaw = readFileSync(path.join(EDGE, "oci/index.json"));
    const idx = parseManifest(idxRaw);
    assert.equal(idx.kind, "index");
    assert.equal(idx.mediaType, MediaTypes.OciIndex);
    if (idx.kind !== "index") return;
    assert.equal(idx.manifests.length, 1);
    assert.equal(idx.manifests[0].digest, expected.manifest_digest);
    assert.equal(idx.manifests[0].size, raw.length);
    assert.equal(idx.manifests[0].annotations?.["org.opencontainers.image.ref.name"], "v1");
  });
});

describe("parseManifest: kinds", () => {
  it("Docker schema2 manifest", () => {
    const body = {
      schemaVersion: 2,
      mediaType: MediaTypes.DockerManifest,
      config: { mediaType: MediaTypes.DockerConfig, size: 7023, digest: D1 },
      layers: [
        { mediaType: MediaTypes.DockerLayerGzip, size: 32654, digest: D2 },
        { mediaType: MediaTypes.DockerLayerForeignGzip, size: 16724, digest: D3, urls: ["https://example.com/l"] },
      ],
    };
    for (const ct of [undefined, MediaTypes.DockerManifest, "application/json"]) {
      const m = parseManifest(bytes(body), ct);
      assert.equal(m.kind, "manifest");
      assert.equal(m.mediaType, MediaTypes.DockerManifest);
      if (m.kind !== "manifest") return;
      assert.equal(m.config.digest, D1);
      assert.equal(m.layers.length, 2);
      assert.deepEqual(m.layers[1].urls, ["https://example.com/l"]);
    }
  });

  it("Docker schema2 manifests must carry their mediaType", () => {
    const { mediaType: _, ...body } = { ...ociManifest(), mediaType: MediaTypes.DockerManifest };
    invalid(bytes(body), MediaTypes.DockerManifest);
  });

  it("OCI index with platforms", () => {
    const body = {
      schemaVersion: 2,
      mediaType: MediaTypes.OciIndex,
      manifests: [
        { mediaType: MediaTypes.OciManifest, digest: D1, size: 100, platform: { architecture: "amd64", os: "linux" } },
        { mediaType: MediaTypes.OciManifest, digest: D2, size: 200, platform: { architecture: "arm64", os: "linux", variant: "v8" } },
        {
          mediaType: MediaTypes.OciManifest,
          digest: D3,
          size: 300,
          platform: { architecture: "amd64", os: "windows", "os.version": "10.0.17763.1040", "os.features": ["win32k"] },
        },
      ],
      annotations: { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    };
    const m = parseManifest(bytes(body), MediaTypes.OciIndex);
    assert.equal(m.kind, "index");
    if (m.kind !== "index") return;
    assert.equal(m.mediaType, MediaTypes.OciIndex);
    assert.deepEqual(
      m.manifests.map((d) => d.platform && formatPlatform(d.platform)),
      ["linux/amd64", "linux/arm64/v8", "windows/amd64"],
    );
    assert.equal(m.manifests[2].platform?.["os.version"], "10.0.17763.1040");
    assert.deepEqual(m.annotations, body.annotations);
  });

  it("Docker manifest list", () => {
    const body = {
      schemaVersion: 2,
      mediaType: MediaTypes.DockerManifestList,
      manifests: [
        { mediaType: MediaTypes.DockerManifest, size: 7143, digest: D1, platform: { architecture: "ppc64le", os: "linux" } },
        { mediaType: MediaTypes.DockerManifest, size: 7682, digest: D2, platform: { architecture: "amd64", os: "linux", features: ["sse4"] } },
      ],
    };
    const m = parseManifest(bytes(body), `${MediaTypes.DockerManifestList}`);
    assert.equal(m.kind, "index");
    assert.equal(m.mediaType, MediaTypes.DockerManifestList);
    if (m.kind !== "index") return;
    assert.deepEqual(m.manifests[1].platform?.features, ["sse4"]);
  });

  it("an empty index is valid", () => {
    const m = parseManifest(bytes({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [] }));
    assert.equal(m.kind, "index");
  });

  it("subject and artifactType are parsed (OCI 1.1 artifacts and referrers)", () => {
    const body = ociManifest({
      artifactType: "application/vnd.example.sbom.v1+json",
      config: { mediaType: MediaTypes.OciEmpty, digest: sha256("{}"), size: 2, data: "e30=" },
      layers: [{ mediaType: "application/vnd.example.sbom.v1+json", digest: D2, size: 20 }],
      subject: { mediaType: MediaTypes.OciManifest, digest: D3, size: 867 },
      annotations: { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
    });
    const m = parseManifest(bytes(body));
    assert.equal(m.artifactType, "application/vnd.example.sbom.v1+json");
    assert.deepEqual(m.subject, { mediaType: MediaTypes.OciManifest, digest: D3, size: 867 });
    assert.equal(m.annotations?.["org.opencontainers.image.created"], "2024-01-01T00:00:00Z");
    if (m.kind !== "manifest") assert.fail("not a manifest");
    assert.equal(m.config.data, "e30=");

    const idx = parseManifest(
      bytes({
        schemaVersion: 2,
        mediaType: MediaTypes.OciIndex,
        artifactType: "application/vnd.example+type",
        subject: { mediaType: MediaTypes.OciManifest, digest: D1, size: 1 },
        manifests: [{ mediaType: MediaTypes.OciManifest, digest: D2, size: 2, artifactType: "application/vnd.example.sig" }],
      }),
    );
    assert.equal(idx.artifactType, "application/vnd.example+type");
    assert.equal(idx.subject?.digest, D1);
    if (idx.kind !== "index") assert.fail("not an index");
    assert.equal(idx.manifests[0].artifactType, "application/vnd.example.sig");
  });

  it("an empty layers array is allowed (artifacts)", () => {
    const m = parseManifest(bytes(ociManifest({ layers: [] })));
    if (m.kind !== "manifest") assert.fail("not a manifest");
    assert.equal(m.layers.length, 0);
  });
});

describe("parseManifest: raw bytes", () => {
  it("keeps the exact bytes, whitespace and key order included, and digests them", () => {
    const text = `{\n  "layers" : [ {"size":20, "digest":"${D2}", "mediaType":"${MediaTypes.OciLayerGzip}"} ],\n\t"schemaVersion": 2,\n  "config": {"mediaType":"${MediaTypes.OciConfig}","digest":"${D1}","size":10}\n}\n\n`;
    const raw = Buffer.from(text);
    const m = parseManifest(raw, MediaTypes.OciManifest);
    assert.ok(m.raw.equals(raw));
    assert.equal(manifestDigest(m), sha256(text));
    assert.notEqual(manifestDigest(m), sha256(JSON.stringify(JSON.parse(text))));
    assert.equal(manifestDigest(m, "sha512"), `sha512:${createHash("sha512").update(text).digest("hex")}`);
  });

  it("accepts a Uint8Array view and keeps exactly the viewed bytes", () => {
    const text = JSON.stringify(ociManifest());
    const backing = Buffer.from(`XXXX${text}YYYY`);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 4, text.length);
    const m = parseManifest(view);
    assert.equal(m.raw.toString("utf8"), text);
    assert.equal(manifestDigest(m), sha256(text));
  });

  it("keeps non-ASCII bytes exactly", () => {
    const text = JSON.stringify(ociManifest({ annotations: { "org.opencontainers.image.title": "grüße 🐳" } }));
    const m = parseManifest(Buffer.from(text, "utf8"));
    assert.equal(m.annotations?.["org.opencontainers.image.title"], "grüße 🐳");
    assert.equal(manifestDigest(m), sha256(Buffer.from(text, "utf8")));
  });
});

describe("parseManifest: media type resolution", () => {
  it("infers an OCI manifest when neither body nor Content-Type say", () => {
    const { mediaType: _, ...body } = ociManifest();
    for (const ct of [undefined, "application/json", "application/octet-stream"]) {
      const m = parseManifest(bytes(body), ct);
      assert.equal(m.kind, "manifest");
      assert.equal(m.mediaType, MediaTypes.OciManifest);
    }
  });

  it("takes the media type from the Content-Type when the body has none", () => {
    const { mediaType: _, ...body } = ociManifest();
    assert.equal(parseManifest(bytes(body), MediaTypes.OciManifest).mediaType, MediaTypes.OciManifest);
    const idx = { schemaVersion: 2, manifests: [] };
    assert.equal(parseManifest(bytes(idx), MediaTypes.DockerManifestList).mediaType, MediaTypes.DockerManifestList);
    assert.equal(parseManifest(bytes(idx), MediaTypes.OciIndex).mediaType, MediaTypes.OciIndex);
  });

  it("ignores Content-Type parameters and case", () => {
    const m = parseManifest(bytes(ociManifest()), "Application/VND.OCI.Image.Manifest.v1+json; charset=utf-8");
    assert.equal(m.mediaType, MediaTypes.OciManifest);
  });

  it("rejects a Content-Type that contradicts the body's mediaType", () => {
    invalid(bytes(ociManifest()), MediaTypes.DockerManifest);
    invalid(bytes(ociManifest()), MediaTypes.OciIndex);
    invalid(bytes({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [] }), MediaTypes.OciManifest);
    invalid(bytes({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [] }), MediaTypes.DockerManifestList);
  });

  it("rejects a body whose shape contradicts the Content-Type it came with", () => {
    const { mediaType: _, ...body } = ociManifest();
    invalid(bytes(body), MediaTypes.OciIndex);
    invalid(bytes({ schemaVersion: 2, manifests: [] }), MediaTypes.OciManifest);
  });

  it("rejects unknown or non-manifest media types", () => {
    invalid(bytes(ociManifest({ mediaType: "application/vnd.example.thing+json" })));
    invalid(bytes(ociManifest({ mediaType: MediaTypes.OciConfig })));
    invalid(bytes(ociManifest({ mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws" })));
    const { mediaType: _, ...body } = ociManifest();
    invalid(bytes(body), "text/plain");
    invalid(bytes(body), MediaTypes.OciConfig);
  });

  it("rejects a non-string mediaType", () => {
    invalid(bytes(ociManifest({ mediaType: 2 })));
    invalid(bytes(ociManifest({ mediaType: null })));
  });

  it("rejects a body that is neither manifest nor index when nothing names its type", () => {
    invalid(bytes({ schemaVersion: 2 }));
    invalid(bytes({ schemaVersion: 2, layers: [] }));
  });
});

describe("parseManifest: invalid documents", () => {
  it("invalid JSON", () => {
    invalid("");
    invalid("{");
    invalid("{'schemaVersion': 2}");
    invalid(Buffer.from([0xff, 0xfe, 0x00]));
    invalid(`${JSON.stringify(ociManifest())}garbage`);
  });
  it("JSON that is not an object", () => {
    invalid("null");
    invalid("[]");
    invalid("2");
    invalid('"manifest"');
  });
  it("wrong schemaVersion", () => {
    invalid(bytes(ociManifest({ schemaVersion: 1 })));
    invalid(bytes(ociManifest({ schemaVersion: "2" })));
    const { schemaVersion: _, ...body } = ociManifest();
    invalid(bytes(body));
  });
  it("missing config or layers", () => {
    const { config: _c, ...noConfig } = ociManifest();
    invalid(bytes(noConfig), MediaTypes.OciManifest);
    invalid(bytes(noConfig));
    const { layers: _l, ...noLayers } = ociManifest();
    invalid(bytes(noLayers));
    invalid(bytes(ociManifest({ layers: {} })));
  });
  it("index without manifests", () => {
    invalid(bytes({ schemaVersion: 2, mediaType: MediaTypes.OciIndex }));
    invalid(bytes({ schemaVersion: 2, mediaType: MediaTypes.DockerManifestList, manifests: {} }));
  });
  it("bad descriptor digests", () => {
    const bad = ["sha256:abc", D1.toUpperCase(), `sha256:${D1.slice(7).toUpperCase()}`, "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "", 7];
    for (const digest of bad) {
      invalid(bytes(ociManifest({ config: { mediaType: MediaTypes.OciConfig, digest, size: 1 } })), undefined, `config digest ${digest}`);
      invalid(bytes(ociManifest({ layers: [{ mediaType: MediaTypes.OciLayerGzip, digest, size: 1 }] })), undefined, `layer digest ${digest}`);
      invalid(bytes({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.OciManifest, digest, size: 1 }] }), undefined, `index digest ${digest}`);
      invalid(bytes(ociManifest({ subject: { mediaType: MediaTypes.OciManifest, digest, size: 1 } })), undefined, `subject digest ${digest}`);
    }
  });
  it("bad descriptor sizes", () => {
    for (const size of [-1, 1.5, "10", null, Number.MAX_SAFE_INTEGER + 2]) {
      invalid(bytes(ociManifest({ layers: [{ mediaType: MediaTypes.OciLayerGzip, digest: D2, size }] })), undefined, `size ${size}`);
      invalid(bytes(ociManifest({ config: { mediaType: MediaTypes.OciConfig, digest: D1, size } })), undefined, `size ${size}`);
    }
    const { size: _, ...noSize } = { mediaType: MediaTypes.OciLayerGzip, digest: D2, size: 1 };
    invalid(bytes(ociManifest({ layers: [noSize] })));
  });
  it("zero-size descriptors are fine", () => {
    const m = parseManifest(bytes(ociManifest({ layers: [{ mediaType: MediaTypes.OciLayerGzip, digest: D2, size: 0 }] })));
    if (m.kind !== "manifest") assert.fail("not a manifest");
    assert.equal(m.layers[0].size, 0);
  });
  it("bad descriptor media types", () => {
    for (const mediaType of ["", "notamediatype", "a/b/c", "/json", "application/", 5]) {
      invalid(bytes(ociManifest({ layers: [{ mediaType, digest: D2, size: 1 }] })), undefined, `mediaType ${mediaType}`);
    }
    const { mediaType: _, ...noMt } = { mediaType: MediaTypes.OciLayerGzip, digest: D2, size: 1 };
    invalid(bytes(ociManifest({ layers: [noMt] })));
  });
  it("annotations must map strings to strings", () => {
    invalid(bytes(ociManifest({ annotations: { a: 1 } })));
    invalid(bytes(ociManifest({ layers: [{ mediaType: MediaTypes.OciLayerGzip, digest: D2, size: 1, annotations: { a: true } }] })));
  });
  it("platform needs architecture and os", () => {
    invalid(bytes({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.OciManifest, digest: D1, size: 1, platform: { os: "linux" } }] }));
    invalid(bytes({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.OciManifest, digest: D1, size: 1, platform: { architecture: "amd64" } }] }));
  });
  it("errors are InvalidManifestError with a message", () => {
    try {
      parseManifest(bytes(ociManifest({ layers: [{ mediaType: MediaTypes.OciLayerGzip, digest: "sha256:abc", size: 1 }] })));
      assert.fail("no error");
    } catch (e) {
      assert.ok(e instanceof InvalidManifestError);
      assert.equal(e.name, "InvalidManifestError");
      assert.ok(e.message.length > 0);
    }
  });
});

describe("parseImageConfig", () => {
  const base = {
    architecture: "arm64",
    variant: "v8",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [D1, D2] },
  };
  it("accepts a minimal config and keeps its bytes", () => {
    const raw = Buffer.from(` ${JSON.stringify(base)}\n`);
    const c = parseImageConfig(raw);
    assert.ok(c.raw.equals(raw));
    assert.deepEqual(c.config.rootfs.diff_ids, [D1, D2]);
    assert.equal(c.config.variant, "v8");
  });
  it("accepts a null config section (as docker writes for scratch images)", () => {
    assert.equal(parseImageConfig(bytes({ ...base, config: null })).config.config, null);
  });
  it("rejects invalid JSON, bad rootfs, bad diff_ids, missing os/architecture", () => {
    assert.throws(() => parseImageConfig(Buffer.from("{")), InvalidManifestError);
    assert.throws(() => parseImageConfig(bytes({ ...base, rootfs: { type: "other", diff_ids: [] } })), InvalidManifestError);
    assert.throws(() => parseImageConfig(bytes({ ...base, rootfs: { type: "layers" } })), InvalidManifestError);
    assert.throws(() => parseImageConfig(bytes({ ...base, rootfs: { type: "layers", diff_ids: ["sha256:abc"] } })), InvalidManifestError);
    assert.throws(() => parseImageConfig(bytes({ ...base, rootfs: { type: "layers", diff_ids: [D1.toUpperCase()] } })), InvalidManifestError);
    const { os: _o, ...noOs } = base;
    assert.throws(() => parseImageConfig(bytes(noOs)), InvalidManifestError);
    const { architecture: _a, ...noArch } = base;
    assert.throws(() => parseImageConfig(bytes(noArch)), InvalidManifestError);
  });
});

describe("platforms", () => {
  it("parsePlatform reads os/arch[/variant]", () => {
    assert.deepEqual(parsePlatform("linux/amd64"), { os: "linux", architecture: "amd64" });
    assert.deepEqual(parsePlatform("linux/arm64/v8"), { os: "linux", architecture: "arm64", variant: "v8" });
    assert.deepEqual(parsePlatform("windows/amd64"), { os: "windows", architecture: "amd64" });
  });
  it("parsePlatform rejects other shapes", () => {
    for (const s of ["", "linux", "linux/", "/amd64", "linux//v7", "linux/arm/v7/x", "linux/arm/"]) {
      assert.throws(() => parsePlatform(s), Error, s);
    }
  });
  it("formatPlatform inverts parsePlatform", () => {
    for (const s of ["linux/amd64", "linux/arm/v7", "linux/arm64/v8", "windows/amd64"]) assert.equal(formatPlatform(parsePlatform(s)), s);
  });
  it("hostPlatform uses OCI names", () => {
    const h = hostPlatform();
    assert.notEqual(h.architecture, "x64");
    assert.ok(h.os.length > 0 && h.architecture.length > 0);
    if (process.arch === "x64") assert.equal(h.architecture, "amd64");
    if (process.platform === "linux") assert.equal(h.os, "linux");
  });

  const P = (s: string): Platform => parsePlatform(s);
  const cases: [string, Platform | undefined, boolean][] = [
    ["linux/amd64", P("linux/amd64"), true],
    ["linux/amd64", undefined, false],
    ["linux/amd64", P("windows/amd64"), false],
    ["linux/amd64", P("linux/arm64"), false],
    ["linux/amd64", P("linux/386"), false],
    // No wanted variant: any variant of that os/arch will do.
    ["linux/arm64", P("linux/arm64/v8"), true],
    ["linux/arm", P("linux/arm/v6"), true],
    // arm64 without a variant is v8.
    ["linux/arm64/v8", P("linux/arm64"), true],
    ["linux/arm64/v8", P("linux/arm64/v8"), true],
    ["linux/arm64/v8", P("linux/arm64/v9"), false],
    ["linux/arm64/v9", P("linux/arm64"), false],
    // arm: variants are compared; containerd treats a missing arm variant as v7.
    ["linux/arm/v7", P("linux/arm/v7"), true],
    ["linux/arm/v7", P("linux/arm/v6"), false],
    ["linux/arm/v6", P("linux/arm/v7"), false],
    ["linux/arm/v7", P("linux/arm"), true],
    ["linux/arm/v6", P("linux/arm"), false],
    ["linux/arm/v5", P("linux/arm/v5"), true],
    // os and architecture are exact.
    ["linux/arm64/v8", P("linux/arm/v8"), false],
    ["windows/amd64", P("linux/amd64"), false],
  ];
  for (const [want, have, ok] of cases) {
    it(`${want} ${ok ? "matches" : "does not match"} ${have ? formatPlatform(have) : "no platform"}`, () => {
      assert.equal(platformMatches(P(want), have), ok);
    });
  }
  it("arm64 variants spelt '8' count as v8 (containerd normalisation)", () => {
    assert.equal(platformMatches(P("linux/arm64/v8"), { os: "linux", architecture: "arm64", variant: "8" }), true);
    assert.equal(platformMatches(P("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "7" }), true);
  });
});

describe("JSON nesting bound", () => {
  const config = (labels: string) =>
    Buffer.from(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"deep":${labels}}}}`);
  it("counts arrays and objects, not brackets inside strings (escaped quotes included)", () => {
    assert.equal(jsonDepth('{"a":[1,{"b":"[[[{{{\\"]]]"}]}'), 3);
    assert.equal(jsonDepth("[]"), 1);
    assert.equal(jsonDepth('"[["'), 0);
  });
  it("a config nested 200,000 levels deep is refused at parse time with a clear error", () => {
    const deep = config(`${"[".repeat(200_000)}${"]".repeat(200_000)}`);
    assert.throws(() => parseImageConfig(deep), (e: Error) => {
      assert.ok(e instanceof InvalidManifestError);
      assert.equal(e.message, `image config nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`);
      return true;
    });
    const m = Buffer.from(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"a":${"{\"a\":".repeat(5000)}1${"}".repeat(5000)}}}`);
    assert.throws(() => parseManifest(m), /manifest nests arrays and objects more than 1000 levels deep/);
  });
  it("nesting up to the bound parses, and its value can be serialised again (inspect, commit)", () => {
    // the config object itself and its config/Labels take three levels
    const inner = MAX_JSON_DEPTH - 3;
    const ok = parseImageConfig(config(`${"[".repeat(inner)}${"]".repeat(inner)}`));
    assert.ok(JSON.stringify(ok.config, null, 2).length > inner);
    assert.throws(() => parseImageConfig(config(`${"[".repeat(inner + 1)}${"]".repeat(inner + 1)}`)), InvalidManifestError);
  });
});
