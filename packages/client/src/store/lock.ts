/**
 * An inter-process lock for one store root: a lock file created with O_EXCL holding
 * "<pid> <random token>". A lock whose pid is no longer alive is stale and is taken over; the
 * takeover itself is serialised by a second O_EXCL file so two waiters never both break it.
 * Within one process, holders are queued (the lock is not re-entrant).
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rm, stat, unlink } from "node:fs/promises";
import { sleep } from "../registry/retry.js";
import { isErrno } from "./fsutil.js";

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, "EPERM");
  }
}

export class StoreLock {
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Runs `fn` while holding the lock. */
  async with<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const prev = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((r) => {
      release = r;
    });
    try {
      await prev;
      const token = await this.acquire(signal);
      try {
        return await fn();
      } finally {
        await this.releaseFile(token);
      }
    } finally {
      release();
    }
  }

  private async acquire(signal?: AbortSignal): Promise<string> {
    const token = `${process.pid} ${randomBytes(8).toString("hex")}`;
    let delay = 20;
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      try {
        const fh = await open(this.path, "wx", 0o600);
        try {
          await fh.writeFile(token);
        } finally {
          await fh.close();
        }
        return token;
      } catch (e) {
        if (!isErrno(e, "EEXIST")) throw e;
      }
      await this.breakIfStale();
      await sleep(delay);
      delay = Math.min(200, delay * 2);
    }
  }

  private async breakIfStale(): Promise<void> {
    const holder = await readFile(this.path, "utf8").catch(() => undefined);
    if (holder === undefined) return;
    const pid = Number(holder.split(" ")[0]);
    if (holder !== "" && alive(pid)) return;
    if (holder === "") {
      // A lock file being written right now, or left empty by a crash: stale only when old.
      const st = await stat(this.path).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < 5000) return;
    }
    const takeover = `${this.path}.takeover`;
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(takeover, "wx", 0o600);
    } catch (e) {
      if (!isErrno(e, "EEXIST")) throw e;
      const st = await stat(takeover).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 10_000) await rm(takeover, { force: true });
      return;
    }
    try {
      await fh.close();
      const again = await readFile(this.path, "utf8").catch(() => undefined);
      if (again === holder) await unlink(this.path).catch(() => {});
    } finally {
      await rm(takeover, { force: true });
    }
  }

  private async releaseFile(token: string): Promise<void> {
    const holder = await readFile(this.path, "utf8").catch(() => undefined);
    if (holder === token) await unlink(this.path).catch(() => {});
  }
}
