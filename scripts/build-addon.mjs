#!/usr/bin/env node
// Builds a node-gyp addon offline: `node scripts/build-addon.mjs DIR` (DIR holds binding.gyp).
// The Node headers come from the installation running this script (<prefix>/include/node),
// so no header download is ever attempted.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const dir = resolve(process.argv[2] ?? ".");
const require = createRequire(join(dir, "binding.gyp"));
const gyp = require.resolve("node-gyp/bin/node-gyp.js");
const prefix = dirname(dirname(process.execPath));
const args = [gyp, "rebuild"];
if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
else if (process.env.npm_config_nodedir) args.push(`--nodedir=${process.env.npm_config_nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
process.exit(r.status ?? 1);
