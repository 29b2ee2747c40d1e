/** Registry subcommands of `strata`: serve. */
import type { Command } from "commander";

export function registerRegistryCommands(program: Command): void {
  program
    .command("serve")
    .description("run the registry")
    .option("-c, --config <file>", "YAML configuration file")
    .option("--addr <host:port>", "listen address (default 127.0.0.1:5000)")
    .option("--data <dir>", "filesystem storage root (default ./data)")
    .action(async (opts: { config?: string; addr?: string; data?: string }) => {
      const { serve } = await import("./server.js");
      await serve({ file: opts.config, overrides: { addr: opts.addr, data: opts.data } });
    });
}
