// The errors a layer unpack reports, in a module of their own: the caller's thread (unpack.ts
// rebuilds the errors a worker reports) needs their classes but not the extractor that throws
// them, which it loads only to unpack inline (see unpack.ts).

/** The layer tar is malformed. */
export class TarFormatError extends Error {
  constructor(message: string) {
    super(`invalid layer tar: ${message}`);
    this.name = "TarFormatError";
  }
}

/** The layer tar tried something the extractor refuses (escape, collision, forbidden type...). */
export class UnsafeLayerError extends Error {
  readonly code = "ELAYERUNSAFE";
  constructor(message: string) {
    super(`refusing layer: ${message}`);
    this.name = "UnsafeLayerError";
  }
}

/** The layer is larger than the caller's bound. */
export class LayerTooLargeError extends Error {
  readonly code = "ELAYERTOOLARGE";
  constructor(limit: number) {
    super(`layer exceeds the size limit of ${limit} bytes`);
    this.name = "LayerTooLargeError";
  }
}
