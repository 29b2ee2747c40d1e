/**
 * `npm run bench:ui`: the first page of the repository list with 10,000 repositories
 * (STRATA_BENCH_REPOS), Strata against Debian's docker-registry (CNCF distribution 2.8) in
 * the same run. Distribution has no metadata API: its nearest answer is a catalog page
 * (names only), so that is what it is measured on.
 *
 *   api first page     GET /strata/v1/repositories?n=100 (name, tags, size, last push) for
 *                      each sort order, embedded and with the Redis summary; median of 30
 *   catalog first page GET /v2/_catalog?n=100 (distribution walks storage on every request;
 *                      Strata embedded walks once, then answers from memory)
 *   UI first render    Chromium opening /ui/ until the first row is drawn (median of 5)
 *
 * Strata's summary is filled through its store (what the recorder does on push); the
 * catalogs are filled by writing each repository's link files (what a push leaves). Needs
 * docker-registry, Redis (optional: STRATA_TEST_REDIS_URL) and chromium (optional).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createRegistry, parseConfig, type Registry } from "@strata/registry";
import { dropRedisPrefix, testRedisUrl } from "@strata/registry/test-helpers/backends.js";
import { fillRepositories, scaleName } from "@strata/registry/test-helpers/meta.js";
import { printTable, startDistribution, type TableRow } from "./lib.js";

const N = Number(process.env.STRATA_BENCH_REPOS ?? 10_000);
const RUNS = 30;

async function median(runs: number, fn: () => Promise<void>): Promise<number> {
  const t: number[] = [];
  await fn(); // warm
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

async function get(url: string): Promise<void> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
  await r.arrayBuffer();
}

async function serve(reg: Registry): Promise<{ url: string; server: Server }> {
  const server = createServer(reg.app.callback());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** The link files a push leaves for one repository (what a catalog walk finds). */
async function writeRepos(root: string, prefix: string): Promise<void> {
  const hex = "0".repeat(64);
  for (let i = 0; i < N; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, N - i) }, async (_, k) => {
        const dir = join(root, prefix, "repositories", scaleName(i + k), "_layers", "sha256", hex);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "link"), `sha256:${hex}`);
      }),
    );
  }
}

async function firstRender(url: string): Promise<number | undefined> {
  if (!existsSync("/usr/bin/chromium")) return undefined;
  const { chromium } = await import("playwright-core");
  const ctx = await chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), "bench-ui-chromium-")), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      await page.goto("about:blank");
      const s = performance.now();
      await page.goto(`${url}/ui/`);
      await page.locator("tr[data-repository]").first().waitFor();
      if (i > 0) times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  } finally {
    await ctx.close();
  }
}

const work = await mkdtemp(join(tmpdir(), "bench-ui-"));
const rows: TableRow[] = [];
try {
  // Strata embedded (filesystem root with N repositories; summary filled through the store)
  await writeRepos(join(work, "strata"), "v2");
  const embedded = await createRegistry(parseConfig({ storage: { driver: "filesystem", filesystem: { root: join(work, "strata") } }, log: { level: "silent" } }));
  await fillRepositories(embedded, N);
  const e = await serve(embedded);

  const distRoot = join(work, "dist");
  await writeRepos(join(distRoot, "docker", "registry"), "v2");
  const dist = await startDistribution(distRoot);

  const distCatalog = await median(RUNS, () => get(`${dist.url}/v2/_catalog?n=100`));
  const row = (metric: string, strata: number, target?: string): TableRow => ({ metric, unit: "ms", strata, peer: distCatalog, better: "lower", target });
  rows.push(row("GET /v2/_catalog?n=100 (names)", await median(RUNS, () => get(`${e.url}/v2/_catalog?n=100`))));
  for (const sort of ["name", "pushed", "size"]) {
    rows.push(row(`metadata page sort=${sort}, embedded`, await median(RUNS, () => get(`${e.url}/strata/v1/repositories?n=100&sort=${sort}`))));
  }
  const render = await firstRender(e.url);
  if (render !== undefined) rows.push(row("UI /ui/ to first row drawn, embedded", render, "< 1000"));
  e.server.close();
  await embedded.close();
  await dist.stop();

  // Strata with the Redis summary
  const keyPrefix = `strata-bench:${randomBytes(6).toString("hex")}:`;
  const withRedis = await createRegistry(parseConfig({ storage: { driver: "memory" }, redis: { url: testRedisUrl(), keyPrefix }, log: { level: "silent" } }));
  {
    try {
      await fillRepositories(withRedis, N);
      const r = await serve(withRedis);
      for (const sort of ["name", "pushed", "size"]) {
        rows.push(row(`metadata page sort=${sort}, redis`, await median(RUNS, () => get(`${r.url}/strata/v1/repositories?n=100&sort=${sort}`))));
      }
      const render2 = await firstRender(r.url);
      if (render2 !== undefined) rows.push(row("UI /ui/ to first row drawn, redis", render2, "< 1000"));
      r.server.close();
    } finally {
      await withRedis.close();
      await dropRedisPrefix(testRedisUrl(), keyPrefix);
    }
  }
  process.stdout.write(`First page (100 rows) with ${N} repositories; the peer column is distribution 2.8's GET /v2/_catalog?n=100 (names only) in every row\n`);
  printTable("distribution", rows);
} finally {
  await rm(work, { recursive: true, force: true });
}

