/**
 * References per distribution's reference grammar and Docker's normalisation (ParseNormalizedNamed,
 * FamiliarName), and repository names per the OCI distribution-spec:
 *   <name> matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *   <reference> as a tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_DOMAIN,
  familiarName,
  formatFamiliar,
  formatReference,
  InvalidReferenceError,
  isValidRepositoryName,
  isValidTag,
  NAME_MAX_LENGTH,
  parseReference,
  parseRepositoryName,
  parseTag,
  referenceName,
} from "../src/index.js";

const D = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function ref(input: string, domain: string, repository: string, tag?: string, digest?: string): void {
  const r = parseReference(input);
  assert.deepEqual({ domain: r.domain, repository: r.repository, tag: r.tag, digest: r.digest }, { domain, repository, tag, digest }, input);
}

function bad(input: string): void {
  assert.throws(() => parseReference(input), InvalidReferenceError, `expected ${JSON.stringify(input)} to be rejected`);
}

describe("parseReference: normalisation", () => {
  it("a one-component name is an official image on docker.io with tag latest", () => {
    assert.equal(DEFAULT_DOMAIN, "docker.io");
    ref("alpine", "docker.io", "library/alpine", "latest");
    assert.equal(formatReference(parseReference("alpine")), "docker.io/library/alpine:latest");
  });
  it("a two-component name without a domain-like first part is a user repository on docker.io", () => {
    ref("user/repo", "docker.io", "user/repo", "latest");
    ref("user/repo:1.0", "docker.io", "user/repo", "1.0");
    ref("a/b/c", "docker.io", "a/b/c", "latest");
  });
  it("docker.io and index.docker.io given explicitly", () => {
    ref("docker.io/alpine", "docker.io", "library/alpine", "latest");
    ref("docker.io/library/alpine:3.19", "docker.io", "library/alpine", "3.19");
    ref("index.docker.io/library/x", "docker.io", "library/x", "latest");
    ref("index.docker.io/x", "docker.io", "library/x", "latest");
    ref("index.docker.io/user/x", "docker.io", "user/x", "latest");
  });
  it("localhost is a domain, with or without a port", () => {
    ref("localhost/x", "localhost", "x", "latest");
    ref("localhost:5000/x", "localhost:5000", "x", "latest");
    ref("localhost:5000/x:5000", "localhost:5000", "x", "5000");
  });
  it("a first component with '.' or ':' is a domain and gets no library/ prefix", () => {
    ref("127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag");
    ref("example.com/x", "example.com", "x", "latest");
    ref("registry.example.com:443/team/app:v1.2.3", "registry.example.com:443", "team/app", "v1.2.3");
    ref("myhost:5000/x", "myhost:5000", "x", "latest");
  });
  it("a first component with upper case is a domain", () => {
    ref("Example/x", "Example", "x", "latest");
  });
  it("a first component without '.', ':' or upper case is part of the path", () => {
    ref("myhost/x", "docker.io", "myhost/x", "latest");
    ref("localhostx/y", "docker.io", "localhostx/y", "latest");
  });
  it("bracketed IPv6 domains", () => {
    ref("[::1]:5000/x", "[::1]:5000", "x", "latest");
    ref("[::1]/x:t", "[::1]", "x", "t");
    ref("[2001:db8::1]:5000/a/b@" + D, "[2001:db8::1]:5000", "a/b", undefined, D);
  });
  it("a digest alone gives no default tag", () => {
    ref(`example.com/x@${D}`, "example.com", "x", undefined, D);
    ref(`alpine@${D}`, "docker.io", "library/alpine", undefined, D);
  });
  it("tag and digest together are both kept", () => {
    ref(`alpine:3.19@${D}`, "docker.io", "library/alpine", "3.19", D);
    ref(`localhost:5000/a/b:v1@${D}`, "localhost:5000", "a/b", "v1", D);
    assert.equal(formatReference(parseReference(`alpine:3.19@${D}`)), `docker.io/library/alpine:3.19@${D}`);
  });
  it("a sha512 digest is accepted", () => {
    const d512 = `sha512:${"ab".repeat(64)}`;
    ref(`x.io/y@${d512}`, "x.io", "y", undefined, d512);
  });
  it("a name that looks like host:port without a path is name:tag on docker.io", () => {
    ref("localhost:5000", "docker.io", "library/localhost", "5000");
  });
  it("defaultTag: false leaves the tag unset", () => {
    const r = parseReference("alpine", { defaultTag: false });
    assert.equal(r.tag, undefined);
    assert.equal(r.digest, undefined);
    assert.equal(parseReference("alpine:3", { defaultTag: false }).tag, "3");
  });
  it("tags may use the full tag alphabet", () => {
    ref("x.io/y:A_b.c-D", "x.io", "y", "A_b.c-D");
    ref("x.io/y:_x", "x.io", "y", "_x");
    ref(`x.io/y:${"t".repeat(128)}`, "x.io", "y", "t".repeat(128));
  });
  it("separators inside path components", () => {
    ref("a.b/c", "a.b", "c", "latest");
    ref("user/a_b", "docker.io", "user/a_b", "latest");
    ref("user/a__b", "docker.io", "user/a__b", "latest");
    ref("user/a---b", "docker.io", "user/a---b", "latest");
    ref("user/a.b", "docker.io", "user/a.b", "latest");
  });
});

describe("parseReference: rejected", () => {
  it("empty input", () => bad(""));
  it("upper case in the repository path", () => {
    bad("Alpine");
    bad("user/Repo");
    bad("docker.io/library/Alpine");
    bad("example.com/A/b");
    bad("localhost:5000/X");
  });
  it("empty path components and stray slashes", () => {
    bad("a//b");
    bad("a/");
    bad("/a");
    bad("example.com/");
    bad("example.com//x");
    bad("user/repo/");
  });
  it("tags", () => {
    bad("alpine:");
    bad(`x.io/y:${"t".repeat(129)}`);
    bad("alpine:-x");
    bad("alpine:.x");
    bad("alpine:a+b");
    bad("alpine:a:b");
  });
  it("digests", () => {
    bad("alpine@");
    bad("alpine@sha256:abc");
    bad(`alpine@${D.toUpperCase()}`);
    bad(`alpine@${D}@${D}`);
    bad(`alpine@${D.slice(0, -1)}`);
    bad("alpine@:abc");
  });
  it("bad domains", () => {
    bad("-bad.com/x");
    bad("bad-.com/x");
    bad("example.com:port/x");
    bad("example.com:/x");
    bad("a_b.com/x");
  });
  it("bad characters and separators in the path", () => {
    bad("user/a___b");
    bad("user/a..b");
    bad("user/a.-b");
    bad("user/-a");
    bad("user/a-");
    bad("user/a b");
    bad("user/ä");
  });
  it("names over 255 characters (domain + '/' + path) are rejected, 255 is fine", () => {
    assert.equal(NAME_MAX_LENGTH, 255);
    const host = "example.com"; // 11 + 1 for the slash
    ref(`${host}/${"a".repeat(243)}`, host, "a".repeat(243), "latest");
    bad(`${host}/${"a".repeat(244)}`);
    // docker.io/library/ is 18 characters and counts.
    ref("a".repeat(237), "docker.io", `library/${"a".repeat(237)}`, "latest");
    bad("a".repeat(238));
    // The tag does not count toward the name length.
    ref(`${host}/${"a".repeat(243)}:${"t".repeat(128)}`, host, "a".repeat(243), "t".repeat(128));
  });
  it("a bare 64-hex string is refused as a name (it would be ambiguous with an image ID)", () => {
    bad(D.slice("sha256:".length));
    // Not the whole input: fine.
    ref(`user/${D.slice(7)}`, "docker.io", `user/${D.slice(7)}`, "latest");
  });
});

describe("familiar names", () => {
  it("docker.io/library/<one component> becomes the bare name", () => {
    assert.equal(familiarName(parseReference("docker.io/library/alpine")), "alpine");
    assert.equal(familiarName(parseReference("alpine")), "alpine");
    assert.equal(formatFamiliar(parseReference("alpine")), "alpine:latest");
    assert.equal(formatFamiliar(parseReference("index.docker.io/library/alpine:3")), "alpine:3");
  });
  it("docker.io/<user>/<x> drops only the domain", () => {
    assert.equal(familiarName(parseReference("docker.io/user/x")), "user/x");
    assert.equal(formatFamiliar(parseReference("user/x:1")), "user/x:1");
  });
  it("docker.io/library/<a>/<b> keeps library/ (not an official image)", () => {
    assert.equal(familiarName(parseReference("docker.io/library/a/b")), "library/a/b");
  });
  it("other registries keep host and port", () => {
    assert.equal(familiarName(parseReference("127.0.0.1:5000/golden/edge")), "127.0.0.1:5000/golden/edge");
    assert.equal(formatFamiliar(parseReference("127.0.0.1:5010/golden/edge:v1")), "127.0.0.1:5010/golden/edge:v1");
    assert.equal(familiarName(parseReference("localhost/x")), "localhost/x");
    assert.equal(familiarName({ domain: "example.com", repository: parseRepositoryName("library/x") }), "example.com/library/x");
  });
  it("formats tag and digest", () => {
    assert.equal(formatFamiliar(parseReference(`127.0.0.1:5010/golden/edge@${D}`)), `127.0.0.1:5010/golden/edge@${D}`);
    assert.equal(formatFamiliar(parseReference(`alpine:3@${D}`)), `alpine:3@${D}`);
    assert.equal(referenceName(parseReference(`alpine:3@${D}`)), "docker.io/library/alpine");
  });
  it("familiar and canonical forms parse back to the same reference", () => {
    for (const s of ["alpine", "user/x:1", `127.0.0.1:5000/a/b:t@${D}`, "[::1]:5000/x", `localhost/x@${D}`]) {
      const r = parseReference(s);
      assert.deepEqual(parseReference(formatFamiliar(r)), r, s);
      assert.deepEqual(parseReference(formatReference(r)), r, s);
    }
  });
});

describe("OCI distribution-spec repository names", () => {
  const ok = ["a", "a/b", "a/b/c/d", "library/alpine", "a.b", "a_b", "a__b", "a-b", "a--b", "a----b", "a.b-c_d__e", "0", "0/1", "golden/edge", "a".repeat(255)];
  const notOk = [
    "",
    "A",
    "a/B",
    "a___b",
    "a..b",
    "a.-b",
    "a-.b",
    "a_.b",
    "a._b",
    "a-_b",
    "_a",
    ".a",
    "-a",
    "a_",
    "a.",
    "a-",
    "a//b",
    "/a",
    "a/",
    "a b",
    "a:b",
    "a@b",
    "a".repeat(256),
  ];
  for (const n of ok) {
    it(`accepts ${JSON.stringify(n.length > 20 ? `${n.slice(0, 10)}...(${n.length})` : n)}`, () => {
      assert.equal(isValidRepositoryName(n), true);
      assert.equal(parseRepositoryName(n), n);
    });
  }
  for (const n of notOk) {
    it(`rejects ${JSON.stringify(n.length > 20 ? `${n.slice(0, 10)}...(${n.length})` : n)}`, () => {
      assert.equal(isValidRepositoryName(n), false);
      assert.throws(() => parseRepositoryName(n), InvalidReferenceError);
    });
  }
});

describe("tags", () => {
  it("accepts [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", () => {
    for (const t of ["latest", "v1.2.3", "_", "A", "9", "a-b_c.D", "t".repeat(128)]) {
      assert.equal(isValidTag(t), true, t);
      assert.equal(parseTag(t), t);
    }
  });
  it("rejects everything else", () => {
    for (const t of ["", ".a", "-a", "a/b", "a:b", "a@b", "a+b", "a b", "t".repeat(129), "ä"]) {
      assert.equal(isValidTag(t), false, t);
      assert.throws(() => parseTag(t), InvalidReferenceError);
    }
  });
});
