/** What the client's and the container commands share: the --root option, opening the store, --format. */
import { resolve } from "node:path";
import { Option } from "commander";
import { defaultRoot } from "./store/paths.js";
import type { Store } from "./store/store.js";

/** `--root DIR`, from STRATA_ROOT when not given, else the default (shown in help). */
export function rootOption(): Option {
  return new Option("--root <dir>", "store root (Docker data-root layout)").env("STRATA_ROOT").default(defaultRoot());
}

/** `--format FORMAT` (format.ts); `fields` lists the template fields in help. */
export function formatOption(fields: string): Option {
  return new Option("--format <format>", `table (default), json, or a Go template over ${fields}`);
}

/**
 * The store under `root`. Only `pull` creates one (`create: true`); every other command fails
 * with a clear message when there is no store there, and creates nothing.
 */
export async function openStore(root: string, opts: { create?: boolean } = {}): Promise<Store> {
  const { Store } = await import("./store/store.js");
  return opts.create ? Store.open(resolve(root)) : Store.openExisting(resolve(root));
}
