/**
 * A full disk: `strata serve` (filesystem storage) on a small tmpfs of its own, filled to
 * ENOSPC. Monolithic, chunked and manifest pushes fail with 507 UNKNOWN "storage full" (one log
 * line, not one per request), the process and its connections stay up, nothing half-written
 * becomes visible, and once space is freed the same pushes succeed.
 * Needs root to mount the tmpfs; skipped with one line otherwise.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readdir, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { minimalImage, sha256 as sha } from "../helpers/oci-layout.js";
import { run, type StrataServer, startStrata } from "../helpers/strata.js";

const MiB = 1024 * 1024;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

async function mountTmpfs(): Promise<{ dir: string } | { skip: string }> {
  const dir = await mkdtemp(join(tmpdir(), "strata-enospc-"));
  const r = await run("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir]);
  if (r.code !== 0) {
    await rmdir(dir);
    return { skip: `cannot mount a tmpfs (${r.stderr.trim() || `exit ${r.code}`}); needs root` };
  }
  return { dir };
}

/** Writes a filler file until the filesystem is full. */
async function fill(path: string): Promise<void> {
  const fh = await open(path, "w");
  const buf = Buffer.alloc(256 * 1024, 1);
  try {
    for (;;) await fh.write(buf);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    await fh.close();
  }
}

/** Every regular file below `dir` whose name has no "~" (the driver's private files). */
async function visibleFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && !e.name.includes("~")) out.push(join(e.parentPath, e.name));
  }
  return out;
}

const mounted = await mountTmpfs();

describe("disk full (tmpfs filled to ENOSPC)", { skip: "skip" in mounted ? mounted.skip : false }, () => {
  const dir = "dir" in mounted ? mounted.dir : "";
  const root = join(dir, "data");
  const filler = join(dir, "filler");
  const repo = "full/app";
  let srv: StrataServer;
  const layer = randomBytes(512 * 1024);
  const { config, manifest } = minimalImage([layer]);

  before(async () => {
    srv = await startStrata({ storage: { driver: "filesystem", filesystem: { root } } });
  });
  after(async () => {
    await srv?.stop();
    if (dir) {
      await run("umount", [dir]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  const post = (digest: string, body: Buffer) => fetch(`${srv.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body });
  const chunked = async (digest: string, body: Buffer): Promise<Response> => {
    const start = await fetch(`${srv.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(start.status, 202);
    const patch = await fetch(new URL(start.headers.get("location")!, srv.url), {
      method: "PATCH",
      body,
      headers: { "Content-Type": "application/octet-stream" },
    });
    if (patch.status !== 202) return patch;
    const put = new URL(patch.headers.get("location")!, srv.url);
    put.searchParams.set("digest", digest);
    return fetch(put, { method: "PUT" });
  };
  const putManifest = () => fetch(`${srv.url}/v2/${repo}/manifests/v1`, { method: "PUT", body: manifest, headers: { "Content-Type": OCI_MANIFEST } });
  const expectFull = async (res: Response, what: string) => {
    assert.equal(res.status, 507, `${what}: status`);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0].code, "UNKNOWN", what);
    assert.equal(body.errors[0].message, "storage full", what);
  };

  it("answers 507 storage full for monolithic, chunked and manifest pushes, logged once", async () => {
    // The config blob fits before the disk is full; the manifest needs it.
    assert.equal((await post(sha(config), config)).status, 201);
    await fill(filler);
    await expectFull(await post(sha(layer), layer), "monolithic POST ?digest=");
    await expectFull(await chunked(sha(layer), layer), "chunked PATCH");
    const big = randomBytes(4 * MiB);
    await expectFull(await chunked(sha(big), big), "chunked PATCH of 4 MiB");
    for (let i = 0; i < 5; i++) await expectFull(await post(sha(layer), layer), `monolithic POST #${i + 2}`);
    await expectFull(await putManifestOfConfig(), "manifest PUT");
    const lines = srv.logs().split("\n").filter((l) => l.includes("storage full"));
    assert.equal(lines.length, 1, `one log line for the whole storm:\n${lines.join("\n")}`);
    assert.equal((await fetch(`${srv.url}/v2/`)).status, 200, "still serving");
  });

  /** A manifest whose only blob (its config) is stored: only the manifest's own writes can fail. */
  const putManifestOfConfig = () => {
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
        layers: [],
      }),
    );
    return fetch(`${srv.url}/v2/${repo}/manifests/cfg-only`, { method: "PUT", body: m, headers: { "Content-Type": OCI_MANIFEST } });
  };

  it("leaves nothing visible of the failed writes", async () => {
    assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${sha(layer)}`, { method: "HEAD" })).status, 404);
    assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/cfg-only`, { method: "HEAD" })).status, 404);
    const tags = await fetch(`${srv.url}/v2/${repo}/tags/list`);
    if (tags.status === 200) assert.deepEqual(((await tags.json()) as { tags: string[] }).tags ?? [], []);
    // Only the config blob and its link are stored; no data file of a failed write.
    const files = (await visibleFiles(root)).map((f) => f.slice(root.length));
    assert.deepEqual(
      files.filter((f) => f.endsWith("/data")),
      [`/v2/blobs/sha256/${sha(config).slice(7, 9)}/${sha(config).slice(7)}/data`],
      `stored files: ${files.join(", ")}`,
    );
  });

  it("works again once space is freed", async () => {
    await rm(filler);
    assert.equal((await post(sha(layer), layer)).status, 201, "monolithic");
    const other = randomBytes(300 * 1024);
    assert.equal((await chunked(sha(other), other)).status, 201, "chunked");
    assert.equal((await putManifest()).status, 201, "manifest");
    const got = await fetch(`${srv.url}/v2/${repo}/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(got.status, 200);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(manifest));
    const blob = Buffer.from(await (await fetch(`${srv.url}/v2/${repo}/blobs/${sha(layer)}`)).arrayBuffer());
    assert.ok(blob.equals(layer));
  });
});
