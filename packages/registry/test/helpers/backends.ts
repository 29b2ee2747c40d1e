/**
 * Storage backends the HTTP tests run against. Every http-*.test.ts runs its whole describe
 * block once per backend returned by `backends()`.
 *
 * Selection: STRATA_TEST_BACKENDS, a comma-separated list of backend names
 * (default "memory,filesystem"). Each `make()` returns a fresh, empty registry configuration
 * and a cleanup that removes whatever the backend created.
 *
 * Extension point: add a factory to FACTORIES (e.g. "s3", with Redis) that builds its config
 * from the environment. Names listed in STRATA_TEST_BACKENDS without a factory are skipped
 * with a note on stderr; unknown names are an error.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type RegistryConfig } from "../../src/config.js";

export interface Backend {
  name: string;
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

/**
 * name -> factory. `undefined` marks a known backend whose factory is not written yet
 * ("s3": S3 storage plus Redis sessions; to be added here).
 */
const FACTORIES: Record<string, (() => Backend) | undefined> = {
  memory: memoryBackend,
  filesystem: filesystemBackend,
  s3: undefined,
};

export function backendNames(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.STRATA_TEST_BACKENDS ?? "memory,filesystem")
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
