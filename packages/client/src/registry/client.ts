/**
 * A registry HTTP client for pulling (OCI Distribution spec, read side).
 *
 * - Scheme: HTTPS, except plain HTTP for loopback hosts (127.0.0.0/8, ::1, localhost) and hosts
 *   named in `insecureRegistries` ("host" or "host:port"). `docker.io` is served by registry-1.docker.io.
 * - Auth: anonymous first; on 401 the WWW-Authenticate challenge decides: Bearer -> a token from
 *   the realm for `repository:<name>:pull` (sent with Basic credentials when there are any and
 *   `mayReceiveCredentials` allows it, else anonymous), cached per realm/service/scope; Basic ->
 *   the credentials. A 401 from a host the registry redirected to is an error: neither the
 *   credentials nor the registry's tokens go there. Credentials never appear in errors or logs
 *   (STRATA_DEBUG names the hosts that got them).
 * - Retries: network errors, 5xx and 429 are retried with exponential backoff (Retry-After
 *   honoured), bounded by the policy. A blob body cut off mid-way is resumed with `Range`.
 * - Verification is the caller's job for blob streams (see `blobStream`); `getManifest` and
 *   `readBlob` verify what they return.
 */
import { Readable } from "node:stream";
import type { Descriptor } from "@strata/core";
// subpaths: this module also runs in the unpack worker threads, which should not load all of core
import { type Digest, digestAlgorithm, digestOf, parseDigest, tryParseDigest } from "@strata/core/digest";
import { baseMediaType, MediaTypes } from "@strata/core/mediatypes";
import { createVerifier } from "@strata/core/verify";
import { debug } from "../debug.js";
import { basicAuthHeader, type Challenge, type Credentials, parseChallenges, redact } from "./auth.js";
import { BodyTooLarge, type HttpSendOptions, type MinRate, type RawResponse, rawGet, rawRequest, type RequestBody } from "./rawhttp.js";
import { backoffDelay, DEFAULT_RETRY, isNetworkError, isRetryableStatus, parseRetryAfter, type RetryPolicy, sleep } from "./retry.js";

/** What `withRetry` needs from a response. */
interface RetryableResponse {
  status: number;
  headers: { get(name: string): string | null };
  body: { cancel(): Promise<void> } | null;
}

export const MANIFEST_ACCEPT = [MediaTypes.OciManifest, MediaTypes.OciIndex, MediaTypes.DockerManifest, MediaTypes.DockerManifestList].join(", ");

/** Largest manifest accepted (the distribution spec recommends 4 MiB; the registry's default limit too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Largest image config accepted. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
/** Largest token response accepted. */
export const MAX_TOKEN_BYTES = 1024 * 1024;

/** Time limits of every request to a registry (and the hosts it redirects to, and its token realm). */
export interface Timeouts {
  /** No byte in either direction for this long fails the attempt (ETIMEDOUT). */
  idleMs: number;
  /** The final response head must arrive within this long; interim 1xx responses do not extend it. */
  headersMs: number;
  /** A token, manifest or config must be received in full within this long (per attempt). */
  smallBodyMs: number;
  /** A blob body slower than this on average over the window fails the attempt; the retry resumes with Range. */
  minRate: MinRate;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  idleMs: 60_000,
  headersMs: 30_000,
  smallBodyMs: 60_000,
  minRate: { bytesPerSec: 1024, windowMs: 30_000 },
};

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

export interface RegistryClientOptions {
  /** Registry domain as in a reference (`docker.io`, `127.0.0.1:5000`, `ghcr.io`). */
  domain: string;
  /** Hosts ("host" or "host:port") reached over plain HTTP. */
  insecureRegistries?: readonly string[];
  credentials?: Credentials;
  retry?: Partial<RetryPolicy>;
  userAgent?: string;
  signal?: AbortSignal;
  /** A connection silent for this long is treated as a network failure (default 60 s); same as `timeouts.idleMs`. */
  idleTimeoutMs?: number;
  timeouts?: Partial<Timeouts>;
}

/**
 * What another thread needs to continue talking to the same registry as a client: its options
 * (credentials included: they stay in this process) and the auth state learned so far, so a
 * worker thread does not repeat the challenge/token exchange. Structured-cloneable.
 */
export interface RegistrySession {
  readonly options: Omit<RegistryClientOptions, "signal">;
  readonly challenge?: Challenge;
  readonly tokens: readonly (readonly [string, string])[];
  readonly secrets: readonly string[];
}

export interface FetchedManifest {
  /** Exact bytes as served. */
  raw: Buffer;
  /** The Content-Type the registry sent (without parameters). */
  contentType: string;
  /** sha256 of `raw`. */
  digest: Digest;
}

function hostOf(domain: string): { host: string; port?: string } {
  if (domain.startsWith("[")) {
    const end = domain.indexOf("]");
    const host = domain.slice(1, end);
    const rest = domain.slice(end + 1);
    return { host, port: rest.startsWith(":") ? rest.slice(1) : undefined };
  }
  const colon = domain.lastIndexOf(":");
  return colon === -1 ? { host: domain } : { host: domain.slice(0, colon), port: domain.slice(colon + 1) };
}

/**
 * Whether a token realm may receive the registry's Basic credentials: over HTTPS anywhere; over
 * plain HTTP only on the registry's own host (same host name or address, any port: a plain-HTTP
 * registry's host gets them with a Basic challenge anyway) and only when the registry itself is
 * plain HTTP. Another name or address, loopback ones such as 127.0.0.2 included, is another host.
 */
export function mayReceiveCredentials(realm: URL, registry: URL): boolean {
  if (realm.protocol === "https:") return true;
  return realm.protocol === "http:" && registry.protocol === "http:" && realm.hostname.toLowerCase() === registry.hostname.toLowerCase();
}

export function isLoopbackHost(domain: string): boolean {
  const { host } = hostOf(domain);
  const h = host.toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The base URL (`scheme://host[:port]`) for a registry domain. */
export function registryBaseUrl(domain: string, insecureRegistries: readonly string[] = []): string {
  const d = domain === "docker.io" || domain === "index.docker.io" ? "registry-1.docker.io" : domain;
  const { host } = hostOf(d);
  const insecure = isLoopbackHost(d) || insecureRegistries.some((r) => r === d || r === host || r === domain);
  return `${insecure ? "http" : "https"}://${d}`;
}

interface RequestOptions {
  headers?: Record<string, string>;
  /** The repository the request is about (for the token scope); "" for the registry root (/v2/). */
  repository: string;
  signal?: AbortSignal;
  /** A small response (manifest, config): the whole exchange is bounded by `timeouts.smallBodyMs`. */
  small?: boolean;
  // --- requests that write (push.ts) ---
  /** GET when absent. */
  method?: HttpSendOptions["method"];
  /** An in-memory body is re-sent by retries and auth refreshes; a streamed one is sent once (no retry). */
  body?: RequestBody;
  /** The token scope asks for push as well as pull on `repository`. */
  push?: boolean;
  /** Also ask for pull on this repository (a cross-repository mount's source). */
  alsoPull?: string;
  /** One attempt: failures are returned or thrown as they are (the caller resumes). */
  noRetry?: boolean;
}

/** The token scopes a request needs (none for the registry root, repository ""). */
function scopesOf(o: Pick<RequestOptions, "repository" | "push" | "alsoPull">): string[] {
  if (o.repository === "") return [];
  const out = [`repository:${o.repository}:${o.push ? "pull,push" : "pull"}`];
  if (o.alsoPull && o.alsoPull !== o.repository) out.push(`repository:${o.alsoPull}:pull`);
  return out;
}

export class RegistryClient {
  readonly baseUrl: string;
  private readonly policy: RetryPolicy;
  private readonly creds: Credentials | undefined;
  private readonly userAgent: string;
  private readonly signal: AbortSignal | undefined;
  /** Authorization header per token scope key. */
  private readonly tokens = new Map<string, string>();
  /** Token requests under way per scope key. */
  private readonly fetching = new Map<string, Promise<string>>();
  /** The challenge learned from the registry (undefined until the first 401). */
  private challenge: Challenge | undefined;
  private readonly secrets: string[] = [];
  readonly timeouts: Timeouts;

  constructor(readonly opts: RegistryClientOptions) {
    this.baseUrl = registryBaseUrl(opts.domain, opts.insecureRegistries);
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
    this.creds = opts.credentials;
    this.userAgent = opts.userAgent ?? "strata/0.1";
    this.signal = opts.signal;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...(opts.idleTimeoutMs ? { idleMs: opts.idleTimeoutMs } : {}), ...opts.timeouts };
  }

  /** This client's options and auth state, for `fromSession` in another thread. */
  session(): RegistrySession {
    const { signal: _signal, ...options } = this.opts;
    return { options, challenge: this.challenge, tokens: [...this.tokens], secrets: [...this.secrets] };
  }

  /** A client that continues `s` (same registry, options and tokens). */
  static fromSession(s: RegistrySession, signal?: AbortSignal): RegistryClient {
    const c = new RegistryClient({ ...s.options, signal });
    c.challenge = s.challenge;
    for (const [k, v] of s.tokens) c.tokens.set(k, v);
    c.secrets.push(...s.secrets);
    return c;
  }

  private scrub(text: string): string {
    return redact(text, this.creds, this.secrets);
  }

  private scopeKey(scopes: readonly string[]): string {
    const c = this.challenge;
    return `${c?.params.realm ?? ""}|${c?.params.service ?? ""}|${scopes.join(" ")}`;
  }

  private authHeaderFor(scopes: readonly string[]): string | undefined {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === "bearer") return this.tokens.get(this.scopeKey(scopes));
    if (c.scheme === "basic" && this.creds) return basicAuthHeader(this.creds);
    return undefined;
  }

  private async fetchToken(scopes: readonly string[], signal: AbortSignal | undefined): Promise<string> {
    const c = this.challenge!;
    const realm = c.params.realm;
    if (!realm) throw new RegistryError("registry sent a Bearer challenge without a realm", 401, "UNAUTHORIZED");
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`registry sent an invalid token realm ${JSON.stringify(realm)}`, 401, "UNAUTHORIZED");
    }
    if (c.params.service) url.searchParams.set("service", c.params.service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const headers: Record<string, string> = { "User-Agent": this.userAgent, Accept: "application/json" };
    if (this.creds) {
      if (mayReceiveCredentials(url, new URL(this.baseUrl))) {
        headers.Authorization = basicAuthHeader(this.creds);
        debug(`credentials for ${this.opts.domain} sent to the token realm ${url.origin}`);
      } else {
        debug(`credentials for ${this.opts.domain} withheld from the token realm ${url.origin} (plain HTTP to another host): anonymous token request`);
      }
    }
    const t = this.timeouts;
    const res = await this.withRetry(
      () => rawGet(url.href, { headers, signal, idleTimeoutMs: t.idleMs, headerTimeoutMs: t.headersMs, totalTimeoutMs: t.smallBodyMs }),
      signal,
    );
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(
        `token request to ${url.origin}${url.pathname} failed: HTTP ${res.status}${res.status === 401 ? " (bad credentials?)" : ""}`,
        res.status,
        "UNAUTHORIZED",
      );
    }
    let body: { token?: string; access_token?: string };
    try {
      const raw = await res.bytes(MAX_TOKEN_BYTES);
      body = JSON.parse(raw.toString("utf8")) as typeof body;
    } catch (e) {
      if (e instanceof BodyTooLarge) throw new RegistryError(`token response from ${url.origin}${url.pathname} is too large (${e.message})`, res.status, "UNAUTHORIZED");
      if (isNetworkError(e)) throw this.wrapNetwork(e);
      throw new RegistryError(`token response from ${url.origin}${url.pathname} is not JSON`, res.status, "UNAUTHORIZED");
    }
    if (typeof body !== "object" || body === null) throw new RegistryError(`token response from ${url.origin}${url.pathname} is not a JSON object`, res.status, "UNAUTHORIZED");
    const token: unknown = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token response from ${url.origin}${url.pathname} has no token`, res.status, "UNAUTHORIZED");
    // it goes into a header line: visible ASCII only
    if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) {
      throw new RegistryError(`token response from ${url.origin}${url.pathname} has an unusable token`, res.status, "UNAUTHORIZED");
    }
    this.secrets.push(token);
    const header = `Bearer ${token}`;
    this.tokens.set(this.scopeKey(scopes), header);
    return header;
  }

  /** Runs `attempt` until it returns a non-retryable response or the policy is exhausted. */
  private async withRetry<R extends RetryableResponse>(attempt: () => Promise<R>, signal: AbortSignal | undefined): Promise<R> {
    let lastErr: unknown;
    for (let i = 0; i < this.policy.attempts; i++) {
      let res: R;
      try {
        res = await attempt();
      } catch (e) {
        if (!isNetworkError(e) || i === this.policy.attempts - 1) throw this.wrapNetwork(e);
        lastErr = e;
        await sleep(backoffDelay(this.policy, i), signal);
        continue;
      }
      if (isRetryableStatus(res.status) && i < this.policy.attempts - 1) {
        await res.body?.cancel().catch(() => {});
        await sleep(backoffDelay(this.policy, i, parseRetryAfter(res.headers.get("retry-after"))), signal);
        continue;
      }
      return res;
    }
    throw this.wrapNetwork(lastErr);
  }

  private wrapNetwork(e: unknown): Error {
    if (e instanceof Error && e.name === "AbortError") return e;
    const err = e as { code?: string; message?: string; transport?: boolean; cause?: { code?: string; message?: string } } | undefined;
    const code = err?.code ?? err?.cause?.code;
    if (this.baseUrl.startsWith("https:") && (code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number/.test(err?.message ?? ""))) {
      // a TLS client hello answered in plain text
      return new RegistryError(`${this.opts.domain}: the registry speaks plain HTTP: use --insecure-registry ${this.opts.domain}`);
    }
    if (err?.transport && err.message) return new RegistryError(this.scrub(`registry ${this.baseUrl}: ${err.message}`));
    const detail = err?.code ?? err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
    return new RegistryError(this.scrub(`cannot reach registry ${this.baseUrl}: ${detail}`));
  }

  /**
   * One request with auth and retries. Returns the final response (any status except a 401 that
   * could be answered): callers check `ok`.
   */
  /**
   * GET /v2/ with the client's credentials (Basic, or a token without scope as `docker login`
   * asks for): resolves when the registry answers 200, throws a RegistryError otherwise (401:
   * the credentials were refused).
   */
  async ping(signal?: AbortSignal): Promise<void> {
    const res = await this.request("/v2/", { repository: "", signal, small: true });
    await res.body?.cancel().catch(() => {});
    if (res.status !== 200) throw new RegistryError(`${this.opts.domain} answered /v2/ with HTTP ${res.status}`, res.status);
  }

  async request(path: string, o: RequestOptions): Promise<RawResponse> {
    // `path` may be a URL the registry gave (an upload's Location): its credentials go only to its own origin
    const url = /^https?:\/\//i.test(path) ? path : `${this.baseUrl}${path}`;
    const ownOrigin = new URL(url).origin === new URL(this.baseUrl).origin;
    const signal = o.signal ?? this.signal;
    const scopes = scopesOf(o);
    const streamed = o.body !== undefined && !Buffer.isBuffer(o.body);
    const once = o.noRetry || streamed;
    let refreshed = false;
    for (;;) {
      const headers: Record<string, string> = { "User-Agent": this.userAgent, ...o.headers };
      const auth = ownOrigin ? this.authHeaderFor(scopes) : undefined;
      if (auth) headers.Authorization = auth;
      const t = this.timeouts;
      const send = () =>
        rawRequest(url, {
          method: o.method,
          body: o.body,
          headers,
          signal,
          idleTimeoutMs: t.idleMs,
          headerTimeoutMs: t.headersMs,
          totalTimeoutMs: o.small ? t.smallBodyMs : undefined,
          minRate: t.minRate,
        });
      const res = once ? await send().catch((e: unknown) => Promise.reject(isNetworkError(e) ? Object.assign(this.wrapNetwork(e), { network: true }) : e)) : await this.withRetry(send, signal);
      const from = new URL(res.url);
      if (res.status === 401 && from.origin !== new URL(this.baseUrl).origin) {
        // a host the registry redirected to: the registry's credentials and tokens are not its to have
        await res.body?.cancel().catch(() => {});
        throw new RegistryError(
          `${from.host}, where ${this.opts.domain} redirected a request for ${o.repository}, asks for authentication; the registry's credentials go to no other host`,
          401,
          "UNAUTHORIZED",
        );
      }
      if (res.status !== 401 || refreshed || streamed) {
        if (res.status === 401) {
          await res.body?.cancel().catch(() => {});
          throw new RegistryError(
            `${this.opts.domain}: authentication required for ${o.repository || "/v2/"}${this.creds ? " (credentials rejected)" : ""}`,
            401,
            "UNAUTHORIZED",
          );
        }
        return res;
      }
      await res.body?.cancel().catch(() => {});
      refreshed = true;
      const challenges = parseChallenges(res.headers.get("www-authenticate"));
      const bearer = challenges.find((c) => c.scheme === "bearer");
      const basic = challenges.find((c) => c.scheme === "basic");
      if (bearer) {
        this.challenge = bearer;
        // requests refused at once share one new token: the one this request sent is dropped
        // (not one another request fetched meanwhile), and a fetch under way is waited for
        const key = this.scopeKey(scopes);
        if (this.tokens.get(key) === auth) this.tokens.delete(key);
        if (!this.tokens.has(key)) {
          let fetching = this.fetching.get(key);
          if (!fetching) {
            fetching = this.fetchToken(scopes, signal).finally(() => this.fetching.delete(key));
            this.fetching.set(key, fetching);
          }
          await fetching;
        }
      } else if (basic) {
        this.challenge = basic;
        if (this.creds) debug(`credentials for ${this.opts.domain} sent to ${from.origin} (Basic)`);
        if (!this.creds) throw new RegistryError(`${this.opts.domain}: authentication required for ${o.repository || "/v2/"} (no credentials)`, 401, "UNAUTHORIZED");
      } else {
        throw new RegistryError(`${this.opts.domain}: authentication required for ${o.repository || "/v2/"} (unsupported challenge)`, 401, "UNAUTHORIZED");
      }
    }
  }

  private async failure(res: RawResponse, what: string): Promise<RegistryError> {
    let code: string | undefined;
    let message = "";
    try {
      const text = await res.text();
      const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      code = body.errors?.[0]?.code;
      message = body.errors?.[0]?.message ?? "";
    } catch {
      // not a JSON error body
    }
    const detail = code ? `${code}${message ? `: ${message}` : ""}` : `HTTP ${res.status}`;
    return new RegistryError(this.scrub(`${what}: ${detail}`), res.status, code);
  }

  /**
   * Fetches a manifest or index by tag or digest. When `reference` is a digest the bytes must
   * hash to it; a Docker-Content-Digest header, when present, must match the bytes too.
   */
  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, { repository, headers: { Accept: MANIFEST_ACCEPT }, signal, small: true });
    if (!res.ok) {
      if (res.status === 404) {
        await res.body?.cancel().catch(() => {});
        throw new RegistryError(
          `manifest for ${this.opts.domain}/${repository}${reference.includes(":") ? "@" : ":"}${reference} not found`,
          404,
          "MANIFEST_UNKNOWN",
        );
      }
      throw await this.failure(res, `fetching manifest ${repository}${reference.includes(":") ? "@" : ":"}${reference}`);
    }
    const raw = await this.readSmall(res, MAX_MANIFEST_BYTES, `manifest ${repository}${reference.includes(":") ? "@" : ":"}${reference}`);
    const wanted = tryParseDigest(reference);
    const algorithm = wanted ? digestAlgorithm(wanted) : "sha256";
    const actual = digestOf(raw, algorithm);
    if (wanted && actual !== wanted) throw new RegistryError(`manifest digest mismatch for ${repository}: expected ${wanted}, got ${actual}`);
    const header = res.headers.get("docker-content-digest");
    if (header) {
      const hd = tryParseDigest(header);
      if (hd && digestOf(raw, digestAlgorithm(hd)) !== hd) {
        throw new RegistryError(`manifest for ${repository}:${reference} does not match its Docker-Content-Digest ${hd}`);
      }
    }
    return { raw, contentType: baseMediaType(res.headers.get("content-type") ?? ""), digest: algorithm === "sha256" ? actual : digestOf(raw, "sha256") };
  }

  /** A whole small body (manifest), at most `max` bytes. */
  private async readSmall(res: RawResponse, max: number, what: string): Promise<Buffer> {
    try {
      return await res.bytes(max);
    } catch (e) {
      if (e instanceof BodyTooLarge) throw new RegistryError(`${what} is too large (${e.message})`);
      if (isNetworkError(e)) throw this.wrapNetwork(e);
      throw e;
    }
  }

  /** Reads a small blob fully (config), verified against the descriptor (size-limited). */
  async readBlob(repository: string, desc: Pick<Descriptor, "digest" | "size">, maxSize = MAX_CONFIG_BYTES, signal?: AbortSignal): Promise<Buffer> {
    if (desc.size > maxSize) throw new RegistryError(`blob ${desc.digest} is too large (${desc.size} bytes, over the limit of ${maxSize})`);
    const verifier = createVerifier({ digest: desc.digest, size: desc.size });
    const chunks: Buffer[] = [];
    const src = this.blobStream(repository, desc, { signal, small: true });
    await new Promise<void>((resolve, reject) => {
      src.on("error", (e) => verifier.destroy(e));
      verifier.on("data", (c: Buffer) => chunks.push(c));
      verifier.on("end", resolve);
      verifier.on("error", reject);
      src.pipe(verifier);
    });
    return Buffer.concat(chunks);
  }

  /**
   * The raw bytes of a blob as a stream, resuming with `Range` after a network failure (the
   * consumer sees one continuous stream). Not verified: pipe it through `createVerifier`.
   * `onResume` is told the offset whenever a resume happens.
   */
  blobStream(repository: string, desc: Pick<Descriptor, "digest" | "size">, o: { signal?: AbortSignal; onResume?: (offset: number) => void; small?: boolean } = {}): Readable {
    return Readable.from(this.blobBody(repository, desc, o, false), { objectMode: false });
  }

  /**
   * Like `blobStream`, as chunks read into reused buffers: a chunk is valid only until the
   * iterator's next `next()` (see rawhttp.ts). For consumers that process each chunk before
   * asking for the next; the cheapest way to take in a large blob.
   */
  blobChunks(repository: string, desc: Pick<Descriptor, "digest" | "size">, o: { signal?: AbortSignal; onResume?: (offset: number) => void } = {}): AsyncGenerator<Buffer> {
    return this.blobBody(repository, desc, o, true);
  }

  private async *blobBody(
    repository: string,
    desc: Pick<Descriptor, "digest" | "size">,
    o: { signal?: AbortSignal; onResume?: (offset: number) => void; small?: boolean },
    raw: boolean,
  ): AsyncGenerator<Buffer> {
    const digest = parseDigest(desc.digest);
    const signal = o.signal ?? this.signal;
    let offset = 0;
    let failures = 0;
    for (;;) {
      const ac = new AbortController();
      const onAbort = () => ac.abort(signal?.reason);
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const headers: Record<string, string> = {};
        if (offset > 0) headers.Range = `bytes=${offset}-`;
        const path = `/v2/${repository}/blobs/${digest}`;
        const res = await this.request(path, { repository, headers, signal: ac.signal, small: o.small });
        if (!res.ok) {
          if (res.status === 404) {
            await res.body?.cancel().catch(() => {});
            throw new RegistryError(`blob ${digest} not found in ${repository}`, 404, "BLOB_UNKNOWN");
          }
          throw await this.failure(res, `fetching blob ${digest}`);
        }
        let skip = 0;
        if (offset > 0) {
          if (res.status === 206) {
            const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
            if (!m || Number(m[1]) !== offset) {
              await res.body?.cancel().catch(() => {});
              throw new RegistryError(`registry answered a resume of ${digest} at ${offset} with a different range`);
            }
          } else {
            skip = offset; // the registry ignored Range: drop what was already delivered
          }
        }
        try {
          for await (const part of res.body) {
            let chunk = part;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            offset += chunk.length;
            // a chunk of a reused buffer is valid until the next read: copied for a stream's consumer
            yield raw ? chunk : Buffer.from(chunk);
          }
          return;
        } catch (e) {
          // every byte arrived (the connection failed at the end of the framing): nothing to
          // resume; the caller's verifier judges the content
          if (!signal?.aborted && isNetworkError(e) && desc.size >= 0 && offset === desc.size) return;
          if (signal?.aborted || !isNetworkError(e) || ++failures >= this.policy.attempts)
            throw e instanceof Error && isNetworkError(e) ? this.wrapNetwork(e) : e;
          await sleep(backoffDelay(this.policy, failures - 1), signal);
          o.onResume?.(offset);
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        ac.abort();
      }
    }
  }
}
