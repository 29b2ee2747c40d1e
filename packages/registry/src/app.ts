/**
 * Builds the registry Koa application from a validated config. Wiring only: storage driver,
 * upload sessions, caches and routes are created here; behaviour lives in their modules.
 */
import Router from "@koa/router";
import { OciError } from "@strata/core";
import { UnsupportedError } from "./errors.js";
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
import { RedisGcState } from "./redis/gcstate.js";
import { RedisConnection } from "./redis/client.js";
import { RedisLocker } from "./redis/locks.js";
import { RedisMetadataStore } from "./redis/metadata.js";
import { RedisSessionStore } from "./redis/sessions.js";
import { INTENT_AGE_MS, RedisIndex, reconcileTagIntents } from "./redis/tagindex.js";
import { BlobStore } from "./services/blobs.js";
import { MemoryDescriptorCache } from "./services/cache.js";
import { GarbageCollector, GcBusyError, GcGuard, GcMetrics, type GcOptions, type GcReport, MemoryGcState } from "./services/gc.js";
import { ImmutableTags, RetentionPolicy } from "./services/retention.js";
import { UsageService } from "./services/usage.js";
import { registerUsage } from "./handlers/usage.js";
import { markServing, withGcLockFile } from "./storage/filesystem-lock.js";
import { Health, storageCheck } from "./services/health.js";
import { StorageRepositoryIndex } from "./services/catalog.js";
import type { Services } from "./services/index.js";
import { ManifestStore, StorageTagIndex } from "./services/manifests.js";
import { MemoryMetadataStore, MetadataService } from "./services/metadata.js";
import { Notifier } from "./services/notifications.js";
import { ProxyService } from "./services/proxy.js";
import { MirrorCache } from "./services/proxycache.js";
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
  /** The garbage collector (services/gc.ts). */
  readonly gc: GarbageCollector;
  /** One collection with the configured gc options, overridden by `opts`; throws GcBusyError while another runs. */
  collectGarbage(opts?: Partial<GcOptions>): Promise<GcReport>;
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
  const descriptorCache = shared?.cache ?? new MemoryDescriptorCache();
  const blobs = new BlobStore(driver, descriptorCache);
  const tagIndex = shared?.index ?? new StorageTagIndex(driver);
  const repositories = shared?.index ?? new StorageRepositoryIndex(driver);
  const sessions = shared?.sessions ?? new MemorySessionStore();
  const gcState = shared?.gc ?? new MemoryGcState();
  const guard = new GcGuard(locks, gcState);
  const immutable = new ImmutableTags(config.immutable);
  const usage = new UsageService(driver, blobs, config.quotas);
  const manifests = new ManifestStore(driver, blobs, tagIndex, locks, guard, config.cache.manifestBytes, { cacheLinks: !shared, immutable, quota: usage.enabled ? usage : undefined });
  const uploads = new UploadService(driver, sessions, blobs, repositories, locks, gcState, {
    quota: usage.enabled ? usage : undefined,
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
  const metrics = createMetrics();
  let proxy: ProxyService | undefined;
  if (config.proxy) {
    const cache = new MirrorCache(config.proxy, { driver, blobs, manifests, locks, logger, metrics: metrics.registry });
    cache.start();
    closers.push(() => cache.close());
    proxy = new ProxyService(config.proxy, { driver, blobs, manifests, repositories, locks, logger, metrics: metrics.registry, maxBlobBytes: config.limits.blobMaxBytes, touch: (r, d, n, k, stored) => cache.touch(r, d, n, k, stored) });
    const p = proxy;
    closers.push(async () => p.close());
  }
  const services: Services = { config, blobs, manifests, uploads, repositories, health, events, metadata, usage, proxy };
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

  // Embedded filesystem storage: `strata gc` on the same directory coordinates through lock files.
  const fsRoot = !shared && config.storage.driver === "filesystem" && !opts.driver ? config.storage.filesystem.root : undefined;
  if (fsRoot !== undefined) {
    // Best effort: a registry on a full or read-only disk still serves (strata gc then cannot see it).
    const unmark = await markServing(fsRoot).catch((e) => {
      logger.warn({ err: (e as Error).message }, "cannot record this registry as serving the data directory; do not run strata gc on it meanwhile");
      return undefined;
    });
    if (unmark) closers.push(unmark);
  }
  const retention = new RetentionPolicy(config.retention, immutable);
  const gc = new GarbageCollector({
    driver,
    guard,
    cache: descriptorCache,
    manifests,
    retention: retention.empty ? undefined : retention,
    exclusive: fsRoot !== undefined ? (fn) => withGcLockFile(fsRoot, fn) : undefined,
    logger,
    metrics: new GcMetrics(metrics.registry),
    events,
  });
  const collectGarbage = async (o: Partial<GcOptions> = {}) => {
    const report = await gc.run({ delaySeconds: config.gc.delaySeconds, untagged: config.gc.untagged, ...o });
    // The embedded repository index learns of repositories the run emptied at once.
    if (repositories instanceof StorageRepositoryIndex) await repositories.walk().catch(() => {});
    return report;
  };
  if (config.gc.intervalSeconds > 0) {
    const timer = setInterval(() => {
      collectGarbage().catch((e) => {
        if (e instanceof GcBusyError) logger.debug("garbage collection skipped: another collector runs");
        else logger.warn({ err: (e as Error).message }, "garbage collection failed");
      });
    }, config.gc.intervalSeconds * 1000);
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
  registerUsage(router, services);
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
  if (proxy?.readOnly) {
    const upstream = config.proxy!.remoteurl ?? config.proxy!.upstreams.map((u) => u.url).join(", ");
    app.use(async (ctx, next) => {
      if (ctx.path.startsWith("/v2/") && ["POST", "PUT", "PATCH", "DELETE"].includes(ctx.method))
        throw new UnsupportedError(`this registry is a read-only pull-through cache of ${upstream}: pushes and deletes are refused (proxy.allowPush enables pushes)`);
      await next();
    });
  }
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
    gc,
    collectGarbage,
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
    gc: new RedisGcState(conn),
    sessions: new RedisSessionStore(conn, config.uploads.ttlSeconds),
  };
}
