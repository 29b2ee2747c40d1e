/**
 * The web UI in a real browser (Debian's Chromium driven by playwright-core) against a real
 * `strata serve` filled by skopeo: search a repository, open a tag, check platforms and layer
 * sizes against the manifests the registry serves, copy the digest and the pull command,
 * delete a tag, move around with the keyboard only, and no Content-Security-Policy violation
 * or script error on any page; with token authentication, log in through the form (nothing
 * kept in storage or cookies), see only what the user may pull, delete with the user's right.
 * Screenshots go to test-output/ui/ (light and dark).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeAuthFiles } from "@strata/registry/test-helpers/auth.js";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { buildOciLayout, whiteoutImageLayers } from "./helpers/oci-layout.js";
import { mustRun, REPO_ROOT, type StrataServer, startStrata } from "./helpers/strata.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(REPO_ROOT, "test-output", "ui");
const skip = existsSync(CHROMIUM) ? false : "chromium is not installed (apt-get install chromium)";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifest JSON
type Json = any;

function saveShot(page: Page, name: string) {
  return page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
const shot = saveShot;

/** Debian's Chromium with a fresh profile (never a downloaded browser). */
async function launch(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), "strata-ui-chromium-")), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
  });
}

/** Polls `cond` (page scripts cannot be evaluated from strings: the UI's CSP forbids eval). */
async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("web UI in Chromium", { skip }, () => {
  let srv: StrataServer;
  let work: string;
  let ctx: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  let manifest: Json;
  let config: Json;
  let index: Json;

  const shot = (name: string) => saveShot(page, name);
  const v2 = async (path: string, accept = "application/vnd.oci.image.manifest.v1+json") => {
    const r = await fetch(`${srv.url}/v2/${path}`, { headers: { Accept: accept } });
    assert.equal(r.status, 200, path);
    return (await r.json()) as Json;
  };

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    work = await mkdtemp(join(tmpdir(), "strata-ui-"));
    srv = await startStrata({ storage: { driver: "filesystem", filesystem: { root: join(work, "data") } } });
    const amd = await buildOciLayout(join(work, "amd"), "v1", whiteoutImageLayers());
    const arm = await buildOciLayout(join(work, "arm"), "v1", whiteoutImageLayers().slice(0, 2), { architecture: "arm64" });
    const copy = (src: string, dest: string) => mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${src}:v1`, `docker://${srv.host}/${dest}`], { timeoutMs: 120_000 });
    await copy(amd.dir, "team/api:v1");
    await copy(amd.dir, "team/api:old");
    await copy(amd.dir, "team/web:1.0");
    await copy(amd.dir, "library/base:latest");
    await copy(amd.dir, "multi/app:amd64");
    await copy(arm.dir, "multi/app:arm64");
    index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: "linux", architecture: "amd64" } },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ],
    };
    const put = await fetch(`${srv.url}/v2/multi/app/manifests/latest`, {
      method: "PUT",
      headers: { "Content-Type": index.mediaType },
      body: JSON.stringify(index),
    });
    assert.equal(put.status, 201);
    manifest = await v2("team/api/manifests/v1");
    config = JSON.parse(
      await (await fetch(`${srv.url}/v2/team/api/blobs/${manifest.config.digest}`)).text(),
    );

    ctx = await launch();
    await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: srv.url });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    page.on("request", (r) => {
      if (!r.url().startsWith(srv.url) && !r.url().startsWith("data:")) problems.push(`external request: ${r.url()}`);
    });
  });
  after(async () => {
    await ctx?.close();
    await srv?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists repositories and finds one by search, with the keyboard only", async () => {
    await page.goto(`${srv.url}/ui/`);
    await page.locator("tr[data-repository]").first().waitFor();
    const names = await page.locator("tr[data-repository]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-repository")));
    assert.deepEqual(names, ["library/base", "multi/app", "team/api", "team/web"]);
    await shot("01-repositories");
    // keyboard: skip link, brand, search
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement?.textContent"), "Skip to content");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate("document.activeElement?.id"), "repo-search");
    await page.keyboard.type("team/a");
    await until(async () => (await page.locator("tr[data-repository]").count()) === 1, "one repository left");
    assert.equal(await page.locator("tr[data-repository]").getAttribute("data-repository"), "team/api");
    assert.match(page.url(), /#\/\?q=team%2Fa$/);
    await shot("02-search");
    await page.keyboard.press("Tab"); // sort select
    assert.equal(await page.evaluate("document.activeElement?.id"), "repo-sort");
    await page.keyboard.press("Tab"); // the repository's link
    assert.equal(await page.evaluate("document.activeElement?.textContent"), "team/api");
    await page.keyboard.press("Enter");
    await page.locator("tr[data-tag]").first().waitFor();
    assert.match(page.url(), /#\/r\/team\/api$/);
  });

  it("sorts by size and by last push", async () => {
    await page.goto(`${srv.url}/ui/#/?sort=pushed`);
    await until(async () => (await page.locator("tr[data-repository]").count()) === 4, "every repository");
    const byPush = await page.locator("tr[data-repository]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-repository")));
    assert.equal(byPush[0], "multi/app", "the index was pushed last");
    assert.equal(byPush[3], "team/api", "team/api was pushed first");
    await page.selectOption("#repo-sort", "size");
    await page.waitForURL(/sort=size/);
    await until(async () => (await page.locator("tr[data-repository]").first().getAttribute("data-repository")) === "multi/app", "multi/app first");
    const sizes = await page.locator("tr[data-repository] [data-bytes]").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-bytes"))));
    assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a), "largest first");
  });

  it("shows a repository's tags with platform, size and digest; copies the digest and the pull command", async () => {
    await page.goto(`${srv.url}/ui/#/r/team/api`);
    const row = page.locator('tr[data-tag="v1"]');
    await row.waitFor();
    const expected = manifest.config.size + manifest.layers.reduce((t: number, l: Json) => t + l.size, 0);
    assert.equal(Number(await row.locator("[data-bytes]").getAttribute("data-bytes")), expected);
    assert.equal((await row.locator(".badge-platform").allTextContents()).join(","), `${config.os}/${config.architecture}`);
    const digest = (await fetch(`${srv.url}/v2/team/api/manifests/v1`, { method: "HEAD", headers: { Accept: manifest.mediaType } })).headers.get("docker-content-digest")!;
    assert.equal(await row.locator("button.digest code").textContent(), digest.slice(7, 19));
    await row.locator("button.digest").click();
    assert.equal(await page.evaluate("navigator.clipboard.readText()"), digest);
    await page.locator("#announcer", { hasText: "Copied digest of v1" }).waitFor();
    await row.getByRole("button", { name: "Copy pull command for v1" }).click();
    assert.equal(await page.evaluate("navigator.clipboard.readText()"), `docker pull ${srv.host}/team/api:v1`);
    await page.getByLabel("podman").check();
    await row.getByRole("button", { name: "Copy pull command for v1" }).click();
    assert.equal(await page.evaluate("navigator.clipboard.readText()"), `podman pull ${srv.host}/team/api:v1`);
    assert.match((await page.getByTestId("pull-command").textContent())!, new RegExp(`^podman pull ${srv.host}/team/api:(v1|old)$`));
    await shot("03-tags");
  });

  it("opens a tag: config, and layers whose sizes and history lines are the manifest's and config's", async () => {
    await page.goto(`${srv.url}/ui/#/r/team/api`);
    await page.locator('tr[data-tag="v1"] a').click();
    await page.getByTestId("layers").waitFor();
    assert.match(page.url(), /#\/r\/team\/api\/-\/v1$/);
    const rows = page.locator("[data-testid=layers] tbody tr");
    assert.equal(await rows.count(), manifest.layers.length);
    for (let i = 0; i < manifest.layers.length; i++) {
      const r = rows.nth(i);
      assert.equal(await r.getAttribute("data-digest"), manifest.layers[i].digest);
      assert.equal(Number(await r.locator("[data-bytes]").getAttribute("data-bytes")), manifest.layers[i].size);
      assert.equal(await r.locator("td.history").textContent(), config.history[i].created_by);
    }
    assert.equal(await page.getByTestId("image-platforms").textContent(), "linux/amd64");
    assert.match((await page.locator("#config-title").textContent())!, /Configuration/);
    await shot("04-image");
  });

  it("shows an index's platforms with each platform's size", async () => {
    await page.goto(`${srv.url}/ui/#/r/multi/app/-/latest`);
    await page.getByTestId("platforms").waitFor();
    const rows = page.locator("[data-testid=platforms] tbody tr");
    assert.deepEqual(
      await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute("data-platform"))),
      ["linux/amd64", "linux/arm64/v8"],
    );
    for (let i = 0; i < index.manifests.length; i++) {
      const child = await v2(`multi/app/manifests/${index.manifests[i].digest}`);
      const size = child.config.size + child.layers.reduce((t: number, l: Json) => t + l.size, 0);
      assert.equal(Number(await rows.nth(i).locator("[data-bytes]").getAttribute("data-bytes")), size);
    }
    assert.equal((await page.getByTestId("image-platforms").locator(".badge").allTextContents()).join(" "), "linux/amd64 linux/arm64/v8");
    await shot("05-index");
  });

  it("pages a repository's tags: the first 200, then the rest with Show more", async () => {
    await mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${join(work, "amd")}:v1`, `docker://${srv.host}/many/tags:t000`], { timeoutMs: 120_000 });
    const got = await fetch(`${srv.url}/v2/many/tags/manifests/t000`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    const raw = Buffer.from(await got.arrayBuffer());
    const type = got.headers.get("content-type")!;
    for (let i = 1; i < 205; i++) {
      const put = await fetch(`${srv.url}/v2/many/tags/manifests/t${String(i).padStart(3, "0")}`, { method: "PUT", headers: { "Content-Type": type }, body: raw });
      assert.equal(put.status, 201);
    }
    await page.goto(`${srv.url}/ui/#/r/many/tags`);
    await page.locator("#tag-sort").selectOption("name");
    await page.locator('tr[data-tag="t199"]').waitFor();
    const tagsShown = () => page.locator("tr[data-tag]").evaluateAll((rs) => rs.map((r) => r.getAttribute("data-tag")));
    assert.equal((await tagsShown()).length, 200);
    await page.getByRole("button", { name: "Show more tags" }).click();
    await page.locator('tr[data-tag="t204"]').waitFor();
    const all = await tagsShown();
    assert.deepEqual(all, Array.from({ length: 205 }, (_v, i) => `t${String(i).padStart(3, "0")}`));
    assert.equal(await page.getByRole("button", { name: "Show more tags" }).count(), 0, "no more pages");
  });

  it("deletes a selected tag after confirmation", async () => {
    await page.goto(`${srv.url}/ui/#/r/team/api`);
    await page.locator('tr[data-tag="old"]').waitFor();
    await page.getByLabel("Select tag old").check();
    page.once("dialog", (d) => {
      assert.match(d.message(), /Delete 1 tag \(old\)/);
      void d.accept();
    });
    await page.getByRole("button", { name: /Delete selected tags/ }).click();
    await page.locator('tr[data-tag="old"]').waitFor({ state: "detached" });
    await page.getByText("Deleted 1 tag.").waitFor();
    const list = await v2("team/api/tags/list", "application/json");
    assert.deepEqual(list.tags, ["v1"]);
    await shot("06-deleted");
  });

  it("renders in dark mode; no page broke the Content-Security-Policy or reached another host", async () => {
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${srv.url}/ui/#/r/multi/app/-/latest`);
    await page.getByTestId("platforms").waitFor();
    const bg = await page.evaluate("getComputedStyle(document.body).backgroundColor");
    assert.equal(bg, "rgb(15, 18, 22)");
    await shot("07-dark");
    await page.emulateMedia({ colorScheme: "light" });
    assert.deepEqual(problems, []);
  });
});

describe("web UI in Chromium with token authentication", { skip }, () => {
  let srv: StrataServer;
  let work: string;
  let ctx: BrowserContext;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    work = await mkdtemp(join(tmpdir(), "strata-ui-auth-"));
    const files = await writeAuthFiles(work, { root: "root-pw", alice: "alice-pw" });
    srv = await startStrata({
      storage: { driver: "filesystem", filesystem: { root: join(work, "data") } },
      auth: { htpasswd: { path: files.htpasswd }, token: { signingKey: files.signingKey, service: "strata-ui-test" } },
      access: [
        { repositories: ["**"], users: ["root"], actions: ["*"] },
        { repositories: ["team/**"], users: ["alice"], actions: ["pull", "delete"] },
      ],
    });
    const img = await buildOciLayout(join(work, "img"), "v1", whiteoutImageLayers());
    for (const dest of ["team/api:v1", "team/api:old", "secret/keys:v1"]) {
      await mustRun("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", "root:root-pw", `oci:${img.dir}:v1`, `docker://${srv.host}/${dest}`], { timeoutMs: 120_000 });
    }
    ctx = await launch();
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      // the browser logs the 401s and the 403 the UI answers itself; anything else is a problem
      if (m.type() === "error" && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  });
  after(async () => {
    await ctx?.close();
    await srv?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("asks for credentials, refuses wrong ones, and lists what the user may pull once logged in", async () => {
    await page.goto(`${srv.url}/ui/`);
    await page.locator("#login-user").waitFor();
    await shot(page, "08-login");
    await page.locator("#login-user").fill("alice");
    await page.locator("#login-pass").fill("wrong");
    await page.keyboard.press("Enter");
    await page.getByText("Those credentials were refused.").waitFor();
    await page.locator("#login-user").fill("alice");
    await page.locator("#login-pass").fill("alice-pw");
    await page.keyboard.press("Enter");
    await page.locator("tr[data-repository]").first().waitFor();
    const names = await page.locator("tr[data-repository]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-repository")));
    assert.deepEqual(names, ["team/api"], "secret/keys is not alice's to see");
    assert.equal(await page.evaluate("localStorage.length + sessionStorage.length"), 0, "nothing kept in web storage");
    assert.deepEqual(await ctx.cookies(), [], "no cookie");
    await page.getByRole("navigation", { name: "Account" }).getByText("alice").waitFor();
  });

  it("deletes a tag with the user's delete right; a reload forgets the login", async () => {
    await page.locator("tr[data-repository] a").first().click();
    await page.locator('tr[data-tag="old"]').waitFor();
    await page.getByLabel("Select tag old").check();
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: /Delete selected tags/ }).click();
    await page.getByText("Deleted 1 tag.").waitFor();
    // the list reloads after the message: the row must go (a timeout fails the test)
    await page.locator('tr[data-tag="old"]').waitFor({ state: "detached", timeout: 15_000 });
    await shot(page, "09-logged-in");
    await page.reload();
    await page.locator("#login-user").waitFor();
    assert.deepEqual(problems, []);
  });
});
