/**
 * The registry check of `strata login`: GET /v2/ with the credentials, Basic or through the
 * token flow the registry's challenge names. This is the one place login talks HTTP (Node's
 * fetch, deadline per request, bodies bounded, no redirects); the client's HTTP stack can
 * replace it by providing another `PingWithCredentials`.
 *
 * Scheme: plain HTTP for loopback hosts and hosts named in `insecureRegistries`, else HTTPS.
 * Credentials are never sent over plain HTTP to a host that is not itself plain HTTP by choice.
 */
import type { RegistryCredentials } from "./docker-config.js";
import { LoginError, type PingWithCredentials } from "./login.js";

const TIMEOUT_MS = 15_000;
const MAX_BODY = 1 << 20;

function isLoopback(host: string): boolean {
  const h = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export function baseUrl(host: string, insecureRegistries: readonly string[]): string {
  const d = host === "docker.io" || host === "index.docker.io" ? "registry-1.docker.io" : host;
  const insecure = isLoopback(d) || insecureRegistries.includes(d);
  return `${insecure ? "http" : "https"}://${d}`;
}

/** Reads at most MAX_BODY bytes of a response body (the rest is dropped). */
async function boundedBody(res: Response): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > MAX_BODY) throw new LoginError("the registry's answer is too large");
      chunks.push(Buffer.from(value));
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks);
}

async function get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  try {
    return await fetch(url, { headers, redirect: "manual", signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = (e as Error).name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : (cause?.code ?? cause?.message ?? (e as Error).message);
    throw new LoginError(`cannot reach ${new URL(url).host}: ${why}`);
  }
}

function challenge(header: string | null): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1].toLowerCase(), params };
}

function basic(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}

export function fetchPing(insecureRegistries: readonly string[] = []): PingWithCredentials {
  return async (host, creds, signal) => {
    const base = baseUrl(host, insecureRegistries);
    const first = await get(`${base}/v2/`, {}, signal);
    await boundedBody(first).catch(() => {});
    if (first.status === 200) return; // no authentication required (docker login succeeds too)
    if (first.status !== 401) throw new LoginError(`${host} answered /v2/ with HTTP ${first.status}`);
    const ch = challenge(first.headers.get("www-authenticate"));
    if (ch?.scheme === "basic") {
      const res = await get(`${base}/v2/`, { authorization: basic(creds) }, signal);
      await boundedBody(res).catch(() => {});
      if (res.status === 200) return;
      if (res.status === 401) throw new LoginError("unauthorized: incorrect username or password");
      throw new LoginError(`${host} answered /v2/ with HTTP ${res.status}`);
    }
    if (ch?.scheme === "bearer" && ch.params.realm) {
      let realm: URL;
      try {
        realm = new URL(ch.params.realm);
      } catch {
        throw new LoginError(`${host} names an invalid token realm`);
      }
      if (realm.protocol !== "https:" && !(realm.protocol === "http:" && base.startsWith("http:"))) {
        throw new LoginError(`${host} names a token realm over ${realm.protocol} (credentials are not sent there)`);
      }
      if (ch.params.service) realm.searchParams.set("service", ch.params.service);
      if (creds.username !== "<token>") realm.searchParams.set("account", creds.username);
      const tr = await get(realm.toString(), { authorization: basic(creds) }, signal);
      const body = await boundedBody(tr);
      if (tr.status === 401 || tr.status === 403) throw new LoginError("unauthorized: incorrect username or password");
      if (tr.status !== 200) throw new LoginError(`the token server of ${host} answered HTTP ${tr.status}`);
      let token: unknown;
      try {
        const j = JSON.parse(body.toString("utf8")) as { token?: unknown; access_token?: unknown };
        token = j.token ?? j.access_token;
      } catch {
        /* below */
      }
      if (typeof token !== "string" || token === "") throw new LoginError(`the token server of ${host} answered without a token`);
      const res = await get(`${base}/v2/`, { authorization: `Bearer ${token}` }, signal);
      await boundedBody(res).catch(() => {});
      if (res.status === 200) return;
      throw new LoginError(`${host} refused the token its token server issued (HTTP ${res.status})`);
    }
    throw new LoginError(`${host} asks for an unsupported authentication scheme`);
  };
}
