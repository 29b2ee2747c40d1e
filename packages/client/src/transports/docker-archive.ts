/**
 * `docker-archive:FILE[:REF]`: the `docker save` format.
 *
 *   manifest.json   [{"Config":"<name>","RepoTags":["repo:tag",...]|null,"Layers":["<name>",...]}]
 *   <Config>        the image config (its sha256 is the image ID)
 *   <Layers[i]>     layer i as a tar (uncompressed; gzip or zstd accepted on reading), whose
 *                   sha256 must be the config's rootfs.diff_ids[i]
 *   repositories    {"<repo>":{"<tag>":"<top layer id>"}} (legacy, written for old loaders)
 *
 * The archive keeps no manifest: reading presents the image as uncompressed layers whose digests
 * are the diffIDs, and every layer is checked against its diffID as it is read. Writing spools
 * verified blobs in a temp dir beside FILE and writes the archive at commit (temp file, fsync,
 * rename).
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type DiffID, type Digest, digestHex, digestOf, formatFamiliar, type LayerCompression, MediaTypes, parseImageConfig, parseManifest, parseReference, type Reference } from "@strata/core";
import tar from "tar-stream";
import { decompressor } from "../layer/decompress.js";
import { isErrno } from "../store/fsutil.js";
import { MAX_METADATA_BYTES, placeFile, readBounded, verifying, writeVerifiedTemp } from "./files.js";
import { writeArchive } from "./oci.js";
import { type TarEntry, TarIndex } from "./tarindex.js";
import { type BlobRef, type ImageDestination, type ImageSource, type PutBlobExpectation, type SourceLayer, type SourceTarget, TransportError } from "./types.js";

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function parseArchiveManifest(raw: Buffer, where: string): ArchiveManifestEntry[] {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new TransportError(`${where}: manifest.json is not valid JSON`);
  }
  if (!Array.isArray(v)) throw new TransportError(`${where}: manifest.json is not an array`);
  for (const e of v as ArchiveManifestEntry[]) {
    const ok =
      e !== null &&
      typeof e === "object" &&
      typeof e.Config === "string" &&
      Array.isArray(e.Layers) &&
      e.Layers.every((l) => typeof l === "string") &&
      (e.RepoTags === undefined || e.RepoTags === null || (Array.isArray(e.RepoTags) && e.RepoTags.every((t) => typeof t === "string")));
    if (!ok) throw new TransportError(`${where}: manifest.json has an invalid entry`);
  }
  return v as ArchiveManifestEntry[];
}

function sniff(head: Buffer): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

interface ArchiveLayer {
  entry: TarEntry;
  compression: LayerCompression;
  diffId: DiffID;
  index: number;
}

class DockerArchiveSource implements ImageSource {
  private config: { raw: Buffer; digest: Digest } | undefined;
  private readonly layers = new Map<string, ArchiveLayer>();

  constructor(
    readonly name: string,
    private readonly index: TarIndex,
    private readonly ref: string | undefined,
  ) {}

  async resolve(): Promise<SourceTarget> {
    const mEntry = this.index.get("manifest.json");
    if (!mEntry) throw new TransportError(`${this.name}: not a docker-archive (no manifest.json)`);
    if (mEntry.size > MAX_METADATA_BYTES) throw new TransportError(`${this.name}: manifest.json is too large`);
    const entries = parseArchiveManifest(await readBounded(this.index.stream(mEntry), MAX_METADATA_BYTES, "manifest.json"), this.name);
    const chosen = this.choose(entries);
    const cEntry = this.index.get(chosen.Config);
    if (!cEntry) throw new TransportError(`${this.name}: config ${JSON.stringify(chosen.Config)} is missing from the archive`);
    if (cEntry.size > MAX_METADATA_BYTES) throw new TransportError(`${this.name}: config is too large`);
    const raw = await readBounded(this.index.stream(cEntry), MAX_METADATA_BYTES, "config");
    let cfg;
    try {
      cfg = parseImageConfig(raw).config;
    } catch (e) {
      throw new TransportError(`${this.name}: ${(e as Error).message}`);
    }
    const diffIds = cfg.rootfs.diff_ids;
    if (diffIds.length !== chosen.Layers.length) {
      throw new TransportError(`${this.name}: docker-archive lies about its layers: manifest.json lists ${chosen.Layers.length} layers, the config ${diffIds.length} diffIDs`);
    }
    this.config = { raw, digest: digestOf(raw) };
    const layers: SourceLayer[] = [];
    for (let i = 0; i < chosen.Layers.length; i++) {
      const entry = this.index.get(chosen.Layers[i]);
      if (!entry) throw new TransportError(`${this.name}: layer ${JSON.stringify(chosen.Layers[i])} is missing from the archive`);
      const compression = sniff(await this.index.head(entry, 4));
      const diffId = diffIds[i];
      const prev = this.layers.get(diffId);
      if (!prev) this.layers.set(diffId, { entry, compression, diffId, index: i });
      layers.push({
        blob: { digest: diffId, size: compression === "none" ? entry.size : -1, mediaType: MediaTypes.OciLayer },
        compression: "none",
        diffId,
      });
    }
    return {
      kind: "image",
      image: {
        config: { digest: this.config.digest, size: raw.length, mediaType: MediaTypes.DockerConfig },
        configRaw: raw,
        layers,
        platform: { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) },
      },
    };
  }

  private choose(entries: ArchiveManifestEntry[]): ArchiveManifestEntry {
    if (entries.length === 0) throw new TransportError(`${this.name}: the archive holds no image`);
    if (this.ref === undefined) {
      if (entries.length > 1) throw new TransportError(`${this.name}: the archive holds ${entries.length} images; name one with ${this.name}:REF or :@N`);
      return entries[0];
    }
    const at = /^@(\d+)$/.exec(this.ref);
    if (at) {
      const e = entries[Number(at[1])];
      if (!e) throw new TransportError(`${this.name}: no image @${at[1]} in the archive (it holds ${entries.length})`);
      return e;
    }
    let want: string;
    try {
      want = formatFamiliar(parseReference(this.ref));
    } catch (e) {
      throw new TransportError(`${this.name}: ${(e as Error).message}`);
    }
    const norm = (t: string) => {
      try {
        return formatFamiliar(parseReference(t));
      } catch {
        return undefined;
      }
    };
    const hits = entries.filter((e) => (e.RepoTags ?? []).some((t) => norm(t) === want));
    if (hits.length === 0) throw new TransportError(`${this.name}: no image tagged ${this.ref} in the archive`);
    return hits[0];
  }

  async child(): Promise<SourceTarget> {
    throw new TransportError(`${this.name}: a docker-archive holds no index`);
  }

  async blob(ref: BlobRef): Promise<Readable> {
    if (this.config && ref.digest === this.config.digest) return Readable.from([this.config.raw]);
    const l = this.layers.get(ref.digest);
    if (!l) throw new TransportError(`${this.name}: no blob ${ref.digest} in the archive`);
    const lie = (e: Error) =>
      new TransportError(`${this.name}: docker-archive lies about its layers: layer ${l.index + 1} (${l.entry.name}) does not match the config's diffID ${l.diffId}: ${e.message}`);
    const raw = this.index.stream(l.entry);
    const check = verifying({ digest: l.diffId, size: ref.size }, lie);
    if (l.compression === "none") {
      raw.on("error", (e) => check.destroy(e));
      return raw.pipe(check);
    }
    const dec = decompressor(l.compression);
    pipeline(raw, dec, check).catch((e) => {
      if (!check.destroyed) check.destroy(lie(e as Error));
    });
    return check;
  }

  async close(): Promise<void> {}
}

export async function dockerArchiveSource(name: string, file: string, ref: string | undefined): Promise<ImageSource> {
  let index: TarIndex;
  try {
    index = await TarIndex.open(file);
  } catch (e) {
    throw new TransportError(`${name}: ${isErrno(e, "ENOENT") ? "no such file" : (e as Error).message}`);
  }
  return new DockerArchiveSource(name, index, ref);
}

/** `docker-archive:FILE[:REF]` as a destination: one image, uncompressed layers, REF as its RepoTag. */
export class DockerArchiveDestination implements ImageDestination {
  readonly layers = "uncompressed" as const;
  readonly manifestFormat = "docker" as const;
  readonly acceptsIndex = false;
  private manifest: { config: Digest; layers: Digest[] } | undefined;

  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly spool: string,
    private readonly ref: Reference | undefined,
  ) {}

  static async create(name: string, file: string, ref: string | undefined): Promise<DockerArchiveDestination> {
    let parsed: Reference | undefined;
    if (ref !== undefined) {
      try {
        parsed = parseReference(ref);
      } catch (e) {
        throw new TransportError(`${name}: ${(e as Error).message}`);
      }
      if (parsed.digest) throw new TransportError(`${name}: a docker-archive names images by tag, not by digest`);
    }
    const spool = join(dirname(file), `.${basename(file)}.strata-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      await mkdir(spool, { mode: 0o700 });
    } catch (e) {
      throw new TransportError(`${name}: cannot write ${file}: ${isErrno(e, "ENOENT") ? `directory ${dirname(file)} does not exist` : (e as Error).message}`);
    }
    return new DockerArchiveDestination(name, file, spool, parsed);
  }

  async hasBlob(ref: BlobRef): Promise<boolean> {
    const st = await stat(join(this.spool, digestHex(ref.digest))).catch(() => undefined);
    return !!st && (ref.size < 0 || st.size === ref.size);
  }

  async putBlob(data: Readable, expect: PutBlobExpectation): Promise<{ digest: Digest; size: number }> {
    // the spool is private and temporary: only the archive written from it is made durable
    const r = await writeVerifiedTemp(this.spool, data, expect, { sync: false });
    await placeFile(r.tmp, join(this.spool, digestHex(r.digest)));
    return { digest: r.digest, size: r.size };
  }

  async putManifest(m: { raw: Buffer; mediaType: string }, opts: { top: boolean }): Promise<Digest> {
    const parsed = parseManifest(m.raw, m.mediaType);
    if (parsed.kind !== "manifest" || !opts.top) throw new TransportError(`${this.name}: a docker-archive holds one image, not an index`);
    this.manifest = { config: parsed.config.digest, layers: parsed.layers.map((l) => l.digest) };
    return digestOf(m.raw);
  }

  async commit(): Promise<void> {
    const m = this.manifest;
    if (!m) throw new Error("docker-archive commit without a manifest");
    const configName = `${digestHex(m.config)}.json`;
    const layerNames = m.layers.map((d) => `${digestHex(d)}.tar`);
    const tag = this.ref ? formatFamiliar(this.ref) : undefined;
    const manifestJson = JSON.stringify([{ Config: configName, RepoTags: tag ? [tag] : [], Layers: layerNames }]);
    await writeArchive(this.name, this.file, async (out) => {
      const pack = tar.pack();
      const writing = pipeline(pack, out);
      writing.catch(() => {});
      const add = (name: string, src: Buffer | string) =>
        new Promise<void>((resolve, reject) => {
          const isFile = typeof src === "string";
          if (!isFile) {
            pack.entry({ name, mode: 0o644, mtime: new Date(0) }, src, (e) => (e ? reject(e) : resolve()));
            return;
          }
          stat(src).then((st) => {
            const entry = pack.entry({ name, size: st.size, mode: 0o644, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
            pipeline(createReadStream(src), entry).catch(reject);
          }, reject);
        });
      try {
        await add(configName, join(this.spool, digestHex(m.config)));
        const done = new Set<string>();
        for (const [i, d] of m.layers.entries()) {
          if (done.has(layerNames[i])) continue;
          done.add(layerNames[i]);
          await add(layerNames[i], join(this.spool, digestHex(d)));
        }
        await add("manifest.json", Buffer.from(manifestJson));
        if (this.ref && tag && m.layers.length > 0) {
          const repo = tag.slice(0, tag.lastIndexOf(":"));
          await add("repositories", Buffer.from(JSON.stringify({ [repo]: { [this.ref.tag ?? "latest"]: digestHex(m.layers[m.layers.length - 1]) } })));
        }
        pack.finalize();
      } catch (e) {
        pack.destroy(e as Error);
        throw e;
      }
      await writing;
    });
    await rm(this.spool, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await rm(this.spool, { recursive: true, force: true });
  }
}
