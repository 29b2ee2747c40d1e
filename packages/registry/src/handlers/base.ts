/** GET /v2/ (API version check) and GET /healthz. */
import type Router from "@koa/router";
import type { Services } from "../services/index.js";

export function registerBase(router: Router, s: Services): void {
  router.get("/v2/", (ctx) => {
    ctx.type = "application/json";
    ctx.body = "{}";
  });
  router.get("/healthz", async (ctx) => {
    await s.health();
    ctx.body = { status: "ok" };
  });
}
