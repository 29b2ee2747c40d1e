/**
 * Content builders and push helpers for the HTTP tests. Push helpers assert the status codes
 * the spec requires for the flow they use, so a broken flow fails at the step that broke.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { type Digest, digestOf, MediaTypes } from "@strata/core";
import { expectStatus, type Harness, locationPath, type Res, withQuery } from "./http.js";

export { MediaTypes };

export function sha256(data: Buffer | string): Digest {
  return digestOf(typeof data === "string" ? Buffer.from(data) : data, "sha256");
}

export function sha512(data: Buffer | string): Digest {
  return digestOf(typeof data === "string" ? Buffer.from(data) : data, "sha512");
}

export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}

/** A repository name unique to one test (valid per the spec's name grammar). */
export function repoName(prefix = "test"): string {
  return `${prefix}/r${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** A well-formed sha256 digest of content nobody pushed. */
export function unknownDigest(): Digest {
  return sha256(randomBytes(32));
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export function descriptorOf(data: Buffer, mediaType: string, algorithm: "sha256" | "sha512" = "sha256"): Descriptor {
  return { mediaType, digest: algorithm === "sha256" ? sha256(data) : sha512(data), size: data.length };
}

/** Starts an upload session (end-4a) and returns the Location as path+query. */
export async function startUpload(h: Harness, repo: string): Promise<{ res: Res; location: string }> {
  const res = await h.req("POST", `/v2/${repo}/blobs/uploads/`, { headers: { "Content-Length": "0" } });
  expectStatus(res, 202, `POST /v2/${repo}/blobs/uploads/`);
  return { res, location: locationPath(res.header("location")) };
}

/** POST then PUT (end-4a + end-6): the monolithic flow every registry must support. */
export async function pushBlob(h: Harness, repo: string, data: Buffer, digest: Digest = sha256(data)): Promise<Digest> {
  const { location } = await startUpload(h, repo);
  const res = await h.req("PUT", withQuery(location, { digest }), { headers: { "Content-Type": "application/octet-stream" }, body: data });
  expectStatus(res, 201, `PUT upload ?digest=${digest}`);
  return digest;
}

/** Chunked upload (POST, PATCH with Content-Range per chunk, PUT without body). */
export async function pushBlobChunked(h: Harness, repo: string, data: Buffer, chunkSize: number, digest: Digest = sha256(data)): Promise<Digest> {
  let { location } = await startUpload(h, repo);
  for (let off = 0; off < data.length; off += chunkSize) {
    const chunk = data.subarray(off, Math.min(off + chunkSize, data.length));
    const res = await h.req("PATCH", location, {
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${off}-${off + chunk.length - 1}` },
      body: chunk,
    });
    expectStatus(res, 202, `PATCH chunk at ${off}`);
    location = locationPath(res.header("location"));
  }
  const res = await h.req("PUT", withQuery(location, { digest }));
  expectStatus(res, 201, "closing PUT");
  return digest;
}

export async function putManifest(h: Harness, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<Res> {
  return await h.req("PUT", `/v2/${repo}/manifests/${reference}`, { headers: { "Content-Type": mediaType }, body: bytes });
}

export async function pushManifest(h: Harness, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<Res> {
  const res = await putManifest(h, repo, reference, bytes, mediaType);
  expectStatus(res, 201, `PUT manifest ${repo}:${reference}`);
  return res;
}

export function json(obj: unknown, indent: number | string = 0): Buffer {
  return Buffer.from(JSON.stringify(obj, null, indent));
}

export interface ImageParts {
  config: Buffer;
  layers: Buffer[];
  configDesc: Descriptor;
  layerDescs: Descriptor[];
}

/** A small random image config plus layers (not pushed). */
export function imageParts(layerCount = 1, layerSize = 512, algorithm: "sha256" | "sha512" = "sha256"): ImageParts {
  const config = json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, nonce: randomUUID() });
  const layers = Array.from({ length: layerCount }, () => randomBlob(layerSize));
  return {
    config,
    layers,
    configDesc: descriptorOf(config, MediaTypes.OciConfig, algorithm),
    layerDescs: layers.map((l) => descriptorOf(l, MediaTypes.OciLayerGzip, algorithm)),
  };
}

export async function pushParts(h: Harness, repo: string, parts: ImageParts): Promise<void> {
  await pushBlob(h, repo, parts.config, parts.configDesc.digest as Digest);
  for (let i = 0; i < parts.layers.length; i++) await pushBlob(h, repo, parts.layers[i], parts.layerDescs[i].digest as Digest);
}

export interface ManifestOptions {
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
  mediaType?: string;
}

export function ociManifestBytes(configDesc: Descriptor, layerDescs: Descriptor[], opts: ManifestOptions = {}, indent: number | string = 2): Buffer {
  const m: Record<string, unknown> = { schemaVersion: 2, mediaType: opts.mediaType ?? MediaTypes.OciManifest };
  if (opts.artifactType) m.artifactType = opts.artifactType;
  m.config = configDesc;
  m.layers = layerDescs;
  if (opts.subject) m.subject = opts.subject;
  if (opts.annotations) m.annotations = opts.annotations;
  return json(m, indent);
}

export function ociIndexBytes(manifests: Descriptor[], opts: ManifestOptions = {}, indent: number | string = 2): Buffer {
  const m: Record<string, unknown> = { schemaVersion: 2, mediaType: MediaTypes.OciIndex };
  if (opts.artifactType) m.artifactType = opts.artifactType;
  m.manifests = manifests;
  if (opts.subject) m.subject = opts.subject;
  if (opts.annotations) m.annotations = opts.annotations;
  return json(m, indent);
}

export interface PushedImage {
  parts: ImageParts;
  manifest: Buffer;
  digest: Digest;
  desc: Descriptor;
}

/** Pushes blobs and an OCI image manifest (by tag when given, else by digest). */
export async function pushImage(h: Harness, repo: string, tag?: string, opts: ManifestOptions & { layers?: number } = {}): Promise<PushedImage> {
  const parts = imageParts(opts.layers ?? 1);
  await pushParts(h, repo, parts);
  const manifest = ociManifestBytes(parts.configDesc, parts.layerDescs, opts);
  const digest = sha256(manifest);
  await pushManifest(h, repo, tag ?? digest, manifest, MediaTypes.OciManifest);
  return { parts, manifest, digest, desc: { mediaType: MediaTypes.OciManifest, digest, size: manifest.length } };
}

/** The OCI empty JSON blob `{}` (image-spec "empty descriptor"). */
export const EMPTY_JSON = Buffer.from("{}");
export const EMPTY_DESC: Descriptor = { mediaType: MediaTypes.OciEmpty, digest: sha256(EMPTY_JSON), size: 2 };

export function assertBytesEqual(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  assert.ok(actual.equals(expected), `${what}: bytes differ`);
}
