/**
 * `strata diff` against a real dockerd (Debian's docker.io, overlay2) on the same change: one
 * image in one store; a Strata container and a dockerd container (`docker create`) each get the
 * same edits through an overlay mount of their layers; `strata diff` and `docker diff` must list
 * the same changes (as sets: dockerd's order among siblings varies from run to run).
 * Skipped (one line) without root, overlay mounts or a dockerd that starts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { overlayChanges } from "../src/containers/changes.js";
import { containerLayers, createContainer, mountContainer, removeContainer, resolveContainer, unmountContainer } from "../src/containers/store.js";
import { addImage, cleanupRoot, openStore, overlayProbe, type TarEntrySpec, tempRoot } from "./helpers/containers-images.js";
import { DOCKERD, type Dockerd, startDockerd } from "./helpers/dockerd.js";

const probe = overlayProbe();
const skip = !probe.ok ? `overlay mounts impossible here: ${probe.reason}` : !fs.existsSync(DOCKERD) ? "dockerd not installed (Debian docker.io)" : false;

const IMAGE: TarEntrySpec[] = [
  { name: "etc/", type: "5", mode: 0o755 },
  { name: "etc/hello.txt", type: "0", data: "hello\n", mode: 0o644 },
  { name: "etc/other.conf", type: "0", data: "other\n", mode: 0o644 },
  { name: "srv/", type: "5", mode: 0o755 },
  { name: "srv/old.txt", type: "0", data: "old\n", mode: 0o644 },
  { name: "gone/", type: "5", mode: 0o755 },
  { name: "gone/sub/", type: "5", mode: 0o755 },
  { name: "gone/sub/f", type: "0", data: "f\n", mode: 0o644 },
  { name: "opq/", type: "5", mode: 0o755 },
  { name: "opq/old.txt", type: "0", data: "o\n", mode: 0o644 },
  { name: "var/", type: "5", mode: 0o755 },
  { name: "var/lib/", type: "5", mode: 0o755 },
];

/** The same edits, made through a mounted container tree. */
function edit(m: string): void {
  fs.appendFileSync(join(m, "etc/hello.txt"), "more\n"); // the case from the report: C /etc, C /etc/hello.txt
  fs.unlinkSync(join(m, "srv/old.txt"));
  fs.writeFileSync(join(m, "srv/new.txt"), "new\n");
  fs.rmSync(join(m, "gone"), { recursive: true });
  fs.rmSync(join(m, "opq"), { recursive: true });
  fs.mkdirSync(join(m, "opq"));
  fs.writeFileSync(join(m, "opq/fresh.txt"), "fresh\n");
  fs.mkdirSync(join(m, "newdir/sub"), { recursive: true });
  fs.writeFileSync(join(m, "newdir/sub/x"), "x\n");
  fs.chmodSync(join(m, "var/lib"), 0o700);
}

describe("strata diff matches docker diff", { skip }, () => {
  let root = "";
  let dockerd: Dockerd | undefined;
  let work = "";
  const docker = (...args: string[]) => dockerd!.docker(...args);
  before(async () => {
    root = tempRoot("diff-docker");
    work = `${root}-dockerd`;
    await addImage(await openStore(root), "test/diff:v1", [IMAGE]);
  });
  after(async () => {
    await dockerd?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    if (root) cleanupRoot(root);
  });

  it("after appending to a lower file, deleting, adding, replacing a directory and a chmod", async (t) => {
    // Strata's container
    const store = await openStore(root);
    await createContainer(store, "test/diff:v1", { name: "strata-c" });
    edit(await mountContainer(store, "strata-c"));
    const c = await resolveContainer(store, "strata-c");
    const { upperDir, lowerDirs } = await containerLayers(store, c);
    const ours = [...overlayChanges(lowerDirs, upperDir)].map((x) => `${x.kind} ${x.path}`);
    await unmountContainer(store, "strata-c");
    await removeContainer(store, "strata-c");
    assert.ok(ours.includes("C /etc") && ours.includes("C /etc/hello.txt"), ours.join("\n"));

    // dockerd's container of the same image, edited through the same kind of mount
    dockerd = await startDockerd(root, work);
    if (!dockerd.started) {
      t.skip(dockerd.failure);
      return;
    }
    const created = await docker("create", "--name", "docker-c", "--runtime", "runc-norlimit", "test/diff:v1", "/none");
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const mountId = fs.readFileSync(join(root, "image/overlay2/layerdb/mounts", id, "mount-id"), "utf8");
    const overlay = join(root, "overlay2");
    const lower = fs.readFileSync(join(overlay, mountId, "lower"), "utf8");
    const target = join(root, "docker-merged");
    fs.mkdirSync(target);
    execFileSync("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${lower},upperdir=${mountId}/diff,workdir=${mountId}/work`, target], { cwd: overlay });
    try {
      edit(target);
    } finally {
      execFileSync("umount", [target]);
    }
    const theirs = await docker("diff", "docker-c");
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual([...ours].sort(), theirs.stdout.trimEnd().split("\n").sort());
    await docker("rm", "docker-c");
  });
});
