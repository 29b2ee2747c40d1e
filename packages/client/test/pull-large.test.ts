/**
 * Pull of an image with several layers of a few MiB each, end to end against a real
 * distribution registry: the worker-thread download path (rawhttp's reused 1 MiB buffers, the
 * synchronous verifier, the native gzip decoder's reused output buffer, extraction with
 * releaseChunks) over many chunks, odd chunk boundaries and HTTP Range resume.
 *
 * Layers: (1) gzip of random files of odd sizes with a hardlink, a symlink and a directory tree;
 * (2) gzip of highly compressible data (one network read inflates to many MiB); (3) two
 * concatenated gzip members (RFC 1952), split at an odd offset; (4) zstd; (5) uncompressed.
 * Everything is checked from first principles: file contents against the source bytes, diffIDs
 * against sha256 of the tars built here, chainIDs computed here, layerdb sizes from the source.
 * The pull is repeated through a proxy that re-frames blob responses as chunked (random chunk
 * sizes, random write splits), through one that cuts each large blob once (Range resume), via
 * the CLI through a proxy doing both, and through one that flips a byte of the big gzip blob.
 */
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { type IncomingMessage, request } from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { verifyStore } from "../src/commands/verify.js";
import type { PullEvent } from "../src/progress.js";
import { pull, type PullResult } from "../src/pull.js";
import { Store } from "../src/store/store.js";
import { type Distribution, distributionBlobPath, pushOciLayout, startDistribution } from "./helpers/distribution.js";
import { startFaultProxy } from "./helpers/fault-proxy.js";
import { type BuiltImage, type Compression, type FileSpec, makeTar, OciLayoutBuilder, sha256 } from "./helpers/oci-build.js";
import { runCli } from "./helpers/run-cli.js";
import { checkStore } from "./helpers/store-check.js";
import { missing } from "./helpers/tools.js";

const MiB = 1024 * 1024;
const FAST = { baseDelayMs: 5, maxDelayMs: 50 };
/** Where the proxies cut a large blob's body (bytes). */
const CUT = 1.5 * MiB;
const MTIME_MS = 1700000000 * 1000; // makeTar's fixed mtime
const hex = (d: string) => d.slice(7);

// ---------------------------------------------------------------------------------------------
// layer sources

interface Entry {
  name: string;
  type: "file" | "directory" | "symlink" | "link";
  content?: Buffer;
  linkname?: string;
  mode?: number;
}

interface LayerSpec {
  label: string;
  compression: Compression;
  entries: Entry[];
  /** Split the tar into two gzip members (only with gzip). */
  twoMembers?: boolean;
}

interface Layer extends LayerSpec {
  tar: Buffer;
  /** sha256 of `tar`, computed here. */
  diffId: string;
  /** The blob as the registry serves it (read back from its storage after the push). */
  blob: Buffer;
  digest: string;
  /** Offset of the second gzip member (twoMembers only). */
  secondMember?: number;
}

/** A buffer of `n` bytes repeating a `period`-byte text (compresses extremely well). */
function pattern(n: number, period: number): Buffer {
  const unit = Buffer.from("strata large layer pattern 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n".slice(0, period));
  return Buffer.alloc(n, unit);
}

function layerSpecs(): LayerSpec[] {
  return [
    {
      label: "gzip-random",
      compression: "gzip",
      entries: [
        { name: "rand/", type: "directory" },
        { name: "rand/big.bin", type: "file", content: randomBytes(3 * MiB + 12345) },
        { name: "rand/a/", type: "directory" },
        { name: "rand/a/one-mib-plus-one.bin", type: "file", content: randomBytes(MiB + 1) },
        { name: "rand/a/exact-mib.bin", type: "file", content: randomBytes(MiB) },
        { name: "rand/a/b/", type: "directory", mode: 0o750 },
        { name: "rand/a/b/small.bin", type: "file", content: randomBytes(777), mode: 0o600 },
        { name: "rand/a/b/c/", type: "directory" },
        { name: "rand/a/b/c/odd.bin", type: "file", content: randomBytes(2 * MiB - 511), mode: 0o755 },
        { name: "rand/a/b/c/empty", type: "file", content: Buffer.alloc(0) },
        { name: "rand/a/b/big-hardlink", type: "link", linkname: "rand/big.bin" },
        { name: "rand/a/b/c/to-big", type: "symlink", linkname: "../../../big.bin" },
        { name: "rand/tail.txt", type: "file", content: Buffer.from("the end\n") },
      ],
    },
    {
      label: "gzip-compressible",
      compression: "gzip",
      entries: [
        { name: "zeros/", type: "directory" },
        { name: "zeros/zero.bin", type: "file", content: Buffer.alloc(10 * MiB) },
        { name: "zeros/pattern.txt", type: "file", content: pattern(3 * MiB + 7, 61) },
        { name: "zeros/random-tail.bin", type: "file", content: randomBytes(100_003) },
      ],
    },
    {
      label: "gzip-two-members",
      compression: "gzip",
      twoMembers: true,
      entries: [
        { name: "multi/", type: "directory" },
        { name: "multi/part1.bin", type: "file", content: randomBytes(MiB + MiB / 2 + 999) },
        { name: "multi/sub/", type: "directory" },
        { name: "multi/sub/part2.bin", type: "file", content: randomBytes(MiB + 3) },
        { name: "multi/sub/note.txt", type: "file", content: Buffer.from("two gzip members\n") },
      ],
    },
    {
      label: "zstd",
      compression: "zstd",
      entries: [
        { name: "zst/", type: "directory" },
        { name: "zst/r1.bin", type: "file", content: randomBytes(2 * MiB + 17) },
        { name: "zst/text.txt", type: "file", content: pattern(MiB + 333, 47) },
        { name: "zst/r2.bin", type: "file", content: randomBytes(MiB + 4097) },
        { name: "zst/link-to-r1", type: "link", linkname: "zst/r1.bin" },
      ],
    },
    {
      label: "uncompressed",
      compression: "none",
      entries: [
        { name: "plain/", type: "directory" },
        { name: "plain/r.bin", type: "file", content: randomBytes(2 * MiB + MiB / 2 + 1) },
        { name: "plain/d/", type: "directory" },
        { name: "plain/d/e/", type: "directory" },
        { name: "plain/d/e/f.bin", type: "file", content: randomBytes(513) },
        { name: "plain/abs-link", type: "symlink", linkname: "/etc/hostname" },
        { name: "plain/empty", type: "file", content: Buffer.alloc(0) },
      ],
    },
  ];
}

/** The tar of a layer's entries (makeTar passes `type` through to tar-stream, which knows hardlinks as "link"). */
function tarOf(spec: LayerSpec): Promise<Buffer> {
  return makeTar(
    spec.entries.map((e): FileSpec => ({ name: e.name, type: e.type as string as FileSpec["type"], content: e.content, linkname: e.linkname, mode: e.mode })),
  );
}

/** Two gzip members (different levels), split at an odd offset that is not a tar block boundary. */
function twoMemberGzip(tar: Buffer): { blob: Buffer; firstMember: number } {
  const split = Math.floor(tar.length * 0.55) + 101;
  assert.notEqual(split % 512, 0);
  const a = gzipSync(tar.subarray(0, split), { level: 6 });
  const b = gzipSync(tar.subarray(split), { level: 1 });
  return { blob: Buffer.concat([a, b]), firstMember: a.length };
}

type Node = { type: "file"; sha: string; size: number; mode: number } | { type: "dir"; mode: number } | { type: "symlink"; target: string };

/** What the diff dir must hold, from the layer's source entries. */
function expectedTree(entries: Entry[]): [string, Node][] {
  const out = new Map<string, Node>();
  const files = new Map<string, Node>();
  for (const e of entries) {
    const name = e.name.replace(/\/$/, "");
    if (e.type === "directory") out.set(name, { type: "dir", mode: e.mode ?? 0o755 });
    else if (e.type === "symlink") out.set(name, { type: "symlink", target: e.linkname! });
    else if (e.type === "link") {
      const target = files.get(e.linkname!);
      assert.ok(target, `hardlink target ${e.linkname}`);
      out.set(name, target);
    } else {
      const n: Node = { type: "file", sha: sha256(e.content!), size: e.content!.length, mode: e.mode ?? 0o644 };
      files.set(name, n);
      out.set(name, n);
    }
  }
  return [...out.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1));
}

/** Docker's layerdb `size`: regular-file bytes (each inode once) plus symlink target lengths. */
function expectedSize(entries: Entry[]): number {
  let n = 0;
  for (const e of entries) {
    if (e.type === "file") n += e.content!.length;
    else if (e.type === "symlink") n += Buffer.byteLength(e.linkname!);
  }
  return n;
}

/** ChainIDs as the image spec defines them: chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]). */
function chainIdsOf(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

/** What is in a diff dir (regular files hashed), sorted by path. */
async function actualTree(dir: string): Promise<[string, Node][]> {
  const out: [string, Node][] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(dir, r);
      const st = await lstat(p);
      if (st.isDirectory()) {
        out.push([r, { type: "dir", mode: st.mode & 0o7777 }]);
        await walk(r);
      } else if (st.isSymbolicLink()) out.push([r, { type: "symlink", target: await readlink(p) }]);
      else if (st.isFile()) out.push([r, { type: "file", sha: sha256(await readFile(p)), size: st.size, mode: st.mode & 0o7777 }]);
      else out.push([r, { type: "symlink", target: `<unexpected file type ${st.mode.toString(8)}>` }]);
    }
  };
  await walk("");
  return out.sort((x, y) => (x[0] < y[0] ? -1 : 1));
}

// ---------------------------------------------------------------------------------------------
// a proxy that re-frames blob responses (chunked, random sizes and write splits), and can cut
// them or flip a byte

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ReframeOptions {
  /** Re-frame every blob response as `Transfer-Encoding: chunked`. */
  chunked?: boolean;
  /** Cut the first response of each of these blobs after `after` body bytes (inside a chunk when chunked). */
  cut?: { digests: string[]; after: number };
  /** Flip the byte at this offset of the blob (every response that carries it). */
  flip?: { digest: string; at: number };
}

interface ReframeProxy {
  host: string;
  seed: number;
  requests: { method: string; url: string; range?: string; status: number }[];
  /** Blob digests whose responses were re-framed as chunked. */
  reframed: Set<string>;
  /** Payload sizes of every chunk written. */
  chunkSizes: number[];
  /** Socket writes (each awaited, so small ones go out as separate segments), and those of 1..8 bytes. */
  writes: number;
  tinyWrites: number;
  /** Body bytes written before the cut, per blob. */
  cuts: Map<string, number>;
  flipped: number;
  stop(): Promise<void>;
}

/**
 * A plain-TCP proxy: one request per connection (answered with `Connection: close`), forwarded
 * to the registry with node:http; blob responses are written back re-framed, in writes of
 * random sizes (1 byte .. 64 KiB), each awaited.
 */
async function startReframingProxy(upstreamPort: number, opts: ReframeOptions): Promise<ReframeProxy> {
  const seed = randomInt(2 ** 31);
  const rnd = mulberry32(seed);
  const between = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const chunkSize = () => {
    const r = rnd();
    return r < 0.3 ? between(1, 16) : r < 0.6 ? between(17, 4096) : between(4097, 200 * 1024);
  };
  const writeSize = () => (rnd() < 0.25 ? between(1, 8) : between(9, 64 * 1024));
  const toCut = new Set(opts.cut?.digests ?? []);
  const sockets = new Set<net.Socket>();
  const proxy: ReframeProxy = {
    host: "",
    seed,
    requests: [],
    reframed: new Set(),
    chunkSizes: [],
    writes: 0,
    tinyWrites: 0,
    cuts: new Map(),
    flipped: 0,
    stop: async () => {},
  };

  const write = async (sock: net.Socket, data: Buffer): Promise<void> => {
    for (let off = 0; off < data.length; ) {
      const n = Math.min(writeSize(), data.length - off);
      const part = data.subarray(off, off + n);
      off += n;
      proxy.writes++;
      if (n <= 8) proxy.tinyWrites++;
      await new Promise<void>((resolve, reject) => sock.write(part, (e) => (e ? reject(e) : resolve())));
      if (rnd() < 0.02) await new Promise((r) => setTimeout(r, 1));
    }
  };

  const handle = async (sock: net.Socket, head: string): Promise<void> => {
    const [requestLine, ...lines] = head.split("\r\n");
    const [method, url] = requestLine.split(" ");
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const c = l.indexOf(":");
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    delete headers.connection;
    delete headers["keep-alive"];
    const rec = { method, url, range: headers.range as string | undefined, status: 0 };
    proxy.requests.push(rec);
    const upRes = await new Promise<IncomingMessage>((resolve, reject) => {
      const r = request({ host: "127.0.0.1", port: upstreamPort, method, path: url, headers, agent: false }, resolve);
      r.on("error", reject);
      r.end();
    });
    try {
      rec.status = upRes.statusCode ?? 502;
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url)?.[1];
      const hasBody = method !== "HEAD" && rec.status !== 204 && rec.status !== 304;
      const chunked = Boolean(opts.chunked && digest && hasBody);
      if (chunked) proxy.reframed.add(digest!);
      const out = [`HTTP/1.1 ${rec.status} ${upRes.statusMessage ?? ""}`];
      for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
        const k = upRes.rawHeaders[i];
        if (/^(connection|keep-alive|transfer-encoding)$/i.test(k) || (chunked && /^content-length$/i.test(k))) continue;
        out.push(`${k}: ${upRes.rawHeaders[i + 1]}`);
      }
      if (chunked) out.push("Transfer-Encoding: chunked");
      out.push("Connection: close");
      await write(sock, Buffer.from(`${out.join("\r\n")}\r\n\r\n`, "latin1"));

      const cutAt = digest && hasBody && toCut.delete(digest) ? opts.cut!.after : undefined;
      const range = /^bytes (\d+)-/.exec(String(upRes.headers["content-range"] ?? ""));
      let inOff = rec.status === 206 && range ? Number(range[1]) : 0; // blob offset of the next upstream byte
      let sent = 0; // body bytes written
      let pending: Buffer[] = [];
      let pendingLen = 0;
      let want = 1; // every re-framed body starts with a 1-byte chunk
      const take = (n: number): Buffer => {
        const all = pending.length === 1 ? pending[0] : Buffer.concat(pending);
        const rest = all.subarray(n);
        pending = rest.length ? [rest] : [];
        pendingLen = rest.length;
        return all.subarray(0, n);
      };
      const sizeLine = (n: number) => `${rnd() < 0.5 ? n.toString(16) : n.toString(16).toUpperCase()}${rnd() < 0.1 ? ";strata=1" : ""}\r\n`;
      /** Writes one chunk (or plain piece); false when the connection was cut. */
      const emit = async (data: Buffer): Promise<boolean> => {
        if (cutAt !== undefined && sent + data.length >= cutAt) {
          const part = data.subarray(0, cutAt - sent);
          await write(sock, chunked ? Buffer.concat([Buffer.from(sizeLine(data.length)), part]) : part);
          sent += part.length;
          proxy.cuts.set(digest!, sent);
          sock.destroy();
          return false;
        }
        if (chunked) proxy.chunkSizes.push(data.length);
        await write(sock, chunked ? Buffer.concat([Buffer.from(sizeLine(data.length)), data, Buffer.from("\r\n")]) : data);
        sent += data.length;
        return true;
      };
      for await (const c of upRes) {
        let piece = c as Buffer;
        if (opts.flip && digest === opts.flip.digest && opts.flip.at >= inOff && opts.flip.at < inOff + piece.length) {
          piece = Buffer.from(piece);
          piece[opts.flip.at - inOff] ^= 0xff;
          proxy.flipped++;
        }
        inOff += piece.length;
        if (!chunked && cutAt === undefined) {
          await write(sock, piece);
          sent += piece.length;
          continue;
        }
        pending.push(piece);
        pendingLen += piece.length;
        while (pendingLen >= want) {
          if (!(await emit(take(want)))) return;
          want = chunkSize();
        }
      }
      while (pendingLen > 0) {
        if (!(await emit(take(Math.min(want, pendingLen))))) return;
        want = chunkSize();
      }
      if (chunked) await write(sock, Buffer.from(rnd() < 0.5 ? "0\r\n\r\n" : "0\r\nX-Strata-Trailer: 1\r\n\r\n"));
      sock.end();
    } finally {
      upRes.destroy();
    }
  };

  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    sock.setNoDelay(true);
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      handle(sock, head.subarray(0, end).toString("latin1")).catch(() => sock.destroy());
    };
    sock.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  proxy.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((r) => {
      for (const sock of sockets) sock.destroy();
      server.close(() => r());
    });
  return proxy;
}

// ---------------------------------------------------------------------------------------------
// image build and push

/** Replaces layer `i`'s blob in an OCI layout written by OciLayoutBuilder (new manifest, index.json updated). */
async function replaceLayerBlob(dir: string, img: BuiltImage, i: number, blob: Buffer): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  const manifest = JSON.parse(await readFile(join(blobs, hex(img.manifestDigest)), "utf8")) as { layers: { digest: string; size: number }[] };
  const digest = sha256(blob);
  await writeFile(join(blobs, hex(digest)), blob);
  manifest.layers[i] = { ...manifest.layers[i], digest, size: blob.length };
  const raw = JSON.stringify(manifest);
  const md = sha256(raw);
  await writeFile(join(blobs, hex(md)), raw);
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: { digest: string; size: number }[] };
  index.manifests[0] = { ...index.manifests[0], digest: md, size: Buffer.byteLength(raw) };
  await writeFile(join(dir, "index.json"), JSON.stringify(index));
  img.blobDigests[i] = digest;
  img.manifestDigest = md;
  img.manifestSize = Buffer.byteLength(raw);
}

// ---------------------------------------------------------------------------------------------

describe("pull of large layers (several MiB: gzip random/compressible/two members, zstd, uncompressed)", { skip: missing("docker-registry", "skopeo", "zstd") }, () => {
  let reg: Distribution;
  let img: BuiltImage;
  let layers: Layer[];
  let chains: string[];
  let configSize: number;
  let ref: string;
  const REPO = "test/large";
  const TAG = "v1";
  const roots: string[] = [];
  let directRoot: string;
  const newRoot = async () => {
    const r = await mkdtemp(join(tmpdir(), "strata-large-"));
    roots.push(r);
    return r;
  };
  /** Layers whose blob is large enough to be cut at CUT. */
  const large = () => layers.filter((l) => l.blob.length > CUT + 256 * 1024);
  const shortId = (d: string) => hex(d).slice(0, 12);

  before(async () => {
    reg = await startDistribution();
    const specs = layerSpecs();
    const tars = await Promise.all(specs.map(tarOf));
    const secondMember = new Map<number, number>();
    const dir = await mkdtemp(join(tmpdir(), "strata-build-"));
    try {
      const b = new OciLayoutBuilder(dir);
      img = await b.image({ layers: specs.map((s, i) => ({ tar: tars[i], compression: s.compression })) });
      await b.finish(TAG, [img]);
      for (let i = 0; i < specs.length; i++) {
        if (!specs[i].twoMembers) continue;
        const { blob, firstMember } = twoMemberGzip(tars[i]);
        // a second gzip header right after the first member, and Node reads both members
        assert.deepEqual([...blob.subarray(firstMember, firstMember + 3)], [0x1f, 0x8b, 0x08]);
        assert.ok(gunzipSync(blob).equals(tars[i]));
        secondMember.set(i, firstMember);
        await replaceLayerBlob(dir, img, i, blob);
      }
      await pushOciLayout(dir, TAG, `${reg.host}/${REPO}:${TAG}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    ref = `${reg.host}/${REPO}:${TAG}`;
    layers = [];
    for (let i = 0; i < specs.length; i++) {
      const blob = await readFile(distributionBlobPath(reg.storage, hex(img.blobDigests[i])));
      assert.equal(sha256(blob), img.blobDigests[i], `registry copy of ${specs[i].label}`);
      layers.push({ ...specs[i], tar: tars[i], diffId: sha256(tars[i]), blob, digest: img.blobDigests[i], secondMember: secondMember.get(i) });
    }
    chains = chainIdsOf(layers.map((l) => l.diffId));
    configSize = (await readFile(distributionBlobPath(reg.storage, hex(img.configDigest)))).length;
    // the premises of the test
    const total = layers.reduce((n, l) => n + l.tar.length, 0);
    assert.ok(total > 25 * MiB && total < 40 * MiB, `total ${total}`);
    const compressible = layers.find((l) => l.label === "gzip-compressible")!;
    assert.ok(compressible.tar.length > 12 * MiB && compressible.blob.length < 256 * 1024, `${compressible.tar.length} -> ${compressible.blob.length}`);
    assert.equal(layers[0].compression, "gzip");
    assert.ok(layers[0].blob.length > 6 * MiB);
    assert.deepEqual(
      large().map((l) => l.label),
      ["gzip-random", "gzip-two-members", "zstd", "uncompressed"],
    );
    assert.ok(layers.find((l) => l.label === "uncompressed")!.blob.equals(layers.find((l) => l.label === "uncompressed")!.tar));
  });

  after(async () => {
    await reg?.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  /** Checks a store root against the sources (not against anything the client computed). */
  async function assertStore(root: string, host: string): Promise<void> {
    const layerdb = join(root, "image/overlay2/layerdb/sha256");
    assert.deepEqual((await readdir(layerdb)).sort(), chains.map(hex).sort());
    for (let i = 0; i < layers.length; i++) {
      const l = layers[i];
      const entry = join(layerdb, hex(chains[i]));
      assert.equal(await readFile(join(entry, "diff"), "utf8"), l.diffId, `${l.label}: layerdb diff`);
      assert.equal(await readFile(join(entry, "size"), "utf8"), String(expectedSize(l.entries)), `${l.label}: layerdb size`);
      if (i === 0) await assert.rejects(readFile(join(entry, "parent")), { code: "ENOENT" });
      else assert.equal(await readFile(join(entry, "parent"), "utf8"), chains[i - 1], `${l.label}: parent`);
      const cacheId = await readFile(join(entry, "cache-id"), "utf8");
      const diff = join(root, "overlay2", cacheId, "diff");
      assert.deepEqual(await actualTree(diff), expectedTree(l.entries), `${l.label}: diff dir content`);
      for (const e of l.entries) {
        const st = await lstat(join(diff, e.name));
        if (e.type === "link") {
          const target = await lstat(join(diff, e.linkname!));
          assert.equal(st.ino, target.ino, `${l.label}: ${e.name} is a hardlink of ${e.linkname}`);
          assert.equal(st.nlink, 2);
        } else if (e.type !== "symlink") {
          assert.equal(st.mtimeMs, MTIME_MS, `${l.label}: mtime of ${e.name}`);
        }
      }
    }
    const checks = await verifyStore(await Store.open(root));
    assert.equal(checks.length, 1);
    assert.equal(checks[0].id, img.configDigest);
    assert.deepEqual(
      checks[0].layers.map((c) => [c.chainId, c.diffId, c.ok, c.bytes, c.error]),
      layers.map((l, i) => [chains[i], l.diffId, true, l.tar.length, undefined]),
    );
    assert.ok(checks[0].ok);
    assert.deepEqual(await checkStore(root), []);
    const repos = JSON.parse(await readFile(join(root, "image/overlay2/repositories.json"), "utf8")) as { Repositories: Record<string, Record<string, string>> };
    assert.equal(repos.Repositories[`${host}/${REPO}`]?.[`${host}/${REPO}:${TAG}`], img.configDigest);
  }

  function assertResult(r: PullResult): void {
    assert.equal(r.imageId, img.configDigest);
    assert.equal(r.manifestDigest, img.manifestDigest);
    assert.deepEqual(
      r.layers.map((l) => [l.digest, l.diffId, l.chainId, l.status, l.size]),
      layers.map((l, i) => [l.digest, l.diffId, chains[i], "pulled", expectedSize(l.entries)]),
    );
  }

  /** tar-split of every layer is byte-identical to the direct pull's. */
  async function assertSameTarSplit(root: string): Promise<void> {
    for (const c of chains) {
      const p = (r: string) => join(r, "image/overlay2/layerdb/sha256", hex(c), "tar-split.json.gz");
      assert.ok(gunzipSync(await readFile(p(root))).equals(gunzipSync(await readFile(p(directRoot)))), `tar-split of ${c}`);
    }
  }

  it("pulls the image directly: file contents, diffIDs, chainIDs, sizes, verify and store check from the sources", async () => {
    directRoot = await newRoot();
    const events: PullEvent[] = [];
    const r = await pull(ref, { root: directRoot, progress: { event: (e) => events.push(e), stop() {} } });
    assertResult(r);
    await assertStore(directRoot, reg.host);
    assert.deepEqual(
      events.filter((e) => e.type === "resume"),
      [],
    );
    // every layer reported its whole blob read, then completion
    for (const l of layers) {
      const mine = events.filter((e) => e.type === "layer" && e.id === shortId(l.digest));
      assert.ok(mine.some((e) => e.type === "layer" && e.status === "extracting" && e.current === l.blob.length), l.label);
      const last = mine.at(-1);
      assert.equal(last?.type === "layer" ? last.status : undefined, "complete", l.label);
    }
  });

  it("gets the same result when every blob response is re-framed as chunked with random chunk sizes and write splits", async (t) => {
    const proxy = await startReframingProxy(reg.port, { chunked: true });
    t.diagnostic(`proxy seed ${proxy.seed}`);
    try {
      const root = await newRoot();
      const r = await pull(`${proxy.host}/${REPO}:${TAG}`, { root, retry: FAST });
      assertResult(r);
      await assertStore(root, proxy.host);
      await assertSameTarSplit(root);
      // the framing really was exercised: every layer blob (and the config) came chunked, no retries
      for (const d of [img.configDigest, ...layers.map((l) => l.digest)]) assert.ok(proxy.reframed.has(d), `${d} not re-framed (seed ${proxy.seed})`);
      const blobGets = proxy.requests.filter((q) => q.url.includes("/blobs/"));
      assert.deepEqual(
        blobGets.map((q) => [q.status, q.range]),
        [img.configDigest, ...layers.map((l) => l.digest)].map(() => [200, undefined]),
      );
      assert.ok(Math.min(...proxy.chunkSizes) === 1, `seed ${proxy.seed}`);
      assert.ok(proxy.chunkSizes.filter((n) => n <= 16).length > 20, `seed ${proxy.seed}`);
      assert.ok(Math.max(...proxy.chunkSizes) > 150 * 1024, `seed ${proxy.seed}`);
      // every payload byte of the config and the layer blobs went through a chunk, once
      assert.equal(
        proxy.chunkSizes.reduce((a, b) => a + b, 0),
        configSize + layers.reduce((n, l) => n + l.blob.length, 0),
      );
      t.diagnostic(`${proxy.chunkSizes.length} chunks, ${proxy.writes} writes (${proxy.tinyWrites} of 1..8 bytes)`);
      assert.ok(proxy.writes > 2 * proxy.chunkSizes.length, `${proxy.writes} writes`);
      assert.ok(proxy.tinyWrites > 100, `${proxy.tinyWrites} tiny writes`);
    } finally {
      await proxy.stop();
    }
  });

  it("resumes each large blob with Range after the connection is cut mid-way (fault proxy) and gets the same result", async () => {
    const proxy = await startFaultProxy(reg.port);
    try {
      // the zstd blob's resumed request reaches the registry without its Range (a registry that
      // ignores Range: the client drops what it already has from the full body)
      const zstd = layers.find((l) => l.label === "zstd")!;
      for (const l of large()) proxy.faults.push({ match: new RegExp(`/blobs/${l.digest}$`), cutAfter: CUT, times: 1 });
      proxy.faults.push({ match: new RegExp(`/blobs/${zstd.digest}$`), dropRange: true, times: 1 });
      const root = await newRoot();
      const events: PullEvent[] = [];
      const r = await pull(`${proxy.host}/${REPO}:${TAG}`, { root, retry: FAST, progress: { event: (e) => events.push(e), stop() {} } });
      assertResult(r);
      assert.deepEqual(
        r.layers.map((l) => l.chainId),
        chains,
      );
      assert.ok(proxy.faults.every((f) => f.times === 0), "every cut happened");
      const resumes = events.filter((e): e is Extract<PullEvent, { type: "resume" }> => e.type === "resume");
      assert.deepEqual(resumes.map((e) => e.id).sort(), large().map((l) => shortId(l.digest)).sort());
      for (const l of layers) {
        const reqs = proxy.requests.filter((q) => q.url.endsWith(`/blobs/${l.digest}`));
        const resume = resumes.find((e) => e.id === shortId(l.digest));
        if (!large().includes(l)) {
          assert.deepEqual(
            reqs.map((q) => q.range),
            [undefined],
            l.label,
          );
          continue;
        }
        assert.ok(resume && resume.offset > 0 && resume.offset <= CUT, `${l.label}: resume at ${resume?.offset}`);
        assert.deepEqual(
          reqs.map((q) => q.range),
          [undefined, `bytes=${resume.offset}-`],
          l.label,
        );
      }
      await assertStore(root, proxy.host);
      await assertSameTarSplit(root);
    } finally {
      await proxy.stop();
    }
  });

  it("CLI: chunked re-framing with a cut inside a chunk of each large blob resumes (206 re-framed too) and prints the resumes", async (t) => {
    const proxy = await startReframingProxy(reg.port, { chunked: true, cut: { digests: large().map((l) => l.digest), after: CUT } });
    t.diagnostic(`proxy seed ${proxy.seed}`);
    try {
      const root = await newRoot();
      const cliRef = `${proxy.host}/${REPO}:${TAG}`;
      const res = await runCli(["pull", cliRef, "--root", root]);
      assert.equal(res.code, 0, `${res.stderr} (seed ${proxy.seed})`);
      const lines = res.stdout.trimEnd().split("\n");
      assert.equal(lines[0], `${TAG}: Pulling from ${REPO}`);
      for (const l of layers) {
        const id = shortId(l.digest);
        assert.ok(lines.includes(`${id}: Pull complete`), `${l.label}\n${res.stdout}`);
        const resumed = lines.filter((x) => x.startsWith(`${id}: Resuming download at `));
        assert.equal(resumed.length, large().includes(l) ? 1 : 0, `${l.label}\n${res.stdout}`);
      }
      assert.deepEqual(lines.slice(-3), [`Digest: ${img.manifestDigest}`, `Status: Downloaded newer image for ${cliRef}`, cliRef]);
      for (const l of large()) {
        assert.equal(proxy.cuts.get(l.digest), CUT, l.label);
        const reqs = proxy.requests.filter((q) => q.url.endsWith(`/blobs/${l.digest}`));
        assert.equal(reqs.length, 2, l.label);
        assert.deepEqual([reqs[0].status, reqs[0].range], [200, undefined]);
        const m = /^bytes=(\d+)-$/.exec(reqs[1].range ?? "");
        assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= CUT, `${l.label}: ${reqs[1].range}`);
        assert.equal(reqs[1].status, 206);
      }
      await assertStore(root, proxy.host);
      await assertSameTarSplit(root);
    } finally {
      await proxy.stop();
    }
  });

  /** Pulls through `proxy`, which flips the byte at `at` of layer `l`: the pull fails with the layer's digest mismatch. */
  const assertFlippedPullFails = async (proxy: ReframeProxy, root: string, l: Layer, at: number) => {
    const flipped = Buffer.from(l.blob);
    flipped[at] ^= 0xff;
    await assert.rejects(pull(`${proxy.host}/${REPO}:${TAG}`, { root, retry: FAST }), (e: Error) => {
      assert.equal(e.message, `layer ${l.digest}: digest mismatch: expected ${l.digest}, got ${sha256(flipped)}`);
      return true;
    });
    assert.equal(proxy.flipped, 1);
  };

  it("a byte flipped in the middle of the big gzip blob fails the pull naming the layer; nothing is committed", async () => {
    const l = layers[0];
    const at = Math.floor(l.blob.length / 2);
    const proxy = await startReframingProxy(reg.port, { flip: { digest: l.digest, at } });
    try {
      const root = await newRoot();
      await assertFlippedPullFails(proxy, root, l, at);
      assert.deepEqual(await readdir(join(root, "image/overlay2/layerdb/sha256")).catch(() => []), []);
      assert.deepEqual(await readdir(join(root, "image/overlay2/imagedb/content/sha256")).catch(() => []), []);
      const repos = await readFile(join(root, "image/overlay2/repositories.json"), "utf8").catch(() => undefined);
      if (repos !== undefined && repos.trim() !== "") {
        const parsed = JSON.parse(repos) as { Repositories?: Record<string, unknown> };
        assert.deepEqual(parsed.Repositories ?? {}, {});
      }
      assert.deepEqual(
        (await readdir(join(root, "overlay2")).catch(() => [] as string[])).filter((n) => n !== "l"),
        [],
      );
      assert.deepEqual(await readdir(join(root, "image/overlay2/layerdb/tmp")).catch(() => []), []);
      assert.deepEqual(await checkStore(root), []);
      // the same root then pulls cleanly
      const r = await pull(ref, { root });
      assertResult(r);
      await assertStore(root, reg.host);
    } finally {
      await proxy.stop();
    }
  });

  it("a flipped gzip magic at the start of the second member fails decoding mid-blob; the digest mismatch is reported", async () => {
    const i = layers.findIndex((l) => l.twoMembers);
    const l = layers[i];
    const at = l.secondMember!;
    assert.equal(l.blob[at], 0x1f);
    const proxy = await startReframingProxy(reg.port, { chunked: true, flip: { digest: l.digest, at } });
    try {
      const root = await newRoot();
      await assertFlippedPullFails(proxy, root, l, at);
      // layers below it may be committed (commits are in order); it and the ones above are not, nor the image
      const committed = await readdir(join(root, "image/overlay2/layerdb/sha256")).catch(() => [] as string[]);
      for (const c of chains.slice(i)) assert.ok(!committed.includes(hex(c)), `layer ${c} committed`);
      assert.ok(committed.every((c) => chains.slice(0, i).map(hex).includes(c)), committed.join(","));
      assert.deepEqual(await readdir(join(root, "image/overlay2/imagedb/content/sha256")).catch(() => []), []);
      assert.deepEqual(await (await Store.open(root)).readRepositories(), {});
      assert.deepEqual(await checkStore(root), []);
    } finally {
      await proxy.stop();
    }
  });

  it(
    "a chunked blob response cut after its last payload byte (before the terminating chunk) still pulls",
    async () => {
      const l = layers[0];
      const proxy = await startReframingProxy(reg.port, { chunked: true, cut: { digests: [l.digest], after: l.blob.length } });
      try {
        const root = await newRoot();
        const r = await pull(`${proxy.host}/${REPO}:${TAG}`, { root, retry: FAST });
        assert.equal(proxy.cuts.get(l.digest), l.blob.length);
        assertResult(r);
        assert.deepEqual(
          proxy.requests.filter((q) => q.status === 416),
          [],
        );
        await assertStore(root, proxy.host);
      } finally {
        await proxy.stop();
      }
    },
  );
});
