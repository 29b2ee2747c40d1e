/** GET /v2/_catalog with n/last pagination; only repositories the caller may pull are listed. */
import type Router from "@koa/router";
import { identityOf } from "../http/auth.js";
import { nextLink, pageQuery } from "../http/params.js";
import type { Services } from "../services/index.js";
import { paginate } from "../services/manifests.js";

export function registerCatalog(router: Router, s: Services): void {
  router.get("/v2/_catalog", async (ctx) => {
    const { n, last } = pageQuery(ctx);
    const id = identityOf(ctx);
    const all = await s.repositories.repositories();
    const page = paginate(id ? all.filter((r) => id.lists(r)) : all, n, last);
    if (page.next !== undefined && n !== undefined) ctx.set("Link", nextLink("/v2/_catalog", n, page.next));
    ctx.body = { repositories: page.items };
  });
}
