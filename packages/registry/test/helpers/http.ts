/**
 * Test harness: a registry built from a Backend, driven through supertest, and assertions
 * for the OCI Distribution Spec v1.1 error format.
 *
 * Every response body is read as raw bytes (never decoded or decompressed by the client),
 * so tests can compare served content byte for byte.
 */
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { type CreateRegistryOptions, createRegistry, type Registry } from "../../src/app.js";
import type { RegistryConfig } from "../../src/config.js";
import { basic, parseChallenge, tokenPath } from "./auth.js";
import type { Backend } from "./backends.js";

export interface Res {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  header(name: string): string | undefined;
  text(): string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index response JSON freely
  json<T = any>(): T;
}

export interface ReqOptions {
  headers?: Record<string, string>;
  /** Request body; POST/PUT/PATCH without one send an empty body (Content-Length: 0). */
  body?: Buffer | string;
}

export interface Harness {
  readonly reg: Registry;
  req(method: string, path: string, opts?: ReqOptions): Promise<Res>;
  /**
   * Sends `chunks` with Transfer-Encoding: chunked (no Content-Length), as streaming clients
   * such as Docker do, over a real socket.
   */
  streamed(method: string, path: string, chunks: Buffer[], headers?: Record<string, string>): Promise<Res>;
  close(): Promise<void>;
}

function makeRes(status: number, headers: Record<string, string | string[] | undefined>, body: Buffer): Res {
  return {
    status,
    headers,
    body,
    header(name) {
      const v = headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(", ") : v;
    },
    text() {
      return body.toString("utf8");
    },
    json() {
      try {
        return JSON.parse(body.toString("utf8"));
      } catch {
        throw new assert.AssertionError({ message: `response body is not JSON (status ${status}): ${body.toString("utf8").slice(0, 300)}` });
      }
    },
  };
}

function rawParser(res: IncomingMessage, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on("data", (c: Buffer) => chunks.push(c));
  res.on("end", () => cb(null, Buffer.concat(chunks)));
  res.on("error", (e) => cb(e, Buffer.alloc(0)));
}

/**
 * Starts a registry (startRegistry) before the enclosing describe block's tests and closes it
 * after them. The harness returned forwards to the running registry, so it is used in tests and
 * hooks only; its `close` does nothing (the after hook closes the registry).
 */
export function useRegistry(backend: Backend, configure?: (config: RegistryConfig) => void): Harness {
  let h: Harness | undefined;
  before(async () => {
    h = await startRegistry(backend, configure);
  });
  after(async () => {
    await h?.close();
  });
  const cur = (): Harness => {
    if (!h) throw new Error("useRegistry: the registry runs only inside tests and hooks");
    return h;
  };
  return {
    get reg() {
      return cur().reg;
    },
    req: (method, path, opts) => cur().req(method, path, opts),
    streamed: (method, path, chunks, headers) => cur().streamed(method, path, chunks, headers),
    close: async () => {},
  };
}

/** Builds a registry on a fresh backend; `configure` may adjust the config before it is used. */
export async function startRegistry(backend: Backend, configure?: (config: RegistryConfig) => void, opts?: CreateRegistryOptions): Promise<Harness> {
  const { config, cleanup } = await backend.make();
  configure?.(config);
  let reg: Registry;
  try {
    reg = await createRegistry(config, opts);
  } catch (e) {
    await cleanup();
    throw e;
  }
  const agent = request(reg.app.callback());
  let server: ReturnType<typeof createServer> | undefined;

  const tokens = new Map<string, string>();
  const creds = backend.credentials;

  /** Sends the request; a backend with credentials answers a 401 challenge as docker does and sends it again. */
  async function req(method: string, path: string, opts: ReqOptions = {}): Promise<Res> {
    const res = await send(method, path, opts);
    if (res.status !== 401 || !creds || opts.headers?.Authorization) return res;
    const ch = parseChallenge(res.header("www-authenticate"));
    if (!ch) return res;
    let authorization = basic(creds.user, creds.password);
    if (ch.scheme === "bearer") {
      const key = `${ch.params.scope ?? ""} ${/[?&]from=([^&]+)/.exec(path)?.[1] ?? ""}`;
      let token = tokens.get(key);
      if (!token) {
        // A mount asks for the source's pull scope too, in the same token (as docker does).
        const from = /[?&]from=([^&]+)/.exec(path)?.[1];
        const extra: Record<string, string> = from ? { scope: `${ch.params.scope} repository:${decodeURIComponent(from)}:pull` } : {};
        const t = await send("GET", tokenPath(ch, extra), { headers: { Authorization: authorization } });
        if (t.status !== 200) throw new Error(`token endpoint answered ${t.status}: ${t.text()}`);
        token = t.json().token as string;
        tokens.set(key, token);
      }
      authorization = `Bearer ${token}`;
    }
    return send(method, path, { ...opts, headers: { ...opts.headers, Authorization: authorization } });
  }

  async function send(method: string, path: string, opts: ReqOptions = {}): Promise<Res> {
    const m = method.toLowerCase();
    const make = (agent as unknown as Record<string, (url: string) => request.Test>)[m === "delete" ? "delete" : m];
    if (typeof make !== "function") throw new Error(`unsupported method ${method}`);
    let t = make
      .call(agent, path)
      .redirects(0)
      .ok(() => true);
    t = t.set("Accept-Encoding", "identity");
    for (const [k, v] of Object.entries(opts.headers ?? {})) t = t.set(k, v);
    // Never let superagent re-serialise a body (it JSON-encodes Buffers sent as +json types).
    t = t
      .buffer(true)
      .parse(rawParser as never)
      .serialize((d: unknown) => d as string);
    if (opts.body !== undefined) {
      t = t.send(Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body));
    } else if (m === "post" || m === "put" || m === "patch") {
      t = t.send(Buffer.alloc(0));
    }
    const r = await t;
    const body = Buffer.isBuffer(r.body) ? r.body : Buffer.alloc(0);
    return makeRes(r.status, r.headers as Record<string, string>, body);
  }

  async function streamed(method: string, path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<Res> {
    if (!server) {
      server = createServer(reg.app.callback());
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    }
    const { port } = server.address() as AddressInfo;
    return await new Promise<Res>((resolve, reject) => {
      const auth: Record<string, string> = creds ? { Authorization: basic(creds.user, creds.password) } : {};
      const r = httpRequest(
        { host: "127.0.0.1", port, method, path, headers: { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked", ...auth, ...headers } },
        (res) => {
          rawParser(res, (err, body) => (err ? reject(err) : resolve(makeRes(res.statusCode ?? 0, res.headers, body))));
        },
      );
      r.on("error", reject);
      for (const c of chunks) r.write(c);
      r.end();
    });
  }

  return {
    reg,
    req,
    streamed,
    async close() {
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      await reg.close();
      await cleanup();
    },
  };
}

/**
 * The 14 codes of the OCI Distribution Spec v1.1 ("The code field MUST be one of the
 * following"), plus TAG_INVALID, which the spec names among the codes a client "MAY
 * encounter" (PUT of a manifest to an invalid tag).
 */
export const SPEC_ERROR_CODES: readonly string[] = [
  "TAG_INVALID",
  "BLOB_UNKNOWN",
  "BLOB_UPLOAD_INVALID",
  "BLOB_UPLOAD_UNKNOWN",
  "DIGEST_INVALID",
  "MANIFEST_BLOB_UNKNOWN",
  "MANIFEST_INVALID",
  "MANIFEST_UNKNOWN",
  "NAME_INVALID",
  "NAME_UNKNOWN",
  "SIZE_INVALID",
  "UNAUTHORIZED",
  "DENIED",
  "UNSUPPORTED",
  "TOOMANYREQUESTS",
];

/** Fails when a body carries something that looks like a stack trace or source path. */
export function assertNoStackTrace(res: Res): void {
  const t = res.text();
  assert.doesNotMatch(t, /\n\s+at\s/, "error body contains a stack trace");
  assert.doesNotMatch(t, /\bat (?:async )?\S+ \(.*:\d+:\d+\)/, "error body contains a stack frame");
  assert.doesNotMatch(t, /(?:\/|\\)(?:src|dist|node_modules)(?:\/|\\)\S+\.(?:[cm]?js|ts):\d+/, "error body contains a source path");
}

export interface ErrorBodyEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/**
 * Asserts an OCI error response: the status (one of), `Content-Type: application/json`, a body
 * `{"errors":[{"code":...}, ...]}` whose codes are all spec codes, one of which is among
 * `codes`, and no stack trace. Returns the parsed errors.
 */
export function expectError(res: Res, status: number | readonly number[], codes: string | readonly string[], what = ""): ErrorBodyEntry[] {
  const statuses = typeof status === "number" ? [status] : status;
  const want = typeof codes === "string" ? [codes] : codes;
  const ctx = `${what ? `${what}: ` : ""}status ${res.status}, body ${res.text().slice(0, 300)}`;
  assert.ok(statuses.includes(res.status), `expected status ${statuses.join(" or ")}; ${ctx}`);
  const ct = res.header("content-type") ?? "";
  assert.match(ct, /^application\/json\b/i, `error Content-Type must be application/json, got ${JSON.stringify(ct)}; ${ctx}`);
  const body = res.json<{ errors?: ErrorBodyEntry[] }>();
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `body must be {"errors":[...]} with at least one error; ${ctx}`);
  for (const e of body.errors) {
    assert.equal(typeof e.code, "string", `every error has a string code; ${ctx}`);
    assert.match(e.code, /^[A-Z_]+$/, `code must contain only uppercase letters and underscores; ${ctx}`);
    assert.ok(SPEC_ERROR_CODES.includes(e.code), `code ${e.code} is not one of the spec's error codes; ${ctx}`);
    if (e.message !== undefined) assert.equal(typeof e.message, "string", `message must be a string; ${ctx}`);
  }
  assert.ok(
    body.errors.some((e) => want.includes(e.code)),
    `expected error code ${want.join(" or ")}, got ${body.errors.map((e) => e.code).join(", ")}; ${ctx}`,
  );
  assertNoStackTrace(res);
  return body.errors;
}

export function expectStatus(res: Res, status: number | readonly number[], what = ""): void {
  const statuses = typeof status === "number" ? [status] : status;
  assert.ok(
    statuses.includes(res.status),
    `${what ? `${what}: ` : ""}expected status ${statuses.join(" or ")}, got ${res.status}; body ${res.text().slice(0, 300)}`,
  );
}

/** The path+query of a Location header (which may be absolute or relative). */
export function locationPath(loc: string | undefined): string {
  assert.ok(loc && loc.length > 0, "Location header missing");
  const u = new URL(loc, "http://registry.invalid");
  return u.pathname + u.search;
}

/** `loc` with query parameters added (existing ones, which may be critical, are kept). */
export function withQuery(loc: string, params: Record<string, string>): string {
  const u = new URL(locationPath(loc), "http://registry.invalid");
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.pathname + u.search;
}

/** The URL of the RFC 5988 `rel="next"` link in a Link header, as path+query. */
export function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /\brel\s*=\s*"?next"?/i.test(m[2])) return locationPath(m[1]);
  }
  return undefined;
}

/** Base media type of a Content-Type value (parameters stripped, lower-cased). */
export function baseType(ct: string | undefined): string {
  return (ct ?? "").split(";")[0].trim().toLowerCase();
}
