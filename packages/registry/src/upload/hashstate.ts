/**
 * A resumable content hasher for uploads. Its whole state serialises to a small string, so an
 * upload's running digest survives between requests and across replicas (stored in the
 * session) without ever re-reading the received bytes.
 *
 * Implementation: OpenSSL's SHA-256/512 context (the one Node links, with SHA extensions where
 * the CPU has them) kept in a Buffer by a small addon (native/hashstate.cc). A saved state is
 * tagged with the OpenSSL version and architecture that produced it; `load` refuses a state
 * from another build (the caller then treats the session as unresumable).
 */
import { createRequire } from "node:module";
import { type Digest, type DigestAlgorithm, digestFrom } from "@strata/core";

interface HashAddon {
  init(alg: 256 | 512): Buffer;
  update(alg: 256 | 512, state: Buffer, data: Uint8Array): void;
  digest(alg: 256 | 512, state: Buffer): Buffer;
}

const addon: HashAddon = createRequire(import.meta.url)("../../../native/build/Release/strata_hash.node");
const BUILD_TAG = `ossl${process.versions.openssl}-${process.arch}`;

const bits = (a: DigestAlgorithm): 256 | 512 => (a === "sha512" ? 512 : 256);

export class IncompatibleHashStateError extends Error {
  constructor() {
    super("upload hash state was saved by an incompatible build");
    this.name = "IncompatibleHashStateError";
  }
}

export class ResumableHash {
  private constructor(
    readonly algorithm: DigestAlgorithm,
    private state: Buffer,
  ) {}

  static create(algorithm: DigestAlgorithm = "sha256"): ResumableHash {
    return new ResumableHash(algorithm, addon.init(bits(algorithm)));
  }

  /** Restores a state produced by `save()`. */
  static load(saved: string): ResumableHash {
    const [tag, alg, b64] = saved.split("|");
    if (tag !== BUILD_TAG || (alg !== "sha256" && alg !== "sha512") || !b64) throw new IncompatibleHashStateError();
    const state = Buffer.from(b64, "base64");
    const h = new ResumableHash(alg, state);
    if (state.length !== addon.init(bits(alg)).length) throw new IncompatibleHashStateError();
    return h;
  }

  update(chunk: Uint8Array): void {
    addon.update(bits(this.algorithm), this.state, chunk);
  }

  save(): string {
    return `${BUILD_TAG}|${this.algorithm}|${this.state.toString("base64")}`;
  }

  /** The digest of everything hashed so far; the hasher itself stays usable. */
  digest(): Digest {
    const copy = Buffer.from(this.state);
    return digestFrom(this.algorithm, addon.digest(bits(this.algorithm), copy).toString("hex"));
  }
}
