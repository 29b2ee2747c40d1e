/** GET /v2/<name>/tags/list with n/last pagination. */
import type Router from "@koa/router";
import { UnknownError } from "../errors.js";
import { nextLink, nsQuery, pageQuery, repository } from "../http/params.js";
import type { Services } from "../services/index.js";
import { paginate } from "../services/manifests.js";

export function registerTags(router: Router, s: Services): void {
  router.get(/^\/v2\/(.+?)\/tags\/list$/, async (ctx) => {
    const name = repository(ctx);
    const { n, last } = pageQuery(ctx);
    const route = s.proxy?.route(name, nsQuery(ctx));
    let all: string[];
    if (route) {
      const r = await s.proxy!.tags(route);
      if (!r) throw new UnknownError("repository", name);
      if (r.warning) ctx.set("Warning", r.warning);
      all = r.tags;
    } else all = await s.manifests.tags(name);
    const page = paginate(all, n, last);
    if (page.next !== undefined && n !== undefined) ctx.set("Link", nextLink(`/v2/${name}/tags/list`, n, page.next));
    ctx.body = { name, tags: page.items };
  });
}
