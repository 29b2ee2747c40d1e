/**
 * Storage backends the HTTP tests run against. Every http-*.test.ts runs its whole describe
 * block once per backend returned by `backends()`.
 *
 * Selection: STRATA_TEST_BACKENDS, a comma-separated list of backend names
 * (default "memory,filesystem,auth"; "auth" is memory storage behind token authentication). Each `make()` returns a fresh, empty registry configuration
 * and a cleanup that removes whatever the backend created.
 *
 * Extension point: add a factory to FACTORIES (e.g. "s3", with Redis) that builds its config
 * from the environment. Names listed in STRATA_TEST_BACKENDS without a factory are skipped
 * with a note on stderr; unknown names are an error.
 */

import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type RegistryConfig } from "../../src/config.js";
import { dropS3TestBucket, s3SkipReason, s3TestConfig } from "./s3-server.js";

export interface Backend {
  name: string;
  /** Credentials the harness answers challenges with (the registry then requires them). */
  credentials?: { user: string; password: string };
  make(): Promise<{ config: RegistryConfig; cleanup(): Promise<void> }>;
}

const common = { log: { level: "silent" as const } };

function memoryBackend(): Backend {
  return {
    name: "memory",
    async make() {
      const config = parseConfig({ ...common, storage: { driver: "memory" } });
      return { config, cleanup: async () => {} };
    },
  };
}

function filesystemBackend(): Backend {
  return {
    name: "filesystem",
    async make() {
      const root = await mkdtemp(join(tmpdir(), "strata-http-test-"));
      const config = parseConfig({ ...common, storage: { driver: "filesystem", filesystem: { root } } });
      return { config, cleanup: () => rm(root, { recursive: true, force: true }) };
    },
  };
}

/** The Redis server tests use (STRATA_TEST_REDIS_URL, default the local one). */
export function testRedisUrl(): string {
  return process.env.STRATA_TEST_REDIS_URL || "redis://127.0.0.1:6379";
}

/** Deletes every Redis key under a prefix. */
export async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const { Redis } = await import("ioredis");
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length) await r.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
}

/** S3 storage (the real Swift s3api server) with Redis sessions, caches, index and locks: a fleet's configuration. */
function s3Backend(): Backend {
  return {
    name: "s3",
    async make() {
      const s3 = await s3TestConfig();
      if (!s3) throw new Error(s3SkipReason());
      const url = testRedisUrl();
      const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
      const config = parseConfig({ ...common, storage: { driver: "s3", s3 }, redis: { url, keyPrefix } });
      return {
        config,
        cleanup: async () => {
          await dropS3TestBucket(s3);
          await dropRedisPrefix(url, keyPrefix);
        },
      };
    },
  };
}

/**
 * Memory storage behind token authentication: the harness answers every 401 like docker (token
 * for the challenged scope from the registry's own token endpoint, then the same request again),
 * so every endpoint is exercised authenticated. The user may do everything.
 */
function authBackend(): Backend {
  const credentials = { user: "admin", password: "conformance-pw" };
  return {
    name: "auth",
    credentials,
    async make() {
      const dir = await mkdtemp(join(tmpdir(), "strata-http-auth-"));
      const { writeAuthFiles } = await import("./auth.js");
      const files = await writeAuthFiles(dir, { [credentials.user]: credentials.password });
      const config = parseConfig({
        ...common,
        storage: { driver: "memory" },
        auth: { htpasswd: { path: files.htpasswd }, token: { signingKey: files.signingKey, service: "strata-test" } },
        access: [{ repositories: ["**"], users: [credentials.user], actions: ["*"] }],
      });
      return { config, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  };
}

/** name -> factory */
const FACTORIES: Record<string, (() => Backend) | undefined> = {
  memory: memoryBackend,
  filesystem: filesystemBackend,
  s3: s3Backend,
  auth: authBackend,
};

export function backendNames(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.STRATA_TEST_BACKENDS ?? "memory,filesystem,auth")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function backends(env: NodeJS.ProcessEnv = process.env): Backend[] {
  const out: Backend[] = [];
  for (const name of backendNames(env)) {
    if (!(name in FACTORIES))
      throw new Error(`STRATA_TEST_BACKENDS names unknown backend ${JSON.stringify(name)}; known: ${Object.keys(FACTORIES).join(", ")}`);
    const factory = FACTORIES[name];
    if (factory === undefined) {
      process.stderr.write(`# backend ${name}: no test factory yet, skipped\n`);
      continue;
    }
    out.push(factory());
  }
  return out;
}
