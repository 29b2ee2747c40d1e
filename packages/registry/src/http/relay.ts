/**
 * Native relay of object-store bodies: the bytes of an S3 GetObject response go from the S3
 * connection's socket to the client's socket in native code (addon native/relay.cc, splice(2)
 * through a pipe), never through JavaScript streams. Used for whole-blob GETs of a version
 * verified before (services/verified.ts), whose bytes go out unchanged.
 *
 * What it saves: per 64 KiB of body, Node's socket read buffer, the HTTP parser's copy of the
 * body chunk, the stream plumbing (read-ahead buffer, size bound, response) and the socket write
 * from JavaScript, with the garbage they make. Measured on a shared 2-core machine (load average
 * 8-15; registry in S3 mode, Swift s3api on loopback, 256 MiB blob, CPU of the `strata serve`
 * process per verified GET read from /proc): 1.3-2.6 s through JavaScript streams -> 0.10-0.15 s
 * relayed. Wall time of a GET right after a push, alternating in one run: 6.0-6.7 s streamed ->
 * 3.4-4.4 s relayed (raw GetObject 1.9-3.1 s); GETs not right after a push reach 0.9-1.5x raw
 * GetObject (`STRATA_BENCH_S3_ONLY=get npm run bench:s3` gives the same-run ratio).
 *
 * Used only where it is exact: Linux, the S3 response over plain HTTP/1.1 with a Content-Length
 * equal to the blob's size (no TLS, no transfer coding), and a client response that owns a plain
 * HTTP/1.x socket once piping starts (as for http/sendfile.ts); anywhere else the fallback
 * stream is sent. The S3 connection is taken from the SDK's HTTP client: Node stops reading it,
 * the body bytes Node had read already go out first, then exactly the rest of the announced
 * length is relayed (never a byte past it), and the connection is closed at the end (it is
 * never returned to the connection pool). A source that ends short fails the response, so the
 * client never sees a whole body that is not the blob's size.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { VerifiedResponse } from "../services/blobs.js";
import { flushed, loadLinuxAddon, type NativeDone, type NativeTransfer, WatchedTransfers } from "./native-run.js";
import { type SendMode, sendfileSocket } from "./sendfile.js";


interface RelayAddon {
  supported: boolean;
  Relay?: new (srcFd: number, dstFd: number, length: number, done: NativeDone, copyBytes?: number) => NativeTransfer;
}

const addon = loadLinuxAddon<RelayAddon>("strata_relay");

/** A relay that makes no progress for this long is abandoned and both connections closed. */
const IDLE_MS = 60_000;
/** Buffer of the native copy (`http.send: copy`). */
const COPY_BYTES = 256 * 1024;

/** Responses whose body went out through the native relay, and their bytes (process totals). */
export const relayStats = { responses: 0, bytes: 0 };

class RelayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RelayError";
  }
}

type TakenSocket = Socket & { _handle?: { fd?: number; reading?: boolean; readStop?(): number } | null; encrypted?: boolean };

/**
 * Takes the S3 connection of `msg` from Node when its body is exactly `size` plain bytes still
 * on the wire: stops Node's reads and returns the descriptor and the body bytes Node had read.
 * Undefined (nothing changed) when the response does not qualify.
 */
function takeConnection(msg: Readable, size: number): { fd: number; socket: TakenSocket; head: Buffer[] } | undefined {
  const m = msg as Partial<IncomingMessage> & Readable;
  const socket = m.socket as TakenSocket | undefined;
  const handle = socket?._handle;
  if (!socket || !handle || socket.encrypted || typeof handle.fd !== "number" || handle.fd < 0 || typeof handle.readStop !== "function") return undefined;
  if (m.httpVersionMajor !== 1 || m.complete || m.readableFlowing === true || msg.readableEnded || msg.destroyed) return undefined;
  if (m.headers?.["transfer-encoding"] !== undefined || m.headers?.["content-length"] !== String(size)) return undefined;
  // From here on Node never reads this connection again: no read is started by the streams,
  // the bytes the socket holds unparsed go through the parser into `msg`, and reading stops.
  const noRead = () => {};
  (socket as unknown as { _read: () => void })._read = noRead;
  (msg as unknown as { _read: () => void })._read = noRead;
  while (socket.readableLength > 0 && socket.read() !== null);
  handle.readStop();
  handle.reading = false;
  msg.on("error", () => {});
  const head: Buffer[] = [];
  for (let c: Buffer | null = msg.read(); c !== null; c = msg.read()) head.push(c);
  return { fd: handle.fd, socket, head };
}

/**
 * A body for `res` that relays `source` natively (splice, or a native copy with `copy`) when
 * both connections qualify once piping starts (see the header), and sends `source.fallback()`
 * otherwise. Destroying it releases the S3 response.
 */
export function relayBody(res: ServerResponse, source: VerifiedResponse, mode: SendMode = "auto"): Readable {
  let fallback: Readable | undefined;
  let started = false;

  const transfers = new WatchedTransfers(IDLE_MS, (m) => new RelayError(`relay: ${m}`));
  const run = (srcFd: number, dstFd: number, length: number, copyBytes: number): Promise<void> =>
    transfers.run((done) => new addon!.Relay!(srcFd, dstFd, length, done, copyBytes), length);

  /** Relays the body when both ends qualify; false (nothing sent, nothing taken) otherwise. */
  const native = async (body: Readable): Promise<boolean> => {
    if (mode === "stream" || !addon?.Relay) return false;
    const dstFd = sendfileSocket(res, res.req.httpVersionMajor);
    const socket = res.socket;
    if (dstFd === undefined || !socket || (socket as { _httpMessage?: unknown })._httpMessage !== res) return false;
    const taken = takeConnection(source.response, source.size);
    if (!taken) return false;
    try {
      const headBytes = taken.head.reduce((n, c) => n + c.length, 0);
      if (headBytes > source.size) throw new RelayError(`store sent ${headBytes} bytes, more than ${source.size}`);
      res.flushHeaders();
      for (const c of taken.head) res.write(c);
      await flushed(socket, IDLE_MS, (m) => new RelayError(m));
      relayStats.responses++;
      if (body.destroyed) return true;
      await run(taken.fd, dstFd, source.size - headBytes, mode === "copy" ? COPY_BYTES : 0);
      relayStats.bytes += source.size;
      return true;
    } finally {
      source.response.destroy();
      taken.socket.destroy();
    }
  };

  const pump = (stream: Readable) => {
    fallback = source.fallback();
    fallback.on("data", (c: Buffer) => {
      if (!stream.push(c)) fallback!.pause();
    });
    fallback.once("end", () => stream.push(null));
    fallback.once("error", (e) => stream.destroy(e));
  };

  return new Readable({
    highWaterMark: 1024 * 1024,
    read() {
      if (started) return void fallback?.resume();
      started = true;
      native(this).then(
        (done) => {
          if (this.destroyed) return;
          if (done) this.push(null);
          else pump(this);
        },
        (e: unknown) => this.destroy(e as Error),
      );
    },
    destroy(err, cb) {
      transfers.cancel();
      if (fallback) fallback.destroy();
      else source.response.destroy();
      cb(err);
    },
  });
}
