/**
 * Registry credentials and the WWW-Authenticate challenge grammar.
 *
 * Credentials come from `--username`/`--password-stdin` or from Docker's CLI config and its
 * credential helpers (credentials/docker-config.ts, the one reader of config.json). Credentials
 * are never printed: `redact` scrubs them from any text that could reach a log or an error message.
 */

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
