#!/usr/bin/env node
// Bundles the compiled CLI (dist/src/main.js) and the layer unpack worker into dist/bundle/
// with esbuild, so that a `strata` process and each unpack worker load a few files instead of
// resolving and compiling every module of every package one by one (a pull loads 35 files over
// both threads instead of 55, 368 KB of code instead of 437 KB).
// Saves, measured on the 2-core machine (valgrind callgrind instruction counts, which the load
// of 6-11 there did not disturb; `node -e 0` is 506 M): `strata --version` 654-658 M -> 594-604 M
// instructions (CPU median 187 -> 156 ms, 16 runs); a pull of one 1 MiB image 1182-1206 M ->
// 1110-1157 M (CPU median 466 -> 442 ms, 10 runs). One file without splitting costs more than
// it saves: 1235 M for --version and 1629 M for the pull (the whole registry is compiled).
//
// Contract of the output (what bin/strata.js and the worker pool rely on):
//   - dist/bundle/main.js is the CLI, dist/bundle/unpack-worker.js the worker entry; commands
//     stay lazily loaded: every dynamic import() of the sources is its own chunk (splitting).
//   - every `import.meta.url` of a source file still names that source file (rewritten to a URL
//     relative to the bundle), so createRequire() and `new URL(path, import.meta.url)` find
//     package.json, native addons (*.node, never bundled) and installed packages exactly as the
//     unbundled code does; the bundle must stay at packages/cli/dist/bundle in the repository.
//   - `new URL("./x.js", import.meta.url)` naming a file that is itself a bundle entry (the
//     unpack worker) is pointed at that entry's bundled file instead.
//   - `__dirname` and `__filename` in a bundled CommonJS dependency name that dependency's own
//     file (ioredis and thread-stream use them), as unbundled.
//   - `import("pkg")` of a CommonJS package resolves to Node's namespace for it (`default` and
//     the named exports): esbuild alone gives a split-off CommonJS chunk only a default export,
//     so `const { pino } = await import("pino")` would find no `pino`.
//   - `require` is defined in every output file (CommonJS dependencies call it for builtins).
// Fails (exit 1) on any esbuild error or warning.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const cliDir = fileURLToPath(new URL("..", import.meta.url));
const outdir = join(cliDir, "dist", "bundle");
const clientSrc = resolve(cliDir, "..", "client", "dist", "src");

/** Bundle entries: output name -> compiled source file. */
const entries = {
  main: join(cliDir, "dist", "src", "main.js"),
  "unpack-worker": join(clientSrc, "layer", "unpack-worker.js"),
};
const entryByFile = new Map(Object.entries(entries).map(([name, file]) => [file, name]));

const WORKER_URL = /new URL\((["'])(\.{1,2}\/[^"']+)\1,\s*import\.meta\.url\)/g;
const PLACEHOLDER = "__STRATA_BUNDLE_META_URL__";
const CJS_PATHS = /\b__(dirname|filename)\b/;
// Defined at the top of every output file (all in outdir): `require` for CommonJS code, the
// bundle's own URL for the path definitions injected below.
const BANNER =
  'import { createRequire as __strataCreateRequire } from "node:module"; const require = __strataCreateRequire(import.meta.url); const __strataBundleUrl = import.meta.url;';

const DYNAMIC_BARE_IMPORT = /\bimport\(\s*(["'])([^."'/][^"']*)\1\s*\)/g;
const NAMESPACE = "strata-cjs-namespace";

/** Whether Node loads `file` as CommonJS (.cjs, or .js under a package.json without "type": "module"). */
function isCommonJs(file) {
  if (file.endsWith(".cjs")) return true;
  if (file.endsWith(".mjs")) return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) return JSON.parse(readFileSync(pj, "utf8")).type !== "module";
    if (dirname(dir) === dir) return true;
  }
}

/** The source rewrites that keep the bundle's behaviour the unbundled code's (see the contract above). */
const sourceRewrites = {
  name: "strata-source-rewrites",
  setup(build) {
    // import("pkg") of CommonJS -> the namespace Node would give, from a module made for it
    build.onResolve({ filter: new RegExp(`^${NAMESPACE}:`) }, (args) => ({
      path: `${relative(cliDir, args.resolveDir)}|${args.path.slice(NAMESPACE.length + 1)}`,
      namespace: NAMESPACE,
    }));
    build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => {
      const [dir, spec] = args.path.split("|");
      return { contents: `import * as ns from ${JSON.stringify(spec)};\nexport default ns;\n`, resolveDir: resolve(cliDir, dir), loader: "js" };
    });
    build.onLoad({ filter: /\.[cm]?js$/ }, async (args) => {
      let text = await readFile(args.path, "utf8");
      for (const m of [...text.matchAll(DYNAMIC_BARE_IMPORT)].reverse()) {
        const spec = m[2];
        if (spec.startsWith("node:") || builtinModules.includes(spec)) continue;
        const target = await build.resolve(spec, { kind: "dynamic-import", resolveDir: dirname(args.path) });
        if (target.errors.length || !isCommonJs(target.path)) continue;
        const wrapped = `import(${JSON.stringify(`${NAMESPACE}:${spec}`)}).then((m) => m.default)`;
        text = text.slice(0, m.index) + wrapped + text.slice(m.index + m[0].length);
      }
      const self = JSON.stringify(relative(outdir, args.path));
      if (CJS_PATHS.test(text)) {
        text = `var __filename = require("node:url").fileURLToPath(new URL(${self}, __strataBundleUrl)), __dirname = require("node:path").dirname(__filename);\n${text}`;
      }
      if (!text.includes("import.meta.url")) return { contents: text, loader: "js" };
      text = text.replace(WORKER_URL, (whole, _q, spec) => {
        const name = entryByFile.get(resolve(dirname(args.path), spec));
        return name ? `new URL(${JSON.stringify(`./${name}.js`)}, ${PLACEHOLDER})` : whole;
      });
      text = text.replaceAll("import.meta.url", `new URL(${self}, import.meta.url).href`).replaceAll(PLACEHOLDER, "import.meta.url");
      return { contents: text, loader: "js" };
    });
  },
};

rmSync(outdir, { recursive: true, force: true });
const result = await esbuild.build({
  entryPoints: entries,
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["*.node"],
  plugins: [sourceRewrites],
  banner: { js: BANNER },
  logLevel: "silent",
  metafile: true,
});
if (result.warnings.length) {
  const text = await esbuild.formatMessages(result.warnings, { kind: "warning" });
  process.stderr.write(text.join(""));
  process.exit(1);
}
const outputs = Object.values(result.metafile.outputs);
const bytes = outputs.reduce((n, o) => n + o.bytes, 0);
console.log(`bundle: ${relative(process.cwd(), outdir)}: ${outputs.length} files, ${(bytes / 1048576).toFixed(1)} MiB`);
