#!/usr/bin/env node
// Runs every compiled test file with Node's built-in test runner.
// Usage: node scripts/test.mjs [substring...]   (only files whose path contains one of the substrings)
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const roots = ["packages/core/dist/test", "packages/registry/dist/test", "packages/client/dist/test", "build/ts/test"];
const files = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith(".test.js")) files.push(relative(root, p));
  }
}
for (const r of roots) walk(join(root, r));
const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (selected.length === 0) {
  console.error("no test files found; run `npm run build` first");
  process.exit(1);
}
const concurrency = process.env.STRATA_TEST_CONCURRENCY ?? "2";
// Tests run without NODE_EXTRA_CA_CERTS: where an environment sets it (these machines do, to
// the system bundle), every Node process the suite starts (hundreds of CLI runs) parses the
// whole file before its first line (~60 ms of CPU each; `commands-cli containers-cli` 7.0 ->
// 3.8 s). No test reaches a public TLS host; the TLS tests give their CA explicitly.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, ...selected], { cwd: root, stdio: "inherit", env });
process.exit(r.status ?? 1);
