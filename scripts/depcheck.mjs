#!/usr/bin/env node
// Enforces the dependency direction between packages:
//   core     -> Node builtins and the small libraries listed below only
//   registry -> core (never client)      client -> core (never registry)
//   cli      -> anything
//   ui       -> preact and its own files only (browser code: no Node builtins, no other package)
// Fails (exit 1) listing every offending import.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const CORE_ALLOWED = new Set();
const rules = {
  core: (spec) => spec.startsWith("node:") || builtinModules.includes(spec) || CORE_ALLOWED.has(spec) || spec.startsWith("."),
  registry: (spec) => !/^@strata\/client/.test(spec) && !/packages\/client|\.\.\/\.\.\/client/.test(spec),
  client: (spec) => !/^@strata\/registry/.test(spec) && !/packages\/registry|\.\.\/\.\.\/registry/.test(spec),
  ui: (spec) => spec === "preact" || spec.startsWith("preact/") || spec === "vite",
};
const IMPORT_RE =
  /(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;
const bad = [];
function walk(dir, pkg) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      if (e !== "node_modules" && e !== "dist") walk(p, pkg);
    } else if (/\.(ts|mts|js|mjs)$/.test(e)) {
      const src = readFileSync(p, "utf8");
      for (const m of src.matchAll(IMPORT_RE)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
        if (spec.startsWith(".") && pkg !== "core") {
          // relative imports may not leave the package
          const depth = p.slice(join(root, "packages", pkg).length).split("/").length - 2;
          const ups = spec.split("/").filter((s) => s === "..").length;
          if (ups > depth) bad.push(`${p}: relative import ${spec} leaves packages/${pkg}`);
          continue;
        }
        if (!rules[pkg](spec)) bad.push(`${p}: ${pkg} may not import ${spec}`);
      }
      if (pkg === "core") {
        for (const m of src.matchAll(/from\s*["'](\.\.\/\.\.\/[^"']+)["']/g)) bad.push(`${p}: core imports outside itself: ${m[1]}`);
      }
    }
  }
}
for (const pkg of Object.keys(rules)) for (const sub of ["src", "test"]) walk(join(root, "packages", pkg, sub), pkg);
if (bad.length) {
  console.error(`dependency check failed:\n  ${bad.join("\n  ")}`);
  process.exit(1);
}
console.log("dependency check: ok (core -> builtins only; registry and client independent; ui -> preact)");
