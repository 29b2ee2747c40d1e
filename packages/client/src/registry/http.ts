/**
 * A small HTTP client on node:http/https (much faster than fetch's web streams for large blob
 * bodies): keep-alive agents, redirects followed (Authorization dropped when the origin
 * changes, e.g. a registry redirecting to presigned storage URLs), AbortSignal support, an idle
 * timeout. A body cut short by the peer, or stalled past the idle timeout, fails its iteration
 * with a network error (ECONNRESET / ETIMEDOUT).
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";

const MAX_REDIRECTS = 10;

/**
 * Response headers by lower-case name (repeated headers joined with ", "). The global `Headers`
 * would do, but creating the first one loads undici (~40 ms), in every thread.
 */
export class ResponseHeaders {
  private readonly map = new Map<string, string>();

  append(name: string, value: string): void {
    const k = name.toLowerCase();
    const old = this.map.get(k);
    this.map.set(k, old === undefined ? value : `${old}, ${value}`);
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
}

export class HttpResponse {
  readonly ok: boolean;
  readonly headers = new ResponseHeaders();

  constructor(
    readonly status: number,
    raw: IncomingHttpHeaders,
    readonly stream: IncomingMessage,
    readonly url: string,
  ) {
    this.ok = status >= 200 && status < 300;
    for (const [k, v] of Object.entries(raw)) {
      if (v === undefined) continue;
      this.headers.append(k, Array.isArray(v) ? v.join(", ") : v);
    }
  }

  /** The body as an async iterable with a `cancel()` like fetch's (discards the rest). */
  get body(): AsyncIterable<Buffer> & { cancel(): Promise<void> } {
    const stream = this.stream;
    return {
      [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>,
      cancel: async () => {
        stream.destroy();
      },
    };
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of this.stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  agent?: { http: http.Agent; https: https.Agent };
  /** Socket idle timeout (ms): no byte sent or received for this long fails with ETIMEDOUT. */
  idleTimeoutMs?: number;
}

export function createAgents(): { http: http.Agent; https: https.Agent } {
  return { http: new http.Agent({ keepAlive: true, maxSockets: 32 }), https: new https.Agent({ keepAlive: true, maxSockets: 32 }) };
}

/** Sends a request (no body) and resolves with the final response after redirects. */
export function httpSend(url: string, o: HttpRequestOptions = {}, redirects = 0): Promise<HttpResponse> {
  const u = new URL(url);
  const isHttps = u.protocol === "https:";
  if (!isHttps && u.protocol !== "http:") return Promise.reject(new Error(`unsupported URL scheme in ${u.origin}`));
  const mod = isHttps ? https : http;
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = mod.request(
      u,
      { method: o.method ?? "GET", headers: o.headers, signal: o.signal, agent: o.agent ? (isHttps ? o.agent.https : o.agent.http) : undefined },
      (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if ([301, 302, 303, 307, 308].includes(status) && location) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) {
            reject(new Error(`too many redirects from ${u.origin}${u.pathname}`));
            return;
          }
          const next = new URL(location, u);
          const headers = { ...o.headers };
          if (next.origin !== u.origin) delete headers.Authorization;
          const method = status === 303 ? "GET" : o.method;
          httpSend(next.href, { ...o, method, headers }, redirects + 1).then(resolve, reject);
          return;
        }
        resolve(new HttpResponse(status, res.headers, res, u.href));
      },
    );
    req.on("error", reject);
    if (o.idleTimeoutMs) {
      req.setTimeout(o.idleTimeoutMs, () => {
        const e = Object.assign(new Error(`no data from ${u.origin} for ${o.idleTimeoutMs} ms`), { code: "ETIMEDOUT" });
        req.destroy(e);
      });
    }
    req.end();
  });
}
