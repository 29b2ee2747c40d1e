/** Registry subcommands of `strata`: serve, index rebuild, fsck, gc, usage. */
import type { Command } from "commander";

interface ConfigFlags {
  config?: string;
  addr?: string;
  data?: string;
}

export function registerRegistryCommands(program: Command): void {
  program
    .command("serve")
    .description("run the registry")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--addr <host:port>", "listen address (default 127.0.0.1:5000)")
    .option("--data <dir>", "filesystem storage root (default ./data)")
    .action(async (opts: ConfigFlags) => {
      const { serve } = await import("./server.js");
      await serve({ file: opts.config, overrides: { addr: opts.addr, data: opts.data } });
    });

  const index = program.command("index").description("maintain the Redis tag and repository index and metadata summary");
  index
    .command("rebuild")
    .description("recreate the tag and repository index and the metadata summary in Redis from storage")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--data <dir>", "filesystem storage root")
    .action(async (opts: ConfigFlags) => {
      const { loadConfig, redisConfigured } = await import("./config.js");
      const config = await loadConfig({ file: opts.config, overrides: { data: opts.data } });
      if (!redisConfigured(config)) throw new Error("index rebuild needs redis.url or redis.sentinels (the index lives in Redis)");
      await withStorage(config, async (driver) => {
        const r = await rebuild(config, driver);
        process.stdout.write(`index rebuilt: ${r.repositories} repositories, ${r.tags} tags\n`);
      });
    });

  program
    .command("fsck")
    .description("repair what interrupted writes left in storage (dangling links, temp files, empty and link-less tag directories), then rebuild the Redis index")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--data <dir>", "filesystem storage root")
    .option("--grace <seconds>", "leave filesystem debris younger than this alone (writes of a running registry)", "600")
    .option("--dry-run", "report what would be repaired, change nothing")
    .action(async (opts: ConfigFlags & { grace: string; dryRun?: boolean }) => {
      const { loadConfig, redisConfigured } = await import("./config.js");
      const { fsck } = await import("./services/fsck.js");
      const config = await loadConfig({ file: opts.config, overrides: { data: opts.data } });
      const grace = Number(opts.grace);
      if (!Number.isFinite(grace) || grace < 0) throw new Error(`--grace must be a number of seconds, got ${JSON.stringify(opts.grace)}`);
      await withStorage(config, async (driver) => {
        const repairs = await fsck(driver, {
          filesystemRoot: config.storage.driver === "filesystem" ? config.storage.filesystem.root : undefined,
          graceMs: grace * 1000,
          dryRun: opts.dryRun,
        });
        for (const r of repairs) process.stdout.write(`${opts.dryRun ? "would remove" : "removed"} ${r.kind} ${r.key}\n`);
        process.stdout.write(`fsck: ${repairs.length} ${opts.dryRun ? "problems found" : "repairs"}\n`);
        if (redisConfigured(config) && !opts.dryRun) {
          const r = await rebuild(config, driver);
          process.stdout.write(`index rebuilt: ${r.repositories} repositories, ${r.tags} tags\n`);
        }
      });
    });

  program
    .command("gc")
    .description("collect garbage: delete blobs and links no tag reaches (online; one collector at a time), print what goes and the bytes freed")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--data <dir>", "filesystem storage root")
    .option("--dry-run", "print what would be deleted, delete nothing")
    .option("--delay <seconds>", "keep everything younger than this (default: gc.delaySeconds, 3600)")
    .option("--untagged <mode>", "delete: also collect manifests no tag reaches; keep: never (default: gc.untagged)")
    .action(async (opts: ConfigFlags & { dryRun?: boolean; delay?: string; untagged?: string }) => {
      const { loadConfig, redisConfigured } = await import("./config.js");
      const config = await loadConfig({ file: opts.config, overrides: { data: opts.data } });
      const delay = opts.delay === undefined ? config.gc.delaySeconds : Number(opts.delay);
      if (!Number.isSafeInteger(delay) || delay < 0) throw new Error(`--delay must be a whole number of seconds, got ${JSON.stringify(opts.delay)}`);
      if (opts.untagged !== undefined && opts.untagged !== "delete" && opts.untagged !== "keep") throw new Error(`--untagged must be delete or keep, got ${JSON.stringify(opts.untagged)}`);
      const untagged = (opts.untagged as "delete" | "keep" | undefined) ?? config.gc.untagged;
      const { formatAction } = await import("./services/gc.js");
      const run = () =>
        withStorage(config, async (driver) => {
          const reg = await quietRegistry(config, driver);
          try {
            const report = await reg.collectGarbage({ delaySeconds: delay, untagged, dryRun: opts.dryRun ?? false });
            for (const a of report.actions) process.stdout.write(`${formatAction(a, report.dryRun)}\n`);
            const verb = report.dryRun ? "would free" : "freed";
            process.stdout.write(`gc: ${report.blobsDeleted} blobs, ${verb} ${report.bytesFreed} bytes, ${report.actions.length - report.blobsDeleted} links and tags${report.dryRun ? " (dry run)" : ""} in ${report.durationMs} ms\n`);
          } finally {
            await reg.close();
          }
        });
      if (config.storage.driver === "filesystem" && !redisConfigured(config)) {
        // Embedded storage: the serving registry collects itself (its locks and caches are in its process).
        const { servingPid, withGcLockFile } = await import("./storage/filesystem-lock.js");
        const root = config.storage.filesystem.root;
        await withGcLockFile(root, async () => {
          const pid = await servingPid(root);
          if (pid !== undefined) throw new Error(`a registry (pid ${pid}) serves ${root}: stop it first, or let it collect (gc.intervalSeconds)`);
          await run();
        });
      } else if (config.storage.driver === "memory") {
        throw new Error("gc needs persistent storage (storage.driver filesystem or s3)");
      } else {
        if (!redisConfigured(config)) process.stderr.write("warning: without redis, no registry may serve this storage while strata gc runs (nothing coordinates them)\n");
        await run();
      }
    });

  program
    .command("usage")
    .description("bytes of distinct blobs linked per repository and per quota, read from storage")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--data <dir>", "filesystem storage root")
    .option("--json", "print the JSON GET /strata/v1/usage answers")
    .action(async (opts: ConfigFlags & { json?: boolean }) => {
      const { loadConfig } = await import("./config.js");
      const { UsageService } = await import("./services/usage.js");
      const { BlobStore } = await import("./services/blobs.js");
      const { MemoryDescriptorCache } = await import("./services/cache.js");
      const config = await loadConfig({ file: opts.config, overrides: { data: opts.data } });
      await withStorage(config, async (driver) => {
        const u = await new UsageService(driver, new BlobStore(driver, new MemoryDescriptorCache()), config.quotas).usage();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(u, null, 2)}\n`);
          return;
        }
        const rows = [["REPOSITORY", "BYTES", "BLOBS"], ...u.repositories.map((r) => [r.name, String(r.bytes), String(r.blobs)])];
        for (const q of u.quotas) rows.push([q.quota, `${q.usedBytes}/${q.maxBytes}`, ""]);
        const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
        for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd()}\n`);
      });
    });
}

/** A registry over `driver` without background work or UI, for one-shot commands. */
async function quietRegistry(config: Config, driver: Driver) {
  const { createRegistry } = await import("./app.js");
  const { pino } = await import("pino");
  return createRegistry(
    { ...config, ui: { enabled: false }, notifications: { endpoints: [] }, gc: { ...config.gc, intervalSeconds: 0 }, uploads: { ...config.uploads, purgeIntervalSeconds: 0 } },
    { logger: pino({ level: "warn" }), driver },
  );
}

type Config = import("./config.js").RegistryConfig;
type Driver = import("./storage/driver.js").StorageDriver;

async function withStorage(config: Config, fn: (driver: Driver) => Promise<void>): Promise<void> {
  const { createDriver } = await import("./storage/factory.js");
  const driver = await createDriver(config);
  try {
    await fn(driver);
  } finally {
    await driver.close?.();
  }
}

async function rebuild(config: Config, driver: Driver): Promise<{ repositories: number; tags: number }> {
  const { RedisConnection } = await import("./redis/client.js");
  const { rebuildIndex } = await import("./redis/tagindex.js");
  const { dropMetadata } = await import("./redis/metadata.js");
  const conn = new RedisConnection(config.redis);
  let counts: { repositories: number; tags: number };
  try {
    await conn.ready();
    counts = await rebuildIndex(conn, driver);
    await dropMetadata(conn);
  } finally {
    await conn.close();
  }
  // the metadata summary (/strata/v1, the UI) is rebuilt from storage once the index is
  const { createRegistry } = await import("./app.js");
  const { pino } = await import("pino");
  const reg = await createRegistry({ ...config, ui: { enabled: false }, notifications: { endpoints: [] } }, { logger: pino({ level: "warn" }), driver });
  try {
    await reg.services.metadata.ready();
  } finally {
    await reg.close();
  }
  return counts;
}
