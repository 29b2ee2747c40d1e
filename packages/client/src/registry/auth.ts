/**
 * Registry credentials and the WWW-Authenticate challenge grammar.
 *
 * Credentials come from `--username`/`--password-stdin` or from the `auths` section of the Docker
 * CLI config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), whose `auth` field is
 * base64("user:password"). Credentials are never printed: `redact` scrubs them from any text that
 * could reach a log or an error message.
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface Challenge {
  /** Lower-case scheme: "bearer" or "basic". */
  readonly scheme: string;
  readonly params: Record<string, string>;
}

/** Parses a WWW-Authenticate header value (one or more challenges; quoted-string parameters). */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && /[\s,]/.test(s[i])) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i])) i++;
    return s.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    const start = i;
    const name = token();
    if (!name) {
      i++;
      continue;
    }
    while (i < s.length && s[i] === " ") i++;
    if (s[i] === "=") {
      i++;
      while (i < s.length && s[i] === " ") i++;
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        const vs = i;
        while (i < s.length && s[i] !== "," && s[i] !== " ") i++;
        value = s.slice(vs, i);
      }
      if (!current) {
        // A parameter before any scheme: tolerate by attaching to an unnamed challenge.
        current = { scheme: "", params: {} };
        out.push(current);
      }
      current.params[name.toLowerCase()] = value;
    } else {
      i = start + name.length;
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

function dockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), ".docker");
  return join(dir, "config.json");
}

/** The keys under which Docker's config may list a registry host. */
function configKeysFor(domain: string): string[] {
  if (domain === "docker.io" || domain === "registry-1.docker.io" || domain === "index.docker.io") {
    return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"];
  }
  return [domain, `https://${domain}`, `http://${domain}`, `https://${domain}/v1/`, `https://${domain}/v2/`];
}

/** Reads credentials for `domain` from the Docker CLI config; undefined when there are none. */
export async function credentialsFromDockerConfig(domain: string, path = dockerConfigPath()): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    cfg = JSON.parse(text);
  } catch {
    throw new Error(`cannot parse ${path}: invalid JSON`);
  }
  const auths = cfg.auths ?? {};
  const normalized = new Map<string, { auth?: string; username?: string; password?: string }>();
  for (const [k, v] of Object.entries(auths)) normalized.set(k.replace(/\/+$/, "/").toLowerCase(), v);
  for (const key of configKeysFor(domain)) {
    const entry = auths[key] ?? normalized.get(key.toLowerCase());
    if (!entry) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon <= 0) throw new Error(`invalid auth entry for ${domain} in ${path}`);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  }
  return undefined;
}

export function basicAuthHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
}

/** Replaces every occurrence of the secret parts of `creds` (and their base64 forms) in `text`. */
export function redact(text: string, creds: Credentials | undefined, extraSecrets: readonly string[] = []): string {
  const secrets = [...extraSecrets];
  if (creds) {
    secrets.push(creds.password, Buffer.from(`${creds.username}:${creds.password}`).toString("base64"));
  }
  let out = text;
  for (const s of secrets) if (s && s.length >= 3) out = out.split(s).join("[REDACTED]");
  return out;
}
