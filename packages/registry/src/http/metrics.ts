/**
 * Prometheus metrics: request counts and durations by route and status, bytes served and
 * received, exposed on GET /metrics. Route labels are the handler's resource, never a
 * repository name or digest (bounded cardinality).
 */
import type { Context, Next } from "koa";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  middleware(): (ctx: Context, next: Next) => Promise<void>;
}

const RESOURCES: [RegExp, string][] = [
  [/^\/v2\/?$/, "base"],
  [/^\/v2\/_catalog$/, "catalog"],
  [/\/blobs\/uploads(\/|$)/, "uploads"],
  [/\/blobs\//, "blobs"],
  [/\/manifests\//, "manifests"],
  [/\/tags\/list$/, "tags"],
  [/\/referrers\//, "referrers"],
  [/^\/strata\/v1\//, "metadata"],
  [/^\/ui(\/|$)/, "ui"],
];

function resourceOf(path: string): string {
  for (const [re, name] of RESOURCES) if (re.test(path)) return name;
  return "other";
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "strata_" });
  const requests = new Counter({
    name: "strata_http_requests_total",
    help: "HTTP requests",
    labelNames: ["resource", "method", "status"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "strata_http_request_duration_seconds",
    help: "HTTP request duration",
    labelNames: ["resource", "method"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  return {
    registry,
    middleware() {
      return async (ctx, next) => {
        if (ctx.path === "/metrics" && ctx.method === "GET") {
          ctx.type = registry.contentType;
          ctx.body = await registry.metrics();
          return;
        }
        const resource = resourceOf(ctx.path);
        const end = duration.startTimer({ resource, method: ctx.method });
        try {
          await next();
        } finally {
          end();
          requests.inc({ resource, method: ctx.method, status: String(ctx.status) });
        }
      };
    },
  };
}
