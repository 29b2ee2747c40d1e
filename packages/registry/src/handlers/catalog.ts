/** GET /v2/_catalog with n/last pagination. */
import type Router from "@koa/router";
import { nextLink, pageQuery } from "../http/params.js";
import type { Services } from "../services/index.js";
import { paginate } from "../services/manifests.js";

export function registerCatalog(router: Router, s: Services): void {
  router.get("/v2/_catalog", async (ctx) => {
    const { n, last } = pageQuery(ctx);
    const page = paginate(await s.repositories.repositories(), n, last);
    if (page.next !== undefined && n !== undefined) ctx.set("Link", nextLink("/v2/_catalog", n, page.next));
    ctx.body = { repositories: page.items };
  });
}
