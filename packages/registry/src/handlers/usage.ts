/**
 * GET /strata/v1/usage: bytes of the distinct blobs linked per repository (only those the
 * caller may list) and per quota, as JSON:
 *   {"repositories": [{"name", "bytes", "blobs"}], "quotas": [{"quota", "repositories", "maxBytes", "usedBytes"}]}
 */
import type Router from "@koa/router";
import { identityOf } from "../http/auth.js";
import type { Services } from "../services/index.js";

export function registerUsage(router: Router, s: Services): void {
  router.get("/strata/v1/usage", async (ctx) => {
    const id = identityOf(ctx);
    ctx.body = await s.usage.usage((name) => id === undefined || id.lists(name));
  });
}
