/**
 * Native blob bodies: the bytes of a verified blob file go from the page cache to the client's
 * socket in native code (addon native/sendfile.cc), never through JavaScript streams.
 *
 * Two ways, chosen by `http.send` (default `auto`):
 * - sendfile(2): zero-copy; what a remote client gets.
 * - copy: pread + write through one reused 32 KiB buffer; what `auto` gives loopback clients.
 *   On loopback the receiver copies the bytes once more itself, and it reads a buffer still in
 *   the CPU cache much faster than page-cache pages: with curl as the client, sendfile reached
 *   0.8x distribution (which writes 32 KiB chunks) where the copy reached 1.1-1.3x.
 *
 * What it saves: the read into a JS buffer, the stream plumbing, the per-chunk JS work and (with
 * sendfile) the copy into the socket. Measured with `STRATA_BENCH_ONLY=blobs npm run
 * bench:registry` (filesystem, loopback, Debian's distribution 2.8 alternating in the same run,
 * medians of 3, on a shared 2-core machine): GET of a 256 MiB blob went from 0.31x (node client)
 * / 0.23x (curl) to 1.0-1.2x / 1.1-1.4x, and 64 concurrent GETs of 8 MiB from 0.55-0.89x to
 * 1.3-2.0x (runs in loaded and quiet minutes); the server spends about 20 ms of CPU per 256 MiB
 * with sendfile, distribution about 100 ms.
 *
 * Used only where it is exact: Linux, HTTP/1.x over plain TCP (TLS and HTTP/2 frame the bytes
 * in user space) and a response that owns its socket; anywhere else the body streams from the
 * same open file instead. The body is a Readable that produces no data: when Koa starts piping
 * it, it flushes the response head, waits until Node has handed the head to the kernel, sends
 * the file range, and then ends, so Koa ends the response as for any stream. The last byte is
 * held back until the file's identity has been checked again, so a file changed during the
 * transfer is never served whole: the connection is cut one byte short instead.
 *
 * The transfer runs on the event loop but never waits there for the disk: each 4 MiB window is
 * checked with mincore(2) first, and a window not in the page cache is read into it on libuv's
 * thread pool (the next window is read ahead while one is sent), so an uncached blob does not
 * stall every other request. `sendfileStats.prefetched` counts the bytes read that way. A
 * client that stops reading for IDLE_MS is disconnected.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { VerifiedFileRange } from "../services/blobs.js";
import { flushed, loadLinuxAddon, type NativeDone, type NativeTransfer, WatchedTransfers } from "./native-run.js";

interface Transfer extends NativeTransfer {
  /** Bytes read into the page cache on the thread pool before being sent. */
  readonly prefetched: number;
}

interface SendfileAddon {
  supported: boolean;
  Transfer?: new (socketFd: number, fileFd: number, offset: number, length: number, done: NativeDone, copyBytes?: number) => Transfer;
}

const addon = loadLinuxAddon<SendfileAddon>("strata_sendfile");

/** A transfer that makes no progress for this long is abandoned and its connection closed. */
const IDLE_MS = 60_000;
const READ_CHUNK = 1024 * 1024;

/**
 * Responses whose body went out natively (sendfile or native copy), their bytes, how many by
 * copy, and bytes that were not in the page cache and were read on the thread pool first
 * (process totals).
 */
export const sendfileStats = { responses: 0, bytes: 0, copied: 0, prefetched: 0 };

export type SendMode = "auto" | "sendfile" | "copy" | "stream";

/** Buffer of the native copy (the size Go's io.Copy uses, which measured best on loopback). */
const COPY_BYTES = 32 * 1024;

const isLoopback = (addr: string | undefined) => addr !== undefined && (/^(::ffff:)?127\./.test(addr) || addr === "::1");

/** The socket's file descriptor when a response on it may be sent natively, else undefined. */
export function sendfileSocket(res: ServerResponse, httpVersionMajor: number): number | undefined {
  if (!addon?.supported || httpVersionMajor !== 1) return undefined;
  const socket = res.socket as (Socket & { encrypted?: boolean; _handle?: { fd?: number } }) | null;
  if (!socket || socket.encrypted) return undefined;
  const fd = socket._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

class SendfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SendfileError";
  }
}

/**
 * A body for `res` that sends `file` natively (sendfile or native copy, by `mode`) when the
 * response still owns a plain socket once piping starts, and reads the file through a buffer
 * otherwise. Closes the file handle
 * when it ends or is destroyed.
 */
export function fileBody(res: ServerResponse, file: VerifiedFileRange, mode: SendMode = "auto"): Readable {
  let started = false;
  let position = file.start;
  const end = file.start + file.length;

  const transfers = new WatchedTransfers(IDLE_MS, (m) => new SendfileError(`sendfile: ${m}`));
  let copyBytes = 0;
  const send = (socketFd: number, offset: number, length: number): Promise<void> =>
    transfers.run(
      (done) => new addon!.Transfer!(socketFd, file.handle.fd, offset, length, done, copyBytes),
      length,
      (t) => (sendfileStats.prefetched += t.prefetched),
    );

  const zeroCopy = async (body: Readable): Promise<boolean> => {
    const fd = mode === "stream" ? undefined : sendfileSocket(res, res.req.httpVersionMajor);
    const socket = res.socket;
    if (fd === undefined || !socket || (socket as { _httpMessage?: unknown })._httpMessage !== res) return false;
    copyBytes = mode === "copy" || (mode === "auto" && isLoopback(socket.remoteAddress)) ? COPY_BYTES : 0;
    res.flushHeaders();
    await flushed(socket, IDLE_MS, (m) => new SendfileError(m));
    sendfileStats.responses++;
    if (copyBytes) sendfileStats.copied++;
    if (file.length > 1) await send(fd, file.start, file.length - 1);
    if (body.destroyed) return true;
    if ((await file.reidentify()) !== file.identity) throw new SendfileError("blob file changed while being sent");
    if (body.destroyed) return true;
    await send(fd, end - 1, 1);
    sendfileStats.bytes += file.length;
    return true;
  };

  /** Fallback: the next chunk of the file through a buffer (the response has no plain socket). */
  const readChunk = (stream: Readable) => {
    const n = Math.min(READ_CHUNK, end - position);
    file.handle
      .read(Buffer.allocUnsafe(n), 0, n, position)
      .then(async ({ bytesRead, buffer }) => {
        if (stream.destroyed) return;
        if (bytesRead === 0) throw new SendfileError("blob file is shorter than expected");
        position += bytesRead;
        if (position < end) return void stream.push(buffer.subarray(0, bytesRead));
        // The last chunk goes out only if the file is still the version that was verified.
        if ((await file.reidentify()) !== file.identity) throw new SendfileError("blob file changed while being sent");
        if (stream.destroyed) return;
        stream.push(buffer.subarray(0, bytesRead));
        stream.push(null);
      })
      .catch((e: unknown) => stream.destroy(e as Error));
  };

  const body = new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      if (started) return readChunk(this);
      started = true;
      if (file.length === 0) return void this.push(null);
      zeroCopy(this).then(
        (done) => {
          if (this.destroyed) return;
          if (done) this.push(null);
          else readChunk(this);
        },
        (e: unknown) => this.destroy(e as Error),
      );
    },
    destroy(err, cb) {
      transfers.cancel();
      file.handle.close().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
  return body;
}
