/**
 * kill -9 of `strata serve` at random points of chunked and monolithic uploads, manifest, tag
 * and tag-delete writes, then a restart and the checks of kill-workload.ts: every acknowledged
 * write reads back with the right digest, tags/list equals the tags GET resolves (no phantom,
 * none missing), no partial blob is visible, interrupted uploads resume (their sessions live
 * in Redis) and a retried completing PUT answers 201, and the first tag write after the
 * restart is not held up by a lock of the dead process for longer than the lock lease. After
 * the last kill on the filesystem, `strata fsck` repairs what the kills left, and the final
 * checks run on its result.
 *
 * Filesystem always; S3 + Redis when STRATA_TEST_BACKENDS includes s3 (a fresh bucket on the
 * shared S3 server and a fresh key prefix on the shared Redis: only strata itself is killed).
 * STRATA_FAULTS_SEED fixes the seed (printed either way); STRATA_FAULTS_KILLS sets the kills per
 * backend (default 8 filesystem, 5 S3) for longer runs.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fleetConfig } from "../helpers/fleet.js";
import { startStrata, strata } from "../helpers/strata.js";
import { call, kill9, MiB, Model, prng, resumeUploads, runWorker, sha, type Violation, verify } from "./kill-workload.js";

const s3Enabled = (process.env.STRATA_TEST_BACKENDS ?? "").split(",").includes("s3");
const KB = 1024;
const WORKERS = 3;
const LOCK_TTL_MS = 3000;


interface Figures {
  kills: number;
  ops: number;
  violations: Violation[];
  stallsMs: number[];
  restartsMs: number[];
  resumed: number;
  unknownUploads: number;
  afterLastKill?: string;
}

interface LoopOptions {
  kills: number;
  chunkSizes: number[];
  sessionsSurvive: boolean;
  /** How long the workload runs before a kill: min + random * spread (ms). */
  runMs: [number, number];
  /** Runs while the server is down after the last kill (the final checks then see its result). */
  afterLastKill?: () => Promise<string>;
}

async function killLoop(name: string, config: Record<string, unknown>, opts: LoopOptions): Promise<Figures> {
  const seed = Number(process.env.STRATA_FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  process.stdout.write(`kill suite [${name}]: seed ${seed} (STRATA_FAULTS_SEED=${seed} repeats the workload), ${opts.kills} kills\n`);
  const rand = prng(seed);
  const run = randomBytes(3).toString("hex");
  const repos = Array.from({ length: WORKERS }, (_, i) => `kill${run}/w${i}`);
  const model = new Model();
  const f: Figures = { kills: 0, ops: 0, violations: [], stallsMs: [], restartsMs: [], resumed: 0, unknownUploads: 0 };

  for (let round = 0; round <= opts.kills; round++) {
    if (round === opts.kills && opts.afterLastKill) f.afterLastKill = await opts.afterLastKill();
    const t0 = Date.now();
    const srv = await startStrata(config);
    f.restartsMs.push(Date.now() - t0);
    try {
      if (round > 0) {
        // The first write of a tag whose write the kill interrupted: its lock may be the dead process's.
        const pending = [...model.tags.values()].find((t) => t.pending !== undefined) ?? [...model.tags.values()][0];
        const violations = await verify(model, srv.url, repos);
        const resumed = await resumeUploads(model, srv.url, opts.sessionsSurvive, violations);
        f.resumed += resumed.completed;
        f.unknownUploads += resumed.unknown;
        if (pending) {
          const mine = [...model.manifests.entries()].find(([k]) => k.startsWith(`${pending.repo}@`));
          if (mine) {
            const s = Date.now();
            const r = await call(`${srv.url}/v2/${pending.repo}/manifests/${pending.tag}`, {
              method: "PUT",
              body: mine[1],
              headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
            });
            f.stallsMs.push(Date.now() - s);
            if (r.status !== 201) violations.push({ what: "tag PUT after restart failed", detail: `${r.status} ${r.body.toString().slice(0, 200)}` });
            else pending.acked = sha(mine[1]);
          }
        }
        for (const x of violations) {
          f.violations.push({ what: x.what, detail: `after kill ${round} (seed ${seed}): ${x.detail}` });
          process.stdout.write(`kill suite [${name}]: after kill ${round}: ${x.what}: ${x.detail}\n`);
        }
      }
      if (round === opts.kills) break;
      let stop = false;
      const mix = round > 0 && rand() < 0.5 ? "tags" : "all";
      const workers = repos.map((repo) =>
        runWorker(model, { base: srv.url, repo, rand, chunkSizes: opts.chunkSizes, mix, stop: () => stop }, f.violations),
      );
      await new Promise((r) => setTimeout(r, opts.runMs[0] + Math.floor(rand() * opts.runMs[1])));
      await kill9(srv);
      f.kills++;
      stop = true;
      f.ops += (await Promise.all(workers)).reduce((a, b) => a + b, 0);
    } finally {
      await kill9(srv);
    }
  }
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);
  process.stdout.write(
    `kill suite [${name}]: ${f.kills} kills survived, ${f.ops} operations acknowledged, ${model.blobs.size} blobs, ${model.manifests.size} manifests, ` +
      `${[...model.tags.values()].filter((t) => t.acked).length} tags; ${f.violations.length} violations; ` +
      `interrupted uploads resumed ${f.resumed}, unknown after restart ${f.unknownUploads}; ` +
      `first tag PUT after restart max ${max(f.stallsMs)} ms; restart to ready max ${max(f.restartsMs)} ms` +
      (f.afterLastKill ? `; ${f.afterLastKill}` : "") +
      "\n",
  );
  return f;
}

function assertFigures(f: Figures): void {
  assert.deepEqual(f.violations, [], `violations:\n${f.violations.map((v) => `${v.what}: ${v.detail}`).join("\n")}`);
  for (const ms of f.stallsMs) assert.ok(ms < LOCK_TTL_MS + 2000, `a tag PUT after a restart took ${ms} ms (lock lease ${LOCK_TTL_MS} ms)`);
}

const kills = (dflt: number) => Number(process.env.STRATA_FAULTS_KILLS ?? dflt);
/** Generous: a loaded machine makes each round (a restart and the checks) take up to ~30 s. */
const TIMEOUT = Math.max(600_000, kills(10) * 40_000);

describe("kill -9 of strata serve", () => {
  it("filesystem: every acknowledged write survives, tags/list equals what GET resolves, no partial blob", { timeout: TIMEOUT }, async () => {
    const root = await mkdtemp(join(tmpdir(), "strata-kill-"));
    try {
      const f = await killLoop("filesystem", { storage: { driver: "filesystem", filesystem: { root } } }, {
        kills: kills(8),
        chunkSizes: [1 * KB, 64 * KB, 700 * KB, 2 * MiB],
        sessionsSurvive: false,
        runMs: [150, 1200],
        // fsck removes the debris the kills left, and the final checks find nothing lost by it
        afterLastKill: async () => {
          const r = await strata(["fsck", "--data", root, "--grace", "0"]);
          assert.equal(r.code, 0, r.stderr);
          return r.stdout.trim().split("\n").pop()!;
        },
      });
      assertFigures(f);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  describe("S3 + Redis", { skip: s3Enabled ? false : "S3 kill tests need STRATA_TEST_BACKENDS to include s3 (CI sets it)" }, () => {
    let cleanup: (() => Promise<void>) | undefined;
    after(async () => {
      await cleanup?.();
    });
    it("every acknowledged write survives, the index converges, interrupted uploads resume", { timeout: TIMEOUT }, async () => {
      const fleet = await fleetConfig();
      cleanup = fleet.cleanup;
      const config = fleet.config as { storage: { s3: Record<string, unknown> } };
      // parts of exactly 5 MiB (a part pool of two, PartBuffers.partSize; no lone parts): kills land between parts
      config.storage.s3.partSize = 5 * MiB;
      config.storage.s3.partBufferBytes = 10 * MiB;
      config.storage.s3.lonePartSize = 0;
      const f = await killLoop("s3+redis", fleet.config, {
        kills: kills(5),
        chunkSizes: [1 * KB, 300 * KB, 5 * MiB + 3 * KB],
        sessionsSurvive: true,
        runMs: [400, 2500],
      });
      assertFigures(f);
    });
  });
});
