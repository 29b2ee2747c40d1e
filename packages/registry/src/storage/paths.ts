/**
 * Every storage key the registry uses, and nothing else builds keys. The layout:
 *
 *   /v2/
 *   ├── blobs/<alg>/<hex[0:2]>/<hex>/data              blob bytes (layers, configs AND manifests),
 *   │                                                   stored once per digest for all repositories
 *   └── repositories/<name...>/
 *       ├── _layers/<alg>/<hex>/link                    "<digest>": blob is part of this repository
 *       ├── _manifests/
 *       │   ├── revisions/<alg>/<hex>/link              "<digest>": manifest is in this repository
 *       │   └── tags/<tag>/current/link                 "<digest>": what the tag points at
 *       ├── _referrers/<alg>/<subjecthex>/<alg>/<hex>/link
 *       │                                               descriptor JSON of a manifest whose
 *       │                                               `subject` is <alg>:<subjecthex>
 *       └── _uploads/<uuid>/
 *           ├── data                                    bytes received so far by a chunked upload
 *           │                                           (never a blob key); session state lives in
 *           │                                           the session store, not here; on S3 only
 *           │                                           the writer's state objects ("data~strata-…")
 *           │                                           live here, the parts go to a physical object
 *           │                                           (storage/s3-pointers.ts)
 *           └── progress                                {offset, hashState} written only when a
 *                                                       session update failed after the data was
 *                                                       persisted (see upload/uploads.ts)
 *   /strata/metadata/pulls.json                         last pull times (embedded mode without Redis;
 *                                                       see services/metadata.ts)
 *   /strata/proxy/cache.json                            what a pull-through cache fetched, where it
 *                                                       linked it and when it was last pulled
 *                                                       (see services/proxycache.ts)
 *
 * A blob becomes visible only once verified: a chunked upload's `data` is committed and moved
 * to its blobs/ key after the digest check, or, where the driver's writer can (FileWriter.commitTo,
 * S3), committed straight to the blobs/ key after the digest check without ever being readable
 * at the upload key; a monolithic upload (digest known up front) is written through a driver
 * writer at the blobs/ key itself, which publishes nothing before commit(), and commit()
 * happens only after the digest check.
 * Repository names may contain "/" (nested repositories); `_layers`, `_manifests`,
 * `_referrers` and `_uploads` cannot be repository path components (components start with
 * [a-z0-9]), so a repository's own keys never collide with a nested repository.
 */
import { type Digest, digestAlgorithm, digestHex, tryParseDigest } from "@strata/core";

export const ROOT = "/v2";

export type PathSpec =
  | { kind: "blobsRoot" }
  | { kind: "blobData"; digest: Digest }
  | { kind: "blobDir"; digest: Digest }
  | { kind: "repositoriesRoot" }
  | { kind: "repository"; name: string }
  | { kind: "layerDir"; name: string; digest: Digest }
  | { kind: "layerLink"; name: string; digest: Digest }
  | { kind: "layersRoot"; name: string }
  | { kind: "manifestRevisionDir"; name: string; digest: Digest }
  | { kind: "manifestRevisionLink"; name: string; digest: Digest }
  | { kind: "manifestRevisionsRoot"; name: string }
  | { kind: "tagsRoot"; name: string }
  | { kind: "tag"; name: string; tag: string }
  | { kind: "tagCurrentLink"; name: string; tag: string }
  | { kind: "referrersRoot"; name: string }
  | { kind: "referrersOf"; name: string; subject: Digest }
  | { kind: "referrerDir"; name: string; subject: Digest; digest: Digest }
  | { kind: "referrerLink"; name: string; subject: Digest; digest: Digest }
  | { kind: "uploadsRoot"; name: string }
  | { kind: "upload"; name: string; id: string }
  | { kind: "uploadData"; name: string; id: string }
  | { kind: "uploadProgress"; name: string; id: string }
  | { kind: "metadataPulls" }
  | { kind: "proxyCache" };

const d = (x: Digest) => `${digestAlgorithm(x)}/${digestHex(x)}`;

/** Turns a spec into its storage key. Pure; no I/O. */
export function pathFor(spec: PathSpec): string {
  switch (spec.kind) {
    case "blobsRoot":
      return `${ROOT}/blobs`;
    case "blobDir": {
      const hex = digestHex(spec.digest);
      return `${ROOT}/blobs/${digestAlgorithm(spec.digest)}/${hex.slice(0, 2)}/${hex}`;
    }
    case "blobData":
      return `${pathFor({ kind: "blobDir", digest: spec.digest })}/data`;
    case "repositoriesRoot":
      return `${ROOT}/repositories`;
    case "repository":
      return `${ROOT}/repositories/${spec.name}`;
    case "layersRoot":
      return `${pathFor({ kind: "repository", name: spec.name })}/_layers`;
    case "layerDir":
      return `${pathFor({ kind: "layersRoot", name: spec.name })}/${d(spec.digest)}`;
    case "layerLink":
      return `${pathFor({ kind: "layerDir", name: spec.name, digest: spec.digest })}/link`;
    case "manifestRevisionsRoot":
      return `${pathFor({ kind: "repository", name: spec.name })}/_manifests/revisions`;
    case "manifestRevisionDir":
      return `${pathFor({ kind: "manifestRevisionsRoot", name: spec.name })}/${d(spec.digest)}`;
    case "manifestRevisionLink":
      return `${pathFor({ kind: "manifestRevisionDir", name: spec.name, digest: spec.digest })}/link`;
    case "tagsRoot":
      return `${pathFor({ kind: "repository", name: spec.name })}/_manifests/tags`;
    case "tag":
      return `${pathFor({ kind: "tagsRoot", name: spec.name })}/${spec.tag}`;
    case "tagCurrentLink":
      return `${pathFor({ kind: "tag", name: spec.name, tag: spec.tag })}/current/link`;
    case "referrersRoot":
      return `${pathFor({ kind: "repository", name: spec.name })}/_referrers`;
    case "referrersOf":
      return `${pathFor({ kind: "referrersRoot", name: spec.name })}/${d(spec.subject)}`;
    case "referrerDir":
      return `${pathFor({ kind: "referrersOf", name: spec.name, subject: spec.subject })}/${d(spec.digest)}`;
    case "referrerLink":
      return `${pathFor({ kind: "referrerDir", name: spec.name, subject: spec.subject, digest: spec.digest })}/link`;
    case "uploadsRoot":
      return `${pathFor({ kind: "repository", name: spec.name })}/_uploads`;
    case "upload":
      return `${pathFor({ kind: "uploadsRoot", name: spec.name })}/${spec.id}`;
    case "uploadData":
      return `${pathFor({ kind: "upload", name: spec.name, id: spec.id })}/data`;
    case "uploadProgress":
      return `${pathFor({ kind: "upload", name: spec.name, id: spec.id })}/progress`;
    case "metadataPulls":
      return "/strata/metadata/pulls.json";
    case "proxyCache":
      return "/strata/proxy/cache.json";
  }
}

const UPLOAD_DATA = new RegExp(`^${ROOT}/repositories/(.+)/_uploads/([^/]+)/data$`);
const BLOB_DATA = new RegExp(`^${ROOT}/blobs/([a-z0-9]+)/[0-9a-f]{2}/([0-9a-f]+)/data$`);

/** The upload whose data `key` is, if it is an upload's data key. */
export function uploadOfDataKey(key: string): { name: string; id: string } | undefined {
  const m = UPLOAD_DATA.exec(key);
  return m ? { name: m[1], id: m[2] } : undefined;
}

/** The digest whose blob data `key` is, if it is a blob data key. */
export function blobOfDataKey(key: string): Digest | undefined {
  const m = BLOB_DATA.exec(key);
  return m ? tryParseDigest(`${m[1]}:${m[2]}`) : undefined;
}

/** Last component of a key. */
export function baseName(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

const COMPONENT = /^[A-Za-z0-9._-]+$/;

/** Whether a key obeys the driver key grammar (see driver.ts). */
export function isValidKey(key: string): boolean {
  if (!key.startsWith("/") || key.length < 2 || key.endsWith("/")) return false;
  for (const c of key.slice(1).split("/")) {
    if (c === "" || c === "." || c === ".." || !COMPONENT.test(c)) return false;
  }
  return true;
}
