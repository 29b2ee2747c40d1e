/** Progress rendering: per-layer bars on a terminal, plain lines otherwise, Docker's size units. */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { humanSize, PlainProgress, TtyProgress } from "../src/progress.js";

function sink(tty: boolean): { stream: PassThrough & { isTTY?: boolean; columns?: number }; text: () => string } {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  if (tty) {
    stream.isTTY = true;
    stream.columns = 160;
  }
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

describe("progress", () => {
  it("formats sizes like docker (decimal units, 3 significant digits)", () => {
    assert.equal(humanSize(0), "0B");
    assert.equal(humanSize(999), "999B");
    assert.equal(humanSize(205908), "206kB");
    assert.equal(humanSize(5_570_000), "5.57MB");
    assert.equal(humanSize(1_000_000), "1MB");
    assert.equal(humanSize(72_800_000), "72.8MB");
  });

  it("plain lines when not a terminal", () => {
    const s = sink(false);
    const p = new PlainProgress(s.stream);
    p.event({ type: "start", reference: "x/y:v1", repository: "x/y", tagOrDigest: "v1" });
    p.event({
      type: "layers",
      layers: [
        { id: "aaaaaaaaaaaa", size: 10, exists: true },
        { id: "bbbbbbbbbbbb", size: 10, exists: false },
      ],
    });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "downloading", current: 1, total: 10 });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "downloading", current: 5, total: 10 });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "extracting" });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "complete" });
    p.stop();
    assert.equal(
      s.text(),
      [
        "v1: Pulling from x/y",
        "aaaaaaaaaaaa: Already exists",
        "bbbbbbbbbbbb: Pulling fs layer",
        "bbbbbbbbbbbb: Downloading",
        "bbbbbbbbbbbb: Extracting",
        "bbbbbbbbbbbb: Pull complete",
        "",
      ].join("\n"),
    );
  });

  it("push statuses: plain lines as docker push prints them (Preparing, Pushing once, Pushed / Layer already exists / Mounted from REPO)", () => {
    const s = sink(false);
    const p = new PlainProgress(s.stream);
    p.event({ type: "message", text: "The push refers to repository [r.example/x/y]" });
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "preparing" });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "preparing" });
    p.event({ type: "layer", id: "cccccccccccc", status: "preparing" });
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "pushing", current: 1, total: 10 });
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "pushing", current: 9, total: 10 });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "layer-exists" });
    p.event({ type: "layer", id: "cccccccccccc", status: "mounted", from: "lib/base" });
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "pushed" });
    p.stop();
    assert.equal(
      s.text(),
      [
        "The push refers to repository [r.example/x/y]",
        "aaaaaaaaaaaa: Preparing",
        "bbbbbbbbbbbb: Preparing",
        "cccccccccccc: Preparing",
        "aaaaaaaaaaaa: Pushing",
        "bbbbbbbbbbbb: Layer already exists",
        "cccccccccccc: Mounted from lib/base",
        "aaaaaaaaaaaa: Pushed",
        "",
      ].join("\n"),
    );
  });

  it("push bars on a terminal: pushing with bytes and rate; a repository name from a registry is made terminal safe", () => {
    const s = sink(true);
    const p = new TtyProgress(s.stream);
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "pushing", current: 1_000_000, total: 2_000_000 });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "mounted", from: "evil\u001b[2Jrepo" });
    // a layer compressed on the way: its size is not known, so bytes and rate without a bar
    p.event({ type: "layer", id: "cccccccccccc", status: "pushing", current: 5_000_000, total: -1 });
    (p as unknown as { multi: { update(): void } }).multi.update();
    const mid = s.text();
    assert.match(mid, /cccccccccccc: Pushing 5MB [\d.]+[kMG]?B\/s/);
    assert.match(mid, /aaaaaaaaaaaa: Pushing \[=+>\s+\] 1MB\/2MB [\d.]+[kMG]?B\/s/);
    assert.match(mid, /bbbbbbbbbbbb: Mounted from evil/);
    assert.doesNotMatch(mid, /\u001b\[2J/);
    p.event({ type: "layer", id: "aaaaaaaaaaaa", status: "pushed" });
    p.stop();
    assert.match(s.text(), /aaaaaaaaaaaa: Pushed/);
  });

  it("per-layer bars on a terminal: downloading with bytes and rate, then done / already exists", () => {
    const s = sink(true);
    const p = new TtyProgress(s.stream);
    p.event({ type: "start", reference: "x/y:v1", repository: "x/y", tagOrDigest: "v1" });
    p.event({
      type: "layers",
      layers: [
        { id: "aaaaaaaaaaaa", size: 10, exists: true },
        { id: "bbbbbbbbbbbb", size: 2_000_000, exists: false },
      ],
    });
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "downloading", current: 1_000_000, total: 2_000_000 });
    // force a render of the current state
    (p as unknown as { multi: { update(): void } }).multi.update();
    const mid = s.text();
    assert.match(mid, /bbbbbbbbbbbb: Downloading \[=+>\s+\] 1MB\/2MB [\d.]+[kMG]?B\/s/);
    assert.match(mid, /aaaaaaaaaaaa: Already exists/);
    p.event({ type: "layer", id: "bbbbbbbbbbbb", status: "complete" });
    p.stop();
    assert.match(s.text(), /bbbbbbbbbbbb: Pull complete/);
  });
});
