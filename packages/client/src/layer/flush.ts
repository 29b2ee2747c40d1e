// Making an extracted layer durable (extractLayer's `durable`) without flushing other processes'
// writes: when the layer created few entries (at most FSYNC_MAX) and only of the kinds an fsync
// covers (regular files, directories; hard links are entries of fsynced directories), each is
// fsynced and then the diff dir itself; otherwise one syncfs of the filesystem, as fsyncs one by
// one (a journal commit each) would cost more than it.
// Saves: syncfs writes out every dirty page of the filesystem, other processes' too, and waits
// for it. On the shared bench machine 0.4-1 GB were dirty at times (bench:pull itself writes its
// 320 MiB image twice just before the first pull). With 1 GB of another process's dirty data
// left just before, a pull of 5 x 64 MiB layers took 5.20 and 4.63 s with syncfs, 4.41 and
// 4.38 s with this (load 11-14; skopeo copy 3.03 and 2.02 s); its fsyncs took 51 ms in all.
// Contract: when `run` returns, every file's data and inode (mode, owner, times, xattrs), every
// directory's entries and the diff dir's entries are on disk, as after syncfs.
import * as fs from "node:fs";
import { syncfs } from "../native.js";

const FSYNC_MAX = 16;
const { O_RDONLY, O_NOFOLLOW } = fs.constants;

export class LayerFlush {
  private paths: fs.PathLike[] = [];
  private whole = false;

  /** A regular file or directory the extraction created (or changed). */
  add(path: fs.PathLike): void {
    if (this.whole) return;
    if (this.paths.length >= FSYNC_MAX) this.wholeFilesystem();
    else this.paths.push(path);
  }

  /** The extraction created something fsync does not cover (symlink, device, fifo): syncfs then. */
  wholeFilesystem(): void {
    this.whole = true;
    this.paths = [];
  }

  /** Makes the layer durable (blocks the thread: meant for worker threads). */
  run(diffDir: string): void {
    if (this.whole) {
      syncfs(diffDir);
      return;
    }
    for (const p of this.paths) fsyncPath(p);
    fsyncPath(diffDir);
  }
}

function fsyncPath(p: fs.PathLike): void {
  const fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
