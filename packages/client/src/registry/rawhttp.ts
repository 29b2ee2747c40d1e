/**
 * The client's one HTTP transport: GET over net/tls, the body read straight from the socket into
 * a few reused 1 MiB buffers (net/tls `onread`). node:http allocates two fresh buffers per 64 KiB
 * socket read (the read and the parser's body copy); at blob sizes that fresh memory (page
 * faults, GC of external memory) cost four times the CPU of the read itself (measured: 64 MiB
 * over loopback, 250 ms with node:http, 60 ms here). Manifests, configs and tokens go through
 * the same code with `bytes(max)`.
 *
 * Contract of `body`: each chunk is valid only until the iterator's next `next()` call, which
 * hands its buffer back for the following reads. At most `MAX_QUEUED` filled chunks wait for the
 * consumer; past that the socket stops reading (backpressure).
 *
 * Requests (`rawRequest`) carry any method and an optional body (bytes, or a stream with a known
 * length or chunked); the upload has the same deadlines and its own minimum-throughput rule, and
 * the head deadline starts once the body is sent.
 *
 * HTTP/1.1 only, one request per connection (`Connection: close`). Everything the peer sends is
 * bounded: all heads of one exchange together (interim 1xx ones included) at most
 * `MAX_HEAD_BYTES` and `MAX_HEADER_FIELDS` fields each, at most `MAX_INTERIM` interim responses;
 * bodies are framed by `Transfer-Encoding: chunked`, `Content-Length`, or the end of the
 * connection and read by the caller with its own bound (`bytes`, `text`). Time: an idle timeout,
 * a deadline for the final head, an optional deadline for the whole exchange and a
 * minimum-throughput rule for the body (see HttpRequestOptions). A body cut short, an unparsable
 * response or a deadline fails with a network error (ECONNRESET / ETIMEDOUT) so the caller's
 * retry and Range resume apply. Redirects are followed here, Authorization dropped when the
 * origin changes.
 */
import { createRequire } from "node:module";
import net from "node:net";
import type tls from "node:tls";
import { giveBuffer, lendable, POOL_BUFFER, poolBufferOf, takeBuffer } from "./lease.js";

/**
 * Response headers by lower-case name (repeated headers joined with ", "). The global `Headers`
 * would do, but creating the first one loads undici (~40 ms), in every thread.
 */
export class ResponseHeaders {
  private readonly map = new Map<string, string>();

  append(name: string, value: string): void {
    const k = name.toLowerCase();
    const old = this.map.get(k);
    this.map.set(k, old === undefined ? value : `${old}, ${value}`);
  }

  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
}

/** The minimum-throughput rule for a body: fewer than `bytesPerSec` on average over `windowMs` fails. */
export interface MinRate {
  bytesPerSec: number;
  windowMs: number;
}

export interface HttpRequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Socket idle timeout (ms): no byte sent or received for this long fails with ETIMEDOUT. */
  idleTimeoutMs?: number;
  /** The final response head must arrive within this long (ms) of the request; interim 1xx responses do not extend it. */
  headerTimeoutMs?: number;
  /** The whole exchange, redirects and body included, must end within this long (ms). */
  totalTimeoutMs?: number;
  /** The minimum-throughput rule for the body (ETIMEDOUT below it): the response body, and the request body while it is sent. */
  minRate?: MinRate;
}

/**
 * A request body: bytes in memory, or an async iterable of chunks sent as they come (with
 * `length`: framed by Content-Length and checked against it; without: `Transfer-Encoding:
 * chunked`). Chunks of an iterable are written before the next is asked for, so an iterable may
 * reuse its buffers. An iterable can be sent once: a redirect of such a request is not followed.
 */
export type RequestBody = Buffer | { readonly stream: AsyncIterable<Uint8Array>; readonly length?: number };

export interface HttpSendOptions extends HttpRequestOptions {
  /** GET when absent. */
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  body?: RequestBody;
}

const BUF_SIZE = POOL_BUFFER;
/** A read needs at least this much room; a fuller buffer is handed on. */
const MIN_READ = 64 * 1024;
const MAX_QUEUED = 3;
/** Bytes of all response heads of one exchange together, interim (1xx) heads included. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Header fields in one response head. */
export const MAX_HEADER_FIELDS = 256;
/** Interim (1xx) responses before the final one. */
export const MAX_INTERIM = 16;
const MAX_REDIRECTS = 10;
/** What `text()` reads of an (error) body; the rest is discarded with the connection. */
export const MAX_ERROR_BODY = 64 * 1024;
/** Time `text()` allows for reading that much. */
const ERROR_BODY_MS = 30_000;
const EMPTY = Buffer.alloc(0);
/**
 * Where every connection reads while its response head is incomplete: the head is copied out of
 * it (parseHead) before the next read, so one buffer serves all connections of the thread. A
 * connection takes a pool buffer only when its response has a body: a HEAD, an upload's POST,
 * PATCH or PUT, whose answers are heads, never holds 1 MiB of the pool. With the buffers of a
 * body cancelled unread given back (`destroy`), `strata copy` registry -> registry of the
 * bench:push image (5 x 64 MiB) holds 25 pool buffers at its peak instead of 43 (the 25 of the
 * source bodies), peak RSS 100 -> 83 MB.
 */
const HEAD_READ = Buffer.allocUnsafe(MIN_READ);

let tlsLoaded: typeof tls | undefined;
/**
 * node:tls, loaded at the first HTTPS connection: a run that speaks plain HTTP only (loopback and
 * insecure registries) does not load it. Saves ~16 M instructions of start-up (callgrind,
 * `import "node:net"` with and without node:tls: 524 -> 540 M), 5-9 ms on 2 loaded cores.
 */
function tlsModule(): typeof tls {
  tlsLoaded ??= createRequire(import.meta.url)("node:tls") as typeof tls;
  return tlsLoaded;
}

/** A failure of the exchange, as a network error (retryable); `transport` marks it as described here. */
function netError(message: string, code = "ECONNRESET"): Error {
  return Object.assign(new Error(message), { code, transport: true });
}

/** A body longer than the caller's bound. */
export class BodyTooLarge extends Error {
  constructor(
    readonly max: number,
    readonly declared?: number,
  ) {
    super(declared === undefined ? `over ${max} bytes` : `${declared} bytes, over the limit of ${max}`);
    this.name = "BodyTooLarge";
  }
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

  /** The body as text, at most `MAX_ERROR_BODY` bytes of it (the rest is discarded) within ERROR_BODY_MS. */
  async text(): Promise<string> {
    return (await this.bytes(MAX_ERROR_BODY, ERROR_BODY_MS, false)).toString("utf8");
  }

  /**
   * The body, copied out of the reused buffers: at most `max` bytes. Past `max`, `strict` fails
   * with a `BodyTooLarge` error; otherwise the first `max` bytes are returned and the connection closed.
   */
  async bytes(max: number, withinMs?: number, strict = true): Promise<Buffer> {
    if (withinMs !== undefined) this.conn.limitTime(withinMs);
    const len = this.headers.get("content-length");
    if (strict && len !== null && !this.conn.bodyless && Number(len) > max) {
      this.conn.destroy();
      throw new BodyTooLarge(max, Number(len));
    }
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of this.body) {
      const take = Math.min(c.length, max - n);
      if (take < c.length && strict) throw new BodyTooLarge(max);
      parts.push(Buffer.from(c.subarray(0, take)));
      n += take;
      if (!strict && n >= max) break;
    }
    return Buffer.concat(parts);
  }
}

/** One connection carrying one request: sends it (and its body), parses the response head, then frames the body into pooled buffers. */
class RawConnection {
  private socket: net.Socket | undefined;
  /** Chunks handed on and not yet released, per buffer; and the buffers behind them. */
  private readonly refs = new Map<Buffer, number>();
  private readonly owners = new Set<Buffer>();
  /** The pool buffer being filled (EMPTY until the response has a body). */
  private cur: Buffer = EMPTY;
  /** Start of the bytes of `cur` not yet handed on, and end of the bytes written into it. */
  private start = 0;
  private fill = 0;
  private readonly queue: Buffer[] = [];
  private held: Buffer | undefined;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private paused = false;
  /** The iterator has ended: `cur` is no longer filled. */
  private drained = false;
  /** The body's iterator has started (its end gives the buffers back). */
  private iterating = false;

  // head parsing: every head of the exchange (interim ones too) in one fixed buffer
  private headBuf: Buffer = EMPTY;
  private headLen = 0;
  /** Start of the head being parsed within headBuf (after the interim heads before it). */
  private headAt = 0;
  private interim = 0;
  // time
  private headTimer: NodeJS.Timeout | undefined;
  private totalTimer: NodeJS.Timeout | undefined;
  private rateTimer: NodeJS.Timeout | undefined;
  private minRate: MinRate | undefined;
  private bodyBytes = 0;
  private pausedInWindow = false;
  private origin = "";
  private onHead: ((r: { status: number; headers: ResponseHeaders }) => void) | undefined;
  private onHeadError: ((e: Error) => void) | undefined;
  private framing: Framing = { kind: "none" };
  // chunked decoding: "size" (reading a size line), "data", "crlf" (after data), "trailer"
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";
  private chunkLeft = 0;
  private line = "";

  private takeBuffer(): Buffer {
    // buffers from the pool shared with the file reader and the upload window (lease.ts)
    const b = takeBuffer();
    this.owners.add(b);
    lendable(b, this.lender);
    return b;
  }

  /** Gives a buffer back once it is neither being filled nor referenced by a chunk. */
  private settle(b: Buffer): void {
    if ((this.refs.get(b) ?? 0) > 0 || (this.cur === b && !this.drained)) return;
    if (this.owners.delete(b)) giveBuffer(b);
  }

  private release(chunk: Buffer): void {
    this.unref(poolBufferOf(chunk)!);
  }

  private unref(b: Buffer): void {
    this.refs.set(b, (this.refs.get(b) ?? 1) - 1);
    this.settle(b);
  }

  /** A consumer keeping a chunk past `next()` (lease.ts) holds a reference like a queued chunk. */
  private readonly lender = {
    retain: (b: Buffer) => this.refs.set(b, (this.refs.get(b) ?? 0) + 1),
    release: (b: Buffer) => this.unref(b),
  };

  /** Connects, sends the request and resolves with the status and headers. */
  open(u: URL, o: HttpSendOptions): Promise<{ status: number; headers: ResponseHeaders }> {
    const method = o.method ?? "GET";
    this.isHead = method === "HEAD";
    const isHttps = u.protocol === "https:";
    const port = Number(u.port || (isHttps ? 443 : 80));
    const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const onread = { buffer: () => this.nextReadBuffer(), callback: (n: number, b: Buffer) => this.onRead(n, b) };
    const socket = isHttps
      ? // `onread` is supported by tls.connect (Node >= 15.1) but missing from @types/node's ConnectionOptions
        tlsModule().connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ["http/1.1"], onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    this.socket = socket;
    const headerLines = [`${method} ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, "Connection: close"];
    for (const [k, v] of Object.entries(o.headers ?? {})) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw new Error("invalid header");
      if (/^(content-length|transfer-encoding)$/i.test(k)) continue; // framing is this module's
      headerLines.push(`${k}: ${v}`);
    }
    const body = o.body;
    if (Buffer.isBuffer(body)) headerLines.push(`Content-Length: ${body.length}`);
    else if (body) headerLines.push(body.length === undefined ? "Transfer-Encoding: chunked" : `Content-Length: ${body.length}`);
    else if (method === "POST" || method === "PUT" || method === "PATCH") headerLines.push("Content-Length: 0");
    const head = `${headerLines.join("\r\n")}\r\n\r\n`;
    if (Buffer.isBuffer(body)) {
      // one write: head and body leave together
      socket.write(body.length <= 64 * 1024 ? Buffer.concat([Buffer.from(head, "latin1"), body]) : head);
    } else {
      socket.write(head);
    }
    socket.on("end", () => this.onEnd());
    socket.on("error", (e) => this.fail(e));
    socket.on("close", () => this.fail(netError("connection closed")));
    this.origin = u.origin;
    this.minRate = o.minRate;
    if (o.idleTimeoutMs) {
      socket.setTimeout(o.idleTimeoutMs, () => socket.destroy(netError(`no data from ${u.origin} for ${o.idleTimeoutMs} ms`, "ETIMEDOUT")));
    }
    if (o.headerTimeoutMs) {
      const ms = o.headerTimeoutMs;
      // the peer answers once the request body is in: the head deadline starts after it
      this.startHeadTimer = () => {
        this.headTimer = setTimeout(() => socket.destroy(netError(`no response from ${u.origin} within ${ms} ms`, "ETIMEDOUT")), ms);
      };
    }
    if (body && !Buffer.isBuffer(body)) void this.sendStream(socket, body.stream, body.length);
    else if (body && body.length > 64 * 1024) this.sendBuffer(socket, body);
    else this.requestSent();
    if (o.totalTimeoutMs !== undefined) this.limitTime(o.totalTimeoutMs);
    socket.once("close", () => this.clearTimers());
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

  private isHead = false;
  private headDone = false;
  /** The response carries no body (HEAD, 204, 304), whatever its Content-Length says. */
  get bodyless(): boolean {
    return this.framing.kind === "none";
  }
  private startHeadTimer: (() => void) | undefined;
  /** Request body bytes the socket has taken (flushed to the kernel). */
  private sentBytes = 0;
  private sending = false;
  /** The body source (not the peer) held up the upload during the current window. */
  private sourceWaitInWindow = false;
  private uploadTimer: NodeJS.Timeout | undefined;

  /** The request is out: the head deadline runs from now. */
  private requestSent(): void {
    this.sending = false;
    clearInterval(this.uploadTimer);
    if (!this.headDone) this.startHeadTimer?.();
  }

  /** The minimum-throughput rule applied to the request body while it is sent. */
  private startUploadCheck(): void {
    const rule = this.minRate;
    this.sending = true;
    if (!rule || rule.bytesPerSec <= 0 || rule.windowMs <= 0) return;
    let last = 0;
    this.uploadTimer = setInterval(() => {
      if (!this.sending || this.ended || this.failure) return;
      const got = this.sentBytes - last;
      last = this.sentBytes;
      const held = this.sourceWaitInWindow;
      this.sourceWaitInWindow = false;
      if (held) return;
      if (got < (rule.bytesPerSec * rule.windowMs) / 1000) {
        this.socket?.destroy(netError(`${this.origin} took ${got} bytes in ${rule.windowMs} ms, below the minimum of ${rule.bytesPerSec} bytes/s`, "ETIMEDOUT"));
      }
    }, rule.windowMs);
  }

  /** Writes a large in-memory body in slices, so the upload rule sees its progress. */
  private sendBuffer(socket: net.Socket, body: Buffer): void {
    async function* slices(): AsyncGenerator<Buffer> {
      for (let i = 0; i < body.length; i += BUF_SIZE) yield body.subarray(i, Math.min(body.length, i + BUF_SIZE));
    }
    void this.sendStream(socket, slices(), body.length, true);
  }

  /**
   * Writes a streamed body: each chunk waits for the socket to take the previous ones
   * (backpressure; an iterable may reuse its buffer). A body that fails, or whose length differs
   * from the declared one, destroys the connection (the request fails; nothing is complete).
   */
  private async sendStream(socket: net.Socket, stream: AsyncIterable<Uint8Array>, length: number | undefined, framed = false): Promise<void> {
    this.startUploadCheck();
    const chunked = length === undefined && !framed;
    let n = 0;
    const write = (b: Uint8Array | string) =>
      new Promise<void>((resolve, reject) => {
        if (socket.destroyed) {
          reject(this.failure ?? netError("connection closed while sending the request"));
          return;
        }
        socket.write(b, (e) => (e ? reject(e) : resolve()));
      });
    try {
      const it = stream[Symbol.asyncIterator]();
      for (;;) {
        const waitStart = Date.now();
        const r = await it.next();
        if (Date.now() - waitStart > 50) this.sourceWaitInWindow = true;
        if (r.done) break;
        const c = r.value;
        if (c.length === 0) continue;
        if (this.ended || this.failure || socket.destroyed) {
          // the peer answered (or failed) before the body was complete: stop sending
          await it.return?.();
          return;
        }
        n += c.length;
        if (length !== undefined && n > length) throw new Error(`request body longer than its declared ${length} bytes`);
        if (chunked) await write(`${c.length.toString(16)}\r\n`);
        await write(c);
        this.sentBytes += c.length;
        if (chunked) await write("\r\n");
      }
      if (length !== undefined && n !== length) throw new Error(`request body of ${n} bytes, ${length} declared`);
      if (chunked) await write("0\r\n\r\n");
      this.requestSent();
    } catch (e) {
      this.sending = false;
      clearInterval(this.uploadTimer);
      if (this.ended || this.failure) return;
      const err = e instanceof Error ? e : new Error(String(e));
      // a failure of the body's source is the caller's error, not the network's
      socket.destroy();
      this.fail(err);
    }
  }

  /** The exchange must be over within `ms` from now (ETIMEDOUT otherwise). */
  limitTime(ms: number): void {
    clearTimeout(this.totalTimer);
    const fire = () => this.socket?.destroy(netError(`response from ${this.origin} not complete within the time allowed`, "ETIMEDOUT"));
    if (ms <= 0) fire();
    else this.totalTimer = setTimeout(fire, ms);
  }

  private clearTimers(): void {
    clearTimeout(this.headTimer);
    clearTimeout(this.totalTimer);
    clearInterval(this.rateTimer);
    clearInterval(this.uploadTimer);
  }

  /** Ends the exchange; the pool buffers go back now, or when the body's iterator (if started) ends. */
  destroy(): void {
    this.socket?.destroy();
    this.ended = true;
    for (const c of this.queue.splice(0)) this.release(c);
    this.wakeUp();
    if (!this.iterating) {
      this.drained = true;
      this.settle(this.cur);
    }
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
    if (this.onHead || this.cur === EMPTY) return HEAD_READ;
    if (BUF_SIZE - this.fill < MIN_READ && !this.ended) {
      this.handOn();
      const old = this.cur;
      this.cur = this.takeBuffer();
      this.start = this.fill = 0;
      this.settle(old);
    }
    return this.cur.subarray(this.fill);
  }

  /** Queues the body bytes collected in `cur` since the last hand-on. */
  private handOn(): void {
    if (this.fill > this.start) {
      this.queue.push(this.cur.subarray(this.start, this.fill));
      this.refs.set(this.cur, (this.refs.get(this.cur) ?? 0) + 1);
      this.wakeUp();
    }
    this.start = this.fill;
  }

  private onRead(n: number, b: Buffer): boolean {
    if (this.ended || this.failure) return false;
    try {
      if (this.onHead) this.parseHead(b.subarray(0, n));
      else {
        this.bodyBytes += n;
        this.body(n);
      }
    } catch (e) {
      this.socket?.destroy();
      this.fail(e as Error);
      return false;
    }
    if (this.framing.kind === "length" && this.framing.left === 0) this.finish();
    // a consumer waiting for data gets what has arrived rather than waiting for the buffer to fill
    else if (this.wake) this.handOn();
    if (this.queue.length + (this.held ? 1 : 0) >= MAX_QUEUED) {
      this.paused = this.pausedInWindow = true;
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

  /**
   * Collects head bytes into one fixed buffer (`MAX_HEAD_BYTES` for the whole exchange, interim
   * 1xx heads included: they neither reset the budget nor the head deadline) and parses every
   * complete head in it, in a loop.
   */
  private parseHead(data: Buffer): void {
    if (this.headBuf === EMPTY) this.headBuf = Buffer.allocUnsafe(MAX_HEAD_BYTES);
    const prev = this.headLen;
    const take = Math.min(data.length, MAX_HEAD_BYTES - this.headLen);
    data.copy(this.headBuf, this.headLen, 0, take);
    this.headLen += take;
    const overflow = data.subarray(take);
    let searchFrom = Math.max(this.headAt, prev - 3);
    for (;;) {
      const endAt = this.headBuf.indexOf("\r\n\r\n", searchFrom);
      if (endAt < 0 || endAt + 4 > this.headLen) {
        if (overflow.length > 0 || this.headLen === MAX_HEAD_BYTES) throw netError(`response headers exceed ${MAX_HEAD_BYTES} bytes`);
        return;
      }
      const lines = this.headBuf.toString("latin1", this.headAt, endAt).split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
      if (!m) throw netError("malformed HTTP response");
      if (lines.length - 1 > MAX_HEADER_FIELDS) throw netError(`response has more than ${MAX_HEADER_FIELDS} header fields`);
      const status = Number(m[1]);
      const headers = new ResponseHeaders();
      for (let k = 1; k < lines.length; k++) {
        const l = lines[k];
        const c = l.indexOf(":");
        if (c <= 0) throw netError("malformed HTTP response header");
        headers.append(l.slice(0, c).trim(), l.slice(c + 1).trim());
      }
      this.headAt = endAt + 4;
      searchFrom = this.headAt;
      if (status >= 100 && status < 200) {
        // an interim response: the real one follows (its bytes count against the same budget)
        if (++this.interim > MAX_INTERIM) throw netError(`more than ${MAX_INTERIM} interim (1xx) responses`);
        continue;
      }
      const rest = Buffer.concat([this.headBuf.subarray(this.headAt, this.headLen), overflow]);
      this.startBody(status, headers, rest);
      return;
    }
  }

  private startBody(status: number, headers: ResponseHeaders, rest: Buffer): void {
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (status === 204 || status === 304 || this.isHead) this.framing = { kind: "none" };
    else if (te && /(^|,)\s*chunked\s*$/i.test(te)) this.framing = { kind: "chunked" };
    else if (te) throw netError(`unsupported Transfer-Encoding ${te}`);
    else if (cl !== null) {
      if (!/^\d+$/.test(cl)) throw netError("malformed Content-Length");
      this.framing = { kind: "length", left: Number(cl) };
    } else this.framing = { kind: "close" };
    this.headBuf = EMPTY;
    this.headLen = 0;
    this.headDone = true;
    clearTimeout(this.headTimer);
    this.startThroughputCheck();
    if (this.framing.kind !== "none" && !(this.framing.kind === "length" && this.framing.left === 0)) this.cur = this.takeBuffer();
    // body bytes that came with the head: move them into the pooled buffer (before clearing
    // onHead, so that a framing error in them rejects open() rather than leaving it pending)
    if (rest.length > 0) {
      const at = this.fill;
      rest.copy(this.cur, at);
      this.bodyBytes += rest.length;
      this.body(rest.length);
    }
    if (this.framing.kind === "none") this.finish();
    const resolve = this.onHead;
    this.onHead = this.onHeadError = undefined;
    resolve?.({ status, headers });
  }

  /**
   * The minimum-throughput rule: every `windowMs`, a body that brought fewer than
   * `bytesPerSec * windowMs / 1000` bytes fails with ETIMEDOUT (a retry resumes it with Range).
   * A window in which the consumer held the socket paused (backpressure) does not count.
   */
  private startThroughputCheck(): void {
    const rule = this.minRate;
    if (!rule || rule.bytesPerSec <= 0 || rule.windowMs <= 0) return;
    let last = this.bodyBytes;
    this.rateTimer = setInterval(() => {
      if (this.ended || this.failure) return;
      const got = this.bodyBytes - last;
      last = this.bodyBytes;
      const held = this.pausedInWindow || this.paused;
      this.pausedInWindow = this.paused;
      if (held) return;
      if (got < (rule.bytesPerSec * rule.windowMs) / 1000) {
        this.socket?.destroy(
          netError(`${this.origin} sent ${got} bytes in ${rule.windowMs} ms, below the minimum of ${rule.bytesPerSec} bytes/s`, "ETIMEDOUT"),
        );
      }
    }, rule.windowMs);
  }

  private finish(): void {
    if (this.ended) return;
    this.handOn();
    this.ended = true;
    this.clearTimers();
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
    this.iterating = true;
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
      // the buffer being filled goes back too, now or when the last chunk retained from it does
      this.drained = true;
      this.settle(this.cur);
    }
  }
}

/**
 * Sends a GET and resolves with the final response (after redirects); see the module comment.
 * `totalTimeoutMs` covers every hop: each redirect gets what is left of it.
 */
export function rawGet(url: string, o: HttpRequestOptions = {}): Promise<RawResponse> {
  return rawRequest(url, o);
}

/**
 * Sends a request (GET unless `o.method`) with an optional body and resolves with the final
 * response. Redirects: GET and HEAD follow 301/302/303/307/308; other methods follow only
 * 307/308 and only with an in-memory body (or none), since a streamed body cannot be sent twice.
 */
export async function rawRequest(url: string, o: HttpSendOptions = {}): Promise<RawResponse> {
  const method = o.method ?? "GET";
  const followable = method === "GET" || method === "HEAD" ? [301, 302, 303, 307, 308] : o.body && !Buffer.isBuffer(o.body) ? [] : [307, 308];
  const deadline = o.totalTimeoutMs === undefined ? undefined : Date.now() + o.totalTimeoutMs;
  let u = new URL(url);
  let headers = { ...o.headers };
  for (let redirects = 0; ; redirects++) {
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`unsupported URL scheme in ${u.origin}`);
    const conn = new RawConnection();
    // the first hop gets the whole budget (so a head deadline of the same length fires first); later hops what is left
    const totalTimeoutMs = deadline === undefined ? undefined : redirects === 0 ? o.totalTimeoutMs : deadline - Date.now();
    const { status, headers: h } = await conn.open(u, { ...o, headers, totalTimeoutMs });
    const location = h.get("location");
    if (!followable.includes(status) || !location) return new RawResponse(status, h, u.href, conn);
    conn.destroy();
    if (redirects >= MAX_REDIRECTS) throw new Error(`too many redirects from ${u.origin}${u.pathname}`);
    const next = new URL(location, u);
    if (next.origin !== u.origin) {
      // credentials are for the origin that asked for them
      headers = { ...headers };
      delete headers.Authorization;
    }
    u = next;
  }
}
