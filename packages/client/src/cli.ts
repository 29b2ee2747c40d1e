/** Client subcommands of `strata`: pull, images, inspect, rmi, verify, save. Errors are thrown (main prints one line). */
// Command implementations are imported when their command runs (start-up time of the CLI).
import { type Command, Option } from "commander";
import type { ProgressReporter } from "./progress.js";
import type { Credentials } from "./registry/auth.js";
import { defaultRoot } from "./store/paths.js";
import type { Store } from "./store/store.js";

async function openStore(root: string | undefined): Promise<Store> {
  const { Store } = await import("./store/store.js");
  return Store.open(root ?? defaultRoot());
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function rootOption(): Option {
  return new Option("--root <dir>", "store root (Docker data-root layout)").default(undefined, `${defaultRoot()}`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function registerClientCommands(program: Command): void {
  program
    .command("pull")
    .description("pull an image from a registry into the store")
    .argument("<ref>", "image reference (name[:tag] or name@digest)")
    .addOption(rootOption())
    .option("--platform <os/arch[/variant]>", "platform to pull from a multi-platform image (default: this host)")
    .option(
      "--max-concurrent <n>",
      "layers downloaded at once",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--max-concurrent must be a positive integer, got ${JSON.stringify(v)}`);
        return n;
      },
      3,
    )
    .option("-q, --quiet", "print only the image reference")
    .addOption(new Option("--format <format>", "output format").choices(["json"]))
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .option("-u, --username <user>", "registry user name")
    .option("--password-stdin", "read the registry password from stdin")
    .action(
      async (
        refArg: string,
        o: {
          root?: string;
          platform?: string;
          maxConcurrent: number;
          quiet?: boolean;
          format?: string;
          insecureRegistry: string[];
          username?: string;
          passwordStdin?: boolean;
        },
      ) => {
        // the unpack workers start first, on another core, while this thread loads the pull code
        (await import("./layer/unpack.js")).prewarmUnpackWorkers(o.maxConcurrent);
        const [{ pull }, { parsePlatform, parseReference }, { PlainProgress, silentProgress, TtyProgress }, { credentialsFromDockerConfig }] = await Promise.all([
          import("./pull.js"),
          import("@strata/core"),
          import("./progress.js"),
          import("./registry/auth.js"),
        ]);
        const ref = parseReference(refArg);
        let credentials: Credentials | undefined;
        if (o.passwordStdin && !o.username) throw new Error("--password-stdin needs --username");
        if (o.username) {
          if (!o.passwordStdin) throw new Error("--username needs --password-stdin (passwords are never taken on the command line)");
          credentials = { username: o.username, password: await readStdin() };
        } else {
          credentials = await credentialsFromDockerConfig(ref.domain);
        }
        let progress: ProgressReporter = silentProgress;
        if (!o.quiet && o.format !== "json") progress = process.stdout.isTTY ? new TtyProgress(process.stdout) : new PlainProgress(process.stdout);
        const ac = new AbortController();
        const onSignal = () => ac.abort(new ExitError("pull interrupted", 130));
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        try {
          const result = await pull(refArg, {
            root: o.root ?? defaultRoot(),
            platform: o.platform ? parsePlatform(o.platform) : undefined,
            maxConcurrent: o.maxConcurrent,
            insecureRegistries: o.insecureRegistry,
            credentials,
            progress,
            signal: ac.signal,
          });
          progress.stop();
          if (o.format === "json") {
            process.stdout.write(
              `${JSON.stringify({
                reference: result.reference,
                id: result.imageId,
                digest: result.manifestDigest,
                platform: result.platform,
                upToDate: result.upToDate,
                layers: result.layers.map((l) => ({
                  digest: l.digest,
                  diffId: l.diffId,
                  chainId: l.chainId,
                  cacheId: l.cacheId,
                  size: l.size,
                  status: l.status,
                })),
              })}\n`,
            );
          } else if (o.quiet) {
            process.stdout.write(`${result.reference}\n`);
          } else {
            process.stdout.write(`Digest: ${result.manifestDigest}\n`);
            process.stdout.write(`Status: ${result.upToDate ? "Image is up to date" : "Downloaded newer image"} for ${result.reference}\n`);
            process.stdout.write(`${result.reference}\n`);
          }
        } catch (e) {
          progress.stop();
          throw e;
        } finally {
          process.removeListener("SIGINT", onSignal);
          process.removeListener("SIGTERM", onSignal);
        }
      },
    );

  program
    .command("images")
    .description("list images in the store")
    .addOption(rootOption())
    .option("--format <format>", "json for one JSON object per line")
    .action(async (o: { root?: string; format?: string }) => {
      const { imageRows, formatImageTable } = await import("./commands/images.js");
      const store = await openStore(o.root);
      const rows = await imageRows(store);
      if (o.format === "json") for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${formatImageTable(rows)}\n`);
    });

  program
    .command("inspect")
    .description("show an image's config and layers as JSON")
    .argument("<image>", "reference or image ID")
    .addOption(rootOption())
    .action(async (image: string, o: { root?: string }) => {
      const { inspectImage } = await import("./commands/inspect.js");
      const store = await openStore(o.root);
      process.stdout.write(`${JSON.stringify(await inspectImage(store, image), null, 2)}\n`);
    });

  program
    .command("rmi")
    .description("remove images (untag; delete layers nothing else uses)")
    .argument("<image...>", "references or image IDs")
    .addOption(rootOption())
    .option("-f, --force", "remove an image referenced in several repositories")
    .action(async (images: string[], o: { root?: string; force?: boolean }) => {
      const { rmiImages, formatRemoveResult } = await import("./commands/rmi.js");
      const store = await openStore(o.root);
      const r = await rmiImages(store, images, { force: o.force });
      process.stdout.write(`${formatRemoveResult(r)}\n`);
    });

  program
    .command("verify")
    .description("rebuild every layer tar from diff + tar-split and check it against its diffID")
    .argument("[image]", "reference or image ID (default: all images)")
    .addOption(rootOption())
    .option("--format <format>", "json")
    .action(async (image: string | undefined, o: { root?: string; format?: string }) => {
      const { verifyStore, formatChecks } = await import("./commands/verify.js");
      const store = await openStore(o.root);
      const checks = await verifyStore(store, image);
      if (o.format === "json") process.stdout.write(`${JSON.stringify(checks)}\n`);
      else if (checks.length) process.stdout.write(`${formatChecks(checks)}\n`);
      const bad = checks.flatMap((c) => c.layers.filter((l) => !l.ok));
      if (bad.length) throw new ExitError(`verify: ${bad.length} layer(s) failed: ${bad[0].diffId}: ${bad[0].error}`, 1);
    });

  program
    .command("save")
    .description("write images to a docker-save tar archive")
    .argument("<image...>", "references or image IDs")
    .requiredOption("-o, --output <file>", "archive to write")
    .addOption(rootOption())
    .action(async (images: string[], o: { root?: string; output: string }) => {
      const { saveImages } = await import("./commands/save.js");
      const store = await openStore(o.root);
      await saveImages(store, images, o.output);
    });
}
