/**
 * Domain errors thrown by the registry's services. They say what went wrong in registry
 * terms; `http/errors.ts` is the one place that maps them (and core's parse errors, and
 * storage errors) to OCI error codes and HTTP statuses.
 */

export type UnknownKind = "blob" | "manifest" | "repository" | "upload";

export class UnknownError extends Error {
  constructor(
    readonly kind: UnknownKind,
    readonly id: string,
  ) {
    super(`${kind} unknown: ${id}`);
    this.name = "UnknownError";
  }
}

/** A chunk that does not continue the upload where it stands (offset = bytes held). */
export class UploadRangeError extends Error {
  constructor(
    readonly offset: number,
    readonly location: string,
    message: string,
  ) {
    super(message);
    this.name = "UploadRangeError";
  }
}

/** A blob read range outside the blob. */
export class BlobRangeError extends Error {
  constructor(readonly size: number) {
    super("requested range not satisfiable");
    this.name = "BlobRangeError";
  }
}

/** A manifest references a blob or child manifest that the repository does not hold. */
export class ManifestReferenceError extends Error {
  constructor(
    readonly digest: string,
    message: string,
  ) {
    super(message);
    this.name = "ManifestReferenceError";
  }
}

export class ManifestTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`manifest exceeds the ${limit}-byte limit`);
    this.name = "ManifestTooLargeError";
  }
}

export class BadRequestError extends Error {
  constructor(
    readonly kind: "upload" | "size" | "name" | "digest" | "manifest" | "tag",
    message: string,
  ) {
    super(message);
    this.name = "BadRequestError";
  }
}

export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedError";
  }
}

/** A backing service (Redis, object storage) is unreachable; the client should retry. */
export class UnavailableError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = "UnavailableError";
  }
}
