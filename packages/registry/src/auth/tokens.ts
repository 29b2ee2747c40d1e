/**
 * Bearer tokens as distribution's token spec defines them: JWTs signed ES256 or RS256 with
 * iss, sub ("" when anonymous), aud (the service), exp, nbf, iat, jti and
 * `access: [{type, name, actions}]`.
 *
 * TokenIssuer signs with this registry's key; two replicas with the same key accept each
 * other's tokens. TokenVerifier checks signature, issuer, audience and times against the own
 * key and/or an external token server's JWKS (a file, or a URL fetched with a size bound and
 * a deadline and refreshed when an unknown key id appears). Verified tokens are cached until
 * they expire: a signature check costs far more than the request it guards.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomUUID, type webcrypto } from "node:crypto";
import { readFile } from "node:fs/promises";
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, type JSONWebKeySet, type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { Logger } from "pino";
import type { ResourceActions } from "./scope.js";

const ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"];
const MAX_JWKS_BYTES = 1024 * 1024;
const JWKS_TIMEOUT_MS = 5000;
const CACHE_MAX = 20_000;

export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidTokenError";
  }
}

/** A token whose signature and claims were checked. */
export interface VerifiedToken {
  /** "" for anonymous tokens. */
  readonly subject: string;
  /** `type:name` -> actions granted. */
  readonly access: ReadonlyMap<string, ReadonlySet<string>>;
  /** Signed by this registry's own key (the local policy applies too) or by an external token server. */
  readonly own: boolean;
  /** Unix seconds. */
  readonly expires: number;
}

interface SigningKey {
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
  readonly alg: "ES256" | "RS256";
  readonly kid: string;
}

/** Loads a PEM private key: EC P-256 signs ES256, RSA (>= 2048 bits) signs RS256. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  let pem: string;
  try {
    pem = await readFile(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read token signing key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const key = createPrivateKey(pem);
  const publicKey = createPublicKey(key);
  let alg: "ES256" | "RS256";
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") alg = "ES256";
  else if (key.asymmetricKeyType === "rsa" && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) alg = "RS256";
  else throw new Error(`token signing key ${path}: expected an EC P-256 or RSA (>= 2048 bits) private key`);
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  return { key, publicKey, alg, kid };
}

export interface IssueRequest {
  subject: string;
  audience: string;
  access: ResourceActions[];
  expiresInSeconds: number;
}

export class TokenIssuer {
  constructor(
    private readonly signing: SigningKey,
    private readonly issuer: string,
  ) {}

  async issue(r: IssueRequest): Promise<{ token: string; issuedAt: Date }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access: r.access })
      .setProtectedHeader({ alg: this.signing.alg, typ: "JWT", kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(r.subject)
      .setAudience(r.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + r.expiresInSeconds)
      .setJti(randomUUID())
      .sign(this.signing.key);
    return { token, issuedAt: new Date(now * 1000) };
  }

  /** A refresh token: only the token endpoint accepts it, never a registry request. */
  async refresh(subject: string, audience: string, passwordTag: string, expiresInSeconds: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ use: "refresh", pwd: passwordTag })
      .setProtectedHeader({ alg: this.signing.alg, typ: "JWT", kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + expiresInSeconds)
      .setJti(randomUUID())
      .sign(this.signing.key);
  }
}

export interface VerifierOptions {
  issuer: string;
  leewaySeconds: number;
  own?: SigningKey;
  /** JWKS file path or http(s) URL. */
  jwks?: string;
  logger?: Logger;
}

type KeyResolver = (header: { kid?: string; alg?: string }) => Promise<KeyObject | webcrypto.CryptoKey | Uint8Array>;

export class TokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();
  private jwksSet: ReturnType<typeof createLocalJWKSet> | undefined;
  private jwksFetched = 0;
  private jwksLoading: Promise<void> | undefined;

  constructor(private readonly opts: VerifierOptions) {}

  /** Loads the JWKS once (a failure is logged; it is retried when a token needs it). */
  async start(): Promise<void> {
    if (this.opts.jwks) await this.loadJwks().catch((e) => this.opts.logger?.warn({ err: (e as Error).message }, "token JWKS not loaded yet"));
  }

  /** Verifies an access token for `audience`; throws InvalidTokenError. */
  async verify(token: string, audience: string): Promise<VerifiedToken> {
    const key = `${audience}\0${token}`;
    const now = Date.now() / 1000;
    const hit = this.cache.get(key);
    if (hit) {
      if (hit.expires + this.opts.leewaySeconds > now) return hit;
      this.cache.delete(key);
    }
    const { payload, own } = await this.check(token, audience);
    if (payload.use === "refresh") throw new InvalidTokenError("a refresh token is not an access token");
    if (typeof payload.exp !== "number") throw new InvalidTokenError("token has no expiry");
    const v: VerifiedToken = { subject: typeof payload.sub === "string" ? payload.sub : "", access: accessMap(payload.access), own, expires: payload.exp };
    if (this.cache.size >= CACHE_MAX) {
      for (const [k, t] of this.cache) if (t.expires + this.opts.leewaySeconds <= now || this.cache.size >= CACHE_MAX) this.cache.delete(k);
    }
    this.cache.set(key, v);
    return v;
  }

  /** Verifies a refresh token issued by this registry; returns its subject and password tag. */
  async verifyRefresh(token: string, audience: string): Promise<{ subject: string; passwordTag: string }> {
    const { payload, own } = await this.check(token, audience);
    if (!own || payload.use !== "refresh" || typeof payload.sub !== "string" || typeof payload.pwd !== "string") throw new InvalidTokenError("not a refresh token");
    return { subject: payload.sub, passwordTag: payload.pwd };
  }

  private async check(token: string, audience: string): Promise<{ payload: JWTPayload & Record<string, unknown>; own: boolean }> {
    if (token.length > 16_384) throw new InvalidTokenError("token too long");
    let own = false;
    const resolve: KeyResolver = async (header) => {
      const o = this.opts.own;
      if (o && (header.kid === undefined || header.kid === o.kid) && header.alg === o.alg) {
        own = true;
        return o.publicKey;
      }
      if (!this.opts.jwks) throw new InvalidTokenError("unknown signing key");
      return this.jwksKey(header);
    };
    try {
      const { payload } = await jwtVerify(token, resolve as never, {
        issuer: this.opts.issuer,
        audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.opts.leewaySeconds,
        requiredClaims: ["exp"],
      });
      return { payload: payload as JWTPayload & Record<string, unknown>, own };
    } catch (e) {
      throw new InvalidTokenError(e instanceof Error ? e.message : "invalid token");
    }
  }

  private async jwksKey(header: { kid?: string; alg?: string }): Promise<KeyObject | webcrypto.CryptoKey | Uint8Array> {
    if (!this.jwksSet) await this.loadJwks();
    try {
      return await this.jwksSet!(header as never);
    } catch (e) {
      // An unknown kid may be a rotated key: fetch again, at most every 30 s.
      if (Date.now() - this.jwksFetched < 30_000) throw e;
      await this.loadJwks();
      return this.jwksSet!(header as never);
    }
  }

  private loadJwks(): Promise<void> {
    this.jwksLoading ??= (async () => {
      try {
        this.jwksFetched = Date.now();
        const text = await readBounded(this.opts.jwks!);
        this.jwksSet = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
      } finally {
        this.jwksLoading = undefined;
      }
    })();
    return this.jwksLoading;
  }
}

/** Reads a file or an http(s) URL, at most 1 MiB and within 5 s. */
async function readBounded(source: string): Promise<string> {
  if (!/^https?:\/\//.test(source)) {
    const buf = await readFile(source);
    if (buf.length > MAX_JWKS_BYTES) throw new Error(`JWKS ${source} is larger than ${MAX_JWKS_BYTES} bytes`);
    return buf.toString("utf8");
  }
  const res = await fetch(source, { signal: AbortSignal.timeout(JWKS_TIMEOUT_MS), redirect: "error" });
  if (res.status !== 200) throw new Error(`JWKS ${source}: HTTP ${res.status}`);
  if (Number(res.headers.get("content-length") ?? 0) > MAX_JWKS_BYTES) throw new Error(`JWKS ${source} is too large`);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > MAX_JWKS_BYTES) throw new Error(`JWKS ${source} is too large`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}

function accessMap(claim: unknown): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  if (!Array.isArray(claim)) return m;
  for (const e of claim.slice(0, 1000)) {
    if (!e || typeof e !== "object") continue;
    const { type, name, actions } = e as Record<string, unknown>;
    if (typeof type !== "string" || typeof name !== "string" || !Array.isArray(actions)) continue;
    const key = `${type}:${name}`;
    const set = m.get(key) ?? new Set<string>();
    for (const a of actions) if (typeof a === "string") set.add(a);
    m.set(key, set);
  }
  return m;
}
