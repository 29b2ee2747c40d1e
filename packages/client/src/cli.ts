/**
 * Client subcommands of `strata`: pull, images, inspect, rmi, image prune, system df, verify, save. Errors are thrown
 * (main prints them with `printError`); everything printed goes through terminal.ts.
 */
// Command implementations are imported when their command runs (start-up time of the CLI).
import { type Command, InvalidArgumentError, Option } from "commander";
import { formatOption, openStore, rootOption } from "./cli-util.js";
import { type Fields, formatRows, parseFormat } from "./format.js";
import type { ProgressReporter } from "./progress.js";
import type { PullResult } from "./pull.js";
import type { Credentials } from "./registry/auth.js";
import { registerPushCommands } from "./commands/push-cli.js";
import { jsonSafe, print } from "./terminal.js";

export { printError } from "./terminal.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--format` fields of `strata pull`. */
const PULL_FIELDS: Fields<PullResult> = {
  Reference: { header: "REFERENCE", get: (r) => r.reference },
  ID: { header: "IMAGE ID", get: (r) => r.imageId },
  Digest: { header: "DIGEST", get: (r) => r.manifestDigest },
  Platform: { header: "PLATFORM", get: (r) => r.platform },
  Status: { header: "STATUS", get: (r) => (r.upToDate ? "Image is up to date" : "Downloaded newer image") },
};

function pullJson(result: PullResult): unknown {
  return {
    reference: result.reference,
    id: result.imageId,
    digest: result.manifestDigest,
    platform: result.platform,
    upToDate: result.upToDate,
    layers: result.layers.map((l) => ({ digest: l.digest, diffId: l.diffId, chainId: l.chainId, cacheId: l.cacheId, size: l.size, status: l.status })),
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
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
  // push and manifest create (registry writes): commands/push-cli.ts
  registerPushCommands(program);
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
    .addOption(formatOption(Object.keys(PULL_FIELDS).map((f) => `{{.${f}}}`).join(", ")))
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .addOption(
      new Option("--timeout <seconds>", "time allowed for a registry's response head, and for a token, manifest or config in full (default: 30 s heads, 60 s whole)")
        .env("STRATA_TIMEOUT")
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isFinite(n) || n <= 0) throw new Error(`--timeout must be a positive number of seconds, got ${JSON.stringify(v)}`);
          return n;
        }),
    )
    .option("-u, --username <user>", "registry user name")
    .option("--password-stdin", "read the registry password from stdin")
    .action(
      async (
        refArg: string,
        o: {
          root: string;
          platform?: string;
          maxConcurrent: number;
          quiet?: boolean;
          format?: string;
          insecureRegistry: string[];
          timeout?: number;
          username?: string;
          passwordStdin?: boolean;
        },
      ) => {
        // `table` is the default: progress, then Digest/Status lines
        const parsed = parseFormat(o.format, PULL_FIELDS, "pull");
        const fmt = parsed.kind === "table" ? undefined : parsed;
        // the unpack workers start first (worker-pool.ts loads nothing else), on another core,
        // while this thread loads the store, core and the pull code
        (await import("./layer/worker-pool.js")).prewarmUnpackWorkers(o.maxConcurrent, { callerThread: true });
        await openStore(o.root, { create: true });
        const [{ pull }, { parsePlatform, parseReference }, { PlainProgress, silentProgress, TtyProgress }, { getCredentials }] = await Promise.all([
          import("./pull.js"),
          import("@strata/core"),
          import("./progress.js"),
          import("./credentials/docker-config.js"),
        ]);
        const ref = parseReference(refArg);
        let credentials: Credentials | undefined;
        if (o.passwordStdin && !o.username) throw new Error("--password-stdin needs --username");
        if (o.username) {
          if (!o.passwordStdin) throw new Error("--username needs --password-stdin (passwords are never taken on the command line)");
          credentials = { username: o.username, password: await readStdin() };
        } else {
          credentials = await getCredentials(ref.domain);
        }
        let progress: ProgressReporter = silentProgress;
        if (!o.quiet && fmt === undefined) progress = process.stdout.isTTY ? new TtyProgress(process.stdout) : new PlainProgress(process.stdout);
        const ac = new AbortController();
        const onSignal = () => ac.abort(new ExitError("pull interrupted", 130));
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        try {
          const result = await pull(refArg, {
            root: o.root,
            platform: o.platform ? parsePlatform(o.platform) : undefined,
            maxConcurrent: o.maxConcurrent,
            insecureRegistries: o.insecureRegistry,
            timeouts: o.timeout === undefined ? undefined : { headersMs: o.timeout * 1000, smallBodyMs: o.timeout * 1000 },
            credentials,
            progress,
            signal: ac.signal,
          });
          progress.stop();
          if (fmt !== undefined) {
            print(formatRows([result], fmt, PULL_FIELDS, { table: "", json: pullJson }));
          } else if (o.quiet) {
            print(`${result.reference}\n`);
          } else {
            print(`Digest: ${result.manifestDigest}\n`);
            print(`Status: ${result.upToDate ? "Image is up to date" : "Downloaded newer image"} for ${result.reference}\n`);
            print(`${result.reference}\n`);
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
    .addOption(formatOption("{{.ID}}, {{.Repository}}, {{.Tag}}, {{.Digest}}, {{.CreatedSince}}, {{.CreatedAt}}, {{.Size}}"))
    .action(async (o: { root: string; format?: string }) => {
      const { imageRows, formatImages, imageFields } = await import("./commands/images.js");
      const fmt = parseFormat(o.format, imageFields(), "images");
      print(formatImages(await imageRows(await openStore(o.root)), fmt));
    });

  program
    .command("inspect")
    .description("show an image's config and layers as JSON")
    .argument("<image>", "reference or image ID")
    .addOption(rootOption())
    .action(async (image: string, o: { root: string }) => {
      const { inspectImage } = await import("./commands/inspect.js");
      print(`${jsonSafe(await inspectImage(await openStore(o.root), image), 2)}\n`);
    });

  program
    .command("rmi")
    .description("remove images (untag; delete layers nothing else uses)")
    .argument("<image...>", "references or image IDs")
    .addOption(rootOption())
    .option("-f, --force", "remove an image referenced in several repositories")
    .action(async (images: string[], o: { root: string; force?: boolean }) => {
      const { rmiImages, formatRemoveResult } = await import("./commands/rmi.js");
      const r = await rmiImages(await openStore(o.root), images, { force: o.force });
      print(`${formatRemoveResult(r)}\n`);
    });

  const image = program.commands.find((c) => c.name() === "image") ?? program.command("image").description("manage images");
  image
    .command("prune")
    .description("remove dangling images (with --all: every image no container uses) and every layer nothing uses")
    .addOption(rootOption())
    .option("-a, --all", "remove every image no container uses, not only dangling ones")
    .option("-f, --force", "do not prompt (strata never prompts; accepted for Docker's command line)")
    .addOption(new Option("--format <format>", "table (default) or json ({ImagesDeleted, SpaceReclaimed} as Docker's API answers)"))
    .action(async (o: { root: string; all?: boolean; format?: string }) => {
      const fmt = o.format === undefined || o.format === "table" ? ({ kind: "table" } as const) : o.format === "json" ? ({ kind: "json" } as const) : undefined;
      if (!fmt) throw new Error(`image prune: --format must be table or json, got ${JSON.stringify(o.format)}`);
      const [{ pruneImages }, { formatPrune }] = await Promise.all([import("./store/prune.js"), import("./commands/prune.js")]);
      print(formatPrune(await pruneImages(await openStore(o.root), { all: o.all }), fmt));
    });

  const system = program.commands.find((c) => c.name() === "system") ?? program.command("system").description("store-wide commands");
  system
    .command("df")
    .description("show the store's disk usage: images, layers, containers, shared and reclaimable bytes")
    .addOption(rootOption())
    .option("-v, --verbose", "one row per image (size, shared, unique, containers) and per container")
    .addOption(formatOption("{{.Type}}, {{.TotalCount}}, {{.Active}}, {{.Size}}, {{.Shared}}, {{.Reclaimable}}; with -v: table or json"))
    .action(async (o: { root: string; format?: string; verbose?: boolean }) => {
      const [{ diskUsage }, { formatDf, formatDfVerbose, dfVerbose, DF_FIELDS }] = await Promise.all([import("./store/prune.js"), import("./commands/df.js")]);
      if (o.verbose && o.format !== undefined && o.format !== "table" && o.format !== "json") throw new Error(`system df: --format with --verbose takes table or json, got ${JSON.stringify(o.format)}`);
      const fmt = o.verbose ? undefined : parseFormat(o.format, DF_FIELDS, "system df");
      const store = await openStore(o.root);
      if (!fmt) {
        print(formatDfVerbose(await store.withLock(() => dfVerbose(store)), o.format === "json" ? "json" : "table"));
        return;
      }
      print(formatDf(await store.withLock(() => diskUsage(store)), fmt));
    });

  program
    .command("verify")
    .description("rebuild every layer tar from diff + tar-split and check it against its diffID")
    .argument("[image]", "reference or image ID (default: all images)")
    .addOption(rootOption())
    .addOption(formatOption("one line per layer: {{.ID}}, {{.Ref}}, {{.DiffID}}, {{.ChainID}}, {{.Status}}, {{.Bytes}}, {{.Error}}"))
    .action(async (image: string | undefined, o: { root: string; format?: string }) => {
      const { verifyStore, formatVerify, VERIFY_FIELDS } = await import("./commands/verify.js");
      const fmt = parseFormat(o.format, VERIFY_FIELDS, "verify");
      const checks = await verifyStore(await openStore(o.root), image);
      print(formatVerify(checks, fmt));
      const bad = checks.flatMap((c) => c.layers.filter((l) => !l.ok));
      if (bad.length) throw new ExitError(`verify: ${bad.length} layer(s) failed: ${bad[0].diffId}: ${bad[0].error}`, 1);
    });

  program
    .command("login")
    .description("check credentials against a registry and store them in Docker's config.json (or its credential helper)")
    .argument("[server]", "registry host[:port]", "docker.io")
    .option("-u, --username <user>", "user name")
    .option("--password-stdin", "read the password (or token) from stdin")
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .action(async (server: string, o: { username?: string; passwordStdin?: boolean; insecureRegistry: string[] }) => {
      if (!o.username || !o.passwordStdin) throw new ExitError("login needs --username and --password-stdin (passwords are never taken on the command line)", 2);
      const [{ login }, { clientPing }] = await Promise.all([import("./credentials/login.js"), import("./credentials/registry-ping.js")]);
      const password = await readStdin();
      await login(server, { username: o.username, password }, { ping: clientPing(o.insecureRegistry) });
      print("Login Succeeded\n");
    });

  program
    .command("logout")
    .description("remove the stored credentials of a registry")
    .argument("[server]", "registry host[:port]", "docker.io")
    .action(async (server: string) => {
      const [{ logout }, { registryKey }] = await Promise.all([import("./credentials/login.js"), import("./credentials/docker-config.js")]);
      const key = registryKey(server);
      print((await logout(server)) ? `Removing login credentials for ${key}\n` : `Not logged in to ${key}\n`);
    });

  program
    .command("tag")
    .description("add a name to an image in the store (like docker tag)")
    .argument("<source>", "reference or image ID")
    .argument("<target>", "new name[:tag]")
    .addOption(rootOption())
    .action(async (source: string, target: string, o: { root: string }) => {
      const { tagImage } = await import("./commands/tag.js");
      await tagImage(await openStore(o.root), source, target);
    });

  program
    .command("copy")
    .description("copy an image between oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], store:REF and docker://REF")
    .argument("<source>", "TRANSPORT:NAME to read")
    .argument("<destination>", "TRANSPORT:NAME to write")
    .addOption(rootOption())
    .option("--all", "copy every image of a multi-platform index (the index keeps its digest)")
    .option("--platform <os/arch[/variant]>", "image of a multi-platform index to copy (default: this host)")
    .option("--preserve-digests", "refuse anything that would change a manifest digest (default)", true)
    .option("--no-preserve-digests", "allow manifests to change (e.g. with --dest-compress)")
    .addOption(new Option("--dest-compress <kind>", "compression of layers written compressed").choices(["gzip", "zstd"]))
    .option("--max-concurrent <n>", "blobs copied at once", positiveInt, 6)
    .option("-q, --quiet", "print nothing")
    .addOption(new Option("--format <format>", "table (default: a line per blob) or json (one object per line)").choices(["table", "json"]))
    .option("--insecure-registry <host>", "registry reached over plain HTTP (repeatable)", collect, [] as string[])
    .option("--referrers", "also copy the referrers (signatures, SBOMs) of what is copied (registry to registry)")
    .action(async (src: string, dst: string, o: { root: string; all?: boolean; platform?: string; preserveDigests: boolean; destCompress?: "gzip" | "zstd"; maxConcurrent: number; quiet?: boolean; format?: string; insecureRegistry: string[]; referrers?: boolean }) => {
      const [{ copyCommand }, { parsePlatform }] = await Promise.all([import("./commands/copy.js"), import("@strata/core")]);
      let platform;
      try {
        platform = o.platform ? parsePlatform(o.platform) : undefined;
      } catch (e) {
        throw new ExitError((e as Error).message, 2);
      }
      await copyCommand(src, dst, { ...o, platform, output: o.quiet ? "quiet" : o.format === "json" ? "json" : "text", registry: { insecureRegistries: o.insecureRegistry } });
    });

  program
    .command("save")
    .description("write images to a docker-save tar archive")
    .argument("<image...>", "references or image IDs")
    .requiredOption("-o, --output <file>", "archive to write")
    .addOption(rootOption())
    .action(async (images: string[], o: { root: string; output: string }) => {
      const { saveImages } = await import("./commands/save.js");
      await saveImages(await openStore(o.root), images, o.output);
    });
}
