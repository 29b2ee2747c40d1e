/**
 * The registry's one HTTP client for upstream registries (pull-through cache). Every limit,
 * deadline, redirect, retry and authentication rule toward an upstream lives here:
 * - Deadlines: an answer's headers must arrive within `timeoutMs`; a body must keep flowing
 *   (no wait between chunks longer than `timeoutMs`); token answers and manifests are read
 *   whole within `timeoutMs`.
 * - Limits: manifests at most MANIFEST_MAX bytes, token answers at most TOKEN_MAX bytes, error
 *   bodies are never read. Blob bodies are streamed, never held.
 * - Redirects (blob storage, CDNs): followed manually, at most MAX_REDIRECTS, http(s) only;
 *   Authorization is never sent to another origin than the one it was issued for.
 * - Authentication: the upstream's challenge decides. Bearer: a token from its realm (with
 *   Basic credentials when configured), cached per scope until shortly before it expires.
 *   Basic: the configured credentials. Credentials are never logged nor put in errors.
 * - Retries: GET/HEAD that failed before any answer (connection refused, reset, deadline) or
 *   answered 502/503/504 are retried twice with a short backoff. 429 is never retried here:
 *   the caller serves its cached copy or passes the answer on.
 * Everything an upstream sends is hostile: sizes are checked, digests verified by callers,
 * header values parsed strictly.
 */
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { type Readable, Transform } from "node:stream";
import { type Digest, digestAlgorithm, digestOf, isValidTag, tryParseDigest } from "@strata/core";

export const MANIFEST_MAX = 4 * 1024 * 1024;
const TOKEN_MAX = 64 * 1024;
const MAX_REDIRECTS = 5;
const RETRY_DELAYS_MS = [200, 800];
/** Deadline of a tag revalidation (a cached answer is served when it passes). */
const REVALIDATE_MS = 5000;

export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

/** Why an upstream exchange failed: `status` is the upstream's HTTP status when it answered. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly retryAfter?: string,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
  /** The upstream answered 404: it does not hold the thing. */
  get notFound(): boolean {
    return this.status === 404;
  }
}

export interface UpstreamOptions {
  url: string;
  username?: string;
  password?: string;
  timeoutMs: number;
}

export interface UpstreamBlob {
  /** From Content-Length, when the upstream sent one. */
  size?: number;
  body: Readable;
}

export interface UpstreamManifest {
  digest: Digest;
  mediaType: string;
  raw: Buffer;
}

/** An upstream answer whose headers arrived; `body` is unread. */
interface Reply {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: IncomingMessage;
}

interface Answer {
  res: Reply;
  /** Aborting it ends the exchange (the connection is dropped unless the body was read to its end). */
  controller: AbortController;
}

/** Drops an answer's unread body. */
function discard(res: Reply): void {
  res.body.resume();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Parses `Bearer realm="..",service="..",scope=".."` / `Basic realm=".."`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2])) !== null && p[0] !== "") params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1].toLowerCase(), params };
}

export class UpstreamClient {
  readonly base: URL;
  private readonly tokens = new Map<string, { token: string; until: number }>();
  /** The upstream's challenge scheme once seen ("bearer" | "basic"), so later requests authenticate up front. */
  private scheme: string | undefined;
  private realm: { realm: string; service?: string } | undefined;
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly opts: UpstreamOptions) {
    this.base = new URL(opts.url.replace(/\/+$/, "") + "/");
  }

  /** Host of the upstream, for logs and metrics labels. */
  get host(): string {
    return this.base.host;
  }

  /**
   * GET or HEAD a manifest; GET reads it whole (bounded) and checks its digest. `quick`: one
   * attempt within REVALIDATE_MS (revalidating a tag that has a cached answer to fall back on).
   */
  async manifest(
    name: string,
    reference: string,
    method: "GET" | "HEAD",
    opts: { quick?: boolean; signal?: AbortSignal } = {},
  ): Promise<UpstreamManifest | { digest: Digest; mediaType: string; size: number }> {
    const limits = opts.quick ? { attempts: 1, timeoutMs: Math.min(REVALIDATE_MS, this.opts.timeoutMs) } : undefined;
    const { res, controller } = await this.send(method, `v2/${name}/manifests/${reference}`, name, { Accept: MANIFEST_ACCEPT.join(", ") }, opts.signal, limits);
    try {
      await this.expectOk(res, `manifest ${name}:${reference}`);
      const mediaType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
      const declared = tryParseDigest(res.headers.get("docker-content-digest") ?? "");
      const byDigest = tryParseDigest(reference);
      const length = contentLength(res);
      if (length !== undefined && length > MANIFEST_MAX) throw new UpstreamError(`manifest ${name}:${reference} is larger than ${MANIFEST_MAX} bytes`);
      if (method === "HEAD") {
        const digest = byDigest ?? declared;
        if (!digest) throw new UpstreamError(`manifest ${name}:${reference}: no Docker-Content-Digest in the answer`);
        if (byDigest && declared && declared !== byDigest) throw new UpstreamError(`manifest ${name}:${reference}: upstream names digest ${declared}`);
        return { digest, mediaType, size: length ?? -1 };
      }
      const raw = await readBounded(res, MANIFEST_MAX, limits?.timeoutMs ?? this.opts.timeoutMs, controller);
      const expected = byDigest ?? declared;
      const digest = digestOf(raw, expected ? digestAlgorithm(expected) : "sha256");
      if (byDigest && digest !== byDigest) throw new UpstreamError(`manifest ${name}@${byDigest}: upstream sent content with digest ${digest}`);
      if (declared && digestAlgorithm(declared) === digestAlgorithm(digest) && declared !== digest)
        throw new UpstreamError(`manifest ${name}:${reference}: Docker-Content-Digest ${declared} does not match the content (${digest})`);
      return { digest, mediaType, raw };
    } finally {
      controller.abort();
    }
  }

  /** The repository's tags (one answer, at most MANIFEST_MAX bytes; one attempt within REVALIDATE_MS). */
  async tags(name: string, signal?: AbortSignal): Promise<string[]> {
    const limits = { attempts: 1, timeoutMs: Math.min(REVALIDATE_MS, this.opts.timeoutMs) };
    const { res, controller } = await this.send("GET", `v2/${name}/tags/list`, name, { Accept: "application/json" }, signal, limits);
    try {
      await this.expectOk(res, `tags of ${name}`);
      const raw = await readBounded(res, MANIFEST_MAX, limits.timeoutMs, controller);
      let parsed: { tags?: unknown };
      try {
        parsed = JSON.parse(raw.toString("utf8")) as { tags?: unknown };
      } catch {
        throw new UpstreamError(`tags of ${name}: not JSON`);
      }
      const tags = parsed?.tags ?? [];
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string" && isValidTag(t))) throw new UpstreamError(`tags of ${name}: invalid list`);
      return tags as string[];
    } finally {
      controller.abort();
    }
  }

  /** HEAD a blob: its size, or UpstreamError (404: unknown). */
  async blobSize(name: string, digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    const { res, controller } = await this.send("HEAD", `v2/${name}/blobs/${digest}`, name, {}, signal);
    try {
      await this.expectOk(res, `blob ${name}@${digest}`);
      return contentLength(res);
    } finally {
      controller.abort();
    }
  }

  /** GET a blob as a stream whose chunks must keep coming within the deadline. Unverified: callers verify. */
  async blob(name: string, digest: Digest, signal?: AbortSignal): Promise<UpstreamBlob> {
    const { res, controller } = await this.send("GET", `v2/${name}/blobs/${digest}`, name, {}, signal);
    try {
      await this.expectOk(res, `blob ${name}@${digest}`);
    } catch (e) {
      controller.abort();
      throw e;
    }
    return { size: contentLength(res), body: idleGuarded(res.body, controller, this.opts.timeoutMs, `blob ${name}@${digest}`) };
  }

  private async expectOk(res: Reply, what: string): Promise<void> {
    if (res.status === 200) return;
    discard(res);
    throw new UpstreamError(`${what}: upstream answered ${res.status}`, res.status, res.headers.get("retry-after") ?? undefined);
  }

  /**
   * One request with authentication, redirects and retries. Resolves with the final answer
   * (any status) whose headers arrived in time; rejects with UpstreamError when none did.
   */
  private async send(
    method: "GET" | "HEAD",
    path: string,
    repository: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    limits: { attempts: number; timeoutMs: number } = { attempts: RETRY_DELAYS_MS.length + 1, timeoutMs: this.opts.timeoutMs },
  ): Promise<Answer> {
    const scope = `repository:${repository}:pull`;
    const retries = limits.attempts - 1;
    for (let attempt = 0; ; attempt++) {
      let answer: Answer;
      try {
        let auth = await this.authorization(scope, signal);
        answer = await this.follow(method, new URL(path, this.base), { ...headers, ...(auth ? { Authorization: auth } : {}) }, signal, limits.timeoutMs);
        if (answer.res.status === 401) {
          const challenge = parseChallenge(answer.res.headers.get("www-authenticate") ?? "");
          discard(answer.res);
          answer.controller.abort();
          if (!challenge) throw new UpstreamError(`upstream answered 401 without a usable challenge`, 401);
          this.learn(challenge);
          auth = await this.authorization(scope, signal, true);
          if (!auth) throw new UpstreamError(`upstream requires authentication (${challenge.scheme}) and no credentials are configured`, 401);
          answer = await this.follow(method, new URL(path, this.base), { ...headers, Authorization: auth }, signal, limits.timeoutMs);
        }
      } catch (e) {
        if (signal?.aborted) throw e;
        if (e instanceof UpstreamError && e.status !== undefined) throw e;
        if (attempt < retries) {
          await sleep(RETRY_DELAYS_MS[attempt]);
          continue;
        }
        throw e instanceof UpstreamError ? e : new UpstreamError(`upstream ${this.host} unreachable: ${causeOf(e)}`);
      }
      if ([502, 503, 504].includes(answer.res.status) && attempt < retries) {
        discard(answer.res);
        answer.controller.abort();
        await sleep(RETRY_DELAYS_MS[attempt]);
        continue;
      }
      return answer;
    }
  }

  private async follow(method: string, url: URL, headers: Record<string, string>, signal?: AbortSignal, timeoutMs = this.opts.timeoutMs): Promise<Answer> {
    const origin = url.origin;
    for (let hop = 0; ; hop++) {
      const sent = url.origin === origin ? headers : withoutAuth(headers);
      const { res, controller } = await this.exchange(method, url, sent, timeoutMs, signal);
      if (![301, 302, 303, 307, 308].includes(res.status)) return { res, controller };
      discard(res);
      controller.abort();
      const location = res.headers.get("location");
      if (!location || hop >= MAX_REDIRECTS) throw new UpstreamError(`upstream ${url.host}: too many or empty redirects`, res.status);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new UpstreamError(`upstream ${url.host}: invalid redirect`, res.status);
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") throw new UpstreamError(`upstream ${url.host}: redirect to a non-http URL`, res.status);
      url = next;
    }
  }

  /** One HTTP exchange: resolves when the answer's headers arrived within `timeoutMs`. */
  private exchange(method: string, url: URL, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const controller = new AbortController();
      let answered: IncomingMessage | undefined;
      const https = url.protocol === "https:";
      const req = (https ? httpsRequest : httpRequest)(
        url,
        {
          method,
          headers: { ...headers, "Accept-Encoding": "identity", "User-Agent": "strata-proxy" },
          agent: https ? this.httpsAgent : this.httpAgent,
          maxHeaderSize: 64 * 1024,
        },
        (body) => {
          answered = body;
          clearTimeout(timer);
          const reply: Reply = {
            status: body.statusCode ?? 0,
            body,
            headers: {
              get(name: string) {
                const v = body.headers[name.toLowerCase()];
                return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
              },
            },
          };
          // a body that fails (reset, deadline) is an upstream error to whoever reads it
          body.on("error", () => {});
          resolve({ res: reply, controller });
        },
      );
      const timer = setTimeout(() => controller.abort(new UpstreamError(`upstream ${url.host}: no answer within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = () => controller.abort(signal?.reason ?? new UpstreamError("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      controller.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          // a body read to its end leaves its connection to the pool
          if (answered?.complete) return;
          const reason = controller.signal.reason as unknown;
          req.destroy(reason instanceof Error ? reason : new UpstreamError("aborted"));
        },
        { once: true },
      );
      req.on("error", (e) => {
        clearTimeout(timer);
        const reason = controller.signal.reason as unknown;
        reject(reason instanceof UpstreamError ? reason : e);
      });
      req.once("close", () => signal?.removeEventListener("abort", onAbort));
      req.end();
    });
  }

  /** Releases pooled connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private learn(challenge: { scheme: string; params: Record<string, string> }): void {
    this.scheme = challenge.scheme;
    if (challenge.scheme === "bearer" && challenge.params.realm) this.realm = { realm: challenge.params.realm, service: challenge.params.service };
  }

  /** The Authorization value for `scope`, once the upstream's scheme is known. */
  private async authorization(scope: string, signal?: AbortSignal, fresh = false): Promise<string | undefined> {
    const { username, password } = this.opts;
    const basic = username !== undefined ? `Basic ${Buffer.from(`${username}:${password ?? ""}`).toString("base64")}` : undefined;
    if (this.scheme === "basic") return basic;
    if (this.scheme !== "bearer" || !this.realm) return undefined;
    const cached = this.tokens.get(scope);
    if (!fresh && cached && cached.until > Date.now()) return `Bearer ${cached.token}`;
    let realm: URL;
    try {
      realm = new URL(this.realm.realm);
    } catch {
      throw new UpstreamError("upstream token realm is not a URL", 401);
    }
    if (realm.protocol !== "http:" && realm.protocol !== "https:") throw new UpstreamError("upstream token realm is not http(s)", 401);
    // credentials configured for an https upstream never travel in clear text
    if (this.base.protocol === "https:" && realm.protocol !== "https:" && basic) throw new UpstreamError("upstream token realm is not https", 401);
    if (this.realm.service) realm.searchParams.set("service", this.realm.service);
    realm.searchParams.set("scope", scope);
    const { res, controller } = await this.follow("GET", realm, basic ? { Authorization: basic } : {}, signal);
    try {
      if (res.status !== 200) {
        discard(res);
        throw new UpstreamError(`upstream token server answered ${res.status}`, res.status === 429 ? 429 : 401);
      }
      const body = await readBounded(res, TOKEN_MAX, this.opts.timeoutMs, controller);
      let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
      try {
        parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
      } catch {
        throw new UpstreamError("upstream token answer is not JSON", 401);
      }
      const token = typeof parsed.token === "string" ? parsed.token : typeof parsed.access_token === "string" ? parsed.access_token : undefined;
      if (!token || token.length > TOKEN_MAX || /[\r\n]/.test(token)) throw new UpstreamError("upstream token answer holds no token", 401);
      const expiresIn = typeof parsed.expires_in === "number" && parsed.expires_in >= 60 ? parsed.expires_in : 60;
      if (this.tokens.size > 10_000) this.tokens.clear();
      this.tokens.set(scope, { token, until: Date.now() + (expiresIn - 30) * 1000 });
      return `Bearer ${token}`;
    } finally {
      controller.abort();
    }
  }
}

function withoutAuth(headers: Record<string, string>): Record<string, string> {
  const out = { ...headers };
  delete out.Authorization;
  return out;
}

function causeOf(e: unknown): string {
  const err = e as { cause?: { code?: string; message?: string }; message?: string };
  return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}

function contentLength(res: Reply): number | undefined {
  const v = res.headers.get("content-length");
  if (v === null || !/^\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

/** Reads a whole body of at most `max` bytes within `timeoutMs`. */
async function readBounded(res: Reply, max: number, timeoutMs: number, controller: AbortController): Promise<Buffer> {
  const timer = setTimeout(() => controller.abort(new UpstreamError(`upstream body not received within ${timeoutMs} ms`)), timeoutMs);
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > max) throw new UpstreamError(`upstream body exceeds ${max} bytes`);
      parts.push(chunk);
    }
    if (!res.body.complete) throw new UpstreamError("upstream body ended early");
    return Buffer.concat(parts);
  } catch (e) {
    if (controller.signal.reason instanceof UpstreamError) throw controller.signal.reason;
    if (e instanceof UpstreamError) throw e;
    throw new UpstreamError(`upstream body failed: ${causeOf(e)}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A stream of `body` that fails when the upstream sends nothing for `idleMs` while it is
 * being read, or ends early; destroying it ends the exchange.
 */
function idleGuarded(body: IncomingMessage, controller: AbortController, idleMs: number, what: string): Readable {
  let timer: NodeJS.Timeout | undefined;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      arm();
      cb(null, chunk);
    },
    flush(cb) {
      cb(body.complete ? null : new UpstreamError(`${what}: upstream body ended early`));
    },
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => out.destroy(new UpstreamError(`${what}: upstream stalled for ${idleMs} ms`)), idleMs);
  };
  arm();
  body.once("error", (e) => out.destroy(e instanceof UpstreamError ? e : new UpstreamError(`${what}: upstream body failed: ${causeOf(e)}`)));
  out.once("close", () => {
    clearTimeout(timer);
    if (!body.complete) controller.abort(new UpstreamError(`${what}: abandoned`));
  });
  return body.pipe(out);
}
