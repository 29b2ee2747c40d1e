/**
 * The fleet configuration for cross-package tests: S3 storage on the real S3 test server
 * (a fresh bucket) and Redis (a fresh key prefix), as stateless replicas run it.
 */
import { randomBytes } from "node:crypto";
import { dropRedisPrefix, testRedisUrl } from "@strata/registry/test-helpers/backends.js";
import { dropS3TestBucket, s3SkipReason, s3TestConfig } from "@strata/registry/test-helpers/s3-server.js";

export async function fleetConfig(): Promise<{ config: Record<string, unknown>; cleanup: () => Promise<void>; redisUrl: string; keyPrefix: string }> {
  const s3 = await s3TestConfig();
  if (!s3) throw new Error(s3SkipReason());
  const redisUrl = testRedisUrl();
  const keyPrefix = `strata-test:${randomBytes(6).toString("hex")}:`;
  return {
    config: { storage: { driver: "s3", s3 }, redis: { url: redisUrl, keyPrefix }, uploads: { purgeIntervalSeconds: 0 } },
    redisUrl,
    keyPrefix,
    cleanup: async () => {
      await dropS3TestBucket(s3);
      await dropRedisPrefix(redisUrl, keyPrefix);
    },
  };
}
