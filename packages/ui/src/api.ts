/**
 * The UI's one HTTP client: the registry's /strata/v1 metadata API and /v2/ deletes, on the
 * page's own origin. When the registry asks for credentials (401), the user logs in once:
 * a Bearer challenge is answered with a token from its realm (requested with the user's
 * credentials as Basic), a Basic challenge with the credentials themselves. Credentials and
 * tokens live in this module's memory only (never localStorage or cookies): reloading the
 * page logs out.
 */

export interface RepositoryRow {
  name: string;
  tagCount: number;
  size: number;
  pushedAt: string | null;
}

export interface TagChild {
  platform: string;
  digest: string;
  size: number;
  type?: string;
}

export interface TagRow {
  tag: string;
  digest: string;
  mediaType: string | null;
  artifactType: string | null;
  platforms: string[];
  size: number | null;
  children: TagChild[] | null;
  pushedAt: string | null;
  pulledAt: string | null;
  referrers: number;
}

export interface HistoryEntry {
  created: string | null;
  createdBy: string | null;
  comment: string | null;
  emptyLayer: boolean;
}

export interface ManifestDetail {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  manifestSize: number;
  size: number;
  platforms: string[];
  pushedAt: string | null;
  pulledAt: string | null;
  tags: string[];
  subject: string | null;
  manifest: unknown;
  config?: {
    digest: string;
    mediaType: string;
    size: number;
    created?: string | null;
    author?: string | null;
    os?: string;
    architecture?: string;
    variant?: string | null;
    entrypoint?: string[] | null;
    cmd?: string[] | null;
    env?: string[];
    workingDir?: string | null;
    user?: string | null;
    exposedPorts?: string[];
    labels?: Record<string, string>;
    history?: HistoryEntry[];
  };
  layers?: { digest: string; mediaType: string; size: number; createdBy: string | null; created: string | null }[];
  children?: TagChild[];
  referrers: { digest: string; mediaType: string; artifactType: string | null; size: number; kind: "signature" | "sbom" | "attestation" | "other" }[];
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown when the registry wants credentials the UI does not have (show the login form). */
export class LoginRequired extends Error {
  constructor(readonly failed: boolean) {
    super(failed ? "those credentials were refused" : "log in to continue");
  }
}

let credentials: { username: string; password: string } | undefined;
/** scope (or "" for Basic) -> Authorization header value */
const authorizations = new Map<string, string>();
/** Sent first with every request: most requests need the same access as the previous one. */
let lastAuthorization: string | undefined;
const listeners = new Set<() => void>();

export function loggedInAs(): string | undefined {
  return credentials?.username;
}

export function onAuthChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function login(username: string, password: string): void {
  credentials = { username, password };
  authorizations.clear();
  lastAuthorization = undefined;
  for (const l of listeners) l();
}

export function logout(): void {
  credentials = undefined;
  authorizations.clear();
  lastAuthorization = undefined;
  for (const l of listeners) l();
}

function basic(): string {
  const bytes = new TextEncoder().encode(`${credentials!.username}:${credentials!.password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (or `Basic realm=...`). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header) ?? ["", "", ""];
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1].toLowerCase()] = (p[2] ?? p[3]).replace(/\\(.)/g, "$1");
  return { scheme: m[1].toLowerCase(), params };
}

async function authorize(challenge: string): Promise<string> {
  if (!credentials) throw new LoginRequired(false);
  const { scheme, params } = parseChallenge(challenge);
  if (scheme === "basic") return basic();
  if (scheme !== "bearer" || !params.realm) throw new ApiError(401, `unsupported authentication challenge: ${scheme}`);
  const key = `${params.service ?? ""} ${params.scope ?? ""}`;
  const cached = authorizations.get(key);
  if (cached) return cached;
  const realm = new URL(params.realm, location.href);
  if (params.service) realm.searchParams.set("service", params.service);
  if (params.scope) for (const s of params.scope.split(" ")) realm.searchParams.append("scope", s);
  const res = await fetch(realm, { headers: { Authorization: basic() }, credentials: "omit", cache: "no-store" });
  if (res.status === 401 || res.status === 403) throw new LoginRequired(true);
  if (!res.ok) throw new ApiError(res.status, `token request failed: ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new ApiError(502, "the token endpoint answered without a token");
  const value = `Bearer ${token}`;
  authorizations.set(key, value);
  return value;
}

async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { errors?: { code: string; message?: string }[] };
    const e = body.errors?.[0];
    if (e) return e.message ? `${e.code}: ${e.message}` : e.code;
  } catch {
    /* not JSON */
  }
  return `${res.status} ${res.statusText}`;
}

/** Sends a request on this origin, logging in through the challenge on 401. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const send = (authorization?: string) =>
    fetch(path, {
      ...init,
      credentials: "omit",
      cache: "no-store",
      headers: { Accept: "application/json", ...(init.headers as Record<string, string>), ...(authorization ? { Authorization: authorization } : {}) },
    });
  let res = await send(lastAuthorization);
  if (res.status === 401) {
    const challenge = res.headers.get("WWW-Authenticate") ?? "";
    const value = await authorize(challenge);
    lastAuthorization = value;
    res = await send(value);
    if (res.status === 401) {
      authorizations.clear();
      lastAuthorization = undefined;
      throw new LoginRequired(true);
    }
  }
  if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
  return res;
}

async function json<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

const repoPath = (name: string) => name.split("/").map(encodeURIComponent).join("/");

export async function info(): Promise<{ deleteEnabled: boolean; auth: "basic" | "token" | null }> {
  return json("/strata/v1/");
}

export async function repositories(q: string, sort: string, last?: string, n = 100): Promise<Page<RepositoryRow>> {
  const u = new URLSearchParams({ sort, n: String(n) });
  if (q) u.set("q", q);
  if (last) u.set("last", last);
  const body = await json<{ repositories: RepositoryRow[]; next?: string }>(`/strata/v1/repositories?${u}`);
  return { items: body.repositories, next: body.next };
}

export async function tags(name: string, sort: string, last?: string, n = 100): Promise<Page<TagRow>> {
  const u = new URLSearchParams({ sort, n: String(n) });
  if (last) u.set("last", last);
  const body = await json<{ tags: TagRow[]; next?: string }>(`/strata/v1/repositories/${repoPath(name)}/tags?${u}`);
  return { items: body.tags, next: body.next };
}

export async function manifest(name: string, reference: string): Promise<ManifestDetail> {
  return json(`/strata/v1/repositories/${repoPath(name)}/manifests/${encodeURIComponent(reference)}`);
}

/** Deletes a tag (the manifest stays) or, given a digest, a manifest and every tag on it. */
export async function deleteReference(name: string, reference: string): Promise<void> {
  const res = await request(`/v2/${repoPath(name)}/manifests/${encodeURIComponent(reference)}`, { method: "DELETE" });
  await res.arrayBuffer(); // read to the end: an unread body is cancelled, which browsers report as an aborted request
}
