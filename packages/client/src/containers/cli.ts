/** Container subcommands of `strata`: create, mount, umount, ps, rm, diff, commit, export. Errors are thrown. */

import type { Command } from "commander";
import { formatOption, openStore, rootOption } from "../cli-util.js";
import { parseFormat } from "../format.js";
import type { Store } from "../store/store.js";
import { print } from "../terminal.js";

/** The implementation, imported when a container command runs (start-up time of the CLI). */
async function load() {
  const [store, changes, commit, exp, ps] = await Promise.all([
    import("./store.js"),
    import("./changes.js"),
    import("./commit.js"),
    import("./export.js"),
    import("./ps.js"),
  ]);
  return { ...store, ...changes, ...commit, ...exp, ...ps };
}

function open(o: { root: string }): Promise<Store> {
  return openStore(o.root);
}

export function registerContainerCommands(program: Command): void {
  program
    .command("create")
    .description("create a container (rw layer over an -init layer over the image) without running it")
    .argument("<image>", "reference or image ID")
    .option("--name <name>", "container name")
    .addOption(rootOption())
    .action(async (image: string, o: { root: string; name?: string }) => {
      const L = await load();
      const c = await L.createContainer(await open(o), image, { name: o.name });
      print(`${c.id}\n`);
    });

  program
    .command("mount")
    .description("mount a container's filesystem (or, with --read-only, an image's) and print the mount point")
    .argument("<target>", "container NAME|ID, or IMAGE with --read-only")
    .option("--read-only", "mount an image's layers without an upper layer")
    .addOption(rootOption())
    .action(async (target: string, o: { root: string; readOnly?: boolean }) => {
      const L = await load();
      const store = await open(o);
      const path = o.readOnly ? await L.mountImageReadOnly(store, target) : await L.mountContainer(store, target);
      print(`${path}\n`);
    });

  program
    .command("umount")
    .description("unmount a container (or, with --read-only, an image mounted read-only)")
    .argument("<target>", "container NAME|ID, or IMAGE with --read-only")
    .option("--read-only", "the target is an image mounted with mount --read-only")
    .addOption(rootOption())
    .action(async (target: string, o: { root: string; readOnly?: boolean }) => {
      const L = await load();
      const store = await open(o);
      const was = o.readOnly ? await L.unmountImageReadOnly(store, target) : await L.unmountContainer(store, target);
      if (!was) print(`${target} was not mounted\n`, process.stderr);
    });

  program
    .command("ps")
    .description("list containers in the store")
    .addOption(formatOption("{{.ID}}, {{.Image}}, {{.Name}} (or {{.Names}}), {{.Mounted}}"))
    .option("-q, --quiet", "only full container IDs")
    .addOption(rootOption())
    .action(async (o: { root: string; format?: string; quiet?: boolean }) => {
      const L = await load();
      const fmt = parseFormat(o.format, L.PS_FIELDS, "ps");
      const rows = await L.psRows(await open(o));
      print(o.quiet ? rows.map((r) => `${r.id}\n`).join("") : L.formatPs(rows, fmt));
    });

  program
    .command("rm")
    .description("remove containers (unmounting them first)")
    .argument("<container...>", "NAME|ID")
    .addOption(rootOption())
    .action(async (names: string[], o: { root: string }) => {
      const L = await load();
      const store = await open(o);
      for (const n of names) {
        await L.removeContainer(store, n);
        print(`${n}\n`);
      }
    });

  program
    .command("diff")
    .description("list a container's changes (A added, C changed, D deleted)")
    .argument("<container>", "NAME|ID")
    .addOption(rootOption())
    .action(async (name: string, o: { root: string }) => {
      const L = await load();
      const store = await open(o);
      const c = await L.resolveContainer(store, name);
      const { upperDir, lowerDirs } = await L.containerLayers(store, c);
      for (const c of L.overlayChanges(lowerDirs, upperDir)) print(`${L.formatChange(c)}\n`);
    });

  program
    .command("commit")
    .description("create an image from a container's changes (one new layer)")
    .argument("<container>", "NAME|ID")
    .argument("[repository]", "REPO[:TAG] to tag the new image with")
    .option("-m, --message <message>", "commit message (history comment)")
    .option("-a, --author <author>", "author")
    .addOption(rootOption())
    .action(async (name: string, repo: string | undefined, o: { root: string; message?: string; author?: string }) => {
      const L = await load();
      const r = await L.commitContainer(await open(o), name, repo, { message: o.message, author: o.author });
      print(`${r.imageId}\n`);
    });

  program
    .command("export")
    .description("write the flattened filesystem of an image or container, without mounting")
    .argument("<target>", "container NAME|ID or IMAGE")
    .option("-o, --output <file>", "tar file to write")
    .option("--dir <dir>", "directory to write into (must be empty; made 0700)")
    .addOption(rootOption())
    .action(async (target: string, o: { root: string; output?: string; dir?: string }) => {
      const L = await load();
      if (!o.output === !o.dir) throw new Error("export needs exactly one of -o FILE.tar or --dir DIR");
      const { layers } = await L.exportLayers(await open(o), target);
      if (o.output) await L.exportToTar(layers, o.output);
      else {
        const { skippedDevices } = L.exportToDir(layers, o.dir as string);
        if (skippedDevices) print(`strata: ${skippedDevices} device node(s) not exported: only root exporting into a root-owned directory creates them\n`, process.stderr);
      }
    });
}
