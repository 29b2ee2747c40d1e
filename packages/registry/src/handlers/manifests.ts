/** GET, HEAD, PUT and DELETE /v2/<name>/manifests/<reference>. */
import type Router from "@koa/router";
import type { Context } from "koa";
import { ManifestTooLargeError, UnknownError, UnsupportedError } from "../errors.js";
import { requestEvent } from "../events.js";
import { requestBody } from "../http/body.js";
import { manifestReference, nsQuery, repository } from "../http/params.js";
import type { Services } from "../services/index.js";

const PATH = /^\/v2\/(.+?)\/manifests\/([^/]+)$/;

/** Whether an Accept header admits a media type (no header, or a wildcard, admits all). */
export function accepts(header: string, mediaType: string): boolean {
  if (!header.trim()) return true;
  return header
    .split(",")
    .map((p) => p.split(";")[0].trim().toLowerCase())
    .some((t) => t === mediaType || t === "*/*" || t === "application/*" || t === "");
}

async function readBody(ctx: Context, limit: number): Promise<Buffer> {
  const declared = Number(ctx.get("Content-Length"));
  if (declared > limit) throw new ManifestTooLargeError(limit);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of requestBody(ctx) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new ManifestTooLargeError(limit);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

export function registerManifests(router: Router, s: Services): void {
  const read = async (ctx: Context) => {
    const name = repository(ctx);
    const ref = manifestReference(ctx, 1, "read");
    const route = s.proxy?.route(name, nsQuery(ctx));
    let m;
    if (route) {
      const r = await s.proxy!.manifest(route, ref);
      m = r.manifest;
      if (r.warning) ctx.set("Warning", r.warning);
    } else m = await s.manifests.get(name, ref);
    if (!accepts(ctx.get("Accept"), m.mediaType)) throw new UnknownError("manifest", `${m.digest} (not in the accepted media types)`);
    ctx.set("Docker-Content-Digest", m.digest);
    ctx.set("ETag", `"${m.digest}"`);
    if (ctx.method === "HEAD") {
      ctx.body = null;
      ctx.status = 200;
      ctx.length = m.raw.length;
      ctx.type = m.mediaType;
      return;
    }
    ctx.body = m.raw;
    ctx.type = m.mediaType;
    s.events.emit(requestEvent(ctx, "pull", { kind: "manifest", repository: name, digest: m.digest, tag: ref.tag, mediaType: m.mediaType, size: m.raw.length }));
  };
  router.get(PATH, read);
  router.head(PATH, read);

  router.put(PATH, async (ctx) => {
    const name = repository(ctx);
    const ref = manifestReference(ctx, 1);
    const raw = await readBody(ctx, s.config.limits.manifestMaxBytes);
    const r = await s.manifests.put(name, ref, raw, ctx.get("Content-Type") || undefined);
    await s.repositories.added(name);
    s.events.emit(requestEvent(ctx, "push", { kind: "manifest", repository: name, digest: r.digest, tag: ref.tag, mediaType: r.mediaType, size: raw.length }));
    ctx.status = 201;
    ctx.set("Location", `/v2/${name}/manifests/${r.digest}`);
    ctx.set("Docker-Content-Digest", r.digest);
    if (r.subject) ctx.set("OCI-Subject", r.subject);
    ctx.body = null;
    ctx.status = 201;
    ctx.length = 0;
  });

  router.delete(PATH, async (ctx) => {
    if (!s.config.delete.enabled) throw new UnsupportedError("deletes are disabled");
    const name = repository(ctx);
    const ref = manifestReference(ctx, 1);
    if (ref.digest) await s.manifests.delete(name, ref.digest);
    else await s.manifests.untag(name, ref.tag!);
    s.events.emit(requestEvent(ctx, "delete", { kind: ref.digest ? "manifest" : "tag", repository: name, digest: ref.digest, tag: ref.tag }));
    ctx.status = 202;
    ctx.body = null;
    ctx.status = 202;
    ctx.length = 0;
  });
}
