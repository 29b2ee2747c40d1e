/**
 * S3 client construction and error classification shared by the S3 driver, its writer and
 * the upload purger. Every SDK call made by the driver goes through `s3Call`, which turns
 * SDK/network failures into the driver error classes:
 *   404 / NoSuchKey                       -> PathNotFoundError
 *   network errors, timeouts, 5xx, 429,
 *   throttling, auth failures, no bucket  -> StorageUnavailableError (after the SDK's retries)
 *   aborted by the caller's signal        -> the abort error, unchanged
 *   anything else                         -> StorageError
 */
import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Duplex } from "node:stream";
import { CreateBucketCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { S3Config } from "../config.js";
import { PathNotFoundError, StorageError, StorageUnavailableError } from "./driver.js";

export const DRIVER_NAME = "s3";

/**
 * Every socket to the object store carries an error listener of its own. A server may answer
 * and close while a request body is still being written (a missing bucket, a 403, a restart);
 * the write then fails with EPIPE/ECONNRESET at a moment when no request owns the socket any
 * more, and an unlistened socket error would end the process. The request that was using the
 * socket still sees the error through its own listener.
 */
function guardSocket<S extends Duplex | null | undefined>(socket: S): S {
  socket?.on("error", () => {});
  return socket;
}

class GuardedHttpAgent extends HttpAgent {
  override createConnection(...args: Parameters<HttpAgent["createConnection"]>): ReturnType<HttpAgent["createConnection"]> {
    return guardSocket(super.createConnection(...args));
  }
}

class GuardedHttpsAgent extends HttpsAgent {
  override createConnection(...args: Parameters<HttpsAgent["createConnection"]>): ReturnType<HttpsAgent["createConnection"]> {
    return guardSocket(super.createConnection(...args));
  }
}

/** Builds an S3 client for the config: bounded retries, socket timeouts, no optional checksums. */
export function createS3Client(cfg: S3Config): S3Client {
  const agentOpts = { keepAlive: true, maxSockets: 64 };
  const conf: S3ClientConfig = {
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    maxAttempts: cfg.maxAttempts,
    retryMode: "standard",
    // Servers such as Swift's s3api do not know the newer flexible checksums.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: {
      // Inactivity timeout: a stalled connection fails, a long healthy transfer does not.
      socketTimeout: cfg.requestTimeoutMs,
      connectionTimeout: Math.min(cfg.requestTimeoutMs, 10_000),
      httpAgent: new GuardedHttpAgent(agentOpts),
      httpsAgent: new GuardedHttpsAgent(agentOpts),
    },
  };
  if (cfg.endpoint) conf.endpoint = cfg.endpoint;
  if (cfg.accessKeyId && cfg.secretAccessKey) {
    conf.credentials = { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey, sessionToken: cfg.sessionToken };
  }
  const client = new S3Client(conf);
  // DeleteObjects must carry Content-MD5 on servers that predate the flexible checksums
  // (Swift's s3api rejects a multi-delete without it); S3 accepts it as well.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "DeleteObjectsCommand") {
        const req = args.request as { headers?: Record<string, string>; body?: unknown };
        const body = req.body;
        if (req.headers && (typeof body === "string" || body instanceof Uint8Array)) {
          req.headers["content-md5"] = createHash("md5").update(body).digest("base64");
        }
      }
      return next(args);
    },
    { step: "build", name: "strataContentMd5", priority: "low" },
  );
  return client;
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const UNAVAILABLE_NAMES = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ServiceUnavailable",
  "InternalError",
  "NoSuchBucket",
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE", "ECONNABORTED"]);

export function statusOf(e: unknown): number | undefined {
  return (e as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

export function errorName(e: unknown): string {
  const x = e as SdkErrorShape | undefined;
  return x?.name ?? x?.Code ?? "";
}

/** Whether `e` is the cancellation of a request by an AbortSignal. */
export function isAbortError(e: unknown, signal?: AbortSignal): boolean {
  return (signal?.aborted ?? false) || errorName(e) === "AbortError";
}

/** Maps an SDK or network error for `key` onto the driver error classes. */
export function classifyS3Error(e: unknown, key: string, signal?: AbortSignal): Error {
  if (e instanceof StorageError) return e;
  if (isAbortError(e, signal)) {
    if (signal?.aborted && signal.reason instanceof Error) return signal.reason;
    return e instanceof Error ? e : new Error(String(e));
  }
  const x = e as SdkErrorShape;
  const name = errorName(e);
  const status = statusOf(e);
  const msg = `${name || "error"}${status ? ` (HTTP ${status})` : ""}: ${x?.message ?? String(e)}`;
  if (name === "NoSuchKey" || name === "NotFound" || (status === 404 && name !== "NoSuchBucket" && name !== "NoSuchUpload")) {
    return new PathNotFoundError(DRIVER_NAME, key);
  }
  if (
    UNAVAILABLE_NAMES.has(name) ||
    (status !== undefined && (status >= 500 || status === 429 || status === 401 || status === 403)) ||
    (x?.code !== undefined && NETWORK_CODES.has(x.code)) ||
    status === undefined
  ) {
    return new StorageUnavailableError(DRIVER_NAME, key, `object storage unavailable: ${msg}`, { cause: e });
  }
  return new StorageError(DRIVER_NAME, key, msg, { cause: e });
}

/** Runs one SDK call, translating its failure (see classifyS3Error). */
export async function s3Call<T>(key: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  signal?.throwIfAborted();
  try {
    return await fn();
  } catch (e) {
    throw classifyS3Error(e, key, signal);
  }
}

/** Creates the bucket unless it exists already (idempotent). */
export async function ensureBucket(cfg: S3Config, client?: S3Client): Promise<void> {
  const c = client ?? createS3Client(cfg);
  try {
    await c.send(new CreateBucketCommand({ Bucket: cfg.bucket }));
  } catch (e) {
    const name = errorName(e);
    if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") throw classifyS3Error(e, `bucket ${cfg.bucket}`);
  } finally {
    if (!client) c.destroy();
  }
}
