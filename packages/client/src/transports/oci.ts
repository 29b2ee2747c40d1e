/**
 * `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]`: the OCI image layout (oci-layout, index.json whose
 * entries name images with the `org.opencontainers.image.ref.name` annotation, blobs/<alg>/<hex>),
 * as a directory or as a tar of one.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline as streamPipeline, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Digest, digestAlgorithm, digestHex, digestOf, MediaTypes, parseManifest } from "@strata/core";
import tar from "tar-stream";
import { fsyncPath, isErrno, syncFilesystem, writeFileAtomic } from "../store/fsutil.js";
import { fileChunks } from "./chunks.js";
import { checkFor, fileSink, MAX_METADATA_BYTES, placeFile, readBounded, verifying, writeVerifiedTemp } from "./files.js";
import { targetFromManifest } from "./manifests.js";
import { StoreLock } from "../store/lock.js";
import { TarIndex } from "./tarindex.js";
import { type BlobRef, type ImageDestination, type ImageSource, type PutBlobExpectation, type SourceTarget, TransportError } from "./types.js";

export const REF_NAME = "org.opencontainers.image.ref.name";

/** Read access to the files of a layout (a directory or an archive). */
interface LayoutFiles {
  /** Whole small file, or undefined when missing. */
  read(path: string, max: number): Promise<Buffer | undefined>;
  /** A file's stream and size, or undefined when missing. */
  open(path: string): Promise<{ stream: Readable; size: number } | undefined>;
  /** Where a file's bytes are: a file on disk and the range in it, or undefined when missing. */
  locate(path: string): Promise<{ file: string; start: number; size: number } | undefined>;
}

class DirFiles implements LayoutFiles {
  constructor(private readonly dir: string) {}
  async read(path: string, max: number): Promise<Buffer | undefined> {
    const f = await this.open(path);
    if (!f) return undefined;
    if (f.size > max) {
      f.stream.destroy();
      throw new TransportError(`${join(this.dir, path)} is larger than ${max} bytes`);
    }
    return readBounded(f.stream, max, path);
  }
  async open(path: string): Promise<{ stream: Readable; size: number } | undefined> {
    const f = await this.locate(path);
    return f && { stream: createReadStream(f.file, { highWaterMark: 1 << 20 }), size: f.size };
  }
  async locate(path: string): Promise<{ file: string; start: number; size: number } | undefined> {
    const p = join(this.dir, path);
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined;
      throw e;
    }
    return st.isFile() ? { file: p, start: 0, size: st.size } : undefined;
  }
}

class TarFiles implements LayoutFiles {
  constructor(private readonly index: TarIndex) {}
  async read(path: string, max: number): Promise<Buffer | undefined> {
    const e = this.index.get(path);
    if (!e) return undefined;
    if (e.size > max) throw new TransportError(`${path} in ${this.index.path} is larger than ${max} bytes`);
    return readBounded(this.index.stream(e), max, path);
  }
  async open(path: string): Promise<{ stream: Readable; size: number } | undefined> {
    const e = this.index.get(path);
    return e ? { stream: this.index.stream(e), size: e.size } : undefined;
  }
  async locate(path: string): Promise<{ file: string; start: number; size: number } | undefined> {
    const e = this.index.get(path);
    return e ? { file: this.index.path, start: e.offset, size: e.size } : undefined;
  }
}

function blobPath(d: Digest): string {
  return `blobs/${digestAlgorithm(d)}/${digestHex(d)}`;
}

interface IndexEntry {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: unknown;
}

class OciLayoutSource implements ImageSource {
  constructor(
    readonly name: string,
    private readonly files: LayoutFiles,
    private readonly tag: string | undefined,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  async resolve(): Promise<SourceTarget> {
    const layout = await this.files.read("oci-layout", 64 * 1024);
    if (!layout) throw new TransportError(`${this.name}: not an OCI image layout (no oci-layout file)`);
    let version: unknown;
    try {
      version = (JSON.parse(layout.toString("utf8")) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      /* reported below */
    }
    if (typeof version !== "string") throw new TransportError(`${this.name}: oci-layout has no imageLayoutVersion`);
    const raw = await this.files.read("index.json", MAX_METADATA_BYTES);
    if (!raw) throw new TransportError(`${this.name}: not an OCI image layout (no index.json)`);
    let entries;
    try {
      const idx = parseManifest(raw);
      if (idx.kind !== "index") throw new Error("index.json is not an image index");
      entries = idx.manifests;
    } catch (e) {
      throw new TransportError(`${this.name}: index.json: ${(e as Error).message}`);
    }
    let entry;
    if (this.tag !== undefined) {
      const hits = entries.filter((e) => e.annotations?.[REF_NAME] === this.tag);
      if (hits.length === 0) throw new TransportError(`${this.name}: no image named ${JSON.stringify(this.tag)} in index.json`);
      if (hits.length > 1) throw new TransportError(`${this.name}: ${hits.length} images named ${JSON.stringify(this.tag)} in index.json`);
      entry = hits[0];
    } else {
      if (entries.length !== 1) throw new TransportError(`${this.name}: index.json lists ${entries.length} images; name one with ${this.name}:TAG`);
      entry = entries[0];
    }
    return this.child(entry);
  }

  async child(desc: { digest: Digest; size: number; mediaType: string }): Promise<SourceTarget> {
    const raw = await this.readVerified(desc, "manifest");
    return targetFromManifest({ raw, mediaType: desc.mediaType, digest: desc.digest }, (d) => this.readVerified(d, "config"), `${this.name}: manifest ${desc.digest}`);
  }

  private async readVerified(desc: { digest: Digest; size: number }, what: string): Promise<Buffer> {
    if (desc.size > MAX_METADATA_BYTES) throw new TransportError(`${this.name}: ${what} ${desc.digest} is larger than ${MAX_METADATA_BYTES} bytes`);
    const s = await this.blob({ ...desc, mediaType: "" });
    return readBounded(s, MAX_METADATA_BYTES, `${what} ${desc.digest}`);
  }

  async blob(ref: BlobRef): Promise<Readable> {
    const f = await this.files.open(blobPath(ref.digest));
    if (!f) throw new TransportError(`${this.name}: blob ${ref.digest} is missing from the layout`);
    if (ref.size >= 0 && f.size !== ref.size) {
      f.stream.destroy();
      throw new TransportError(`${this.name}: blob ${ref.digest} has ${f.size} bytes, its descriptor says ${ref.size}`);
    }
    const check = verifying({ digest: ref.digest, size: ref.size }, (e) => new TransportError(`${this.name}: blob ${ref.digest}: ${e.message}`));
    f.stream.on("error", (e) => check.destroy(e));
    return f.stream.pipe(check);
  }

  async blobChunks(ref: BlobRef): Promise<AsyncIterable<Buffer>> {
    const f = await this.files.locate(blobPath(ref.digest));
    if (!f) throw new TransportError(`${this.name}: blob ${ref.digest} is missing from the layout`);
    if (ref.size >= 0 && f.size !== ref.size) throw new TransportError(`${this.name}: blob ${ref.digest} has ${f.size} bytes, its descriptor says ${ref.size}`);
    return fileChunks(f.file, f.start, f.size, ref, (e) => new TransportError(`${this.name}: blob ${ref.digest}: ${e.message}`));
  }

  close(): Promise<void> {
    return this.onClose();
  }
}

export function ociLayoutSource(name: string, dir: string, tag: string | undefined): ImageSource {
  return new OciLayoutSource(name, new DirFiles(dir), tag);
}

export async function ociArchiveSource(name: string, file: string, tag: string | undefined): Promise<ImageSource> {
  let index: TarIndex;
  try {
    index = await TarIndex.open(file);
  } catch (e) {
    throw new TransportError(`${name}: ${isErrno(e, "ENOENT") ? "no such file" : (e as Error).message}`);
  }
  return new OciLayoutSource(name, new TarFiles(index), tag);
}

/**
 * Writes an OCI layout. A DIR that does not exist is built beside it under a temp name and
 * renamed into place by `commit`; into an existing layout (or empty directory) blobs go straight
 * in (each verified, fsynced and renamed) and `abort` removes the ones this copy added; index.json
 * is replaced atomically at `commit`.
 */
export class OciLayoutDestination implements ImageDestination {
  readonly layers = "keep" as const;
  readonly manifestFormat = "oci" as const;
  readonly acceptsIndex = true;
  private readonly added: string[] = [];
  private top: IndexEntry | undefined;
  private aborted = false;
  /** The destination was an empty directory: abort empties it again. */
  private ownsContent = false;
  private constructor(
    readonly name: string,
    /** Where files are written now. */
    readonly root: string,
    /** Set when root is a temp dir to be renamed to this path. */
    private readonly finalDir: string | undefined,
    private readonly tag: string | undefined,
  ) {}

  static async create(name: string, dir: string, tag: string | undefined): Promise<OciLayoutDestination> {
    let st;
    try {
      st = await lstat(dir);
    } catch (e) {
      if (!isErrno(e, "ENOENT")) throw e;
    }
    if (!st) {
      const tmp = join(dirname(dir), `.${basename(dir)}.strata-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
      try {
        await mkdir(tmp, { mode: 0o755 });
      } catch (e) {
        throw new TransportError(`${name}: cannot create ${dir}: ${isErrno(e, "ENOENT") ? `directory ${dirname(dir)} does not exist` : (e as Error).message}`);
      }
      await mkdir(join(tmp, "blobs", "sha256"), { recursive: true });
      return new OciLayoutDestination(name, tmp, dir, tag);
    }
    if (!st.isDirectory()) throw new TransportError(`${name}: ${dir} exists and is not a directory`);
    const names = await readdir(dir);
    if (names.length > 0 && !names.includes("oci-layout")) throw new TransportError(`${name}: ${dir} is not empty and not an OCI image layout`);
    const d = new OciLayoutDestination(name, dir, undefined, tag);
    // an empty directory: everything in it will be this copy's (removed again by abort)
    d.ownsContent = names.length === 0;
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    return d;
  }

  private path(d: Digest): string {
    return join(this.root, blobPath(d));
  }

  async hasBlob(ref: BlobRef): Promise<boolean> {
    try {
      const st = await stat(this.path(ref.digest));
      return st.isFile() && (ref.size < 0 || st.size === ref.size);
    } catch {
      return false;
    }
  }

  async putBlob(data: Readable, expect: PutBlobExpectation): Promise<{ digest: Digest; size: number }> {
    const blobs = join(this.root, "blobs");
    const r = await writeVerifiedTemp(blobs, data, expect, { sync: false });
    if (this.aborted) {
      await rm(r.tmp, { force: true });
      throw new TransportError(`${this.name}: copy aborted`);
    }
    const algDir = join(blobs, digestAlgorithm(r.digest));
    await mkdir(algDir, { recursive: true });
    const final = this.path(r.digest);
    if (await this.hasBlob({ digest: r.digest, size: r.size, mediaType: "" })) {
      await rm(r.tmp, { force: true });
    } else {
      await placeFile(r.tmp, final);
      this.added.push(final);
    }
    return { digest: r.digest, size: r.size };
  }

  async putManifest(m: { raw: Buffer; mediaType: string }, opts: { top: boolean }): Promise<Digest> {
    const { digest, size } = await this.putBlob(bufferStream(m.raw), { mediaType: m.mediaType });
    if (opts.top) this.top = { mediaType: m.mediaType, digest, size };
    return digest;
  }

  async commit(): Promise<void> {
    if (!this.top) throw new Error("OCI layout commit without a manifest");
    // the blobs were written without fsync: one syncfs makes them all durable before index.json names them
    await syncFilesystem(this.root);
    if (this.finalDir) {
      await this.writeIndex();
      try {
        await rename(this.root, this.finalDir);
      } catch (e) {
        throw new TransportError(`${this.name}: cannot create ${this.finalDir}: ${(e as Error).message}`, { cause: e });
      }
      await fsyncPath(dirname(this.finalDir));
      return;
    }
    // concurrent copies into one layout: index.json is read, changed and replaced under a lock
    await new StoreLock(join(this.root, ".strata-index.lock")).with(() => this.writeIndex());
  }

  /** Adds (or moves) the entry of the copied image in index.json, atomically. */
  private async writeIndex(): Promise<void> {
    const top = this.top as IndexEntry;
    let entries: IndexEntry[] = [];
    const existing = await readFile(join(this.root, "index.json")).catch((e) => {
      if (isErrno(e, "ENOENT")) return undefined;
      throw e;
    });
    if (existing) {
      try {
        const idx = parseManifest(existing);
        if (idx.kind !== "index") throw new Error("not an image index");
        entries = idx.manifests.map((d) => ({ ...d }) as IndexEntry);
      } catch (e) {
        throw new TransportError(`${this.name}: existing index.json: ${(e as Error).message}`);
      }
    }
    const entry: IndexEntry = { ...top };
    if (this.tag !== undefined) {
      entry.annotations = { [REF_NAME]: this.tag };
      entries = entries.filter((e) => e.annotations?.[REF_NAME] !== this.tag);
    } else {
      entries = entries.filter((e) => !(e.digest === entry.digest && e.annotations?.[REF_NAME] === undefined));
    }
    entries.push(entry);
    const index = { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: entries };
    await writeFileAtomic(join(this.root, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }), 0o644);
    await writeFileAtomic(join(this.root, "index.json"), JSON.stringify(index), 0o644);
  }

  async abort(): Promise<void> {
    this.aborted = true;
    if (this.finalDir) {
      await rm(this.root, { recursive: true, force: true });
      return;
    }
    for (const p of this.added) await rm(p, { force: true });
    if (this.ownsContent) {
      for (const n of await readdir(this.root).catch(() => [] as string[])) await rm(join(this.root, n), { recursive: true, force: true });
    }
  }
}

function bufferStream(b: Buffer): Readable {
  return Readable.from([b]);
}

/**
 * A tar written to a temp file beside FILE, entry by entry (one at a time: concurrent callers
 * queue), then fsynced and renamed to FILE. After a failed entry the writer refuses more.
 */
class ArchiveWriter {
  private readonly pack = tar.pack();
  private readonly writing: Promise<void>;
  private queue: Promise<void> = Promise.resolve();
  private failed: Error | undefined;
  private constructor(
    private readonly file: string,
    private readonly tmp: string,
    private readonly fh: FileHandle,
  ) {
    this.writing = pipeline(this.pack, fileSink(fh));
    this.writing.catch(() => {}); // awaited by finish/discard
  }

  static async open(name: string, file: string): Promise<ArchiveWriter> {
    const tmp = join(dirname(file), `.${basename(file)}.strata-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    let fh: FileHandle;
    try {
      fh = await open(tmp, "wx", 0o644);
    } catch (e) {
      throw new TransportError(`${name}: cannot write ${file}: ${isErrno(e, "ENOENT") ? `directory ${dirname(file)} does not exist` : (e as Error).message}`);
    }
    return new ArchiveWriter(file, tmp, fh);
  }

  /** Adds an entry (a directory when `body` is undefined and size is -1). */
  add(name: string, size: number, body?: Readable | Buffer): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.failed) throw this.failed;
      try {
        await new Promise<void>((resolve, reject) => {
          if (size < 0) {
            this.pack.entry({ name, type: "directory", mode: 0o755, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
          } else if (Buffer.isBuffer(body)) {
            this.pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, body, (e) => (e ? reject(e) : resolve()));
          } else {
            const entry = this.pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
            pipeline(body as Readable, entry).catch(reject);
          }
        });
      } catch (e) {
        this.failed = e as Error;
        this.pack.destroy(e as Error);
        throw e;
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  async finish(): Promise<void> {
    await this.queue;
    if (this.failed) throw this.failed;
    this.pack.finalize();
    await this.writing;
    await this.fh.close();
    await rename(this.tmp, this.file);
    await fsyncPath(dirname(this.file));
  }

  async discard(): Promise<void> {
    this.failed ??= new Error("archive discarded");
    this.pack.destroy();
    await this.writing.catch(() => {});
    await this.fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

/**
 * `oci-archive:FILE[:TAG]`: the layout's files streamed straight into a tar (temp file, fsync,
 * rename). A blob of known size goes in as it is read (verified); one whose size is not known
 * before it is written (compressed on the way) is spooled, verified, beside FILE first.
 */
export class OciArchiveDestination implements ImageDestination {
  readonly layers = "keep" as const;
  readonly manifestFormat = "oci" as const;
  readonly acceptsIndex = true;
  private readonly written = new Map<string, number>();
  private top: IndexEntry | undefined;
  private spoolDir: string | undefined;
  /** Settles once spoolDir exists; every blob that spools waits for it (they may arrive at once). */
  private spoolMade: Promise<void> | undefined;
  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly writer: ArchiveWriter,
    private readonly tag: string | undefined,
  ) {}

  static async create(name: string, file: string, tag: string | undefined): Promise<OciArchiveDestination> {
    const writer = await ArchiveWriter.open(name, file);
    await writer.add("blobs/", -1);
    await writer.add("blobs/sha256/", -1);
    return new OciArchiveDestination(name, file, writer, tag);
  }

  async hasBlob(ref: BlobRef): Promise<boolean> {
    const size = this.written.get(ref.digest);
    return size !== undefined && (ref.size < 0 || size === ref.size);
  }

  async putBlob(data: Readable, expect: PutBlobExpectation): Promise<{ digest: Digest; size: number }> {
    if (expect.digest && expect.size !== undefined && expect.size >= 0) {
      const digest = expect.digest;
      if (this.written.has(digest)) {
        data.destroy();
        return { digest, size: expect.size };
      }
      this.written.set(digest, expect.size);
      try {
        const check = checkFor(data, { digest, size: expect.size });
        await this.writer.add(blobPath(digest), expect.size, streamPipeline(data, check, () => {}));
      } catch (e) {
        this.written.delete(digest);
        throw e;
      }
      return { digest, size: expect.size };
    }
    if (!this.spoolDir) {
      this.spoolDir = join(dirname(this.file), `.${basename(this.file)}.strata-spool-${process.pid}-${randomBytes(4).toString("hex")}`);
      this.spoolMade = mkdir(this.spoolDir, { mode: 0o700 }).then(() => {});
    }
    await this.spoolMade;
    const r = await writeVerifiedTemp(this.spoolDir, data, expect, { sync: false });
    try {
      if (!this.written.has(r.digest)) {
        this.written.set(r.digest, r.size);
        await this.writer.add(blobPath(r.digest), r.size, createReadStream(r.tmp));
      }
    } finally {
      await rm(r.tmp, { force: true });
    }
    return { digest: r.digest, size: r.size };
  }

  async putManifest(m: { raw: Buffer; mediaType: string }, opts: { top: boolean }): Promise<Digest> {
    const { digest, size } = await this.putBlob(Readable.from([m.raw]), { digest: digestOf(m.raw), size: m.raw.length, mediaType: m.mediaType });
    if (opts.top) this.top = { mediaType: m.mediaType, digest, size };
    return digest;
  }

  async commit(): Promise<void> {
    if (!this.top) throw new Error("OCI archive commit without a manifest");
    const entry: IndexEntry = { ...this.top, ...(this.tag !== undefined ? { annotations: { [REF_NAME]: this.tag } } : {}) };
    const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [entry] }));
    await this.writer.add("oci-layout", layout.length, layout);
    await this.writer.add("index.json", index.length, index);
    await this.writer.finish();
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await this.writer.discard();
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}

/** Writes FILE through a temp file beside it: write, fsync, rename, fsync the directory. */
export async function writeArchive(name: string, file: string, write: (out: NodeJS.WritableStream) => Promise<void>): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.strata-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  let fh;
  try {
    fh = await open(tmp, "wx", 0o644);
  } catch (e) {
    throw new TransportError(`${name}: cannot write ${file}: ${isErrno(e, "ENOENT") ? `directory ${dirname(file)} does not exist` : (e as Error).message}`);
  }
  try {
    await write(fileSink(fh));
    await fh.close();
    await rename(tmp, file);
    await fsyncPath(dirname(file));
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

export { bufferStream };
