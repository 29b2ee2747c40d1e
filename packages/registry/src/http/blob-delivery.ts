/**
 * The ways a blob GET is answered, one function each; handlers/blobs.ts picks among them:
 * - `fromUpstream`: a pull-through cache streams a blob it does not hold yet as the upstream
 *   sends it (services/proxy.ts verifies it and cuts the stream unless the digest matched);
 * - `redirectToStorage`: a 307 to a presigned storage URL (S3 with `storage.s3.redirect`);
 * - `accelRedirect`: nginx sends the verified local file (`http.accelRedirect`, filesystem);
 * - `sendBlob`: the registry sends the body itself, a verified local file natively
 *   (http/sendfile.ts), a verified object-store response natively (http/relay.ts), or a stream
 *   from storage (verified while streaming, services/blobs.ts).
 */
import type { Readable } from "node:stream";
import type { Context } from "koa";
import type { Digest } from "@strata/core";
import { UnknownError } from "../errors.js";
import { requestEvent } from "../events.js";
import type { BlobBody, BlobRange } from "../services/blobs.js";
import type { Services } from "../services/index.js";
import { pathFor } from "../storage/paths.js";
import { nsQuery } from "./params.js";
import { relayBody } from "./relay.js";
import { fileBody } from "./sendfile.js";

const OCTET = "application/octet-stream";

/** Emits the pull event of a blob of `size` bytes in repository `name`. */
export function emitPull(ctx: Context, s: Services, name: string, digest: Digest, size: number): void {
  s.events.emit(requestEvent(ctx, "pull", { kind: "blob", repository: name, digest, mediaType: OCTET, size }));
}

/**
 * Size of the blob in `name`. On a pull-through cache a blob not held yet is asked upstream:
 * then either its size is returned (HEAD; a range request, once it landed in storage) or the
 * upstream's stream is already set as the response (undefined is returned).
 */
export async function blobSize(ctx: Context, s: Services, name: string, digest: Digest, head: boolean): Promise<number | undefined> {
  const route = s.proxy?.route(name, nsQuery(ctx));
  const size = await s.blobs.sizeIn(route?.local ?? name, digest);
  if (!route) {
    if (size === undefined) throw new UnknownError("blob", digest);
    return size;
  }
  if (size !== undefined) {
    s.proxy!.served(route.local, digest, size);
    return size;
  }
  const r = await s.proxy!.blob(route, digest, head ? "head" : ctx.get("Range") ? "wait" : "get");
  if (r.stream) {
    fromUpstream(ctx, s, name, digest, r.stream, r.size);
    return undefined;
  }
  if (r.size === undefined) throw new UnknownError("blob", digest);
  return r.size;
}

/** Streams the upstream's bytes as they arrive; aborted before their end unless the digest matched. */
function fromUpstream(ctx: Context, s: Services, name: string, digest: Digest, stream: Readable, size: number | undefined): void {
  ctx.set("Docker-Content-Digest", digest);
  ctx.set("ETag", `"${digest}"`);
  ctx.body = stream;
  if (size !== undefined) ctx.length = size;
  ctx.type = OCTET;
  emitPull(ctx, s, name, digest, size ?? 0);
}

/** A 307 to a presigned storage URL when the storage gives one (S3 with `storage.s3.redirect`). */
export async function redirectToStorage(ctx: Context, s: Services, digest: Digest): Promise<boolean> {
  const s3 = s.config.storage.s3;
  if (!s3?.redirect) return false;
  const url = await s.blobs.redirectURL(digest, "GET", s3.redirectExpirySeconds);
  if (!url) return false;
  ctx.set("Docker-Content-Digest", digest);
  ctx.redirect(url);
  ctx.status = 307;
  return true;
}

/**
 * nginx sends the whole blob file (verified here, by identity) and drops this empty body:
 * only with `http.accelRedirect`, filesystem storage and no range. Closes the file when taken.
 */
export async function accelRedirect(ctx: Context, s: Services, body: BlobBody, digest: Digest, range: BlobRange | undefined): Promise<boolean> {
  const accel = s.config.http.accelRedirect;
  if (!accel || !body.file || range || s.config.storage.driver !== "filesystem") return false;
  await body.file.handle.close();
  ctx.set("X-Accel-Redirect", `${accel.prefix}${pathFor({ kind: "blobData", digest })}`);
  ctx.type = OCTET;
  ctx.body = "";
  ctx.status = 200;
  return true;
}

/** The registry sends `body` itself: a verified file natively, else the storage stream. */
export function sendBlob(ctx: Context, s: Services, body: BlobBody, length: number): void {
  const send = s.config.http.send;
  ctx.body = body.file ? fileBody(ctx.res, body.file, send) : body.response ? relayBody(ctx.res, body.response, send) : body.stream;
  ctx.length = length;
  ctx.type = OCTET;
}
