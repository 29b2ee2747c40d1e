/**
 * A `strata` entry point with the client and container commands (same error contract as
 * packages/cli's main: printError's line on stderr, non-zero exit), so client tests can run the CLI as
 * a child process without building the registry package.
 */
import { Command, CommanderError } from "commander";
import { printError, registerClientCommands } from "../../src/cli.js";
import { registerContainerCommands } from "../../src/containers/cli.js";

const program = new Command("strata");
program.exitOverride();
registerClientCommands(program);
registerContainerCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else process.exitCode = printError(e);
}
