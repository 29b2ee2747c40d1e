/**
 * GET with a body read straight from the socket into a few reused 1 MiB buffers (net/tls
 * `onread`), for layer blobs. node:http allocates two fresh buffers per 64 KiB socket read (the
 * read and the parser's body copy); at blob sizes that fresh memory (page faults, GC of external
 * memory) cost four times the CPU of the read itself (measured: 64 MiB over loopback, 250 ms with
 * node:http, 60 ms here). Everything else (manifests, configs, tokens) uses node:http.
 *
 * Contract of `body`: each chunk is valid only until the iterator's next `next()` call, which
 * hands its buffer back for the following reads. At most `MAX_QUEUED` filled chunks wait for the
 * consumer; past that the socket stops reading (backpressure).
 *
 * HTTP/1.1 only, one request per connection (`Connection: close`): status line and headers are
 * parsed here (at most 64 KiB), 1xx responses skipped, the body framed by `Transfer-Encoding:
 * chunked`, `Content-Length`, or the end of the connection. A body cut short, an unparsable
 * response or a silent connection fails the iteration with a network error (ECONNRESET /
 * ETIMEDOUT) so the caller's retry and Range resume apply. Redirects are followed like httpSend
 * does (Authorization dropped when the origin changes).
 */
import net from "node:net";
import tls from "node:tls";
import { type HttpRequestOptions, ResponseHeaders } from "./http.js";

const BUF_SIZE = 1024 * 1024;
/** A read needs at least this much room; a fuller buffer is handed on. */
const MIN_READ = 64 * 1024;
const MAX_QUEUED = 3;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 1024 * 1024;

/** Buffers no connection uses, kept for the next one (their pages are already faulted in). */
const spare: Buffer[] = [];
const MAX_SPARE = 8;

function netError(message: string, code = "ECONNRESET"): Error {
  return Object.assign(new Error(message), { code });
}

type Framing = { kind: "length"; left: number } | { kind: "chunked" } | { kind: "close" } | { kind: "none" };

export class RawResponse {
  readonly ok: boolean;
  constructor(
    readonly status: number,
    readonly headers: ResponseHeaders,
    readonly url: string,
    private readonly conn: RawConnection,
  ) {
    this.ok = status >= 200 && status < 300;
  }

  /** The body; see the module comment for the lifetime of a chunk. */
  get body(): AsyncIterable<Buffer> & { cancel(): Promise<void> } {
    const conn = this.conn;
    return {
      [Symbol.asyncIterator]: () => conn.iterator(),
      cancel: async () => conn.destroy(),
    };
  }

  async text(): Promise<string> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of this.body) {
      n += c.length;
      if (n > MAX_ERROR_BODY) break;
      parts.push(Buffer.from(c));
    }
    return Buffer.concat(parts).toString("utf8");
  }
}

/** One connection carrying one GET: parses the response head, then frames the body into pooled buffers. */
class RawConnection {
  private socket: net.Socket | undefined;
  /** Chunks handed on and not yet released, per buffer; and the buffers behind them. */
  private readonly refs = new Map<ArrayBufferLike, number>();
  private readonly owners = new Map<ArrayBufferLike, Buffer>();
  private cur: Buffer;
  /** Start of the bytes of `cur` not yet handed on, and end of the bytes written into it. */
  private start = 0;
  private fill = 0;
  private readonly queue: Buffer[] = [];
  private held: Buffer | undefined;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private paused = false;

  // head parsing
  private head: Buffer[] = [];
  private headBytes = 0;
  private onHead: ((r: { status: number; headers: ResponseHeaders }) => void) | undefined;
  private onHeadError: ((e: Error) => void) | undefined;
  private framing: Framing = { kind: "none" };
  // chunked decoding: "size" (reading a size line), "data", "crlf" (after data), "trailer"
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";
  private chunkLeft = 0;
  private line = "";

  constructor() {
    this.cur = this.takeBuffer();
  }

  private takeBuffer(): Buffer {
    const b = spare.pop() ?? Buffer.allocUnsafeSlow(BUF_SIZE);
    this.owners.set(b.buffer, b);
    return b;
  }

  /** Gives a buffer back once it is neither being filled nor referenced by a chunk. */
  private settle(ab: ArrayBufferLike): void {
    if ((this.refs.get(ab) ?? 0) > 0 || this.cur.buffer === ab) return;
    const b = this.owners.get(ab);
    this.owners.delete(ab);
    if (b && spare.length < MAX_SPARE) spare.push(b);
  }

  private release(chunk: Buffer): void {
    const ab = chunk.buffer;
    this.refs.set(ab, (this.refs.get(ab) ?? 1) - 1);
    this.settle(ab);
  }

  /** Connects, sends the request and resolves with the status and headers. */
  open(u: URL, o: HttpRequestOptions): Promise<{ status: number; headers: ResponseHeaders }> {
    const isHttps = u.protocol === "https:";
    const port = Number(u.port || (isHttps ? 443 : 80));
    const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const onread = { buffer: () => this.nextReadBuffer(), callback: (n: number, b: Buffer) => this.onRead(n, b) };
    const socket = isHttps
      ? // `onread` is supported by tls.connect (Node >= 15.1) but missing from @types/node's ConnectionOptions
        tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ["http/1.1"], onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.socket = socket;
    const headerLines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, "Connection: close"];
    for (const [k, v] of Object.entries(o.headers ?? {})) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new Error("invalid header");
      headerLines.push(`${k}: ${v}`);
    }
    socket.write(`${headerLines.join("\r\n")}\r\n\r\n`);
    socket.on("end", () => this.onEnd());
    socket.on("error", (e) => this.fail(e));
    socket.on("close", () => this.fail(netError("connection closed")));
    if (o.idleTimeoutMs) {
      socket.setTimeout(o.idleTimeoutMs, () => socket.destroy(netError(`no data from ${u.origin} for ${o.idleTimeoutMs} ms`, "ETIMEDOUT")));
    }
    if (o.signal) {
      const signal = o.signal;
      const onAbort = () => {
        const r = signal.reason;
        const e = r instanceof Error ? r : Object.assign(new Error("The operation was aborted"), { name: "AbortError" });
        socket.destroy(e);
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        socket.once("close", () => signal.removeEventListener("abort", onAbort));
      }
    }
    return new Promise((resolve, reject) => {
      this.onHead = resolve;
      this.onHeadError = reject;
    });
  }

  destroy(): void {
    this.socket?.destroy();
    this.ended = true;
    this.queue.length = 0;
    this.wakeUp();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private fail(e: Error): void {
    if (this.ended || this.failure) return;
    this.failure = e;
    if (this.onHeadError) {
      const r = this.onHeadError;
      this.onHead = this.onHeadError = undefined;
      r(e);
    }
    this.wakeUp();
  }

  /** Where the next socket read goes: the free tail of `cur`, or a fresh pooled buffer. */
  private nextReadBuffer(): Buffer {
    if (BUF_SIZE - this.fill < MIN_READ && !this.ended) {
      this.handOn();
      const old = this.cur;
      this.cur = this.takeBuffer();
      this.start = this.fill = 0;
      this.settle(old.buffer);
    }
    return this.cur.subarray(this.fill);
  }

  /** Queues the body bytes collected in `cur` since the last hand-on. */
  private handOn(): void {
    if (this.fill > this.start) {
      this.queue.push(this.cur.subarray(this.start, this.fill));
      this.refs.set(this.cur.buffer, (this.refs.get(this.cur.buffer) ?? 0) + 1);
      this.wakeUp();
    }
    this.start = this.fill;
  }

  private onRead(n: number, b: Buffer): boolean {
    if (this.ended || this.failure) return false;
    try {
      if (this.onHead) this.parseHead(b.subarray(0, n));
      else this.body(n);
    } catch (e) {
      this.socket?.destroy();
      this.fail(e as Error);
      return false;
    }
    if (this.framing.kind === "length" && this.framing.left === 0) this.finish();
    // a consumer waiting for data gets what has arrived rather than waiting for the buffer to fill
    else if (this.wake) this.handOn();
    if (this.queue.length + (this.held ? 1 : 0) >= MAX_QUEUED) {
      this.paused = true;
      return false;
    }
    return true;
  }

  /** `n` new bytes at cur[fill..]: frame them in place. */
  private body(n: number): void {
    const f = this.framing;
    if (f.kind === "length") {
      if (n > f.left) throw netError("response carries more bytes than its Content-Length");
      f.left -= n;
      this.fill += n;
    } else if (f.kind === "close") {
      this.fill += n;
    } else if (f.kind === "chunked") {
      this.dechunk(this.fill, n);
    } else {
      throw netError("response has bytes after its end");
    }
  }

  /** Decodes chunked framing of cur[at..at+n], moving the payload down to cur[fill..]. */
  private dechunk(at: number, n: number): void {
    const buf = this.cur;
    let i = at;
    const end = at + n;
    while (i < end) {
      if (this.chunkState === "data") {
        const take = Math.min(this.chunkLeft, end - i);
        if (i !== this.fill) buf.copyWithin(this.fill, i, i + take);
        this.fill += take;
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = "crlf";
        continue;
      }
      // line-oriented states: collect one line
      const nl = buf.indexOf(10, i);
      const stop = nl < 0 || nl >= end ? end : nl;
      this.line += buf.toString("latin1", i, stop);
      if (this.line.length > 4096) throw netError("bad chunked encoding");
      i = stop;
      if (nl < 0 || nl >= end) break;
      i++; // the \n
      const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
      this.line = "";
      if (this.chunkState === "crlf") {
        if (line !== "") throw netError("bad chunked encoding");
        this.chunkState = "size";
      } else if (this.chunkState === "size") {
        const m = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line.trim());
        if (!m) throw netError("bad chunked encoding");
        this.chunkLeft = Number.parseInt(m[1], 16);
        this.chunkState = this.chunkLeft === 0 ? "trailer" : "data";
      } else if (line === "") {
        // end of the trailer: the body is complete
        if (i !== end) throw netError("response has bytes after its end");
        this.finish();
        return;
      }
    }
  }

  private parseHead(data: Buffer): void {
    this.head.push(Buffer.from(data));
    this.headBytes += data.length;
    const all = this.head.length === 1 ? this.head[0] : Buffer.concat(this.head);
    const endAt = all.indexOf("\r\n\r\n");
    if ((endAt < 0 ? this.headBytes : endAt) > MAX_HEADER_BYTES) throw netError("response headers too large");
    if (endAt < 0) {
      this.head = [all];
      return;
    }
    const lines = all.toString("latin1", 0, endAt).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!m) throw netError("malformed HTTP response");
    const status = Number(m[1]);
    const headers = new ResponseHeaders();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c <= 0) throw netError("malformed HTTP response header");
      headers.append(l.slice(0, c).trim(), l.slice(c + 1).trim());
    }
    const rest = all.subarray(endAt + 4);
    if (status >= 100 && status < 200) {
      // an interim response: the real one follows
      this.head = [];
      this.headBytes = 0;
      if (rest.length > 0) this.parseHead(rest);
      return;
    }
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (status === 204 || status === 304) this.framing = { kind: "none" };
    else if (te && /(^|,)\s*chunked\s*$/i.test(te)) this.framing = { kind: "chunked" };
    else if (te) throw netError(`unsupported Transfer-Encoding ${te}`);
    else if (cl !== null) {
      if (!/^\d+$/.test(cl)) throw netError("malformed Content-Length");
      this.framing = { kind: "length", left: Number(cl) };
    } else this.framing = { kind: "close" };
    this.head = [];
    // body bytes that came with the head: move them into the pooled buffer (before clearing
    // onHead, so that a framing error in them rejects open() rather than leaving it pending)
    if (rest.length > 0) {
      const at = this.fill;
      rest.copy(this.cur, at);
      this.body(rest.length);
    }
    if (this.framing.kind === "none") this.finish();
    const resolve = this.onHead;
    this.onHead = this.onHeadError = undefined;
    resolve?.({ status, headers });
  }

  private finish(): void {
    if (this.ended) return;
    this.handOn();
    this.ended = true;
    this.socket?.destroy();
    this.wakeUp();
  }

  private onEnd(): void {
    if (this.onHead) {
      this.fail(netError("connection closed before a response"));
      return;
    }
    if (this.framing.kind === "close") this.finish();
    else if (!this.ended) this.fail(netError("response body cut short"));
  }

  async *iterator(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        if (this.held) {
          this.release(this.held);
          this.held = undefined;
        }
        if (this.paused && this.queue.length < MAX_QUEUED && !this.ended) {
          this.paused = false;
          this.socket?.resume();
        }
        const c = this.queue.shift();
        if (c) {
          this.held = c;
          yield c;
          continue;
        }
        // nothing queued: hand on what the current buffer holds rather than wait for it to fill
        // (also before reporting a failure: those bytes arrived intact, a resume starts after them)
        if (this.fill > this.start) {
          this.handOn();
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.ended) return;
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      if (this.held) this.release(this.held);
      this.held = undefined;
      // what the consumer never took is not referenced by anyone
      for (const c of this.queue.splice(0)) this.release(c);
      if (!this.ended) this.destroy();
      const last = this.cur;
      if ((this.refs.get(last.buffer) ?? 0) === 0 && spare.length < MAX_SPARE && !spare.includes(last)) spare.push(last);
    }
  }
}

/** Sends a GET and resolves with the final response (after redirects); see the module comment. */
export async function rawGet(url: string, o: HttpRequestOptions = {}, redirects = 0): Promise<RawResponse> {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`unsupported URL scheme in ${u.origin}`);
  const conn = new RawConnection();
  const { status, headers } = await conn.open(u, o);
  const location = headers.get("location");
  if ([301, 302, 303, 307, 308].includes(status) && location) {
    conn.destroy();
    if (redirects >= MAX_REDIRECTS) throw new Error(`too many redirects from ${u.origin}${u.pathname}`);
    const next = new URL(location, u);
    const h = { ...o.headers };
    if (next.origin !== u.origin) delete h.Authorization;
    return rawGet(next.href, { ...o, headers: h }, redirects + 1);
  }
  return new RawResponse(status, headers, u.href, conn);
}
