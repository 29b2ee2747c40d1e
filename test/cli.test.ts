/**
 * The `strata` executable itself (packages/cli): what a shell user sees.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT, STRATA_BIN as BIN } from "./helpers/strata.js";

describe("strata executable", () => {
  it("a closed stdout (strata --help | true) ends with the SIGPIPE status and no stack trace", () => {
    // `true` exits without reading long before node has started, so strata's write hits a closed pipe
    const r = spawnSync("bash", ["-c", `"${process.execPath}" "${BIN}" --help | true; echo "status=\${PIPESTATUS[0]}" >&2`], { encoding: "utf8" });
    assert.match(r.stderr, /status=141\n$/, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|Unhandled|at /, r.stderr);
  });

  it("an unknown command is one line on stderr and exit status 2", () => {
    const r = spawnSync(process.execPath, [BIN, "no-such-command"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'no-such-command'/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it("--version and -V print the version of the strata package", () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "packages/cli/package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = spawnSync(process.execPath, [BIN, flag], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
    }
  });

  it("a bad registry config prints every problem with its key path; unknown keys are refused with the close name", () => {
    const dir = mkdtempSync(join(tmpdir(), "strata-config-"));
    try {
      const file = join(dir, "config.yml");
      writeFileSync(file, "storge:\n  driver: s3\naddr: 5000\nredis:\n  keyprefix: a\nstorage:\n  s3: { bucket: b, endpont: http://x }\n  filesystem: { root: ./d, rot: x }\nfoo: 1\n");
      const r = spawnSync(process.execPath, [BIN, "serve", "--config", file], { encoding: "utf8", timeout: 120_000 });
      assert.equal(r.status, 1);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines[0], "strata: invalid configuration:");
      assert.deepEqual(lines.slice(1).sort(), [
        "  addr: Invalid input: expected string, received number",
        "  foo: unknown key",
        "  redis.keyprefix: unknown key (did you mean redis.keyPrefix?)",
        "  storage.filesystem.rot: unknown key (did you mean storage.filesystem.root?)",
        "  storage.s3.endpont: unknown key (did you mean storage.s3.endpoint?)",
        "  storge: unknown key (did you mean storage?)",
      ]);
      // environment variables are checked the same way
      const env = spawnSync(process.execPath, [BIN, "serve"], { encoding: "utf8", timeout: 120_000, env: { ...process.env, STRATA_STORAGE__S3__BUKET: "x", STRATA_STORAGE__DRIVER: "memory" } });
      assert.equal(env.status, 1);
      assert.match(env.stderr, /^ {2}storage\.s3\.buket: unknown key \(did you mean storage\.s3\.bucket\?\)$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
