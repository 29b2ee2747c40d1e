/**
 * The metadata API (JSON) that the UI, and any other UI, reads:
 *   GET /strata/v1/                                          what this registry allows (deletes, auth)
 *   GET /strata/v1/repositories?q=&sort=name|pushed|size&n=&last=
 *   GET /strata/v1/repositories/<name>/tags?sort=name|pushed&n=&last=
 *   GET /strata/v1/repositories/<name>/manifests/<digest|tag>
 * Pages carry `next` (also as a Link header) when more follow. Times are ISO 8601 strings,
 * sizes are bytes. A repository is listed and readable only for a request that may pull it.
 */
import type Router from "@koa/router";
import type { Auth } from "../auth/index.js";
import type { Digest } from "@strata/core";
import type { Context } from "koa";
import { UnknownError } from "../errors.js";
import { identityOf, mayPull } from "../http/auth.js";
import { manifestReference, repository } from "../http/params.js";
import type { Services } from "../services/index.js";
import { badQuery, checkCursor, type ManifestFacts, parseSort, sortKey } from "../services/metadata.js";

const PREFIX = "/strata/v1";
const MAX_PAGE = 1000;


function iso(ms: number | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

function pageParams(ctx: Context, defaultN: number): { n: number; last?: string; q?: string } {
  const { n: nRaw, last, q } = ctx.query;
  let n = defaultN;
  if (nRaw !== undefined) {
    if (typeof nRaw !== "string" || !/^\d{1,6}$/.test(nRaw) || Number(nRaw) === 0) throw badQuery("n must be a positive integer");
    n = Math.min(Number(nRaw), MAX_PAGE);
  }
  if (last !== undefined && (typeof last !== "string" || last.length > 600)) throw badQuery("last must be one cursor");
  if (q !== undefined && (typeof q !== "string" || q.length > 256)) throw badQuery("q must be one string of at most 256 characters");
  return { n, last: last || undefined, q: q || undefined };
}

function setNext(ctx: Context, next: string | undefined): void {
  if (next === undefined) return;
  const u = new URLSearchParams(ctx.querystring);
  u.set("last", next);
  ctx.set("Link", `<${ctx.path}?${u.toString()}>; rel="next"`);
}

/** What kind of referrer an artifact type names (for badges). */
export function referrerKind(artifactType: string | undefined): "signature" | "sbom" | "attestation" | "other" {
  const t = (artifactType ?? "").toLowerCase();
  if (/signature|\.sig\b|cosign\.artifact\.sig|notary/.test(t)) return "signature";
  if (/spdx|cyclonedx|sbom|syft/.test(t)) return "sbom";
  if (/in-toto|attestation|provenance|intoto|slsa|sigstore\.bundle|vex/.test(t)) return "attestation";
  return "other";
}

function tagRow(tag: string, digest: string, pushedAt: number, f: ManifestFacts | undefined, pulls: Map<string, number>, referrers: Map<string, number>) {
  return {
    tag,
    digest,
    mediaType: f?.mediaType ?? null,
    artifactType: f?.artifactType ?? null,
    platforms: f?.platforms ?? [],
    size: f?.size ?? null,
    children: f?.children?.map((c) => ({ platform: c.platform, digest: c.digest, size: c.size, ...(c.type ? { type: c.type } : {}) })) ?? null,
    pushedAt: iso(pushedAt),
    pulledAt: iso(pulls.get(`tag:${tag}`)),
    referrers: referrers.get(digest) ?? 0,
  };
}

/** `auth` tells the UI whether (and how) the registry asks for credentials. */
export function registerMeta(router: Router, s: Services, auth?: Auth): void {
  router.get(`${PREFIX}/`, async (ctx) => {
    ctx.body = { deleteEnabled: s.config.delete.enabled, auth: auth?.mode ?? null };
  });

  router.get(`${PREFIX}/repositories`, async (ctx) => {
    const sort = parseSort(ctx.query.sort);
    const { n, last, q } = pageParams(ctx, 100);
    checkCursor(sort, last);
    await s.metadata.ready();
    const id = identityOf(ctx);
    const page = await s.metadata.store.list({ q, sort, n, last }, (name) => id === undefined || id.lists(name));
    setNext(ctx, page.next);
    ctx.body = {
      repositories: page.items.map((r) => ({ name: r.name, tagCount: r.tagCount, size: r.size, pushedAt: iso(r.pushedAt) })),
      ...(page.next !== undefined ? { next: page.next } : {}),
    };
  });

  router.get(/^\/strata\/v1\/repositories\/(.+?)\/tags$/, async (ctx) => {
    const name = repository(ctx);
    const sort = ctx.query.sort === "pushed" ? "pushed" : (parseSort(ctx.query.sort) as "name");
    const { n, last } = pageParams(ctx, 100);
    checkCursor(sort, last);
    if (!mayPull(ctx, name)) throw new UnknownError("repository", name);
    await s.metadata.ready();
    const c = await s.metadata.store.contents(name);
    if (!c) throw new UnknownError("repository", name);
    const keyed = [...c.tags].map(([tag, rec]) => ({ key: sort === "name" ? tag : sortKey(rec.pushedAt, tag), tag, rec }));
    const desc = sort === "pushed";
    keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) * (desc ? -1 : 1));
    const from = last === undefined ? keyed : keyed.filter((k) => (desc ? k.key < last : k.key > last));
    const page = from.slice(0, n);
    const next = from.length > n ? page[page.length - 1].key : undefined;
    setNext(ctx, next);
    ctx.body = {
      name,
      tags: page.map(({ tag, rec }) => tagRow(tag, rec.digest, rec.pushedAt, c.manifests.get(rec.digest), c.pulls, c.referrers)),
      ...(next !== undefined ? { next } : {}),
    };
  });

  router.get(/^\/strata\/v1\/repositories\/(.+?)\/manifests\/([^/]+)$/, async (ctx) => {
    const name = repository(ctx);
    if (!mayPull(ctx, name)) throw new UnknownError("repository", name);
    const ref = manifestReference(ctx, 1);
    const digest: Digest = await s.manifests.resolve(name, ref);
    await s.metadata.ready();
    const c = await s.metadata.store.contents(name);
    const facts = c?.manifests.get(digest) ?? (await s.metadata.inspector.facts(name, digest, 0));
    const { m } = await s.metadata.inspector.parsed(name, digest);
    const body: Record<string, unknown> = {
      name,
      digest,
      mediaType: facts.mediaType,
      artifactType: facts.artifactType ?? null,
      manifestSize: facts.manifestSize,
      size: facts.size,
      platforms: facts.platforms,
      pushedAt: iso(facts.pushedAt),
      pulledAt: iso(c?.pulls.get(digest)),
      tags: c ? [...c.tags].filter(([, r]) => r.digest === digest).map(([t]) => t) : [],
      subject: m.subject?.digest ?? null,
      manifest: JSON.parse(m.raw.toString("utf8")) as unknown,
    };
    if (m.kind === "manifest") {
      const cfg = await s.metadata.inspector.config(m);
      const history = (cfg?.history ?? []).map((h) => ({
        created: h.created ?? null,
        createdBy: h.created_by ?? null,
        comment: h.comment ?? null,
        emptyLayer: h.empty_layer === true,
      }));
      const made = history.filter((h) => !h.emptyLayer);
      const runtime = (cfg?.config ?? {}) as Record<string, unknown>;
      body.config = {
        digest: m.config.digest,
        mediaType: m.config.mediaType,
        size: m.config.size,
        ...(cfg
          ? {
              created: cfg.created ?? null,
              author: cfg.author ?? null,
              os: cfg.os,
              architecture: cfg.architecture,
              variant: cfg.variant ?? null,
              entrypoint: runtime.Entrypoint ?? null,
              cmd: runtime.Cmd ?? null,
              env: runtime.Env ?? [],
              workingDir: runtime.WorkingDir || null,
              user: runtime.User || null,
              exposedPorts: Object.keys((runtime.ExposedPorts as object | null) ?? {}),
              labels: runtime.Labels ?? {},
              history,
            }
          : {}),
      };
      // the i-th layer was made by the i-th history entry that is not an empty layer
      body.layers = m.layers.map((l, i) => ({
        digest: l.digest,
        mediaType: l.mediaType,
        size: l.size,
        createdBy: made.length === m.layers.length ? made[i].createdBy : null,
        created: made.length === m.layers.length ? made[i].created : null,
      }));
    } else {
      body.children = facts.children ?? [];
    }
    const referrers = await s.manifests.referrers(name, digest);
    body.referrers = referrers.map((r) => ({
      digest: r.digest,
      mediaType: r.mediaType,
      artifactType: r.artifactType ?? null,
      size: r.size,
      kind: referrerKind(r.artifactType),
      annotations: r.annotations ?? {},
    }));
    ctx.body = body;
  });
}
