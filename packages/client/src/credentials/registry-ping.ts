/**
 * The registry check of `strata login`: GET /v2/ with the credentials through the client's one
 * HTTP stack (registry/client.ts: the same bounds, deadlines, redirect and credential rules as
 * pulls and pushes), Basic or through the token flow the registry's challenge names.
 */
import { RegistryClient, RegistryError } from "../registry/client.js";
import { LoginError, type PingWithCredentials } from "./login.js";

export function clientPing(insecureRegistries: readonly string[] = []): PingWithCredentials {
  return async (host, creds, signal) => {
    const client = new RegistryClient({ domain: host, insecureRegistries, credentials: creds, retry: { attempts: 2 } });
    try {
      await client.ping(signal);
    } catch (e) {
      if (e instanceof RegistryError && e.status === 401) throw new LoginError("unauthorized: incorrect username or password");
      throw new LoginError((e as Error).message);
    }
  };
}
