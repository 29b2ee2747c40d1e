/**
 * `strata login` / `strata logout`: the registry check is injected (`PingWithCredentials`);
 * registry-ping.ts provides it through the client's HTTP stack. Credentials are stored only
 * after the registry accepted them. No message carries the password.
 */
import { type ConfigOptions, eraseCredentials, type RegistryCredentials, registryKey, storeCredentials } from "./docker-config.js";

/** Resolves when `host` accepts `creds` at /v2/ (Basic or token flow); throws LoginError otherwise. */
export type PingWithCredentials = (host: string, creds: RegistryCredentials, signal?: AbortSignal) => Promise<void>;

export class LoginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LoginError";
  }
}

function scrub(msg: string, creds: RegistryCredentials): string {
  const secrets = [creds.password, Buffer.from(`${creds.username}:${creds.password}`).toString("base64")].filter((s) => s.length >= 1);
  let out = msg;
  for (const s of secrets) out = out.split(s).join("[REDACTED]");
  return out;
}

export async function login(host: string, creds: RegistryCredentials, opts: { ping: PingWithCredentials; config?: ConfigOptions; signal?: AbortSignal }): Promise<{ path: string; helper?: string }> {
  if (creds.username === "") throw new LoginError("empty user name");
  if (creds.password === "") throw new LoginError("empty password");
  try {
    await opts.ping(host, creds, opts.signal);
  } catch (e) {
    throw new LoginError(`login to ${registryKey(host)} failed: ${scrub((e as Error).message, creds)}`);
  }
  try {
    return await storeCredentials(host, creds, opts.config);
  } catch (e) {
    throw new LoginError(`storing the credentials for ${registryKey(host)} failed: ${scrub((e as Error).message, creds)}`);
  }
}

export async function logout(host: string, opts: { config?: ConfigOptions } = {}): Promise<boolean> {
  return eraseCredentials(host, opts.config);
}
