/**
 * GET and HEAD /ui/...: the web UI's built files (package @strata/ui, its dist/ folder).
 * Every file is read once at start-up into memory (the UI is a few hundred KiB) and served
 * only by exact path: a request path that is not one of those files is a 404, so no path
 * can reach outside dist/ whatever it spells (.., %2e%2e, encoded slashes, symlinks).
 * Hashed assets (dist/assets/*) are immutable for a year; everything else is revalidated.
 * Every answer carries a strict Content-Security-Policy: scripts, styles, fonts and images
 * from this origin only, no inline script, no framing.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { gzipSync } from "node:zlib";
import type Router from "@koa/router";
import type { Context } from "koa";
import type { Logger } from "pino";

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};
const COMPRESSIBLE = new Set([".html", ".js", ".mjs", ".css", ".json", ".map", ".svg", ".txt"]);
const MAX_FILES = 1000;
const MAX_FILE_BYTES = 8 * 1024 * 1024;

interface Asset {
  readonly body: Buffer;
  readonly gzip?: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly immutable: boolean;
}

/** The UI package's dist/ folder, or undefined when the package is not installed. */
export function uiDistDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@strata/ui/package.json")), "dist");
  } catch {
    return undefined;
  }
}

/** Reads every regular file below `dir` (no symlinks followed) keyed by "/ui/<relative path>". */
export async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const out = new Map<string, Asset>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) {
        if (out.size >= MAX_FILES) throw new Error(`more than ${MAX_FILES} files in ${dir}`);
        const p = join(dir, r);
        if ((await stat(p)).size > MAX_FILE_BYTES) throw new Error(`${p} is larger than ${MAX_FILE_BYTES} bytes`);
        const body = await readFile(p);
        const ext = extname(e.name).toLowerCase();
        const gz = COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined;
        out.set(`/ui/${r}`, {
          body,
          gzip: gz && gz.length < body.length ? gz : undefined,
          type: TYPES[ext] ?? "application/octet-stream",
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
          immutable: r.startsWith("assets/"),
        });
      }
    }
  };
  await walk("");
  return out;
}

function securityHeaders(ctx: Context): void {
  ctx.set("Content-Security-Policy", UI_CSP);
  ctx.set("X-Content-Type-Options", "nosniff");
  ctx.set("Referrer-Policy", "no-referrer");
  ctx.set("X-Frame-Options", "DENY");
  ctx.set("Cross-Origin-Opener-Policy", "same-origin");
  ctx.set("Cross-Origin-Resource-Policy", "same-origin");
}

/** Serves the UI from `dir` (default: the @strata/ui package's dist/). */
export async function registerUi(router: Router, logger: Logger, dir = uiDistDir()): Promise<void> {
  let assets = new Map<string, Asset>();
  try {
    if (dir) assets = await loadAssets(dir);
  } catch (e) {
    logger.warn({ err: (e as Error).message }, "web UI files not loaded");
  }
  if (!assets.has("/ui/index.html")) logger.warn({ dir }, "the web UI is not built (npm run build): /ui/ answers 404");

  router.get(/^\/$/, (ctx) => {
    ctx.redirect("/ui/");
  });
  router.get(/^\/ui$/, (ctx) => {
    ctx.status = 301;
    ctx.redirect("/ui/");
  });
  const serve = (ctx: Context) => {
    const key = ctx.path === "/ui/" ? "/ui/index.html" : ctx.path;
    const a = assets.get(key);
    if (!a) return; // 404 through the error middleware
    securityHeaders(ctx);
    ctx.set("Cache-Control", a.immutable ? "public, max-age=31536000, immutable" : "no-cache");
    ctx.set("ETag", a.etag);
    ctx.vary("Accept-Encoding");
    ctx.type = a.type;
    if (ctx.get("If-None-Match") === a.etag) {
      ctx.status = 304;
      return;
    }
    const gzip = a.gzip && ctx.acceptsEncodings("gzip", "identity") === "gzip";
    const body = gzip ? a.gzip! : a.body;
    if (gzip) ctx.set("Content-Encoding", "gzip");
    ctx.body = body; // Koa sends no body for HEAD, only its length
    ctx.type = a.type;
  };
  router.get(/^\/ui\/.*$/, serve);
  router.head(/^\/ui\/.*$/, serve);
}
