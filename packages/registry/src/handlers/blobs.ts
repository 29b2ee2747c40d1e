/** GET, HEAD and DELETE /v2/<name>/blobs/<digest>; how a GET's bytes go out: http/blob-delivery.ts. */
import type Router from "@koa/router";
import type { Context } from "koa";
import { UnsupportedError } from "../errors.js";
import { requestEvent } from "../events.js";
import { accelRedirect, blobSize, emitPull, redirectToStorage, sendBlob } from "../http/blob-delivery.js";
import { digestAt, repository } from "../http/params.js";
import { parseRange } from "../http/range.js";
import type { Services } from "../services/index.js";

const PATH = /^\/v2\/(.+?)\/blobs\/([^/]+)$/;

export function registerBlobs(router: Router, s: Services): void {
  const read = async (ctx: Context) => {
    const name = repository(ctx);
    const digest = digestAt(ctx, 1);
    const head = ctx.method === "HEAD";
    const size = await blobSize(ctx, s, name, digest, head);
    if (size === undefined) return; // streamed from the proxy's upstream
    if (!head && (await redirectToStorage(ctx, s, digest))) return;
    const range = ctx.get("Range") ? parseRange(ctx.get("Range"), size) : undefined;
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
    if (await accelRedirect(ctx, s, body, digest, range)) {
      emitPull(ctx, s, name, digest, size);
      return;
    }
    sendBlob(ctx, s, body, length);
    if (!range || range.start === 0) emitPull(ctx, s, name, digest, size);
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
