/**
 * GET /v2/ (API version check), GET /livez (process liveness), GET /healthz (health) and
 * GET /readyz (readiness).
 *
 * /livez answers 200 `{"status":"ok"}` whenever the HTTP loop runs, without credentials and
 * whatever the dependencies: it is what a restart-on-failure probe should watch, since a
 * restart never cures a dependency outage.
 *
 * /healthz means: this process serves HTTP AND reaches every dependency it needs
 * (storage; Redis in a fleet), so it is 503 during a dependency outage, like readiness. Both
 * run the same checks, each within a short deadline (one probe shared by concurrent callers),
 * and answer 200 `{"status":"ok","checks":{...}}` or 503 with `"status":"unavailable"`, each
 * failing check's cause, an OCI UNAVAILABLE error and Retry-After. `GET /v2/` answers whenever
 * the HTTP loop runs, whatever the dependencies.
 */
import type Router from "@koa/router";
import { OciError, toErrorBody } from "@strata/core";
import type { Context } from "koa";
import type { HealthReport } from "../services/health.js";
import type { Services } from "../services/index.js";

function answer(ctx: Context, report: HealthReport): void {
  ctx.set("Cache-Control", "no-store");
  if (report.ok) {
    ctx.body = { status: "ok", checks: report.checks };
    return;
  }
  const failing = Object.entries(report.checks).filter(([, c]) => c.status !== "ok");
  const message = failing.map(([n, c]) => `${n}: ${c.error}`).join("; ");
  ctx.status = 503;
  ctx.set("Retry-After", "1");
  ctx.body = { status: "unavailable", checks: report.checks, ...toErrorBody(new OciError("UNAVAILABLE", { message })) };
}

export function registerBase(router: Router, s: Services): void {
  router.get("/v2/", (ctx) => {
    ctx.type = "application/json";
    ctx.body = "{}";
  });
  router.get("/livez", (ctx) => {
    ctx.set("Cache-Control", "no-store");
    ctx.body = { status: "ok" };
  });
  router.get("/healthz", async (ctx) => answer(ctx, await s.health.probe()));
  router.get("/readyz", async (ctx) => answer(ctx, await s.health.probe()));
}
