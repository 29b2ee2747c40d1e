/**
 * Builds the registry Koa application from a validated config. Wiring only: storage driver,
 * upload sessions, caches and routes are created here; behaviour lives in their modules.
 */
import Router from "@koa/router";
import { OciError } from "@strata/core";
import Koa from "koa";
import { type Logger, pino } from "pino";
import { Auth } from "./auth/index.js";
import { type RegistryConfig, redisConfigured, splitAddr } from "./config.js";
import { EventBus, instance } from "./events.js";
import { registerBase } from "./handlers/base.js";
import { registerBlobs } from "./handlers/blobs.js";
import { registerCatalog } from "./handlers/catalog.js";
import { registerManifests } from "./handlers/manifests.js";
import { registerMeta } from "./handlers/meta.js";
import { registerReferrers } from "./handlers/referrers.js";
import { registerTags } from "./handlers/tags.js";
import { registerUi } from "./handlers/ui.js";
import { registerToken } from "./handlers/token.js";
import { registerUploads } from "./handlers/uploads.js";
import { authMiddleware } from "./http/auth.js";
import { bodyGuard } from "./http/body.js";
import { errorMiddleware } from "./http/errors.js";
import { requestLog } from "./http/logging.js";
import { createMetrics } from "./http/metrics.js";
import { MemoryLocker } from "./locks.js";
import { RedisDescriptorCache } from "./redis/cache.js";
import { RedisConnection } from "./redis/client.js";
import { RedisLocker } from "./redis/locks.js";
import { RedisMetadataStore } from "./redis/metadata.js";
import { RedisSessionStore } from "./redis/sessions.js";
import { INTENT_AGE_MS, RedisIndex, reconcileTagIntents } from "./redis/tagindex.js";
import { BlobStore } from "./services/blobs.js";
import { MemoryDescriptorCache } from "./services/cache.js";
import { Health, storageCheck } from "./services/health.js";
import { StorageRepositoryIndex } from "./services/catalog.js";
import type { Services } from "./services/index.js";
import { ManifestStore, StorageTagIndex } from "./services/manifests.js";
import { MemoryMetadataStore, MetadataService } from "./services/metadata.js";
import { Notifier } from "./services/notifications.js";
import type { StorageDriver } from "./storage/driver.js";
import { createDriver } from "./storage/factory.js";
import { MemorySessionStore } from "./upload/sessions.js";
import { UploadService } from "./upload/uploads.js";

/** A dependency that does not answer a health check within this long is unavailable. */
const HEALTH_DEADLINE_MS = 2000;

export interface Registry {
  readonly app: Koa;
  readonly config: RegistryConfig;
  readonly services: Services;
  readonly notifier: Notifier;
  /** Access control; undefined when the registry is open (no `auth` configured). */
  readonly auth?: Auth;
  /** Stops background work and releases connections (not the HTTP server). */
  close(): Promise<void>;
}

export interface CreateRegistryOptions {
  logger?: Logger;
  /** Use this driver instead of creating the configured one; its owner closes it. */
  driver?: StorageDriver;
}

export async function createRegistry(config: RegistryConfig, opts: CreateRegistryOptions = {}): Promise<Registry> {
  const logger = opts.logger ?? pino({ level: config.log.level });
  const driver = opts.driver ?? (await createDriver(config));
  const closers: (() => Promise<void>)[] = [];
  if (!opts.driver && driver.close) closers.push(() => driver.close!());

  const shared = redisConfigured(config) ? sharedState(config, driver, logger) : undefined;
  if (shared) {
    closers.push(() => shared.conn.close());
    // Serve at once either way: while Redis is unreachable requests answer 503 and recover with it.
    await shared.conn.ready(Math.max(config.redis.commandTimeoutMs, 3000)).catch(() => {});
  }
  const locks = shared?.locks ?? new MemoryLocker();
  const blobs = new BlobStore(driver, shared?.cache ?? new MemoryDescriptorCache());
  const tagIndex = shared?.index ?? new StorageTagIndex(driver);
  const repositories = shared?.index ?? new StorageRepositoryIndex(driver);
  const sessions = shared?.sessions ?? new MemorySessionStore();
  const manifests = new ManifestStore(driver, blobs, tagIndex, locks, config.cache.manifestBytes, { cacheLinks: !shared });
  const uploads = new UploadService(driver, sessions, blobs, repositories, locks, {
    ttlSeconds: config.uploads.ttlSeconds,
    maxBlobBytes: config.limits.blobMaxBytes,
    orphanGraceSeconds: config.uploads.orphanGraceSeconds,
  });
  const s3 = config.storage.s3;
  const createBucket = s3?.createBucket && !opts.driver ? async () => (await import("./storage/s3-client.js")).ensureBucket(s3) : undefined;
  const health = new Health(
    { storage: storageCheck(driver, createBucket), ...(shared ? { redis: () => shared.conn.ping() } : {}) },
    HEALTH_DEADLINE_MS,
    logger,
  );
  // One look at the dependencies before serving: a missing bucket, wrong credentials or an
  // unreachable Redis is logged with its cause (the server serves anyway and recovers with them).
  await health.probe();
  const events = new EventBus();
  const metadata = new MetadataService(shared ? new RedisMetadataStore(shared.conn) : new MemoryMetadataStore(), events, { driver, manifests, blobs, locks, logger }, {
    persistPulls: !shared && config.storage.driver !== "memory",
  });
  closers.push(() => metadata.close());
  const services: Services = { config, blobs, manifests, uploads, repositories, health, events, metadata };
  const metrics = createMetrics();
  const notifier = new Notifier(config.notifications.endpoints, events, metrics.registry, logger, () => `${instance.hostname}:${splitAddr(config.addr).port}`);
  closers.push(() => notifier.close());

  if (config.uploads.purgeIntervalSeconds > 0) {
    const purge = async () => {
      await locks.withLock("purge", async () => {
        await uploads.purge();
        if (config.storage.driver === "s3") {
          // Multipart uploads nobody writes any more: expired sessions' were aborted by purge().
          const { abortStaleMultipartUploads, sweepOrphans } = await import("./storage/s3.js");
          const cutoff = new Date(Date.now() - config.uploads.orphanGraceSeconds * 1000);
          await abortStaleMultipartUploads(config.storage.s3!, cutoff, (key) => uploads.writerMayBeLive(key));
          // Bytes of parts-written objects that no pointer uses any more (s3-pointers.ts).
          await sweepOrphans(config.storage.s3!, cutoff);
        }
      });
    };
    const timer = setInterval(() => {
      purge().catch((e) => logger.warn({ err: (e as Error).message }, "upload purge failed"));
    }, config.uploads.purgeIntervalSeconds * 1000);
    timer.unref();
    closers.push(async () => clearInterval(timer));
  }

  let auth: Auth | undefined;
  try {
    auth = await Auth.create(config, { logger, redis: shared?.conn });
  } catch (e) {
    for (const c of closers.reverse()) await c();
    throw e;
  }

  if (shared) {
    // Tag writes a crash interrupted are settled from storage (readers already see storage meanwhile).
    const reconcile = () =>
      reconcileTagIntents(shared.index, shared.conn, locks).catch((e) => logger.warn({ err: (e as Error).message }, "tag index reconcile failed"));
    void reconcile();
    const timer = setInterval(reconcile, INTENT_AGE_MS / 2);
    timer.unref();
    closers.push(async () => clearInterval(timer));
  }

  const app = new Koa();
  app.proxy = false;
  app.silent = true;
  const router = new Router();
  registerBase(router, services);
  registerCatalog(router, services);
  registerTags(router, services);
  registerReferrers(router, services);
  registerUploads(router, services);
  registerManifests(router, services);
  registerBlobs(router, services);
  registerMeta(router, services, auth);
  if (config.ui.enabled) await registerUi(router, logger);
  if (auth?.issuer) registerToken(router, auth);

  app.use(requestLog(logger));
  app.use(metrics.middleware());
  app.use(async (ctx, next) => {
    ctx.set("Docker-Distribution-API-Version", "registry/2.0");
    await next();
  });
  app.use(bodyGuard());
  app.use(errorMiddleware(logger));
  if (auth) app.use(authMiddleware(auth));
  app.use(router.routes());
  app.use(
    router.allowedMethods({
      throw: true,
      methodNotAllowed: () => new OciError("UNSUPPORTED", { message: "method not allowed" }),
      notImplemented: () => new OciError("UNSUPPORTED", { message: "method not implemented" }),
    }),
  );

  return {
    app,
    config,
    services,
    notifier,
    auth,
    async close() {
      for (const c of closers.reverse()) await c();
    },
  };
}

/** Redis-backed sessions, caches, index and locks shared by every replica. */
function sharedState(config: RegistryConfig, driver: StorageDriver, logger: Logger) {
  const conn = new RedisConnection(config.redis, logger);
  const index = new RedisIndex(conn, driver);
  return {
    conn,
    index,
    locks: new RedisLocker(conn, config.redis.lockTtlMs),
    cache: new RedisDescriptorCache(conn),
    sessions: new RedisSessionStore(conn, config.uploads.ttlSeconds),
  };
}
