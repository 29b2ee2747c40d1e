/**
 * Test material for access control: htpasswd files (bcrypt, as `htpasswd -B` writes them),
 * signing keys made at test time, and the client side of the token flow (parse a challenge,
 * ask the realm for a token) as docker does it.
 */
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import bcrypt from "bcryptjs";

/** Writes `htpasswd` (bcrypt cost 5, `$2y$` like htpasswd -B) and an EC P-256 `token.pem` into `dir`. */
export async function writeAuthFiles(dir: string, users: Record<string, string>): Promise<{ htpasswd: string; signingKey: string }> {
  const htpasswd = join(dir, "htpasswd");
  const lines = Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5).replace(/^\$2b\$/, "$2y$")}`);
  await writeFile(htpasswd, `${lines.join("\n")}\n`);
  const signingKey = join(dir, "token.pem");
  await writeFile(signingKey, ecKeyPem(), { mode: 0o600 });
  return { htpasswd, signingKey };
}

/** A fresh EC P-256 private key, PKCS#8 PEM. */
export function ecKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Scheme k="v",k2="v2"` (quoted values may hold commas). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^(\S+)\s*(.*)$/.exec(header.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) params[p[1]] = p[2].replace(/\\(.)/g, "$1");
  return { scheme: m[1].toLowerCase(), params };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** The realm URL's path and query for a challenge (the realm's host is the registry itself in tests). */
export function tokenPath(c: Challenge, extra: Record<string, string> = {}): string {
  const u = new URL(c.params.realm);
  if (c.params.service) u.searchParams.set("service", c.params.service);
  if (c.params.scope) u.searchParams.set("scope", c.params.scope);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.pathname + u.search;
}
