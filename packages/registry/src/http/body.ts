/**
 * Keeps a connection usable after a request whose body was not read to its end (an upload
 * that failed half-way: size limit, full disk, storage error). Node does not discard the rest
 * of a body a handler started to read, so without this the next request on a keep-alive
 * connection would wait behind it until the connection times out.
 *
 * Contract: before the response goes out, what is left of the body is read and discarded,
 * at most DRAIN_BYTES bytes during at most DRAIN_MS; when the body ends within those bounds
 * the connection stays open, otherwise the response carries `Connection: close` (and what
 * still arrives is discarded until the socket closes).
 */
import type { IncomingMessage } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import type { Context, Next } from "koa";

export const DRAIN_BYTES = 16 * 1024 * 1024;
export const DRAIN_MS = 2000;

/** Reads and discards the rest of `req`; true when it ended within the bounds. */
function drain(req: IncomingMessage, maxBytes: number, maxMs: number): Promise<boolean> {
  if (req.complete) return Promise.resolve(true);
  if (req.destroyed || req.readableEnded) return Promise.resolve(false);
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      req.off("error", onClose);
      // Whatever still arrives is discarded, never buffered.
      if (!ok) req.resume();
      resolve(ok);
    };
    const onData = (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) done(false);
    };
    const onEnd = () => done(true);
    const onClose = () => done(req.complete);
    const timer = setTimeout(() => done(false), maxMs);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("close", onClose);
    req.once("error", onClose);
    req.unpipe();
    req.resume();
  });
}

export function bodyGuard(maxBytes = DRAIN_BYTES, maxMs = DRAIN_MS) {
  return async function body(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } finally {
      if (!ctx.req.complete && !(await drain(ctx.req, maxBytes, maxMs))) ctx.set("Connection", "close");
    }
  };
}

/**
 * The request body for a handler to read. A reader that stops early (an error mid-upload)
 * destroys this stream, not the request, so that bodyGuard can still drain the request and
 * keep the connection. A client that goes away fails the stream.
 */
export function requestBody(ctx: Context): Readable {
  const req = ctx.req;
  const out = new PassThrough();
  // A handler may fail before it reads (unknown upload, Redis down): a client that then goes
  // away must not raise an error nobody listens to. Readers still see the error.
  out.on("error", () => {});
  const onClose = () => {
    if (!req.complete) out.destroy(Object.assign(new Error("request body cut short"), { code: "ECONNRESET" }));
  };
  req.once("close", onClose);
  out.once("close", () => {
    req.off("close", onClose);
    req.unpipe(out);
  });
  req.pipe(out);
  return out;
}
