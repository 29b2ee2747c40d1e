/** Small filesystem helpers for the store: atomic writes, fsync, random ids, mkdir with exact modes. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** 64 lowercase hex characters from 32 random bytes (Docker's cache-id / mount-id form). */
export function randomId(): string {
  return randomBytes(32).toString("hex");
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** 26 characters of base32 (A-Z, 2-7) from random bytes: an overlay2 `l/` link name. */
export function randomLinkId(): string {
  const bytes = randomBytes(17);
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

/** Creates a directory (parents too) and sets the exact mode on the last component (umask-proof). */
export async function mkdirMode(path: string, mode: number): Promise<void> {
  await mkdir(path, { recursive: true, mode });
  await chmod(path, mode);
}

/** Creates parents as needed with `parentMode`, without touching existing ones. */
export async function ensureDir(path: string, mode: number): Promise<void> {
  await mkdir(path, { recursive: true, mode });
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a file with an exact mode and fsyncs it (no rename). */
export async function writeFileSynced(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const fh = await open(path, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `path`: write a temp file beside it, fsync, rename, fsync the directory. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.tmp-${basename(path)}${randomBytes(6).toString("hex")}`);
  try {
    await writeFileSynced(tmp, data, mode);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncPath(dirname(path));
}

/** Reads a small metadata file and trims whitespace; undefined when it does not exist. */
export async function readSmall(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Flushes the whole filesystem holding `path` to disk (`sync -f`, i.e. syncfs(2)). */
export function syncFilesystem(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("sync", ["-f", path], (err) => (err ? reject(new Error(`sync -f ${path} failed: ${err.message}`)) : resolve()));
  });
}

export function isErrno(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException)?.code === code;
}
