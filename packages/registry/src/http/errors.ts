/**
 * The one place where errors become responses. Handlers and services throw (domain errors,
 * core parse errors, storage errors); this middleware maps each to an OCI error code and
 * renders `{"errors":[...]}`. Unexpected errors are logged and answered as a bare 500
 * UNKNOWN: no message or stack trace of an internal error leaves the server.
 */
import { DigestMismatchError, InvalidDigestError, InvalidManifestError, InvalidReferenceError, OciError, SizeMismatchError, toErrorBody } from "@strata/core";
import type { Context, Next } from "koa";
import type { Logger } from "pino";
import {
  BadRequestError,
  BlobRangeError,
  ManifestReferenceError,
  ManifestTooLargeError,
  UnavailableError,
  UnknownError,
  UnsupportedError,
  UploadRangeError,
} from "../errors.js";
import { StorageFullError, StorageUnavailableError } from "../storage/driver.js";

const UNKNOWN_CODES = { blob: "BLOB_UNKNOWN", manifest: "MANIFEST_UNKNOWN", repository: "NAME_UNKNOWN", upload: "BLOB_UPLOAD_UNKNOWN" } as const;
const BAD_REQUEST_CODES = {
  upload: "BLOB_UPLOAD_INVALID",
  size: "SIZE_INVALID",
  name: "NAME_INVALID",
  digest: "DIGEST_INVALID",
  manifest: "MANIFEST_INVALID",
  tag: "TAG_INVALID",
} as const;

/** Maps any thrown value to the OciError that answers it, or undefined for internal errors. */
export function toOciError(e: unknown): OciError | undefined {
  if (e instanceof OciError) return e;
  if (e instanceof UnknownError)
    return new OciError(UNKNOWN_CODES[e.kind], { detail: { [e.kind === "repository" ? "name" : e.kind === "upload" ? "uuid" : "digest"]: e.id } });
  if (e instanceof UploadRangeError) {
    return new OciError("BLOB_UPLOAD_INVALID", {
      status: 416,
      message: e.message,
      headers: { Range: `0-${Math.max(0, e.offset - 1)}`, Location: e.location, "Content-Length": "0" },
    });
  }
  if (e instanceof BlobRangeError) return new OciError("RANGE_INVALID", { headers: { "Content-Range": `bytes */${e.size}` } });
  if (e instanceof ManifestReferenceError) return new OciError("MANIFEST_BLOB_UNKNOWN", { message: e.message, detail: { digest: e.digest } });
  if (e instanceof ManifestTooLargeError) return new OciError("SIZE_INVALID", { status: 413, message: e.message });
  if (e instanceof BadRequestError) return new OciError(BAD_REQUEST_CODES[e.kind], { message: e.message });
  if (e instanceof UnsupportedError) return new OciError("UNSUPPORTED", { message: e.message });
  if (e instanceof UnavailableError || e instanceof StorageUnavailableError) return new OciError("UNAVAILABLE", { headers: { "Retry-After": "1" } });
  if (e instanceof StorageFullError) return new OciError("UNKNOWN", { status: 507, message: "storage full" });
  if (e instanceof InvalidReferenceError) return new OciError("NAME_INVALID", { message: e.message });
  if (e instanceof DigestMismatchError) return new OciError("DIGEST_INVALID", { message: e.message });
  if (e instanceof InvalidDigestError) return new OciError("DIGEST_INVALID", { message: e.message });
  if (e instanceof SizeMismatchError) return new OciError("SIZE_INVALID", { message: e.message });
  if (e instanceof InvalidManifestError) return new OciError("MANIFEST_INVALID", { message: e.message });
  return undefined;
}

/** A full store is logged once per this many ms, not once per failing request. */
const FULL_LOG_EVERY_MS = 60_000;

export function errorMiddleware(logger?: Logger) {
  let fullLoggedAt = 0;
  let fullSince = 0;
  return async function errors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined && !ctx.state.handled) throw new OciError("UNSUPPORTED", { status: 404, message: "no such endpoint" });
    } catch (e) {
      let oci = toOciError(e);
      if (!oci) {
        ctx.state.error = e;
        oci = new OciError("UNKNOWN");
      } else if (e instanceof StorageFullError) {
        fullSince++;
        if (Date.now() - fullLoggedAt >= FULL_LOG_EVERY_MS) {
          logger?.error({ err: e.message, failedWrites: fullSince }, "storage full: writes fail with 507 until space is freed");
          fullLoggedAt = Date.now();
          fullSince = 0;
        }
      } else if (oci.status >= 500) {
        ctx.state.error = e;
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.req.socket.destroy();
        return;
      }
      ctx.status = oci.status;
      ctx.set(oci.headers);
      ctx.remove("Content-Length");
      ctx.remove("Docker-Content-Digest");
      ctx.type = "application/json";
      ctx.body = ctx.method === "HEAD" ? null : toErrorBody(oci);
      if (ctx.method === "HEAD") ctx.status = oci.status;
    }
  };
}
