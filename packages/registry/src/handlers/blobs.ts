/** GET, HEAD and DELETE /v2/<name>/blobs/<digest>. */
import type Router from "@koa/router";
import type { Context } from "koa";
import { BlobRangeError, UnknownError, UnsupportedError } from "../errors.js";
import { requestEvent } from "../events.js";
import { digestAt, nsQuery, repository } from "../http/params.js";
import { fileBody } from "../http/sendfile.js";
import type { BlobRange } from "../services/blobs.js";
import type { Services } from "../services/index.js";
import { pathFor } from "../storage/paths.js";

const PATH = /^\/v2\/(.+?)\/blobs\/([^/]+)$/;

/**
 * Parses a single `Range: bytes=a-b | a- | -n` against a blob of `size` bytes. A unit other
 * than bytes is ignored (undefined: serve the whole blob), as RFC 9110 requires.
 */
export function parseRange(header: string, size: number): BlobRange | undefined {
  const h = header.trim();
  if (!/^bytes=/i.test(h)) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(h);
  if (!m || (m[1] === "" && m[2] === "")) throw new BlobRangeError(size);
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw new BlobRangeError(size);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) throw new BlobRangeError(size);
  return { start, end };
}

export function registerBlobs(router: Router, s: Services): void {
  const read = async (ctx: Context) => {
    const name = repository(ctx);
    const digest = digestAt(ctx, 1);
    const head = ctx.method === "HEAD";
    const route = s.proxy?.route(name, nsQuery(ctx));
    let size = await s.blobs.sizeIn(route?.local ?? name, digest);
    if (size !== undefined && route) s.proxy!.served(route.local, digest, size);
    if (size === undefined && route) {
      const r = await s.proxy!.blob(route, digest, head ? "head" : ctx.get("Range") ? "wait" : "get");
      if (r.stream) {
        // Fed as the upstream sends it; aborted before its end unless the digest matched.
        ctx.set("Docker-Content-Digest", digest);
        ctx.set("ETag", `"${digest}"`);
        ctx.body = r.stream;
        if (r.size !== undefined) ctx.length = r.size;
        ctx.type = "application/octet-stream";
        s.events.emit(requestEvent(ctx, "pull", { kind: "blob", repository: name, digest, mediaType: "application/octet-stream", size: r.size ?? 0 }));
        return;
      }
      size = r.size;
      if (size === undefined) throw new UnknownError("blob", digest);
    }
    if (size === undefined) throw new UnknownError("blob", digest);
    if (s.config.storage.s3?.redirect && !head) {
      const url = await s.blobs.redirectURL(digest, "GET", s.config.storage.s3.redirectExpirySeconds);
      if (url) {
        ctx.set("Docker-Content-Digest", digest);
        ctx.redirect(url);
        ctx.status = 307;
        return;
      }
    }
    const rangeHeader = ctx.get("Range");
    const range = rangeHeader ? parseRange(rangeHeader, size) : undefined;
    ctx.set("Docker-Content-Digest", digest);
    ctx.set("ETag", `"${digest}"`);
    ctx.set("Accept-Ranges", "bytes");
    ctx.set("Cache-Control", "max-age=31536000");
    if (range) {
      ctx.status = 206;
      ctx.set("Content-Range", `bytes ${range.start}-${range.end}/${size}`);
    }
    const length = range ? range.end - range.start + 1 : size;
    if (head) {
      ctx.status = range ? 206 : 200;
      ctx.body = null;
      ctx.status = range ? 206 : 200;
      ctx.length = length;
      ctx.type = "application/octet-stream";
      return;
    }
    if (ctx.get("If-None-Match") === `"${digest}"`) {
      ctx.status = 304;
      return;
    }
    const body = await s.blobs.read(digest, size, range);
    const accel = s.config.http.accelRedirect;
    if (accel && body.file && !range && s.config.storage.driver === "filesystem") {
      // nginx sends the file (verified here, by identity) and drops this empty body.
      await body.file.handle.close();
      ctx.set("X-Accel-Redirect", `${accel.prefix}${pathFor({ kind: "blobData", digest })}`);
      ctx.type = "application/octet-stream";
      ctx.body = "";
      ctx.status = 200;
      s.events.emit(requestEvent(ctx, "pull", { kind: "blob", repository: name, digest, mediaType: "application/octet-stream", size }));
      return;
    }
    ctx.body = body.file ? fileBody(ctx.res, body.file, s.config.http.send) : body.stream;
    ctx.length = length;
    ctx.type = "application/octet-stream";
    if (!range || range.start === 0) s.events.emit(requestEvent(ctx, "pull", { kind: "blob", repository: name, digest, mediaType: "application/octet-stream", size }));
  };
  router.get(PATH, read);
  router.head(PATH, read);
  router.delete(PATH, async (ctx) => {
    if (!s.config.delete.enabled) throw new UnsupportedError("deletes are disabled");
    const name = repository(ctx);
    const digest = digestAt(ctx, 1);
    await s.blobs.unlink(name, digest);
    s.events.emit(requestEvent(ctx, "delete", { kind: "blob", repository: name, digest }));
    ctx.status = 202;
    ctx.length = 0;
  });
}
