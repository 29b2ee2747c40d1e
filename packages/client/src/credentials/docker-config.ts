/**
 * Registry credentials in Docker's CLI config (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`), with Docker's rules:
 *   - the key of a registry is its host[:port]; Docker Hub's is "https://index.docker.io/v1/";
 *   - `credHelpers[key]` names the helper for one registry, else `credsStore` the helper for all;
 *     with a helper the secret lives in the helper and `auths[key]` is an empty object;
 *   - without one, `auths[key].auth` is base64("user:password").
 * The file keeps every other field; it is written 0600 through a temp file (fsync, rename).
 * A user name of "<token>" means the secret is an identity token (Docker's convention).
 */
import { mkdir, readFile, realpath } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { isErrno, writeFileAtomic } from "../store/fsutil.js";
import { HELPER_TIMEOUT_MS, helperErase, helperGet, helperStore, validHelperName } from "./helper.js";

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface ConfigOptions {
  /** Directory holding config.json (default: $DOCKER_CONFIG or ~/.docker). */
  configDir?: string;
  helperTimeoutMs?: number;
}

const HUB_KEY = "https://index.docker.io/v1/";

export function dockerConfigDir(): string {
  return process.env.DOCKER_CONFIG || join(homedir(), ".docker");
}

/** The config.json key of a registry host (what `docker login HOST` writes). */
export function registryKey(host: string): string {
  const h = host.replace(/^https?:\/\//, "").replace(/\/+$/, "").replace(/\/v[12]$/, "");
  if (h === "docker.io" || h === "index.docker.io" || h === "registry-1.docker.io") return HUB_KEY;
  return h;
}

type ConfigData = Record<string, unknown> & {
  auths?: Record<string, Record<string, unknown>>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
};

async function load(dir: string): Promise<{ path: string; data: ConfigData }> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (isErrno(e, "ENOENT")) return { path, data: {} };
    throw new Error(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (text.trim() === "") return { path, data: {} };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw new Error(`${path} is not a JSON object`);
  const d = data as ConfigData;
  if (d.auths !== undefined && (d.auths === null || typeof d.auths !== "object" || Array.isArray(d.auths))) throw new Error(`${path}: auths is not an object`);
  return { path, data: d };
}

async function save(path: string, data: ConfigData): Promise<void> {
  const dir = join(path, "..");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // a config.json that is a symlink is written through (its target replaced)
  const target = await realpath(path).catch(() => path);
  await writeFileAtomic(target, `${JSON.stringify(data, null, "\t")}\n`, 0o600);
}

function helperFor(data: ConfigData, key: string, host: string): string | undefined {
  const name = data.credHelpers?.[key] ?? data.credHelpers?.[host] ?? data.credsStore;
  if (name === undefined || name === "") return undefined;
  if (typeof name !== "string" || !validHelperName(name)) throw new Error(`invalid credential helper name in config.json: ${JSON.stringify(name)}`);
  return name;
}

/** The credentials stored for `host`, or undefined. */
export async function getCredentials(host: string, opts: ConfigOptions = {}): Promise<RegistryCredentials | undefined> {
  const { path, data } = await load(opts.configDir ?? dockerConfigDir());
  const key = registryKey(host);
  const helper = helperFor(data, key, host);
  if (helper) {
    const c = await helperGet(helper, key, opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS);
    return c ? { username: c.username, password: c.secret } : undefined;
  }
  const entry = authsEntry(data, key);
  if (!entry) return undefined;
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new Error(`invalid auth entry for ${key} in ${path}`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") return { username: "<token>", password: entry.identitytoken };
  if (typeof entry.username === "string" && entry.username !== "" && typeof entry.password === "string") return { username: entry.username, password: entry.password };
  return undefined;
}

/** `auths[key]`, else the first entry whose key names the same host (`https://host/v1/`, `http://host`). */
function authsEntry(data: ConfigData, key: string): Record<string, unknown> | undefined {
  const auths = data.auths ?? {};
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObj(auths[key])) return auths[key];
  for (const [k, v] of Object.entries(auths)) {
    const host = k.replace(/^[a-z]+:\/\//i, "").split("/")[0];
    if (isObj(v) && registryKey(host) === key) return v;
  }
  return undefined;
}

/** Stores credentials for `host` (in its helper when one is configured). */
export async function storeCredentials(host: string, c: RegistryCredentials, opts: ConfigOptions = {}): Promise<{ path: string; helper?: string }> {
  const { path, data } = await load(opts.configDir ?? dockerConfigDir());
  const key = registryKey(host);
  const helper = helperFor(data, key, host);
  data.auths ??= {};
  if (helper) {
    await helperStore(helper, key, { username: c.username, secret: c.password }, opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS);
    data.auths[key] = {};
  } else {
    data.auths[key] = { auth: Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64") };
  }
  await save(path, data);
  return { path, helper };
}

/** Removes the credentials of `host`; false when there were none. */
export async function eraseCredentials(host: string, opts: ConfigOptions = {}): Promise<boolean> {
  const { path, data } = await load(opts.configDir ?? dockerConfigDir());
  const key = registryKey(host);
  const helper = helperFor(data, key, host);
  let found = false;
  if (helper) {
    const had = await helperGet(helper, key, opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS);
    if (had) {
      await helperErase(helper, key, opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS);
      found = true;
    }
  }
  if (data.auths && key in data.auths) {
    delete data.auths[key];
    found = true;
    await save(path, data);
  }
  return found;
}
