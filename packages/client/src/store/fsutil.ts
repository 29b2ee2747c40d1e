/** Small filesystem helpers for the store: atomic writes, fsync, random ids, mkdir with exact modes. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type Dir, lstatSync, mkdirSync, opendirSync, rmdirSync, statSync, unlinkSync, type WriteStream } from "node:fs";
import { chmod, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

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

/**
 * `mkdir -p` one component at a time: Node's recursive mkdir loops forever where mkdir(2) answers
 * ENOENT under an existing parent (/proc, /sys), this fails with that error instead.
 */
export function mkdirsSync(path: string, mode: number): void {
  const missing: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: "ENOTDIR" });
      break;
    } catch (e) {
      if (!isErrno(e, "ENOENT") || dirname(p) === p) throw e;
      missing.push(p);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, mode);
    } catch (e) {
      if (!isErrno(e, "EEXIST")) throw e;
    }
  }
}

/**
 * A file written through a temp file beside it: `commit` renames it into place once complete,
 * `discard` removes it. Fails at once, naming `path`, when the file cannot be created.
 */
export async function createOutputFile(path: string, mode = 0o644): Promise<{ stream: WriteStream; commit(): Promise<void>; discard(): Promise<void> }> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(4).toString("hex")}`);
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(tmp, "wx", mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? `directory ${dirname(path)} does not exist` : code === "EACCES" ? `permission denied in ${dirname(path)}` : (e as Error).message;
    throw new Error(`cannot write ${path}: ${why}`, { cause: e });
  }
  const stream = fh.createWriteStream();
  return {
    stream,
    async commit() {
      await rename(tmp, path);
    },
    async discard() {
      stream.destroy();
      await rm(tmp, { force: true });
    },
  };
}

/** Directory handles kept open on the way down while removing a tree (deeper ones are reopened). */
const REMOVE_OPEN_DIRS = 128;

/**
 * `rm -rf path` in constant memory: each directory is read entry by entry and every non-directory
 * unlinked as it is read, so no listing of a directory (let alone of the tree) is held; Node's
 * recursive rm keeps every name of a directory and a promise per entry. A missing `path` is fine.
 */
export function removeTree(path: string): void {
  const root = Buffer.from(path);
  let st;
  try {
    st = lstatSync(root);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return;
    throw e;
  }
  if (!st.isDirectory()) {
    unlinkSync(root);
    return;
  }
  // names are read as latin1 so that any bytes round-trip into the paths (Buffers)
  const SLASH = Buffer.from("/");
  const stack: { path: Buffer; dir?: Dir; removed?: boolean }[] = [{ path: root }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (!top.dir) {
      top.dir = opendirSync(top.path, { encoding: "latin1", bufferSize: 256 });
      top.removed = false;
    }
    let sub: Buffer | undefined;
    for (let e = top.dir.readSync(); e !== null; e = top.dir.readSync()) {
      const p = Buffer.concat([top.path, SLASH, Buffer.from(e.name, "latin1")]);
      if (e.isDirectory()) {
        sub = p;
        break;
      }
      try {
        unlinkSync(p);
        top.removed = true;
      } catch (err) {
        if (!isErrno(err, "ENOENT")) throw err;
      }
    }
    if (sub !== undefined) {
      // keep this handle open to go on where it stopped, unless the way down is already long
      if (stack.length >= REMOVE_OPEN_DIRS) {
        top.dir.closeSync();
        top.dir = undefined;
      }
      top.removed = true;
      stack.push({ path: sub });
      continue;
    }
    top.dir.closeSync();
    top.dir = undefined;
    try {
      rmdirSync(top.path);
      stack.pop();
    } catch (err) {
      // entries created meanwhile, or skipped by a reopened listing: read the directory again
      // (a whole pass that removed nothing cannot make progress)
      if ((!isErrno(err, "ENOTEMPTY") && !isErrno(err, "EEXIST")) || !top.removed) throw err;
    }
  }
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

/**
 * Like Promise.all, but settles only when every operation has: a failure is thrown after the
 * others finished, so nothing is still writing when the caller cleans up or releases a lock.
 */
export async function allSettled(ops: readonly (Promise<unknown> | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(ops);
  for (const r of results) if (r.status === "rejected") throw r.reason;
}
