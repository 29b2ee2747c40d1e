/**
 * Lock files in a filesystem storage root, for what processes sharing one data directory must
 * not do at once: `strata gc` and a serving registry's own collection (services/gc.ts).
 *
 *   <root>/~strata~gc.lock     held by a collector (CLI or server) during a run, and by a
 *                              registry while it starts serving the directory
 *   <root>/~strata~serving     the pid of the registry serving the directory
 *
 * A lock file is created exclusively (O_EXCL) and holds its owner's pid; one whose pid no
 * longer runs on this host is stale and is taken over. The names carry "~", which no storage
 * key can, so the driver never lists them.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const LOCK = "~strata~gc.lock";
const SERVING = "~strata~serving";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function ownerOf(file: string): Promise<number | undefined> {
  try {
    return Number((await readFile(file, "utf8")).trim());
  } catch {
    return undefined;
  }
}

/** Runs `fn` holding the root's GC lock file; waits up to `waitMs` for another holder. */
export async function withGcLockFile<T>(root: string, fn: () => Promise<T>, waitMs = 30_000): Promise<T> {
  const file = path.join(root, LOCK);
  const deadline = Date.now() + waitMs;
  await mkdir(root, { recursive: true });
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`storage root ${root} does not exist`, { cause: e });
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = await ownerOf(file);
    if (owner !== undefined && !alive(owner)) {
      await rm(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another process (pid ${owner}) holds the garbage collection lock of ${root}`);
    await sleep(50);
  }
  try {
    return await fn();
  } finally {
    if ((await ownerOf(file)) === process.pid) await rm(file, { force: true });
  }
}

/** Records this process as the registry serving `root` (under the lock, so no `strata gc` runs meanwhile). */
export async function markServing(root: string): Promise<() => Promise<void>> {
  const file = path.join(root, SERVING);
  await withGcLockFile(root, () => writeFile(file, String(process.pid)), 10 * 60_000);
  return async () => {
    if ((await ownerOf(file)) === process.pid) await rm(file, { force: true });
  };
}

/** The pid of a live registry (other than this process) serving `root`, if any. */
export async function servingPid(root: string): Promise<number | undefined> {
  const pid = await ownerOf(path.join(root, SERVING));
  return pid !== undefined && pid !== process.pid && alive(pid) ? pid : undefined;
}
