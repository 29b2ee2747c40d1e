/** Runs the test `strata` entry point (helpers/strata-cli.ts) as a child process. */
import { spawn } from "node:child_process";

/** Path of the compiled CLI entry point. */
export const CLI = new URL("./strata-cli.js", import.meta.url).pathname;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `strata ARGS` with `input` on stdin (empty by default); never rejects on a non-zero exit. */
export function runCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => {
      stdout += d;
    });
    c.stderr.on("data", (d) => {
      stderr += d;
    });
    c.on("exit", (code) => resolve({ code, stdout, stderr }));
    c.stdin.end(opts.input ?? "");
  });
}
