#!/usr/bin/env node
// Builds the strata_native addon and the strata-mount helper with node-gyp, offline:
// the Node headers are taken from the installation running this script (<prefix>/include/node).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// node-gyp from the workspace, else the copy npm bundles (npm sets npm_config_node_gyp for scripts)
let gyp;
try {
  gyp = require.resolve("node-gyp/bin/node-gyp.js");
} catch {
  gyp = process.env.npm_config_node_gyp;
}
if (!gyp) {
  console.error("strata native build: node-gyp not found");
  process.exit(1);
}
const prefix = dirname(dirname(process.execPath));
const args = [gyp, "rebuild"];
if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
const r = spawnSync(process.execPath, args, { cwd: here, stdio: "inherit" });
process.exit(r.status ?? 1);
