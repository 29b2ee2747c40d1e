/** Registry subcommands of `strata`: serve, index rebuild. */
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
      const { loadConfig } = await import("./config.js");
      const { createDriver } = await import("./storage/factory.js");
      const { RedisConnection } = await import("./redis/client.js");
      const { rebuildIndex } = await import("./redis/tagindex.js");
      const config = await loadConfig({ file: opts.config, overrides: { data: opts.data } });
      if (!config.redis.url) throw new Error("index rebuild needs redis.url (the index lives in Redis)");
      const conn = new RedisConnection({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, commandTimeoutMs: config.redis.commandTimeoutMs });
      const driver = await createDriver(config);
      try {
        await conn.ready();
        const r = await rebuildIndex(conn, driver);
        process.stdout.write(`index rebuilt: ${r.repositories} repositories, ${r.tags} tags\n`);
        // the metadata summary (/strata/v1, the UI) is rebuilt from storage by the next reader
        const { dropMetadata } = await import("./redis/metadata.js");
        await dropMetadata(conn);
        const { createRegistry } = await import("./app.js");
        const { pino } = await import("pino");
        const reg = await createRegistry({ ...config, ui: { enabled: false }, notifications: { endpoints: [] } }, { logger: pino({ level: "warn" }), driver });
        try {
          await reg.services.metadata.ready();
        } finally {
          await reg.close();
        }
        process.stdout.write("metadata rebuilt\n");
      } finally {
        await conn.close();
        await driver.close?.();
      }
    });
}
