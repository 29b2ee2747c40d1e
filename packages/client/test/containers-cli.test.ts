// The container commands as a user runs them: `strata create|ps|mount|diff|commit|export|umount|rm`
// in child processes against one store root.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { addImage, cleanupRoot, openStore, overlayProbe, type TarEntrySpec, tempRoot } from "./helpers/containers-images.js";

const CLI = fileURLToPath(new URL("./helpers/strata-cli.js", import.meta.url));
const probe = overlayProbe();
if (!probe.ok) process.stderr.write(`\n*** SKIPPING containers-cli tests: ${probe.reason} ***\n\n`);

function strata(root: string, ...args: string[]): { out: string; err: string; code: number } {
  const r = spawnSync(process.execPath, [CLI, ...args, "--root", root], { encoding: "utf8" });
  return { out: r.stdout, err: r.stderr, code: r.status ?? -1 };
}

const LAYER: TarEntrySpec[] = [
  { name: "etc/", type: "5", mode: 0o755 },
  { name: "etc/motd", type: "0", data: "hi\n", mode: 0o644 },
  { name: "srv/", type: "5", mode: 0o755 },
  { name: "srv/old.txt", type: "0", data: "old\n", mode: 0o644 },
];

describe("strata container commands", { skip: probe.ok ? false : `overlay mounts impossible here: ${probe.ok ? "" : probe.reason}` }, () => {
  let root = "";
  before(async () => {
    root = tempRoot("ccli");
    await addImage(await openStore(root), "test/cli:v1", [LAYER]);
  });
  after(() => {
    if (root) cleanupRoot(root);
  });

  test("create, ps, mount, diff, commit, export, umount, rm", async () => {
    const created = strata(root, "create", "test/cli:v1", "--name", "web");
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /^[0-9a-f]{64}\n$/);
    const id = created.out.trim();

    let ps = strata(root, "ps");
    assert.equal(ps.code, 0, ps.err);
    const lines = ps.out.trimEnd().split("\n");
    assert.match(lines[0], /^CONTAINER ID +IMAGE +NAME +MOUNTED$/);
    assert.match(lines[1], new RegExp(`^${id.slice(0, 12)} +test/cli:v1 +web +-$`));

    const mounted = strata(root, "mount", "web");
    assert.equal(mounted.code, 0, mounted.err);
    const mountId = fs.readFileSync(join(root, "image/overlay2/layerdb/mounts", id, "mount-id"), "utf8");
    const merged = join(root, "overlay2", mountId, "merged");
    assert.equal(mounted.out, `${merged}\n`);
    assert.equal(fs.readFileSync(join(merged, "etc/motd"), "utf8"), "hi\n");
    ps = strata(root, "ps");
    assert.match(ps.out, new RegExp(`web +${merged.replace(/[.]/g, "\\.")}\n`));

    fs.writeFileSync(join(merged, "etc/motd"), "changed\n");
    fs.unlinkSync(join(merged, "srv/old.txt"));
    fs.writeFileSync(join(merged, "srv/new.txt"), "new\n");
    const diff = strata(root, "diff", "web");
    assert.equal(diff.code, 0, diff.err);
    // like dockerd: a directory with a change below it is C
    assert.equal(diff.out, "C /etc\nC /etc/motd\nC /srv\nA /srv/new.txt\nD /srv/old.txt\n");

    const commit = strata(root, "commit", "web", "test/cli:v2", "-m", "edit");
    assert.equal(commit.code, 0, commit.err);
    assert.match(commit.out, /^sha256:[0-9a-f]{64}\n$/);
    const repos = JSON.parse(fs.readFileSync(join(root, "image/overlay2/repositories.json"), "utf8"));
    assert.equal(repos.Repositories["test/cli"]["test/cli:v2"], commit.out.trim());

    const tarFile = join(root, "v2.tar");
    const exp = strata(root, "export", "test/cli:v2", "-o", tarFile);
    assert.equal(exp.code, 0, exp.err);
    const list = spawnSync("tar", ["-tf", tarFile], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    assert.deepEqual(list, ["etc/", "etc/motd", "srv/", "srv/new.txt"]);
    const dir = join(root, "v2-dir");
    assert.equal(strata(root, "export", "test/cli:v2", "--dir", dir).code, 0);
    assert.equal(fs.readFileSync(join(dir, "etc/motd"), "utf8"), "changed\n");
    assert.equal(strata(root, "export", "test/cli:v2").code, 1, "needs -o or --dir");

    const ro = strata(root, "mount", "--read-only", "test/cli:v2");
    assert.equal(ro.code, 0, ro.err);
    const roPath = ro.out.trim();
    assert.ok(roPath.startsWith(join(root, "strata/ro/")));
    assert.equal(fs.readFileSync(join(roPath, "etc/motd"), "utf8"), "changed\n");
    assert.equal(strata(root, "umount", "--read-only", "test/cli:v2").code, 0);
    assert.ok(!fs.existsSync(roPath));

    assert.equal(strata(root, "umount", "web").code, 0);
    assert.ok(!fs.existsSync(merged));
    const rm = strata(root, "rm", "web");
    assert.equal(rm.code, 0, rm.err);
    assert.equal(strata(root, "ps", "-q").out, "");
    const gone = strata(root, "rm", "web");
    assert.equal(gone.code, 1);
    assert.equal(gone.err, "strata: No such container: web\n");
  });
});
