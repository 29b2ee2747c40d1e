/**
 * The write side of the distribution API over the client's one HTTP stack (RegistryClient.request):
 * blob existence (HEAD), cross-repository mount, blob upload, manifest PUT.
 *
 * Upload contract (`uploadBlob`):
 * - The bytes are hashed and counted as they are read from the caller's stream; the session is
 *   closed with `PUT ?digest=` only when they match the expected digest and size (or with the
 *   digest computed, when none was expected). A mismatch deletes the session: nothing appears.
 * - A blob that fits one chunk (MONOLITHIC_MAX, known or not) goes as POST + one PUT carrying the
 *   bytes. Larger ones go as PATCH requests of CHUNK bytes each (Content-Range), the next chunk
 *   read from the source while the current one is sent. A PATCH that fails on the network or
 *   with a 5xx is resumed: the session's offset is asked (GET, `Range: 0-N`) and the rest of the
 *   chunk sent from there. Memory: at most two chunks per blob.
 * - The registry's `Docker-Content-Digest` of the closing PUT (and of a manifest PUT) must be the
 *   digest sent; a push is complete only when the registry acknowledged it (201).
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { type Digest, digestOf } from "@strata/core/digest";
import { RegistryError, type RegistryClient } from "./client.js";
import { isNetworkError, isRetryableStatus } from "./retry.js";

/** Blobs up to this size go in one PUT. */
export const MONOLITHIC_MAX = 16 * 1024 * 1024;
/** Bytes per PATCH of a chunked upload. */
export const CHUNK = 16 * 1024 * 1024;
/** Attempts per chunk (first send and resumes). */
const CHUNK_ATTEMPTS = 5;

export interface BlobExpectation {
  digest?: Digest;
  /** -1 or absent: unknown. */
  size?: number;
}

/** A chunked read of a stream: Buffers of exactly `size` bytes (the last may be shorter). */
async function* chunksOf(src: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const c of src) {
    let at = 0;
    while (at < c.length) {
      const n = Math.min(size - fill, c.length - at);
      c.copy(buf, fill, at, at + n);
      fill += n;
      at += n;
      if (fill === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}

/** Reads the next value while the caller works on the current one (one ahead). */
async function* readAhead<T>(it: AsyncGenerator<T>): AsyncGenerator<T> {
  let next = it.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done) return;
      next = it.next();
      yield r.value;
    }
  } finally {
    // a pending read must not be left failing unobserved
    next.catch(() => {});
    await it.return?.(undefined as T).catch(() => {});
  }
}

export class RegistryWriter {
  /** Upload sessions opened and not closed (for `abortAll`). */
  private readonly open = new Set<string>();

  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
  ) {}

  private get domain(): string {
    return this.client.opts.domain;
  }

  private async fail(res: Awaited<ReturnType<RegistryClient["request"]>>, what: string): Promise<RegistryError> {
    let code: string | undefined;
    let message = "";
    try {
      const body = JSON.parse(await res.text()) as { errors?: { code?: string; message?: string }[] };
      code = body.errors?.[0]?.code;
      message = body.errors?.[0]?.message ?? "";
    } catch {
      // not a JSON error body
    }
    const detail = code ? `${code}${message ? `: ${message}` : ""}` : `HTTP ${res.status}`;
    const hint = res.status === 401 || res.status === 403 ? " (no push access: log in with strata login?)" : "";
    return new RegistryError(`${this.domain}/${this.repository}: ${what}: ${detail}${hint}`, res.status, code);
  }

  /** Whether the registry has the blob in this repository (HEAD). */
  async hasBlob(digest: Digest, size: number): Promise<boolean> {
    const res = await this.client.request(`/v2/${this.repository}/blobs/${digest}`, { repository: this.repository, push: true, method: "HEAD", small: true });
    await res.body.cancel().catch(() => {});
    if (res.status === 404) return false;
    if (!res.ok) throw await this.fail(res, `checking blob ${digest}`);
    const len = res.headers.get("content-length");
    if (size >= 0 && len !== null && Number(len) !== size) {
      throw new RegistryError(`${this.domain}/${this.repository}: blob ${digest} is there with ${len} bytes, ${size} expected`);
    }
    return true;
  }

  /** The size of a blob the repository has (HEAD), or undefined when it has none. */
  async statBlob(digest: Digest): Promise<number | undefined> {
    const res = await this.client.request(`/v2/${this.repository}/blobs/${digest}`, { repository: this.repository, push: true, method: "HEAD", small: true });
    await res.body.cancel().catch(() => {});
    if (res.status === 404) return undefined;
    if (!res.ok) throw await this.fail(res, `checking blob ${digest}`);
    const len = res.headers.get("content-length");
    if (len === null || !/^\d+$/.test(len)) throw new RegistryError(`${this.domain}/${this.repository}: blob ${digest} has no size`);
    return Number(len);
  }

  /** Mounts a blob from another repository of the same registry; true when the registry did (201). */
  async mount(digest: Digest, from: string): Promise<boolean> {
    const path = `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const res = await this.client.request(path, { repository: this.repository, push: true, alsoPull: from, method: "POST", body: Buffer.alloc(0), small: true });
    await res.body.cancel().catch(() => {});
    if (res.status === 201) {
      const got = res.headers.get("docker-content-digest");
      if (got && got !== digest) throw new RegistryError(`${this.domain}/${this.repository}: mounting ${digest} answered ${got}`);
      return true;
    }
    if (res.status === 202) {
      // the registry opened an upload session instead: not needed
      const loc = res.headers.get("location");
      if (loc) await this.deleteSession(this.resolve(loc));
      return false;
    }
    return false;
  }

  private resolve(location: string): string {
    return new URL(location, this.client.baseUrl).href;
  }

  private async startSession(): Promise<string> {
    const res = await this.client.request(`/v2/${this.repository}/blobs/uploads/`, { repository: this.repository, push: true, method: "POST", body: Buffer.alloc(0), small: true });
    await res.body.cancel().catch(() => {});
    if (res.status !== 202) throw await this.fail(res, "starting an upload");
    const loc = res.headers.get("location");
    if (!loc) throw new RegistryError(`${this.domain}/${this.repository}: the registry opened an upload without a Location`);
    const url = this.resolve(loc);
    this.open.add(url);
    return url;
  }

  private async deleteSession(url: string): Promise<void> {
    this.open.delete(url);
    try {
      const res = await this.client.request(url, { repository: this.repository, push: true, method: "DELETE", small: true, noRetry: true });
      await res.body.cancel().catch(() => {});
    } catch {
      // best effort: the registry expires abandoned sessions
    }
  }

  /** Deletes every upload session still open. */
  async abortAll(): Promise<void> {
    await Promise.all([...this.open].map((u) => this.deleteSession(u)));
  }

  private static withDigest(url: string, digest: Digest): string {
    const u = new URL(url);
    u.searchParams.set("digest", digest);
    return u.href;
  }

  /** Checks a closing PUT's answer; returns the digest the registry stored. */
  private async closed(res: Awaited<ReturnType<RegistryClient["request"]>>, digest: Digest): Promise<void> {
    if (res.status !== 201) throw await this.fail(res, `completing the upload of ${digest}`);
    await res.body.cancel().catch(() => {});
    const got = res.headers.get("docker-content-digest");
    if (got !== null && got !== digest) throw new RegistryError(`${this.domain}/${this.repository}: the registry stored ${got} for blob ${digest}`);
  }

  /** Streams a blob in (see the module comment). Resolves with its digest and size. */
  async uploadBlob(data: Readable, expect: BlobExpectation): Promise<{ digest: Digest; size: number }> {
    const hash = createHash("sha256");
    let size = 0;
    const check = (last: boolean): void => {
      if (expect.size !== undefined && expect.size >= 0 && (size > expect.size || (last && size !== expect.size))) {
        throw new RegistryError(`blob ${expect.digest ?? ""}: ${size}${last ? "" : "+"} bytes read, ${expect.size} expected`.replace(":  ", ": "));
      }
    };
    const finalDigest = (): Digest => {
      const d = `sha256:${hash.digest("hex")}` as Digest;
      if (expect.digest && expect.digest.startsWith("sha256:") && d !== expect.digest) throw new RegistryError(`blob ${expect.digest}: the bytes read have digest ${d}`);
      return expect.digest && !expect.digest.startsWith("sha256:") ? expect.digest : d;
    };
    const chunks = readAhead(chunksOf(data as AsyncIterable<Buffer>, CHUNK));
    let url: string | undefined;
    try {
      const first = await chunks.next();
      const firstBuf = first.done ? Buffer.alloc(0) : first.value;
      hash.update(firstBuf);
      size += firstBuf.length;
      check(false);
      const second = firstBuf.length < CHUNK ? { done: true as const, value: undefined } : await chunks.next();
      if (second.done) {
        // the whole blob is in memory: one PUT
        check(true);
        const digest = finalDigest();
        url = await this.startSession();
        const res = await this.client.request(RegistryWriter.withDigest(url, digest), {
          repository: this.repository,
          push: true,
          method: "PUT",
          body: firstBuf,
          headers: { "Content-Type": "application/octet-stream" },
        });
        await this.closed(res, digest);
        this.open.delete(url);
        return { digest, size };
      }
      url = await this.startSession();
      let offset = 0;
      url = await this.patch(url, firstBuf, offset);
      offset += firstBuf.length;
      let pending: Buffer | undefined = second.value;
      while (pending) {
        hash.update(pending);
        size += pending.length;
        check(false);
        url = await this.patch(url, pending, offset);
        offset += pending.length;
        const n = await chunks.next();
        pending = n.done ? undefined : n.value;
      }
      check(true);
      const digest = finalDigest();
      const res = await this.client.request(RegistryWriter.withDigest(url, digest), { repository: this.repository, push: true, method: "PUT", body: Buffer.alloc(0), small: true });
      await this.closed(res, digest);
      this.open.delete(url);
      return { digest, size };
    } catch (e) {
      if (url) await this.deleteSession(url);
      throw e;
    } finally {
      await chunks.return(undefined).catch(() => {});
    }
  }

  /** Sends `chunk` at `offset` of the session; resumes from the registry's offset after a failure. Returns the next Location. */
  private async patch(url: string, chunk: Buffer, offset: number): Promise<string> {
    let at = 0; // bytes of `chunk` the registry has
    for (let attempt = 1; ; attempt++) {
      const part = chunk.subarray(at);
      let failure: unknown;
      try {
        const res = await this.client.request(url, {
          repository: this.repository,
          push: true,
          method: "PATCH",
          body: part,
          noRetry: true,
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset + at}-${offset + chunk.length - 1}` },
        });
        if (res.status === 202) {
          await res.body.cancel().catch(() => {});
          const loc = res.headers.get("location");
          const next = loc ? this.resolve(loc) : url;
          this.open.delete(url);
          this.open.add(next);
          return next;
        }
        if (!isRetryableStatus(res.status)) throw await this.fail(res, `uploading bytes ${offset + at}-${offset + chunk.length - 1}`);
        failure = await this.fail(res, "upload chunk");
      } catch (e) {
        if (!(e as { network?: boolean }).network && !isNetworkError(e)) throw e;
        failure = e;
      }
      if (attempt >= CHUNK_ATTEMPTS) throw failure;
      await new Promise((r) => setTimeout(r, 200 * 2 ** (attempt - 1)));
      // where the session stands: Range "0-N" means N+1 bytes are in
      const st = await this.client.request(url, { repository: this.repository, push: true, method: "GET", small: true });
      await st.body.cancel().catch(() => {});
      if (st.status !== 204) throw await this.fail(st, "asking the upload's offset to resume");
      const m = /^(?:bytes=)?0-(\d+)$/.exec(st.headers.get("range") ?? "");
      const have = m ? Number(m[1]) + 1 : 0;
      if (have < offset || have > offset + chunk.length) {
        throw new RegistryError(`${this.domain}/${this.repository}: cannot resume the upload: the registry has ${have} bytes, ${offset}-${offset + chunk.length} expected`);
      }
      at = have - offset;
      const loc = st.headers.get("location");
      if (loc) {
        const next = this.resolve(loc);
        this.open.delete(url);
        this.open.add(next);
        url = next;
      }
      if (at === chunk.length) return url;
    }
  }

  /**
   * PUTs a manifest under `reference` (tag or digest). The registry's Docker-Content-Digest must
   * be the sha256 of the bytes sent.
   */
  async putManifest(raw: Buffer, mediaType: string, reference: string): Promise<Digest> {
    const digest = digestOf(raw);
    const res = await this.client.request(`/v2/${this.repository}/manifests/${reference}`, {
      repository: this.repository,
      push: true,
      method: "PUT",
      body: raw,
      headers: { "Content-Type": mediaType },
      small: true,
    });
    if (res.status !== 201 && res.status !== 200) throw await this.fail(res, `writing manifest ${reference}`);
    await res.body.cancel().catch(() => {});
    const got = res.headers.get("docker-content-digest");
    if (got !== null && got !== digest) throw new RegistryError(`${this.domain}/${this.repository}: the registry stored manifest ${got} for ${digest}`);
    return digest;
  }
}
