/** GET /v2/<name>/referrers/<digest>[?artifactType=]: an OCI image index of referrers. */
import type Router from "@koa/router";
import { MediaTypes } from "@strata/core";
import { digestAt, repository } from "../http/params.js";
import type { Services } from "../services/index.js";

export function registerReferrers(router: Router, s: Services): void {
  router.get(/^\/v2\/(.+?)\/referrers\/([^/]+)$/, async (ctx) => {
    const name = repository(ctx);
    const subject = digestAt(ctx, 1);
    const artifactType = typeof ctx.query.artifactType === "string" ? ctx.query.artifactType : undefined;
    const manifests = await s.manifests.referrers(name, subject, artifactType);
    if (artifactType !== undefined) ctx.set("OCI-Filters-Applied", "artifactType");
    ctx.type = MediaTypes.OciIndex;
    ctx.body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests });
  });
}
