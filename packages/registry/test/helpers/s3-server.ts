/**
 * A real S3-compatible server for tests. The endpoint comes from STRATA_TEST_S3_ENDPOINT
 * (default http://127.0.0.1:9000, credentials STRATA_TEST_S3_ACCESS_KEY/STRATA_TEST_S3_SECRET_KEY,
 * default the local Swift's "test:tester"/"testing"). When nothing answers on a local endpoint
 * that STRATA_TEST_S3_ENDPOINT names, scripts/s3-server.sh starts Swift with s3api there (and
 * leaves it running for later runs, as CI does); without that variable nothing is installed or
 * started and the S3 tests are skipped.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from "@aws-sdk/client-s3";
import { type S3Config, s3Schema } from "../../src/config.js";
import { createS3Client, ensureBucket } from "../../src/storage/s3.js";

const run = promisify(execFile);

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "scripts", "s3-server.sh"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("scripts/s3-server.sh not found above the test helper");
    dir = up;
  }
}

export function s3TestEndpoint(): string {
  return process.env.STRATA_TEST_S3_ENDPOINT || "http://127.0.0.1:9000";
}

/** A config for the test server with a bucket name but no bucket created. */
export function baseS3TestConfig(overrides: Partial<S3Config> = {}): S3Config {
  return s3Schema.parse({
    endpoint: s3TestEndpoint(),
    bucket: `strata-test-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`,
    region: process.env.STRATA_TEST_S3_REGION || "us-east-1",
    forcePathStyle: true,
    accessKeyId: process.env.STRATA_TEST_S3_ACCESS_KEY || "test:tester",
    secretAccessKey: process.env.STRATA_TEST_S3_SECRET_KEY || "testing",
    maxAttempts: 3,
    requestTimeoutMs: 30_000,
    ...overrides,
  });
}

let started: Promise<boolean> | undefined;

async function startLocalServer(endpoint: string): Promise<boolean> {
  const url = new URL(endpoint);
  if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") return false;
  const port = url.port || "80";
  const script = join(repoRoot(), "scripts", "s3-server.sh");
  const dir = process.env.STRATA_TEST_S3_DIR || join(process.env.TMPDIR || "/tmp", `strata-s3-${port}`);
  try {
    await run("bash", [script, "start", dir, port], { timeout: 300_000 });
    return true;
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    console.error(`# could not start the S3 test server: ${x.stderr || x.message}`);
    return false;
  }
}

/**
 * A config for the test server with a fresh, empty bucket of its own, or undefined when no
 * server answers and none can be started (the caller skips loudly).
 */
export async function s3TestConfig(overrides: Partial<S3Config> = {}): Promise<S3Config | undefined> {
  const cfg = baseS3TestConfig(overrides);
  // A silent endpoint must not stall the suite: probe with short timeouts.
  const probe = { ...cfg, maxAttempts: 2, requestTimeoutMs: 5000 };
  try {
    await ensureBucket(probe);
    return cfg;
  } catch (e) {
    if ((e as Error).name !== "StorageUnavailableError") throw e;
  }
  if (!process.env.STRATA_TEST_S3_ENDPOINT) return undefined;
  started ??= startLocalServer(cfg.endpoint!);
  if (!(await started)) return undefined;
  await ensureBucket(probe);
  return cfg;
}

/** Why S3 tests were skipped, for the skip message. */
export function s3SkipReason(): string {
  if (!process.env.STRATA_TEST_S3_ENDPOINT) {
    return `S3 tests SKIPPED: no S3 server answers at ${s3TestEndpoint()} (bash scripts/s3-server.sh start DIR 9000, then set STRATA_TEST_S3_ENDPOINT)`;
  }
  return `S3 tests SKIPPED: no S3 server answers at ${s3TestEndpoint()} and scripts/s3-server.sh could not start one`;
}

/** Removes everything in the config's bucket (objects and unfinished uploads) and the bucket. */
export async function dropS3TestBucket(cfg: S3Config): Promise<void> {
  const client: S3Client = createS3Client(cfg);
  try {
    let token: string | undefined;
    do {
      const res = await client.send(new ListObjectsV2Command({ Bucket: cfg.bucket, ContinuationToken: token }));
      const keys = (res.Contents ?? []).map((c) => ({ Key: c.Key! }));
      if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket: cfg.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    const ups = await client.send(new ListMultipartUploadsCommand({ Bucket: cfg.bucket }));
    for (const u of ups.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: cfg.bucket, Key: u.Key!, UploadId: u.UploadId! }));
    await client.send(new DeleteBucketCommand({ Bucket: cfg.bucket }));
  } finally {
    client.destroy();
  }
}
