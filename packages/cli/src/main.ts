/**
 * The `strata` command. Subcommands are contributed by the packages that implement them:
 * the registry (serve, index) and the client (pull, images, inspect, ...). Errors are one
 * line on stderr and a non-zero exit code.
 */
// Only the command definitions are loaded up front; each command imports what it runs.
import { createRequire } from "node:module";
import { printError, registerClientCommands } from "@strata/client/cli";
import { registerContainerCommands } from "@strata/client/containers/cli";
import { registerRegistryCommands } from "@strata/registry/cli";
import { Command, CommanderError } from "commander";

// A reader that went away (`strata images | head`) ends the command quietly with the status a
// shell reports for SIGPIPE, instead of an unhandled EPIPE error with a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(128 + 13);
  throw e;
});

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };
const program = new Command("strata")
  .description("Strata: an OCI registry and a pull client that writes Docker's overlay2 store")
  .version(version, "-V, --version", "print the version")
  .showHelpAfterError();
program.exitOverride();
registerRegistryCommands(program);
registerClientCommands(program);
registerContainerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = printError(e);
  }
}
