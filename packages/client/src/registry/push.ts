/**
 * The write side of the distribution API over the client's one HTTP stack (RegistryClient.request):
 * blob existence (HEAD), cross-repository mount, blob upload, manifest PUT.
 *
 * Upload contract (`uploadBlob`):
 * - The bytes are hashed and counted as they are read from the caller's stream; the session is
 *   closed with `PUT ?digest=` only when they match the expected digest and size (or with the
 *   digest computed, when none was expected). A mismatch deletes the session: nothing appears.
 *   `preverified`: the stream itself fails before its end unless it has the expected digest (a
 *   source's verifying stream), so it is counted but not hashed a second time.
 * - A blob known to be small (MONOLITHIC_MAX) goes as POST + one PUT carrying the bytes (the POST
 *   is sent while the bytes are read; the PUT only once they are verified). Others stream as they
 *   are read; the source's first read (a registry source's GET) runs while the POST is answered
 *   (saves the source's time to first byte before each upload: registry to registry, 5 x 64 MiB,
 *   connect to the first body byte 98-133 ms -> 0.3-10 ms, first request to the last upload's
 *   first byte 445-580 ms -> 345-380 ms, medians of 6-8 interleaved runs, load 6-9):
 *   - a known digest and size up to WHOLE_PUT_MAX: one PUT `?digest=` carrying the whole blob,
 *     which the registry stores when its last byte arrives. The chunk that completes the blob is
 *     sent only after the source's end was reached and the bytes verified (a mismatch cuts the
 *     request short of its length: nothing is stored). Saves the closing request and
 *     distribution's work between the two (hash state stored, session resumed): one 64 MiB blob
 *     to distribution 2.8, PATCH + PUT 327-343 ms vs PUT 303-315 ms; `strata copy` registry ->
 *     registry, 5 x 64 MiB, last blob answered -> exit 19-25 ms -> 13-15 ms (medians of 12
 *     interleaved runs, load 6-9);
 *   - otherwise one PATCH (Content-Length when the size is known, else chunked transfer coding),
 *     then an empty closing PUT.
 * - `present`: the destination's check for the blob (HEAD, mount) runs beside the POST and the
 *   first read; when it finds the blob, nothing is sent, the session is deleted in the background
 *   (`settle` waits for it) and the read is left to the caller to end.
 * - An upload that fails on the network or with a 5xx is resumed: the session's offset is asked
 *   (GET, `Range: 0-N`) and a PATCH sends from there, out of the last RESUME_WINDOW bytes
 *   kept, then the rest of the source; a registry that dropped the session instead
 *   (distribution 2.8 does after a broken PATCH or PUT; Strata's registry keeps no bytes of a
 *   broken PUT) gets a new one from byte 0 while the window still holds the whole blob. Memory: the window (registry/window.ts): references to a
 *   Readable's chunks (it never reuses one it emitted), copies of the chunks of a source that
 *   reuses its buffers (`reusedChunks`).
 * - A source that can be read again (`reread`: a copy's blob chunks from a registry or an OCI
 *   layout, a layer compressed on the way from its source) keeps a share of REREAD_WINDOWS (the uploads of a copy together keep 16 MiB, one alone
 *   as much as any upload): an upload that cannot be resumed from it where the registry stands
 *   (below the window, or a session dropped) starts over with a new session and a new, again
 *   verified, read from byte 0, whatever the blob's size. Saves most of the windows' memory, pool
 *   buffers the kernel clears on first touch: `strata copy` registry -> registry of the
 *   bench:push image (5 x 64 MiB, distribution 2.8), peak RSS 176 -> 97 MB (81 MB with no
 *   window at all); CPU (user + sys) medians of 5 interleaved runs 0.73 -> 0.71 s at load 1-2.5
 *   (0.67 s with no window), where the 16 MiB windows' sys time alone varied 0.19-0.50 s; with
 *   no window 0.81 -> 0.62 s at load 4-5.
 * - The registry's `Docker-Content-Digest` of the PUT that closes an upload (and of a manifest
 *   PUT) must be the digest sent; a push is complete only when the registry acknowledged it (201).
 */
import { createHash } from "node:crypto";
import { type Digest, digestOf } from "@strata/core/digest";
import { RegistryError, type RegistryClient } from "./client.js";
import { isNetworkError, isRetryableStatus } from "./retry.js";
import { ResendWindow } from "./window.js";

/** Blobs of a known size up to this are read whole (and verified) before one PUT carries them. */
export const MONOLITHIC_MAX = 4 * 1024 * 1024;
/**
 * Blobs of a known digest and size up to this go as one PUT carrying the bytes (after the POST);
 * larger ones as a PATCH and a closing PUT, so that a registry that keeps the bytes of a broken
 * PATCH lets the upload resume at its offset (a broken PUT's bytes are dropped: Strata's registry
 * and distribution 2.8 answer its status with an empty session, and the upload starts over).
 */
export const WHOLE_PUT_MAX = 128 * 1024 * 1024;
/** Bytes sent and kept for a resume: a registry that stored less than all but these cannot be resumed. */
export const RESUME_WINDOW = 16 * 1024 * 1024;
/**
 * The resume windows of the uploads of sources that can be read again, together: each of the N
 * such uploads under way keeps REREAD_WINDOWS / N bytes (beyond them, an upload starts over from a
 * new read).
 */
export const REREAD_WINDOWS = 16 * 1024 * 1024;
/** Attempts of a streamed upload (first send and resumes). */
const UPLOAD_ATTEMPTS = 5;

export interface BlobExpectation {
  digest?: Digest;
  /** -1 or absent: unknown. */
  size?: number;
}

/** What a check for a blob found: absent (false), present (true) or mounted from a repository. */
export type Presence = boolean | { mountedFrom: string };

/** An upload's blob; `present`: the upload was not needed (its `present` check found the blob). */
export interface UploadResult {
  digest: Digest;
  size: number;
  present?: true | { mountedFrom: string };
}

export class RegistryWriter {
  /** Upload sessions opened and not closed (for `abortAll`). */
  private readonly open = new Set<string>();
  /** Streamed uploads of sources that can be read again under way (they share REREAD_WINDOWS). */
  private rereading = 0;

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

  /** Whether the blob's first bytes are `magic` (a ranged GET; a registry ignoring Range has the rest dropped). */
  async startsWith(digest: Digest, magic: Buffer): Promise<boolean> {
    const res = await this.client.request(`/v2/${this.repository}/blobs/${digest}`, {
      repository: this.repository,
      push: true,
      headers: { Range: `bytes=0-${magic.length - 1}` },
      small: true,
    });
    if (!res.ok) {
      await res.body.cancel().catch(() => {});
      return false;
    }
    const head = await res.bytes(magic.length, undefined, false);
    return head.length === magic.length && head.equals(magic);
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
  async uploadBlob(
    data: AsyncIterable<Buffer>,
    expect: BlobExpectation & {
      preverified?: boolean;
      reusedChunks?: boolean;
      onProgress?: (bytes: number) => void;
      reread?: () => Promise<AsyncIterable<Buffer>>;
      present?: Promise<Presence>;
    },
  ): Promise<UploadResult> {
    // chunks of a source that reuses its buffers are copied wherever they are kept
    const copy = expect.reusedChunks === true;
    // a stream that fails before its end unless it matches expect.digest needs no second hash
    const trusted = expect.preverified === true && expect.digest !== undefined;
    let hash = trusted ? undefined : createHash("sha256");
    let size = 0;
    const known = expect.size !== undefined && expect.size >= 0 ? expect.size : undefined;
    if (expect.present && (known === undefined || expect.digest === undefined)) throw new Error("internal: an upload with a presence check needs the blob's digest and size");
    const tooLong = () => new RegistryError(`blob ${expect.digest ?? ""}: more than the ${known} bytes expected`);
    const finalDigest = (): Digest => {
      if (known !== undefined && size !== known) throw new RegistryError(`blob ${expect.digest ?? ""}: ${size} bytes read, ${known} expected`);
      if (!hash) return expect.digest!;
      const d = `sha256:${hash.digest("hex")}` as Digest;
      if (expect.digest && expect.digest.startsWith("sha256:") && d !== expect.digest) throw new RegistryError(`blob ${expect.digest}: the bytes read have digest ${d}`);
      return expect.digest && !expect.digest.startsWith("sha256:") ? expect.digest : d;
    };
    let source = data[Symbol.asyncIterator]();
    let url: string | undefined;
    let countedReread = false;
    // a small blob's session, opened while its bytes are read
    let opening: Promise<string> | undefined;
    try {
      if (known !== undefined && known <= MONOLITHIC_MAX) {
        // small: read whole, verify, one PUT; the session is opened while the bytes are read
        opening = this.startSession();
        opening.catch(() => {});
        const parts: Buffer[] = [];
        for (;;) {
          const r = await source.next();
          if (r.done) break;
          hash?.update(r.value);
          size += r.value.length;
          if (size > known) throw tooLong();
          parts.push(copy ? Buffer.from(r.value) : r.value);
        }
        const digest = finalDigest();
        const there = await expect.present;
        if (there) return this.skipped(opening, digest, size, there);
        url = await opening;
        const res = await this.client.request(RegistryWriter.withDigest(url, digest), {
          repository: this.repository,
          push: true,
          method: "PUT",
          body: Buffer.concat(parts),
          headers: { "Content-Type": "application/octet-stream" },
        });
        await this.closed(res, digest);
        this.open.delete(url);
        return { digest, size };
      }
      // the source's first read (from a registry: its GET, up to the first bytes) runs while the
      // registry opens the session; the chunk is used before the source is asked for another
      let first: Promise<IteratorResult<Buffer>> | undefined = source.next();
      first.catch(() => {});
      opening = this.startSession();
      opening.catch(() => {});
      const there = await expect.present;
      if (there) {
        // the read started ends after its first chunk (an async iterator's return waits for it)
        const reading = first;
        const src = source;
        first = undefined;
        void reading.then(() => src.return?.()).catch(() => {});
        return this.skipped(opening, expect.digest!, known!, there);
      }
      url = await opening;
      // the bytes sent and not yet known to be stored: [window.start, size); fewer are kept when
      // the source can be read again (an upload that cannot resume where the registry stands
      // starts over from byte 0 with a new read)
      const reread = expect.reread;
      if (reread) this.rereading++;
      const keep = reread ? () => Math.floor(REREAD_WINDOWS / Math.max(1, this.rereading)) : RESUME_WINDOW;
      let window = new ResendWindow(keep);
      countedReread = reread !== undefined;
      let ended = false;
      // the blob's digest once the source's end was reached and verified
      let verified: Digest | undefined;
      /**
       * Reads one chunk of the source into the window (undefined at its end). The chunk that
       * completes a blob of known size is handed out only after the source's end: its
       * verification, and the digest, come before the last bytes leave (a whole-blob PUT is
       * stored by the registry when they arrive).
       */
      const pull = async (): Promise<Buffer | undefined> => {
        if (verified !== undefined) return undefined;
        const next = first ?? source.next();
        first = undefined;
        const r = await next;
        if (r.done) return undefined;
        let c = r.value;
        hash?.update(c);
        size += c.length;
        if (known !== undefined && size > known) throw tooLong();
        let kept = copy;
        if (size === known) {
          // a reused buffer is valid only until the next read: the last chunk is copied first
          if (copy) c = Buffer.from(c);
          kept = false;
          for (let e = await source.next(); !e.done; e = await source.next()) if (e.value.length > 0) throw tooLong();
          verified = finalDigest();
        }
        window.append(c, kept);
        expect.onProgress?.(size);
        return c;
      };
      // the read of a failed attempt's body, which lands in the window before a resume replays it
      let inflight: Promise<unknown> = Promise.resolve();
      /** The body of one PATCH: what the window holds from `from`, then the rest of the source. */
      async function* body(from: number): AsyncGenerator<Buffer> {
        await inflight;
        yield* window.since(from);
        for (;;) {
          const p = pull();
          inflight = p.catch(() => {});
          const c = await p;
          if (!c) {
            ended = true;
            return;
          }
          yield c;
        }
      }
      /** A new session, and (when the bytes from 0 are no longer kept) a new read of the source from byte 0. */
      const startOver = async (): Promise<void> => {
        if (window.start !== 0) {
          if (!reread) throw new RegistryError(`${this.domain}/${this.repository}: cannot resume the upload: the registry has fewer bytes than can be sent again`);
          await inflight;
          await source.return?.().catch(() => {});
          source = (await reread())[Symbol.asyncIterator]();
          hash = trusted ? undefined : createHash("sha256");
          size = 0;
          ended = false;
          verified = undefined;
          window.release();
          window = new ResendWindow(keep);
        }
        url = await this.startSession();
        offset = 0;
        this.onResume?.(0);
      };
      let offset = 0;
      for (let attempt = 1; ; attempt++) {
        let failure: unknown;
        try {
          // the whole blob of a known digest and size: one PUT with the bytes, which closes the
          // session; a resume: a PATCH from the offset, then the closing PUT
          const whole = offset === 0 && known !== undefined && known <= WHOLE_PUT_MAX && expect.digest !== undefined;
          const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
          if (known !== undefined && !whole) headers["Content-Range"] = `${offset}-${Math.max(offset, known - 1)}`;
          const res = await this.client.request(whole ? RegistryWriter.withDigest(url, expect.digest!) : url, {
            repository: this.repository,
            push: true,
            method: whole ? "PUT" : "PATCH",
            body: { stream: body(offset), length: known === undefined ? undefined : known - offset },
            headers,
          });
          if (whole && res.status === 201) {
            if (!ended && verified === undefined) throw new RegistryError(`${this.domain}/${this.repository}: the registry stored an upload before its end`);
            const digest = verified ?? finalDigest();
            await this.closed(res, digest);
            this.open.delete(url);
            window.release();
            return { digest, size };
          }
          if (!whole && res.status === 202) {
            await res.body.cancel().catch(() => {});
            const loc = res.headers.get("location");
            if (loc) url = this.moveSession(url, this.resolve(loc));
            if (!ended) throw new RegistryError(`${this.domain}/${this.repository}: the registry acknowledged an upload before its end`);
            break;
          }
          if (!isRetryableStatus(res.status)) throw await this.fail(res, `uploading ${expect.digest ?? "a blob"}`);
          failure = await this.fail(res, "upload");
        } catch (e) {
          if (!(e as { network?: boolean }).network && !isNetworkError(e)) throw e;
          failure = e;
        }
        if (attempt >= UPLOAD_ATTEMPTS) throw failure;
        await new Promise((r) => setTimeout(r, 200 * 2 ** (attempt - 1)));
        const st = await this.client.request(url, { repository: this.repository, push: true, method: "GET", small: true });
        if (st.status === 404 || (st.status >= 400 && st.status < 500 && st.status !== 401 && st.status !== 403)) {
          // the registry dropped the session (distribution 2.8 cancels one whose PATCH broke off):
          // a new session from byte 0, from the window when it still holds every byte read, else
          // from a new read of the source
          if (window.start !== 0 && !reread) throw await this.fail(st, "resuming the upload (the registry dropped the session)");
          await st.body.cancel().catch(() => {});
          this.open.delete(url);
          await startOver();
          continue;
        }
        if (st.status !== 204) throw await this.fail(st, "asking the upload's offset to resume");
        await st.body.cancel().catch(() => {});
        const loc = st.headers.get("location");
        if (loc) url = this.moveSession(url, this.resolve(loc));
        const m = /^(?:bytes=)?0-(\d+)$/.exec(st.headers.get("range") ?? "");
        if (m && Number(m[1]) === 0 && window.start === 0) {
          // "0-0" is what registries answer for an empty session as well as for one byte: a new
          // session from byte 0 is right either way
          await this.deleteSession(url);
          await startOver();
          continue;
        }
        const have = m ? Number(m[1]) + 1 : 0;
        if (have < window.start || have > size) {
          if (!reread) throw new RegistryError(`${this.domain}/${this.repository}: cannot resume the upload: the registry has ${have} bytes, ${window.start}-${size} can be sent again`);
          await this.deleteSession(url);
          await startOver();
          continue;
        }
        offset = have;
        this.onResume?.(have);
      }
      const digest = verified ?? finalDigest();
      const res = await this.client.request(RegistryWriter.withDigest(url, digest), { repository: this.repository, push: true, method: "PUT", body: Buffer.alloc(0), small: true });
      await this.closed(res, digest);
      this.open.delete(url);
      window.release();
      return { digest, size };
    } catch (e) {
      url ??= await opening?.catch(() => undefined);
      if (url) await this.deleteSession(url);
      // (an async generator's return waits for a read still pending, then ends it)
      await source.return?.().catch(() => {});
      throw e;
    } finally {
      if (countedReread) this.rereading--;
    }
  }

  /**
   * An upload not needed (`present` found the blob at the registry): its session is deleted
   * without waiting (`settle` waits).
   */
  private skipped(opening: Promise<string>, digest: Digest, size: number, present: true | { mountedFrom: string }): UploadResult {
    this.later(opening.then((u) => this.deleteSession(u)));
    return { digest, size, present };
  }

  /** Work left running in the background (deletes of sessions not needed). */
  private readonly background = new Set<Promise<void>>();

  private later(p: Promise<unknown>): void {
    const q: Promise<void> = p.then(
      () => {},
      () => {},
    );
    this.background.add(q);
    void q.then(() => this.background.delete(q));
  }

  /** Resolves when the work left running in the background is done. */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  /** Told the offset whenever an upload resumes (tests, progress). */
  onResume: ((offset: number) => void) | undefined;

  private moveSession(from: string, to: string): string {
    this.open.delete(from);
    this.open.add(to);
    return to;
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
