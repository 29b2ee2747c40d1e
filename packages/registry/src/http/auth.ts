/**
 * Authorization of every /v2/ request from its route, before any handler runs:
 * pull = GET/HEAD of manifests, blobs, tags and referrers; push = uploads and manifest PUT;
 * delete = DELETE of manifests and blobs; the catalog needs `registry:catalog:*` (its list is
 * filtered by the handler); /v2/ itself needs valid credentials of any kind.
 *
 * Missing or bad credentials answer 401 with a challenge that always names the scope the
 * request needed (one scope per challenge: Basic realm=... with htpasswd alone, Bearer
 * realm=...,service=...,scope=... with token authentication); an identity without the right
 * answers 403 DENIED, or 401 insufficient_scope when a fresh token would carry the right.
 * The metadata API under /strata/v1/ follows the same rules (metadataNeed). OPTIONS (CORS
 * preflight) and other paths are never challenged.
 */
import { isValidRepositoryName, OciError } from "@strata/core";
import type { Context, Next } from "koa";
import { type Action, type Auth, type Identity, InvalidCredentialsError, TooManyFailuresError } from "../auth/index.js";
import { CATALOG_SCOPE, formatScope, type ResourceActions } from "../auth/scope.js";

/** What a request needs: any valid credentials (`base`), the catalog, or an action on a repository. */
export type Need = { kind: "base" } | { kind: "catalog" } | { kind: "repository"; name: string; action: Action };

const PULL = { GET: "pull", HEAD: "pull" } as const;
const UPLOAD = { GET: "push", HEAD: "push", PATCH: "push", PUT: "push", DELETE: "push" } as const;
const OBJECT = { GET: "pull", HEAD: "pull", PUT: "push", DELETE: "delete" } as const;

/** The routes of the handlers, in the router's order, with the action each method needs. */
const ROUTES: [RegExp, Readonly<Record<string, Action>>][] = [
  [/^\/v2\/(.+?)\/tags\/list$/, PULL],
  [/^\/v2\/(.+?)\/referrers\/([^/]+)$/, PULL],
  [/^\/v2\/(.+?)\/blobs\/uploads\/?$/, { POST: "push" }],
  [/^\/v2\/(.+?)\/blobs\/uploads\/([^/]+)$/, UPLOAD],
  [/^\/v2\/(.+?)\/manifests\/([^/]+)$/, OBJECT],
  [/^\/v2\/(.+?)\/blobs\/([^/]+)$/, { GET: "pull", HEAD: "pull", DELETE: "delete" }],
];

/**
 * The access a request needs, or undefined for paths outside /v2/. Like the router, the first
 * route matching both path and method decides (captures are the raw path, as the handlers see it).
 */
export function needOf(method: string, path: string): Need | undefined {
  if (path.startsWith("/strata/v1/")) return metadataNeed(method, path);
  if (path !== "/v2" && !path.startsWith("/v2/")) return undefined;
  if (path === "/v2/_catalog") return { kind: "catalog" };
  for (const [re, actions] of ROUTES) {
    const action = Object.hasOwn(actions, method) ? actions[method] : undefined;
    if (action === undefined) continue;
    const m = re.exec(path);
    if (!m) continue;
    // Invalid names only need valid credentials; the handlers refuse them.
    if (!isValidRepositoryName(m[1])) return { kind: "base" };
    return { kind: "repository", name: m[1], action };
  }
  return { kind: "base" };
}

/**
 * The metadata API (handlers/meta.ts) follows the registry's rules: its repository list needs
 * what the catalog needs (and shows only what the caller may pull), a repository's tags and
 * manifests need pull on it; GET /strata/v1/ (what the registry allows) is open.
 */
function metadataNeed(method: string, path: string): Need | undefined {
  if (path === "/strata/v1/") return undefined;
  if (method !== "GET" && method !== "HEAD") return { kind: "base" };
  if (path === "/strata/v1/repositories" || path === "/strata/v1/usage") return { kind: "catalog" };
  const m = /^\/strata\/v1\/repositories\/(.+?)\/(?:tags|manifests\/[^/]+)$/.exec(path);
  if (!m || !isValidRepositoryName(m[1])) return { kind: "base" };
  return { kind: "repository", name: m[1], action: "pull" };
}

/** The identity of the request (undefined when the registry is open). */
export function identityOf(ctx: Context): Identity | undefined {
  return ctx.state.identity as Identity | undefined;
}

/** Whether the request may pull `repository` (always, when the registry is open). */
export function mayPull(ctx: Context, repository: string): boolean {
  const id = identityOf(ctx);
  return id === undefined || id.may(repository, "pull");
}

function scopeOf(need: Need): ResourceActions | undefined {
  if (need.kind === "catalog") return CATALOG_SCOPE;
  if (need.kind === "repository") return { type: "repository", name: need.name, actions: need.action === "push" ? ["pull", "push"] : [need.action] };
  return undefined;
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, "\\$&")}"`;
}

/** The challenge for Basic credentials. */
export function basicChallenge(auth: Auth): string {
  return `Basic realm=${quote(auth.basicRealm)}`;
}

export function authMiddleware(auth: Auth) {
  const challenge = (ctx: Context, need: Need, error?: string): string => {
    if (auth.mode === "basic") return basicChallenge(auth);
    const scope = scopeOf(need);
    const parts = [`realm=${quote(auth.realm(`${ctx.protocol}://${ctx.host}`))}`, `service=${quote(auth.service(ctx.host))}`];
    if (scope) parts.push(`scope=${quote(formatScope(scope))}`);
    if (error) parts.push(`error=${quote(error)}`);
    return `Bearer ${parts.join(",")}`;
  };
  const unauthorized = (ctx: Context, need: Need, message: string, error?: string) => {
    const scope = scopeOf(need);
    return new OciError("UNAUTHORIZED", {
      message,
      headers: { "WWW-Authenticate": challenge(ctx, need, error) },
      detail: scope ? [{ Type: scope.type, Name: scope.name, Action: scope.actions.join(",") }] : undefined,
    });
  };

  return async function authorize(ctx: Context, next: Next): Promise<void> {
    const need = ctx.method === "OPTIONS" ? undefined : needOf(ctx.method, ctx.path);
    if (!need) return next();
    let id: Identity;
    try {
      id = await auth.identify(ctx.get("Authorization"), ctx.ip, auth.service(ctx.host));
    } catch (e) {
      if (e instanceof TooManyFailuresError) throw tooMany(e);
      if (e instanceof InvalidCredentialsError) throw unauthorized(ctx, need, e.message, e.scheme === "bearer" ? "invalid_token" : undefined);
      throw e;
    }
    ctx.state.identity = id;
    let ok: boolean;
    if (need.kind === "base") ok = id.kind !== "anonymous";
    // Anonymous requests are challenged for the catalog too, so logged-in clients present their credentials.
    else if (need.kind === "catalog") ok = id.kind !== "anonymous" && id.catalog;
    else ok = id.may(need.name, need.action);
    if (ok) return next();
    if (id.kind === "anonymous") throw unauthorized(ctx, need, "authentication required");
    if (id.kind === "token" && (id.user === undefined || need.kind !== "repository" || id.couldGet(need.name, need.action))) {
      throw unauthorized(ctx, need, "the token does not grant this access", "insufficient_scope");
    }
    throw new OciError("DENIED", { detail: need.kind === "repository" ? { name: need.name, action: need.action } : undefined });
  };
}

export function tooMany(e: TooManyFailuresError): OciError {
  return new OciError("TOOMANYREQUESTS", { message: "too many failed logins; retry later", headers: { "Retry-After": String(e.retryAfterSeconds) } });
}
