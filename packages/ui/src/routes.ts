/** Hash routes: #/?q=&sort= (repositories), #/r/<name> (its tags), #/r/<name>/-/<tag or digest> (one image). */
import type { LoginRequired } from "./api.js";

export type Route = { page: "list"; q: string; sort: string } | { page: "repo"; name: string } | { page: "image"; name: string; reference: string };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, "");
  const [path, query = ""] = h.split("?", 2);
  if (path.startsWith("/r/")) {
    const rest = decodeURIComponent(path.slice(3));
    const i = rest.indexOf("/-/");
    if (i > 0) return { page: "image", name: rest.slice(0, i), reference: rest.slice(i + 3) };
    return { page: "repo", name: rest };
  }
  const p = new URLSearchParams(query);
  return { page: "list", q: p.get("q") ?? "", sort: p.get("sort") ?? "name" };
}

export function href(route: Route): string {
  if (route.page === "repo") return `#/r/${route.name}`;
  if (route.page === "image") return `#/r/${route.name}/-/${route.reference}`;
  const p = new URLSearchParams();
  if (route.q) p.set("q", route.q);
  if (route.sort !== "name") p.set("sort", route.sort);
  const qs = p.toString();
  return qs ? `#/?${qs}` : "#/";
}

/** Where views report that the registry wants credentials (the App shows the login form). */
export const loginPrompt: { show: (e: LoginRequired) => void } = { show: () => {} };
