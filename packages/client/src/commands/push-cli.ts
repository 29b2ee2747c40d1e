/**
 * Command-line registration of the registry-writing commands: `strata push` and
 * `strata manifest create`. Implementations are imported when their command runs.
 * Exit codes: 0 ok, 1 failed, 2 usage.
 */
import { type Command, InvalidArgumentError } from "commander";
import { rootOption } from "../cli-util.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

class UsageError extends Error {
  readonly exitCode = 2;
}

/** `--format` of push may name a manifest format (docker, oci) and an output (table, json), each at most once. */
function pushFormats(values: string[]): { manifest: "docker" | "oci"; output: "text" | "json" } {
  let manifest: "docker" | "oci" | undefined;
  let output: "text" | "json" | undefined;
  for (const v of values) {
    if (v === "docker" || v === "v2s2" || v === "oci") {
      if (manifest) throw new UsageError("--format names a manifest format twice");
      manifest = v === "oci" ? "oci" : "docker";
    } else if (v === "json" || v === "table") {
      if (output) throw new UsageError("--format names an output twice");
      output = v === "json" ? "json" : "text";
    } else throw new UsageError(`--format: ${JSON.stringify(v)} is none of docker, oci, json, table`);
  }
  return { manifest: manifest ?? "docker", output: output ?? "text" };
}

export function registerPushCommands(program: Command): void {
  program
    .command("push")
    .description("push an image of the store to a registry (= copy store:IMAGE docker://DEST)")
    .argument("<image>", "image in the store (reference or ID)")
    .argument("[destination]", "registry reference (default: the image's name)")
    .addOption(rootOption())
    .option("--format <format>", "docker (schema2, default) or oci manifest; json or table output (repeatable)", collect, [] as string[])
    .option("--max-concurrent <n>", "layers pushed at once", positiveInt, 6)
    .option("-q, --quiet", "print nothing")
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .action(async (image: string, dest: string | undefined, o: { root: string; format: string[]; maxConcurrent: number; quiet?: boolean; insecureRegistry: string[] }) => {
      const f = pushFormats(o.format);
      const { pushCommand } = await import("./push.js");
      await pushCommand(image, dest, { root: o.root, format: f.manifest, maxConcurrent: o.maxConcurrent, insecureRegistries: o.insecureRegistry, output: o.quiet ? "quiet" : f.output });
    });

  const manifest = program.commands.find((c) => c.name() === "manifest") ?? program.command("manifest").description("multi-platform images in a registry");
  manifest
    .command("create")
    .description("build an index (OCI, or a Docker manifest list) of platform images already in a registry and push it")
    .argument("<destination>", "registry reference of the index")
    .argument("<sources...>", "registry references of the platform images (an index contributes all its images)")
    .option("--format <format>", "oci (default) or docker", "oci")
    .option("-q, --quiet", "print nothing but the digest")
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .action(async (dest: string, sources: string[], o: { format: string; quiet?: boolean; insecureRegistry: string[] }) => {
      if (o.format !== "oci" && o.format !== "docker") throw new UsageError(`--format: ${JSON.stringify(o.format)} is neither oci nor docker`);
      const { manifestCreate } = await import("./manifest.js");
      await manifestCreate(dest, sources, { format: o.format, quiet: o.quiet, insecureRegistries: o.insecureRegistry });
    });
}
