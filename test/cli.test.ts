/**
 * The `strata` executable itself (packages/cli): what a shell user sees.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { STRATA_BIN as BIN } from "./helpers/strata.js";

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
});
