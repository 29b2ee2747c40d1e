/** Request parameters parsed once, at the edge. */
import { type Digest, isValidRepositoryName, isValidTag, parseDigest } from "@strata/core";
import type { Context } from "koa";
import { BadRequestError, UnknownError } from "../errors.js";

/** The i-th regex capture of the matched route ("" when absent). */
export function capture(ctx: Context, i: number): string {
  return ctx.captures?.[i] ?? "";
}

export function repository(ctx: Context): string {
  return repositoryName(capture(ctx, 0));
}

/** A repository name from anywhere in a request (path or query), NAME_INVALID unless valid. */
export function repositoryName(name: string): string {
  if (!isValidRepositoryName(name)) throw new BadRequestError("name", `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
  return name;
}

/** The n-th capture parsed as a digest (DIGEST_INVALID otherwise). */
export function digestAt(ctx: Context, i: number): Digest {
  return parseDigest(capture(ctx, i));
}

/**
 * A manifest reference: a digest when it contains ":", else a tag. A reference that is not a
 * valid tag names no manifest: reading it is MANIFEST_UNKNOWN (as the conformance suite
 * expects), writing it is 400 TAG_INVALID.
 */
export function manifestReference(ctx: Context, i: number, use: "read" | "write" = "write"): { tag?: string; digest?: Digest } {
  const ref = capture(ctx, i);
  if (ref.includes(":")) return { digest: parseDigest(ref) };
  if (!isValidTag(ref)) {
    if (use === "read") throw new UnknownError("manifest", ref.slice(0, 200));
    throw new BadRequestError("tag", `invalid tag ${JSON.stringify(ref.slice(0, 200))}`);
  }
  return { tag: ref };
}

/** Pagination query `n` (non-negative integer) and `last`. */
export function pageQuery(ctx: Context): { n?: number; last?: string } {
  const nRaw = ctx.query.n;
  const lastRaw = ctx.query.last;
  let n: number | undefined;
  if (typeof nRaw === "string" && nRaw !== "") {
    if (!/^\d+$/.test(nRaw)) throw new BadRequestError("upload", "n must be a non-negative integer");
    n = Math.min(Number(nRaw), 10_000);
  }
  return { n, last: typeof lastRaw === "string" && lastRaw !== "" ? lastRaw : undefined };
}

/** `Link` header value for the next page. */
export function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

/** Parses `Content-Range: <start>-<end>` (also tolerates a "bytes " prefix). */
export function contentRange(ctx: Context): { start: number; end?: number } | undefined {
  const h = ctx.get("Content-Range");
  if (!h) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(h.trim());
  if (!m) throw new BadRequestError("upload", `invalid Content-Range ${JSON.stringify(h.slice(0, 100))}`);
  return { start: Number(m[1]), end: Number(m[2]) };
}

export function contentLength(ctx: Context): number | undefined {
  const h = ctx.get("Content-Length");
  if (!h) return undefined;
  if (!/^\d+$/.test(h)) throw new BadRequestError("size", "invalid Content-Length");
  return Number(h);
}

/** Whether the request carries a body (Content-Length > 0, chunked, or HTTP/2 data frames). */
export function hasBody(ctx: Context): boolean {
  const len = ctx.get("Content-Length");
  if (len) return Number(len) > 0;
  // HTTP/2 has no chunked encoding: a request without a body ends with its headers.
  const stream = (ctx.req as { stream?: { endAfterHeaders?: boolean } }).stream;
  if (ctx.req.httpVersionMajor >= 2 && stream) return !stream.endAfterHeaders;
  return ctx.get("Transfer-Encoding").toLowerCase().includes("chunked");
}
