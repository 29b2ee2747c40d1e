/**
 * An HTTP proxy in front of a real registry that injects network faults on demand: answer
 * with an error status (with Retry-After) a number of times, cut a response body after some
 * bytes, or drop the Range header of a request (a registry that ignores Range). Every request
 * is recorded.
 */
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";

export interface ProxiedRequest {
  method: string;
  url: string;
  range?: string;
}

export interface Fault {
  match: RegExp;
  /** Answer with this status instead of forwarding (e.g. 503, 429). */
  status?: number;
  retryAfter?: string;
  /** Forward, but destroy the connection after this many body bytes. */
  cutAfter?: number;
  /** Forward, but stop sending (keeping the connection open) after this many body bytes. */
  stallAfter?: number;
  /** Forward without the Range header. */
  dropRange?: boolean;
  /** How many matching requests this fault applies to. */
  times: number;
}

export interface FaultProxy {
  host: string;
  requests: ProxiedRequest[];
  faults: Fault[];
  stop(): Promise<void>;
}

export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  const requests: ProxiedRequest[] = [];
  const faults: Fault[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    requests.push({ method: req.method ?? "GET", url, range: req.headers.range });
    const fault = faults.find((f) => f.times > 0 && f.match.test(url));
    if (fault) fault.times--;
    if (fault?.status) {
      res.writeHead(fault.status, { "Content-Type": "application/json", ...(fault.retryAfter ? { "Retry-After": fault.retryAfter } : {}) });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    const headers = { ...req.headers };
    if (fault?.dropRange) delete headers.range;
    const up = request({ host: "127.0.0.1", port: upstreamPort, method: req.method, path: url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (fault?.stallAfter !== undefined) {
        let sent = 0;
        const limit = fault.stallAfter;
        upRes.on("data", (chunk: Buffer) => {
          if (sent >= limit) return;
          const part = chunk.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) upRes.pause();
        });
        return;
      }
      if (fault?.cutAfter !== undefined) {
        let sent = 0;
        const limit = fault.cutAfter;
        upRes.on("data", (chunk: Buffer) => {
          if (sent >= limit) return;
          const part = chunk.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            upRes.destroy();
            setImmediate(() => res.socket?.destroy());
          }
        });
        return;
      }
      upRes.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    faults,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
