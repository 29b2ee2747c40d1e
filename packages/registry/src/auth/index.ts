/**
 * Access control: who a request comes from (anonymous, Basic credentials checked against
 * htpasswd, or a Bearer token) and what that identity may do. The HTTP side lives in
 * http/auth.ts (challenges, status codes) and handlers/token.ts (the token endpoint).
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { RegistryConfig } from "../config.js";
import type { RedisConnection } from "../redis/client.js";
import { Htpasswd } from "./htpasswd.js";
import { Policy } from "./policy.js";
import { type FailureLimiter, type LimitKey, MemoryFailureLimiter, RedisFailureLimiter } from "./ratelimit.js";
import { type Action, expandActions, type ResourceActions } from "./scope.js";
import { InvalidTokenError, loadSigningKey, TokenIssuer, type VerifiedToken, TokenVerifier } from "./tokens.js";

export type { Action, ResourceActions } from "./scope.js";

/** Credentials were presented and are wrong (401). */
export class InvalidCredentialsError extends Error {
  constructor(
    readonly scheme: "basic" | "bearer",
    message: string,
  ) {
    super(message);
    this.name = "InvalidCredentialsError";
  }
}

/** Too many failed logins for this user or address (429). */
export class TooManyFailuresError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("too many failed logins");
    this.name = "TooManyFailuresError";
  }
}

/** Who a request comes from and what it may do. */
export interface Identity {
  /** The user name; undefined for anonymous requests (and anonymous tokens). */
  readonly user?: string;
  readonly kind: "anonymous" | "basic" | "token";
  /** Whether the request may do `action` on `repository`. */
  may(repository: string, action: Action): boolean;
  /** Whether the policy (not the token) gives this user `action` on `repository`: a fresh token could. */
  couldGet(repository: string, action: Action): boolean;
  /** Whether the caller's credentials could read `repository` (automatic mounts look only there). */
  canRead(repository: string): boolean;
  /** Whether GET /v2/_catalog may be called. */
  readonly catalog: boolean;
  /** Whether the catalog shows `repository`. */
  lists(repository: string): boolean;
}

export class Auth {
  private constructor(
    private readonly config: RegistryConfig,
    readonly policy: Policy,
    readonly htpasswd: Htpasswd | undefined,
    readonly issuer: TokenIssuer | undefined,
    readonly verifier: TokenVerifier | undefined,
    private readonly limiter: FailureLimiter,
  ) {}

  /** Builds access control from the config; undefined when `auth` is not configured (open registry). */
  static async create(config: RegistryConfig, opts: { logger?: Logger; redis?: RedisConnection } = {}): Promise<Auth | undefined> {
    const a = config.auth;
    if (!a) return undefined;
    const htpasswd = a.htpasswd ? await Htpasswd.open(a.htpasswd.path, opts.logger) : undefined;
    const t = a.token;
    const own = t?.signingKey ? await loadSigningKey(t.signingKey) : undefined;
    const issuer = own && t ? new TokenIssuer(own, t.issuer) : undefined;
    const verifier = t ? new TokenVerifier({ issuer: t.issuer, leewaySeconds: t.leewaySeconds, own, jwks: t.jwks, logger: opts.logger }) : undefined;
    await verifier?.start();
    const w = a.rateLimit.windowSeconds;
    const limiter = opts.redis ? new RedisFailureLimiter(opts.redis, w) : new MemoryFailureLimiter(w);
    return new Auth(config, new Policy(config.access, config.groups), htpasswd, issuer, verifier, limiter);
  }

  /** "token" when clients are sent to a token server, else "basic". */
  get mode(): "basic" | "token" {
    return this.config.auth?.token ? "token" : "basic";
  }

  /** The token service name (and audience) for a request to `host`. */
  service(host: string): string {
    return this.config.auth?.token?.service ?? host;
  }

  /** Where clients get tokens, for a request to `origin` (scheme://host). */
  realm(origin: string): string {
    return this.config.auth?.token?.realm ?? `${origin}/auth/token`;
  }

  get basicRealm(): string {
    return this.config.auth?.htpasswd?.realm ?? "strata";
  }

  get tokenConfig() {
    return this.config.auth?.token;
  }

  /** Identifies a request from its Authorization header; throws InvalidCredentialsError or TooManyFailuresError. */
  async identify(authorization: string, address: string, service: string): Promise<Identity> {
    if (!authorization) return this.basicIdentity(undefined);
    const sp = authorization.indexOf(" ");
    const scheme = authorization.slice(0, sp < 0 ? undefined : sp).toLowerCase();
    const value = sp < 0 ? "" : authorization.slice(sp + 1).trim();
    if (scheme === "basic") {
      const creds = parseBasic(value);
      if (!creds) throw new InvalidCredentialsError("basic", "malformed Basic credentials");
      // Clients without credentials (containers/image) send an empty user and password.
      if (creds.user === "" && creds.password === "") return this.basicIdentity(undefined);
      await this.login(creds.user, creds.password, address);
      return this.basicIdentity(creds.user);
    }
    if (scheme === "bearer" && this.verifier) {
      let t: VerifiedToken;
      try {
        t = await this.verifier.verify(value, service);
      } catch (e) {
        if (e instanceof InvalidTokenError) throw new InvalidCredentialsError("bearer", e.message);
        throw e;
      }
      return this.tokenIdentity(t);
    }
    throw new InvalidCredentialsError(scheme === "bearer" ? "bearer" : "basic", `unsupported authorization scheme`);
  }

  /** Checks a user name and password against htpasswd, with failed-login limits. */
  async login(user: string, password: string, address: string): Promise<void> {
    const rl = this.config.auth!.rateLimit;
    const keys: LimitKey[] = [
      { key: `user:${user.slice(0, 256)}`, limit: rl.failuresPerUser },
      { key: `addr:${address}`, limit: rl.failuresPerAddress },
    ];
    const wait = await this.limiter.blockedFor(keys);
    if (wait > 0) throw new TooManyFailuresError(wait);
    if (this.htpasswd && (await this.htpasswd.verify(user, password))) return;
    await this.limiter.failed(keys);
    throw new InvalidCredentialsError("basic", "invalid user name or password");
  }

  /** A short tag of the user's current password entry (refresh tokens die when it changes), or undefined. */
  async passwordTag(user: string): Promise<string | undefined> {
    const e = await this.htpasswd?.entry(user);
    return e === undefined ? undefined : createHash("sha256").update(e).digest("hex").slice(0, 16);
  }

  /** What a token for `user` may carry: the requested scopes intersected with the policy. */
  grant(user: string | undefined, requested: readonly ResourceActions[]): ResourceActions[] {
    const out: ResourceActions[] = [];
    for (const r of requested) {
      if (r.type === "registry") {
        out.push({ type: r.type, name: r.name, actions: ["*"] });
        continue;
      }
      const allowed = this.policy.actions(user, r.name);
      const actions = expandActions(r.actions).filter((a) => allowed.has(a));
      if (actions.length) out.push({ type: r.type, name: r.name, actions });
    }
    return out;
  }

  private basicIdentity(user: string | undefined): Identity {
    const policy = this.policy;
    return {
      user,
      kind: user === undefined ? "anonymous" : "basic",
      may: (repo, action) => policy.allows(user, repo, action),
      couldGet: (repo, action) => policy.allows(user, repo, action),
      canRead: (repo) => policy.allows(user, repo, "pull"),
      catalog: true,
      lists: (repo) => policy.allows(user, repo, "pull"),
    };
  }

  private tokenIdentity(t: VerifiedToken): Identity {
    const policy = this.policy;
    const user = t.subject === "" ? undefined : t.subject;
    const granted = (repo: string, action: Action) => {
      const a = t.access.get(`repository:${repo}`);
      return a !== undefined && (a.has(action) || a.has("*"));
    };
    // Own tokens are re-checked against the current policy; an external token server is the policy.
    const couldGet = (repo: string, action: Action) => !t.own || policy.allows(user, repo, action);
    return {
      user,
      kind: "token",
      may: (repo, action) => granted(repo, action) && couldGet(repo, action),
      couldGet,
      canRead: (repo) => (t.own ? policy.allows(user, repo, "pull") : granted(repo, "pull")),
      catalog: t.access.has("registry:catalog"),
      lists: (repo) => (t.own ? policy.allows(user, repo, "pull") : true),
    };
  }
}

function parseBasic(value: string): { user: string; password: string } | undefined {
  if (value.length > 8192) return undefined;
  const text = Buffer.from(value, "base64").toString("utf8");
  const c = text.indexOf(":");
  if (c < 0) return undefined;
  return { user: text.slice(0, c), password: text.slice(c + 1) };
}
