/**
 * The token endpoint (distribution's token spec), served when this registry signs tokens:
 * GET /auth/token?service=&scope=...[&offline_token=true] with Basic credentials or none, and
 * the OAuth2 form POST (grant_type=password | refresh_token) docker uses for refresh tokens.
 * A token grants the intersection of the scopes asked for and what the policy allows; a
 * partial grant is never an error.
 */
import type Router from "@koa/router";
import { OciError } from "@strata/core";
import type { Context } from "koa";
import { type Auth, InvalidCredentialsError, TooManyFailuresError } from "../auth/index.js";
import { parseScopes } from "../auth/scope.js";
import { basicChallenge, tooMany } from "../http/auth.js";

const MAX_FORM_BYTES = 64 * 1024;

async function readForm(ctx: Context): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(ctx.get("Content-Type"))) {
    throw new OciError("UNSUPPORTED", { status: 400, message: "expected an application/x-www-form-urlencoded body" });
  }
  const parts: Buffer[] = [];
  let total = 0;
  const timer = setTimeout(() => ctx.req.destroy(), 30_000);
  try {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > MAX_FORM_BYTES) throw new OciError("SIZE_INVALID", { status: 413, message: "form too large" });
      parts.push(chunk);
    }
  } finally {
    clearTimeout(timer);
  }
  return new URLSearchParams(Buffer.concat(parts).toString("utf8"));
}

function queryAll(ctx: Context, key: string): string[] {
  const v = ctx.query[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function registerToken(router: Router, auth: Auth): void {
  const t = auth.tokenConfig!;
  const issuer = auth.issuer!;

  const credentialsError = (e: unknown): unknown => {
    if (e instanceof TooManyFailuresError) return tooMany(e);
    if (e instanceof InvalidCredentialsError) return new OciError("UNAUTHORIZED", { message: e.message, headers: { "WWW-Authenticate": basicChallenge(auth) } });
    return e;
  };

  const checkService = (service: string | null | undefined) => {
    if (service && t.service !== undefined && service !== t.service) {
      throw new OciError("DENIED", { status: 400, message: `unknown service ${JSON.stringify(service.slice(0, 100))}` });
    }
  };

  const respond = async (ctx: Context, user: string | undefined, scopes: string[], refresh: boolean) => {
    const audience = auth.service(ctx.host);
    const access = auth.grant(user, parseScopes(scopes));
    const { token, issuedAt } = await issuer.issue({ subject: user ?? "", audience, access, expiresInSeconds: t.expiresInSeconds });
    const body: Record<string, unknown> = {
      token,
      access_token: token,
      expires_in: t.expiresInSeconds,
      issued_at: issuedAt.toISOString(),
      scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(",")}`).join(" "),
    };
    if (refresh && user !== undefined) {
      body.refresh_token = await issuer.refresh(user, audience, (await auth.passwordTag(user)) ?? "", t.refreshExpiresInSeconds);
    }
    ctx.set("Cache-Control", "no-store");
    ctx.body = body;
  };

  router.get("/auth/token", async (ctx) => {
    checkService(typeof ctx.query.service === "string" ? ctx.query.service : undefined);
    let user: string | undefined;
    try {
      const id = await auth.identify(/^basic /i.test(ctx.get("Authorization")) ? ctx.get("Authorization") : "", ctx.ip, auth.service(ctx.host));
      user = id.user;
    } catch (e) {
      throw credentialsError(e);
    }
    await respond(ctx, user, queryAll(ctx, "scope"), ctx.query.offline_token === "true");
  });

  router.post("/auth/token", async (ctx) => {
    const form = await readForm(ctx);
    checkService(form.get("service"));
    const grant = form.get("grant_type");
    const scopes = form.getAll("scope");
    let user: string;
    try {
      if (grant === "password") {
        user = form.get("username") ?? "";
        await auth.login(user, form.get("password") ?? "", ctx.ip);
        return await respond(ctx, user, scopes, form.get("access_type") === "offline");
      }
      if (grant === "refresh_token") {
        const r = await auth.verifier!.verifyRefresh(form.get("refresh_token") ?? "", auth.service(ctx.host)).catch(() => {
          throw new InvalidCredentialsError("bearer", "invalid refresh token");
        });
        const tag = await auth.passwordTag(r.subject);
        if (tag === undefined || tag !== r.passwordTag) throw new InvalidCredentialsError("bearer", "refresh token no longer valid");
        return await respond(ctx, r.subject, scopes, false);
      }
    } catch (e) {
      throw credentialsError(e);
    }
    throw new OciError("UNSUPPORTED", { status: 400, message: "grant_type must be password or refresh_token" });
  });
}
