/** Container subcommands of `strata`: create, mount, umount, ps, rm, diff, commit, export. Errors are thrown. */

import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { defaultRoot } from "../store/paths.js";
import { Store } from "../store/store.js";
import { formatChanges, overlayChanges } from "./changes.js";
import { commitContainer } from "./commit.js";
import { exportLayers, exportToDir, exportToTar } from "./export.js";
import {
  containerLayers,
  createContainer,
  isContainerMounted,
  listContainers,
  mergedDir,
  mountContainer,
  mountImageReadOnly,
  removeContainer,
  resolveContainer,
  unmountContainer,
  unmountImageReadOnly,
} from "./store.js";

function rootOption(): Option {
  return new Option("--root <dir>", "store root (Docker data-root layout)").default(undefined, `${defaultRoot()}`);
}

async function open(o: { root?: string }): Promise<Store> {
  return Store.open(resolve(o.root ?? defaultRoot()));
}

/** Rows of `strata ps`. */
export async function psRows(store: Store): Promise<Array<{ id: string; image: string; name: string; mounted: string }>> {
  const rows = [];
  for (const c of await listContainers(store)) {
    rows.push({
      id: c.id,
      image: c.imageName ?? (c.image ? c.image.slice(7, 19) : ""),
      name: c.name,
      mounted: isContainerMounted(store, c) ? mergedDir(store, c) : "",
    });
  }
  return rows;
}

export function formatPsTable(rows: Array<{ id: string; image: string; name: string; mounted: string }>): string {
  const table = [["CONTAINER ID", "IMAGE", "NAME", "MOUNTED"], ...rows.map((r) => [r.id.slice(0, 12), r.image, r.name, r.mounted || "-"])];
  const widths = table[0].map((_h, i) => Math.max(...table.map((r) => r[i].length)));
  return table
    .map((r) =>
      r
        .map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i] + 3)))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}

export function registerContainerCommands(program: Command): void {
  program
    .command("create")
    .description("create a container (rw layer over an -init layer over the image) without running it")
    .argument("<image>", "reference or image ID")
    .option("--name <name>", "container name")
    .addOption(rootOption())
    .action(async (image: string, o: { root?: string; name?: string }) => {
      const c = await createContainer(await open(o), image, { name: o.name });
      process.stdout.write(`${c.id}\n`);
    });

  program
    .command("mount")
    .description("mount a container's filesystem (or, with --read-only, an image's) and print the mount point")
    .argument("<target>", "container NAME|ID, or IMAGE with --read-only")
    .option("--read-only", "mount an image's layers without an upper layer")
    .addOption(rootOption())
    .action(async (target: string, o: { root?: string; readOnly?: boolean }) => {
      const store = await open(o);
      const path = o.readOnly ? await mountImageReadOnly(store, target) : await mountContainer(store, target);
      process.stdout.write(`${path}\n`);
    });

  program
    .command("umount")
    .description("unmount a container (or, with --read-only, an image mounted read-only)")
    .argument("<target>", "container NAME|ID, or IMAGE with --read-only")
    .option("--read-only", "the target is an image mounted with mount --read-only")
    .addOption(rootOption())
    .action(async (target: string, o: { root?: string; readOnly?: boolean }) => {
      const store = await open(o);
      const was = o.readOnly ? await unmountImageReadOnly(store, target) : await unmountContainer(store, target);
      if (!was) process.stderr.write(`${target} was not mounted\n`);
    });

  program
    .command("ps")
    .description("list containers in the store")
    .option("--format <format>", "json for one JSON object per line")
    .option("-q, --quiet", "only full container IDs")
    .addOption(rootOption())
    .action(async (o: { root?: string; format?: string; quiet?: boolean }) => {
      const rows = await psRows(await open(o));
      if (o.quiet) for (const r of rows) process.stdout.write(`${r.id}\n`);
      else if (o.format === "json") for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${formatPsTable(rows)}\n`);
    });

  program
    .command("rm")
    .description("remove containers (unmounting them first)")
    .argument("<container...>", "NAME|ID")
    .addOption(rootOption())
    .action(async (names: string[], o: { root?: string }) => {
      const store = await open(o);
      for (const n of names) {
        await removeContainer(store, n);
        process.stdout.write(`${n}\n`);
      }
    });

  program
    .command("diff")
    .description("list a container's changes (A added, C changed, D deleted)")
    .argument("<container>", "NAME|ID")
    .addOption(rootOption())
    .action(async (name: string, o: { root?: string }) => {
      const store = await open(o);
      const c = await resolveContainer(store, name);
      const { upperDir, lowerDirs } = await containerLayers(store, c);
      const text = formatChanges(overlayChanges(lowerDirs, upperDir));
      if (text) process.stdout.write(`${text}\n`);
    });

  program
    .command("commit")
    .description("create an image from a container's changes (one new layer)")
    .argument("<container>", "NAME|ID")
    .argument("[repository]", "REPO[:TAG] to tag the new image with")
    .option("-m, --message <message>", "commit message (history comment)")
    .option("-a, --author <author>", "author")
    .addOption(rootOption())
    .action(async (name: string, repo: string | undefined, o: { root?: string; message?: string; author?: string }) => {
      const r = await commitContainer(await open(o), name, repo, { message: o.message, author: o.author });
      process.stdout.write(`${r.imageId}\n`);
    });

  program
    .command("export")
    .description("write the flattened filesystem of an image or container, without mounting")
    .argument("<target>", "container NAME|ID or IMAGE")
    .option("-o, --output <file>", "tar file to write")
    .option("--dir <dir>", "directory to write into (must be empty)")
    .addOption(rootOption())
    .action(async (target: string, o: { root?: string; output?: string; dir?: string }) => {
      if (!o.output === !o.dir) throw new Error("export needs exactly one of -o FILE.tar or --dir DIR");
      const { layers } = await exportLayers(await open(o), target);
      if (o.output) await exportToTar(layers, o.output);
      else exportToDir(layers, o.dir as string);
    });
}
