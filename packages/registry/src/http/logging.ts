/**
 * One JSON log line per request: the path without its query string (which may hold a token), the
 * authenticated user's name; never the Authorization or Cookie headers.
 */
import type { Context, Next } from "koa";
import type { Logger } from "pino";

export function requestLog(logger: Logger) {
  return async function log(ctx: Context, next: Next): Promise<void> {
    if (!logger.isLevelEnabled("info")) {
      await next();
      if (ctx.state.error) logger.error({ method: ctx.method, path: ctx.path, status: ctx.status, err: errorFields(ctx.state.error as Error) }, "request failed");
      return;
    }
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const fields = {
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Number(process.hrtime.bigint() - start) / 1e6,
        bytesIn: Number(ctx.get("Content-Length")) || undefined,
        remote: ctx.ip,
        user: (ctx.state.identity as { user?: string } | undefined)?.user,
        ua: ctx.get("User-Agent") || undefined,
      };
      const err = ctx.state.error as Error | undefined;
      if (err) logger.error({ ...fields, err: errorFields(err) }, "request failed");
      else logger.info(fields, "request");
    }
  };
}

function errorFields(err: Error): Record<string, unknown> {
  return { name: err.name, message: err.message, stack: err.stack };
}
