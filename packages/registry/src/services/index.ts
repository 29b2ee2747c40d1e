import type { RegistryConfig } from "../config.js";
import type { EventBus } from "../events.js";
import type { UploadService } from "../upload/uploads.js";
import type { BlobStore } from "./blobs.js";
import type { Health } from "./health.js";
import type { RepositoryIndex } from "./catalog.js";
import type { ManifestStore } from "./manifests.js";
import type { MetadataService } from "./metadata.js";
import type { UsageService } from "./usage.js";
import type { ProxyService } from "./proxy.js";

/** Everything a request handler may use. */
export interface Services {
  readonly config: RegistryConfig;
  readonly blobs: BlobStore;
  readonly manifests: ManifestStore;
  readonly uploads: UploadService;
  readonly repositories: RepositoryIndex;
  /** Whether storage and Redis answer (/healthz, /readyz). */
  readonly health: Health;
  /** Handlers emit push, pull, delete and mount here (see events.ts). */
  readonly events: EventBus;
  readonly metadata: MetadataService;
  /** Storage usage per repository and quota (GET /strata/v1/usage). */
  readonly usage: UsageService;
  /** Set when the registry is a pull-through cache (config `proxy`). */
  readonly proxy?: ProxyService;
}
