/**
 * The one registry of OCI Distribution error codes. Each code is registered exactly once
 * (registering twice throws at load time) with its HTTP status and default message.
 * Servers throw `OciError`; exactly one place renders `{"errors":[...]}` (see `toErrorBody`).
 */

export interface ErrorCodeDescriptor {
  readonly code: string;
  readonly status: number;
  readonly message: string;
  readonly description: string;
}

const registry = new Map<string, ErrorCodeDescriptor>();

function register(code: string, status: number, message: string, description: string): ErrorCodeDescriptor {
  if (registry.has(code)) throw new Error(`error code ${code} registered twice`);
  const d = Object.freeze({ code, status, message, description });
  registry.set(code, d);
  return d;
}

export const ErrorCodes = {
  BLOB_UNKNOWN: register("BLOB_UNKNOWN", 404, "blob unknown to registry", "The blob is not known to the repository."),
  BLOB_UPLOAD_INVALID: register("BLOB_UPLOAD_INVALID", 400, "blob upload invalid", "The upload failed or the chunk was invalid."),
  BLOB_UPLOAD_UNKNOWN: register(
    "BLOB_UPLOAD_UNKNOWN",
    404,
    "blob upload unknown to registry",
    "The upload session is not known (cancelled, completed or expired).",
  ),
  DIGEST_INVALID: register("DIGEST_INVALID", 400, "provided digest did not match uploaded content", "The digest is malformed or does not match the content."),
  MANIFEST_BLOB_UNKNOWN: register(
    "MANIFEST_BLOB_UNKNOWN",
    400,
    "manifest references a manifest or blob unknown to registry",
    "A blob or child manifest referenced by the manifest is not in the repository.",
  ),
  MANIFEST_INVALID: register("MANIFEST_INVALID", 400, "manifest invalid", "The manifest failed validation."),
  MANIFEST_UNKNOWN: register("MANIFEST_UNKNOWN", 404, "manifest unknown to registry", "The manifest is not known to the repository."),
  TAG_INVALID: register("TAG_INVALID", 400, "manifest tag is not valid", "The tag in the request path is not a valid tag."),
  NAME_INVALID: register("NAME_INVALID", 400, "invalid repository name", "The repository name is not valid."),
  NAME_UNKNOWN: register("NAME_UNKNOWN", 404, "repository name not known to registry", "The repository is not known."),
  SIZE_INVALID: register("SIZE_INVALID", 400, "provided length did not match content length", "The content length does not match the declared size."),
  UNAUTHORIZED: register("UNAUTHORIZED", 401, "authentication required", "The client is not authenticated."),
  DENIED: register("DENIED", 403, "requested access to the resource is denied", "The client may not access the resource."),
  UNSUPPORTED: register("UNSUPPORTED", 405, "the operation is unsupported", "The operation is not supported by this registry."),
  TOOMANYREQUESTS: register("TOOMANYREQUESTS", 429, "too many requests", "The client sent too many requests."),
  RANGE_INVALID: register("RANGE_INVALID", 416, "requested range not satisfiable", "The requested range or chunk offset is not satisfiable."),
  UNAVAILABLE: register("UNAVAILABLE", 503, "service unavailable", "A backing service is unavailable; retry later."),
  UNKNOWN: register("UNKNOWN", 500, "unknown error", "An unexpected error occurred."),
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export function lookupErrorCode(code: string): ErrorCodeDescriptor | undefined {
  return registry.get(code);
}

export function allErrorCodes(): ErrorCodeDescriptor[] {
  return [...registry.values()];
}

/** An error a registry returns to its client. `status` defaults to the code's registered status. */
export class OciError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. `Range` with a 416, `Retry-After` with 429/503). */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, opts: { message?: string; detail?: unknown; status?: number; headers?: Record<string, string>; cause?: unknown } = {}) {
    const d = ErrorCodes[code];
    super(opts.message ?? d.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "OciError";
    this.code = code;
    this.status = opts.status ?? d.status;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }
}

export interface ErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

export function toErrorBody(errs: OciError | OciError[]): ErrorBody {
  const list = Array.isArray(errs) ? errs : [errs];
  return {
    errors: list.map((e) => (e.detail === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, detail: e.detail })),
  };
}
