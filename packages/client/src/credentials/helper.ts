/**
 * Docker credential helpers: `docker-credential-<name> store|get|erase`, one request on stdin,
 * the answer on stdout.
 *   store  stdin {"ServerURL","Username","Secret"}        stdout ignored
 *   get    stdin <server URL>                             stdout {"ServerURL","Username","Secret"}
 *          (not found: non-zero exit, stdout "credentials not found in native keychain")
 *   erase  stdin <server URL>
 * A helper is a separate process: its output is bounded, it gets a deadline (then SIGKILL), and
 * nothing it prints on success reaches a message (stdout carries the secret).
 */
import { spawn } from "node:child_process";

export const HELPER_TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 64 * 1024;
const NOT_FOUND = "credentials not found in native keychain";

export class CredentialHelperError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CredentialHelperError";
  }
}

export interface HelperCredentials {
  username: string;
  secret: string;
}

export function validHelperName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name.length <= 100;
}

/** Runs one helper action; resolves with stdout, or `undefined` for get's "not found". */
function runHelper(name: string, action: "store" | "get" | "erase", input: string, timeoutMs: number, secrets: string[]): Promise<string | undefined> {
  if (!validHelperName(name)) return Promise.reject(new CredentialHelperError(`invalid credential helper name ${JSON.stringify(name)}`));
  const bin = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [action], { stdio: ["pipe", "pipe", "pipe"] });
    let out = Buffer.alloc(0);
    let err = "";
    let failure: Error | undefined;
    const fail = (e: Error) => {
      failure ??= e;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => fail(new CredentialHelperError(`${bin} ${action} did not answer within ${timeoutMs} ms`)), timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      if (out.length + d.length > MAX_OUTPUT) fail(new CredentialHelperError(`${bin} ${action} printed more than ${MAX_OUTPUT} bytes`));
      else out = Buffer.concat([out, d]);
    });
    child.stderr.on("data", (d: Buffer) => {
      if (err.length < 4096) err += d.toString("utf8");
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      fail(new CredentialHelperError(e.code === "ENOENT" ? `credential helper ${bin} not found on PATH` : `${bin}: ${e.message}`));
    });
    child.stdin.on("error", () => {}); // a helper that exits without reading: reported by its status
    child.on("close", (code) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      const text = out.toString("utf8").trim();
      if (code === 0) return resolve(text);
      if (action === "get" && text.includes(NOT_FOUND)) return resolve(undefined);
      // the helper's own message, first line, secrets removed
      let msg = (text || err.trim()).split("\n")[0].slice(0, 200);
      for (const s of secrets) if (s) msg = msg.split(s).join("[REDACTED]");
      reject(new CredentialHelperError(`${bin} ${action} failed (exit status ${code})${msg ? `: ${msg}` : ""}`));
    });
    child.stdin.end(input);
  });
}

export async function helperStore(name: string, serverURL: string, c: HelperCredentials, timeoutMs = HELPER_TIMEOUT_MS): Promise<void> {
  await runHelper(name, "store", JSON.stringify({ ServerURL: serverURL, Username: c.username, Secret: c.secret }), timeoutMs, [c.secret]);
}

export async function helperGet(name: string, serverURL: string, timeoutMs = HELPER_TIMEOUT_MS): Promise<HelperCredentials | undefined> {
  const text = await runHelper(name, "get", serverURL, timeoutMs, []);
  if (text === undefined) return undefined;
  let v: { Username?: unknown; Secret?: unknown };
  try {
    v = JSON.parse(text);
  } catch {
    throw new CredentialHelperError(`docker-credential-${name} get: the answer is not JSON`);
  }
  if (typeof v?.Username !== "string" || typeof v.Secret !== "string") throw new CredentialHelperError(`docker-credential-${name} get: the answer has no Username/Secret`);
  if (v.Secret === "") return undefined;
  return { username: v.Username, secret: v.Secret };
}

export async function helperErase(name: string, serverURL: string, timeoutMs = HELPER_TIMEOUT_MS): Promise<void> {
  await runHelper(name, "erase", serverURL, timeoutMs, []);
}
