/**
 * Two parts of `npm run bench:registry`:
 *
 *   load  32 pushers of distinct 8 MiB blobs (POST + PUT) and 32 pullers of 8 MiB blobs (GET of
 *         blobs pushed beforehand) for STRATA_BENCH_LOAD_SECONDS (30) against one server at a
 *         time: errors, push and pull throughput, p50 and p99 latency per request.
 *   tls   GET of a big blob over HTTPS by curl (-k), both servers with the same self-signed
 *         certificate, alternating, median.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../test/helpers/strata.js";
import { sha256 as sha } from "../test/helpers/oci-layout.js";
import { http, type Peer, pushMonolithic } from "./lib.js";

const MiB = 1024 * 1024;
const LOAD_SIZE = 8 * MiB;
const WORKERS = 32;

export interface LoadResult {
  errors: number;
  pushMBs: number;
  pullMBs: number;
  pushP50: number;
  pushP99: number;
  pullP50: number;
  pullP99: number;
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** Blobs the pullers read (pushed before the clock starts). */
export async function seedLoad(srv: Peer, n = 16): Promise<string[]> {
  const digests: string[] = [];
  for (let i = 0; i < n; i++) {
    const blob = randomBytes(LOAD_SIZE);
    const d = sha(blob);
    await pushMonolithic(srv.url, "bench/load", blob, d);
    digests.push(d);
  }
  return digests;
}

/** Runs the mixed load against one server. */
export async function loadProfile(srv: Peer, pullDigests: string[], seconds: number): Promise<LoadResult> {
  const base = randomBytes(LOAD_SIZE);
  const end = Date.now() + seconds * 1000;
  const push: number[] = [];
  const pull: number[] = [];
  let errors = 0;
  let counter = 0;
  const pusher = async (w: number) => {
    while (Date.now() < end) {
      const blob = Buffer.from(base);
      blob.writeUInt32BE(w, 0);
      blob.writeUInt32BE(++counter, 4);
      const d = sha(blob);
      const t = performance.now();
      try {
        await pushMonolithic(srv.url, `bench/load-push${w}`, blob, d);
        push.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  const puller = async (w: number) => {
    for (let i = w; Date.now() < end; i++) {
      const d = pullDigests[i % pullDigests.length];
      const t = performance.now();
      try {
        const res = await http("GET", `${srv.url}/v2/bench/load/blobs/${d}`);
        if (res.status !== 200 || res.bytes !== LOAD_SIZE) errors++;
        else pull.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all([...Array.from({ length: WORKERS }, (_, w) => pusher(w)), ...Array.from({ length: WORKERS }, (_, w) => puller(w))]);
  const secs = (performance.now() - started) / 1000;
  return {
    errors,
    pushMBs: (push.length * LOAD_SIZE) / MiB / secs,
    pullMBs: (pull.length * LOAD_SIZE) / MiB / secs,
    pushP50: pct(push, 50),
    pushP99: pct(push, 99),
    pullP50: pct(pull, 50),
    pullP99: pct(pull, 99),
  };
}

/** A self-signed certificate for 127.0.0.1 in a new directory (removed by `dispose`). */
export async function testCertificate(): Promise<{ dir: string; cert: string; key: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "bench-tls-"));
  const cert = join(dir, "tls.crt");
  const key = join(dir, "tls.key");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2"],
    { stdio: "ignore" },
  );
  return { dir, cert, key, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** GET of `url` by curl over HTTPS (certificate not checked), MB/s. */
export async function curlTls(url: string, size: number): Promise<number> {
  const r = await run("curl", ["-ksS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url]);
  const [code, bytes, secs] = r.stdout.trim().split(" ");
  if (code !== "200" || Number(bytes) !== size) throw new Error(`curl https pull: ${r.stdout} ${r.stderr}`);
  return size / MiB / Number(secs);
}
