// Typed wrapper over the strata_native addon (packages/client/native): Linux syscalls that Node
// does not expose. Everything is synchronous and throws Node-style errors (code, errno, syscall, path).
// Paths may be Buffers for names that are not valid UTF-8.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export type PathArg = string | Buffer;

interface Addon {
  mknod(path: PathArg, mode: number, major: number, minor: number): void;
  setxattr(path: PathArg, name: string, value: Buffer, noFollow: boolean): void;
  getxattr(path: PathArg, name: string): Buffer | undefined;
  listxattr(path: PathArg): string[];
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount(target: string, flags: number): void;
  crc64Update(state: Uint8Array, data: Uint8Array): void;
  syncfs(path: PathArg): void;
  startWriteback(fd: number, offset: number, length: number): void;
  inflateCreate(): InflateHandle;
  inflateStep(h: InflateHandle, input: Uint8Array, inOff: number, out: Uint8Array, outOff: number, res: Float64Array): void;
  inflateReset(h: InflateHandle): void;
  hugeArena(bytes: number): ArrayBuffer;
}

/** An inflate stream owned by the addon (freed when garbage collected). */
export type InflateHandle = { readonly __inflate: unique symbol };

const nativeDir = fileURLToPath(new URL("../../native/", import.meta.url));
const addonPath = `${nativeDir}build/Release/strata_native.node`;
/** Path of the `strata-mount CWD SOURCE TARGET FSTYPE FLAGS DATA` helper executable. */
export const strataMountPath = `${nativeDir}build/Release/strata-mount`;

let addon: Addon | undefined;
let loadError: Error | undefined;

function load(): Addon {
  if (addon) return addon;
  if (loadError) throw loadError;
  try {
    addon = createRequire(import.meta.url)(addonPath) as Addon;
    return addon;
  } catch (e) {
    loadError = new Error(
      `strata native addon not available (${addonPath}); build it with \`npm run build:native -w @strata/client\`: ${(e as Error).message}`,
    );
    throw loadError;
  }
}

/** True when the addon is built and loadable. */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** mknod(2). `mode` includes the file type (fs.constants.S_IFCHR, S_IFBLK, S_IFIFO) and permission bits (umask applies). */
export function mknod(path: PathArg, mode: number, major: number, minor: number): void {
  load().mknod(path, mode, major, minor);
}

/** setxattr(2), or lsetxattr(2) with `noFollow`. */
export function setxattr(path: PathArg, name: string, value: Buffer, opts?: { noFollow?: boolean }): void {
  load().setxattr(path, name, value, opts?.noFollow ?? false);
}

/** lgetxattr(2): the value, or undefined when the attribute does not exist. */
export function getxattr(path: PathArg, name: string): Buffer | undefined {
  return load().getxattr(path, name);
}

/** llistxattr(2): attribute names in the order the filesystem returns them. */
export function listxattr(path: PathArg): string[] {
  return load().listxattr(path);
}

/** mount(2). `data` "" means no data. */
export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  load().mount(source, target, fstype, flags, data);
}

/** umount2(2). */
export function umount(target: string, flags = 0): void {
  load().umount(target, flags);
}

/**
 * mount(2) performed with working directory `cwd`, so relative paths in `source`, `target` and
 * `data` (e.g. overlay `lowerdir=l/A:l/B`) resolve against it. Runs the strata-mount helper
 * in a child process (a process-wide chdir is not safe in Node).
 */
export function mountAt(cwd: string, source: string, target: string, fstype: string, flags: number, data: string): void {
  if (!existsSync(strataMountPath)) throw new Error(`strata-mount helper not built (${strataMountPath})`);
  const r = spawnSync(strataMountPath, [cwd, source, target, fstype, String(flags >>> 0), data], { encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    const msg = (r.stderr || "").trim() || `strata-mount exited with status ${r.status}`;
    const m = /^strata-mount: \w+: (E[A-Z0-9]+):/.exec(msg);
    const err = new Error(`${msg} (mount ${target} in ${cwd})`) as NodeJS.ErrnoException;
    if (m) err.code = m[1];
    throw err;
  }
}

/** CRC-64/ISO update in native code; `state` is the 8-byte big-endian CRC so far, updated in place. Undefined without the addon. */
export function nativeCrc64Update(): ((state: Uint8Array, data: Uint8Array) => void) | undefined {
  try {
    return load().crc64Update;
  } catch {
    return undefined;
  }
}

/** mount(2) flags. */
export const MountFlags = {
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_NOEXEC: 8,
  MS_REMOUNT: 32,
  MS_BIND: 4096,
  MS_REC: 16384,
  MS_PRIVATE: 1 << 18,
} as const;

/** The addon's gzip inflater (zlib linked into Node), for GzipDecoder. */
export function inflater(): Pick<Addon, "inflateCreate" | "inflateStep" | "inflateReset"> {
  return load();
}

/** syncfs(2) of the filesystem holding `path`; blocks the calling thread (use in worker threads). */
export function syncfs(path: PathArg): void {
  load().syncfs(path);
}

/** Starts writeback of a range of an open file's dirty pages without waiting (sync_file_range SYNC_FILE_RANGE_WRITE; length 0: to the end). */
export function startWriteback(fd: number, offset: number, length: number): void {
  load().startWriteback(fd, offset, length);
}

/**
 * `bytes` (a multiple of 2 MiB) of memory advised for transparent huge pages (native/src/hugepages.c),
 * or undefined without the addon.
 */
export function hugeArena(bytes: number): ArrayBuffer | undefined {
  if (!nativeAvailable()) return undefined;
  const a = load();
  return typeof a.hugeArena === "function" ? a.hugeArena(bytes) : undefined;
}
