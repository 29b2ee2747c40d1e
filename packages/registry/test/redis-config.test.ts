/**
 * The redis section of the config and the client options it becomes: a URL or Sentinel (not
 * both; a master name is required), TLS from a rediss:// URL or an explicit CA, and WAIT for a
 * replica by default only when the sentinels say there are replicas.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { applyEnv, ConfigError, parseConfig } from "../src/config.js";
import { ioredisOptions } from "../src/redis/client.js";

describe("redis configuration", () => {
  it("takes sentinels as a list or as a comma-separated environment variable", () => {
    const c = parseConfig(applyEnv({}, { STRATA_REDIS__SENTINELS: "10.0.0.1:26379, 10.0.0.2:26380", STRATA_REDIS__NAME: "strata" }));
    assert.deepEqual(c.redis.sentinels, ["10.0.0.1:26379", "10.0.0.2:26380"]);
    assert.equal(c.redis.lockTtlMs, 3000);
    const { url, options } = ioredisOptions(c.redis);
    assert.equal(url, undefined);
    assert.deepEqual(options.sentinels, [
      { host: "10.0.0.1", port: 26379 },
      { host: "10.0.0.2", port: 26380 },
    ]);
    assert.equal(options.name, "strata");
    assert.equal(options.tls, undefined);
  });

  it("refuses a URL together with sentinels, and sentinels without a master name", () => {
    assert.throws(() => parseConfig({ redis: { url: "redis://x:6379", sentinels: ["a:1"], name: "m" } }), ConfigError);
    assert.throws(() => parseConfig({ redis: { sentinels: ["a:1"] } }), /redis.name/);
    assert.throws(() => parseConfig({ redis: { sentinels: ["not an address"], name: "m" } }), ConfigError);
  });

  it("turns TLS on for rediss:// and reads a private CA", async () => {
    assert.deepEqual(ioredisOptions(parseConfig({ redis: { url: "rediss://r:6380" } }).redis).options.tls, {});
    const dir = await mkdtemp(join(tmpdir(), "strata-redis-ca-"));
    try {
      await writeFile(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\n");
      const c = parseConfig({ redis: { sentinels: ["s:26379"], name: "m", tls: { ca: join(dir, "ca.pem"), rejectUnauthorized: true } } });
      const { options } = ioredisOptions(c.redis);
      assert.equal(String((options.tls as { ca: Buffer }).ca), "-----BEGIN CERTIFICATE-----\n");
      assert.equal((options as { enableTLSForSentinelMode?: boolean }).enableTLSForSentinelMode, true, "the master found through the sentinels is reached over TLS too");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
