/**
 * A `strata` entry point with the client and container commands (same error contract as
 * packages/cli's main: one line on stderr, non-zero exit), for running the CLI as a child process.
 */
import { Command, CommanderError } from "commander";
import { registerContainerCommands } from "../../src/containers/cli.js";

const program = new Command("strata");
program.exitOverride();
registerContainerCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`strata: ${msg.split("\n")[0]}\n`);
    process.exitCode = (e as { exitCode?: number }).exitCode ?? 1;
  }
}
