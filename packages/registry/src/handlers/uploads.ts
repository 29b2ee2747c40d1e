/** Blob uploads: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE. */
import type Router from "@koa/router";
import { type Digest, parseDigest, tryParseDigest } from "@strata/core";
import type { Context } from "koa";
import { BadRequestError } from "../errors.js";
import { requestEvent } from "../events.js";
import { identityOf, mayPull } from "../http/auth.js";
import { requestBody } from "../http/body.js";
import { capture, contentLength, contentRange, hasBody, repository, repositoryName } from "../http/params.js";
import type { Services } from "../services/index.js";
import type { UploadSession } from "../upload/sessions.js";
import { uploadLocation } from "../upload/uploads.js";

const START = /^\/v2\/(.+?)\/blobs\/uploads\/?$/;
const SESSION = /^\/v2\/(.+?)\/blobs\/uploads\/([^/]+)$/;

function progress(ctx: Context, s: UploadSession, status: number): void {
  ctx.status = status;
  ctx.set("Location", uploadLocation(s.repository, s.id));
  ctx.set("Docker-Upload-UUID", s.id);
  ctx.set("Range", `0-${Math.max(0, s.offset - 1)}`);
  ctx.set("OCI-Chunk-Min-Length", "0");
  ctx.length = 0;
  ctx.body = null;
  ctx.status = status;
}

function created(ctx: Context, name: string, digest: string): void {
  ctx.status = 201;
  ctx.set("Location", `/v2/${name}/blobs/${digest}`);
  ctx.set("Docker-Content-Digest", digest);
  ctx.length = 0;
  ctx.body = null;
  ctx.status = 201;
}

function queryString(ctx: Context, key: string): string | undefined {
  const v = ctx.query[key];
  return typeof v === "string" ? v : undefined;
}

export function registerUploads(router: Router, s: Services): void {
  router.post(START, async (ctx) => {
    const name = repository(ctx);
    const mount = queryString(ctx, "mount");
    const from = queryString(ctx, "from");
    if (mount !== undefined) {
      const digest = tryParseDigest(mount);
      const source = from ? repositoryName(from) : undefined;
      if (digest) {
        const size = source !== undefined ? await mountableFrom(ctx, s, source, digest) : await mountableAnywhere(ctx, s, digest);
        const linked = size === undefined ? undefined : await s.uploads.mount(name, digest, size);
        if (linked !== undefined) {
          s.events.emit(requestEvent(ctx, "mount", { kind: "blob", repository: name, digest, fromRepository: source, mediaType: "application/octet-stream", size: linked }));
          return created(ctx, name, digest);
        }
      }
    }
    const digestParam = queryString(ctx, "digest");
    if (digestParam !== undefined) {
      const digest = parseDigest(digestParam);
      const size = await s.uploads.monolithic(name, digest, requestBody(ctx), contentLength(ctx));
      s.events.emit(requestEvent(ctx, "push", { kind: "blob", repository: name, digest, mediaType: "application/octet-stream", size }));
      return created(ctx, name, digest);
    }
    progress(ctx, await s.uploads.start(name), 202);
  });

  router.get(SESSION, async (ctx) => {
    const session = await s.uploads.status(repository(ctx), capture(ctx, 1));
    progress(ctx, session, 204);
  });

  router.patch(SESSION, async (ctx) => {
    const name = repository(ctx);
    const session = await s.uploads.append(name, capture(ctx, 1), requestBody(ctx), contentRange(ctx), contentLength(ctx));
    progress(ctx, session, 202);
  });

  router.put(SESSION, async (ctx) => {
    const name = repository(ctx);
    const d = queryString(ctx, "digest");
    if (d === undefined) throw new BadRequestError("digest", "the digest query parameter is required to complete an upload");
    const digest = parseDigest(d);
    const size = await s.uploads.complete(name, capture(ctx, 1), digest, hasBody(ctx) ? requestBody(ctx) : undefined, contentRange(ctx), contentLength(ctx));
    s.events.emit(requestEvent(ctx, "push", { kind: "blob", repository: name, digest, mediaType: "application/octet-stream", size }));
    created(ctx, name, digest);
  });

  router.delete(SESSION, async (ctx) => {
    await s.uploads.cancel(repository(ctx), capture(ctx, 1));
    ctx.status = 204;
    ctx.body = null;
    ctx.status = 204;
  });
}

/**
 * Size of a blob a mount from `source` may link: the caller must be allowed to pull `source`.
 * Otherwise undefined, and the mount falls back to an upload (202) without telling whether the
 * blob exists there.
 */
async function mountableFrom(ctx: Context, s: Services, source: string, digest: Digest): Promise<number | undefined> {
  return mayPull(ctx, source) ? s.blobs.sizeIn(source, digest) : undefined;
}

/** Size of a blob the automatic mount (no `from`) may link: it must be in a repository the caller may pull. */
async function mountableAnywhere(ctx: Context, s: Services, digest: Digest): Promise<number | undefined> {
  const size = await s.blobs.globalSize(digest);
  const id = identityOf(ctx);
  if (size === undefined || id === undefined) return size;
  let checked = 0;
  for (const repo of await s.repositories.repositories()) {
    if (!id.canRead(repo)) continue;
    if ((await s.blobs.sizeIn(repo, digest)) !== undefined) return size;
    if (++checked >= 100) break;
  }
  return undefined;
}
