/**
 * A registry played by the test over raw TCP (node:net): it parses each request head and lets a
 * route write whatever bytes it likes (endless bodies, floods of interim responses, trickles),
 * so a client's limits can be tested against a peer that does not follow the rules. Images it
 * serves are built in memory (gzip layers of real tars, configs, manifests).
 */
import { createHash } from "node:crypto";
import net from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { compress, makeTar } from "./oci-build.js";

export interface HostileRequest {
  method: string;
  path: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  host: string;
}

/** A route: returns true when it handled the request (it owns the socket then). */
export type Route = (req: HostileRequest, s: net.Socket) => boolean | Promise<boolean>;

export interface HostileServer {
  /** `host:port` */
  host: string;
  port: number;
  url: string;
  requests: HostileRequest[];
  routes: Route[];
  close(): Promise<void>;
}

/** Writes and waits until the bytes are handed to the kernel (or the socket is gone). */
export function send(s: net.Socket, data: string | Buffer): Promise<void> {
  return new Promise((r) => {
    if (s.destroyed) return r();
    s.write(data, () => r());
  });
}

/** A complete response with a Content-Length body; the connection is closed after it. */
export async function reply(s: net.Socket, status: number, headers: Record<string, string>, body: Buffer | string = ""): Promise<void> {
  const b = Buffer.from(body);
  const lines = [`HTTP/1.1 ${status} X`, ...Object.entries({ ...headers, "Content-Length": String(b.length) }).map(([k, v]) => `${k}: ${v}`)];
  await send(s, Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), b]));
  s.end();
}

/** Writes `chunk` again and again until the peer goes away (an endless body). */
export async function endless(s: net.Socket, head: string, chunk: Buffer | string): Promise<void> {
  await send(s, head);
  const c = Buffer.from(chunk);
  while (!s.destroyed && s.writable) await send(s, c);
}

export async function startHostile(listenHost = "127.0.0.1"): Promise<HostileServer> {
  const sockets = new Set<net.Socket>();
  const requests: HostileRequest[] = [];
  const routes: Route[] = [];
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      s.resume();
      const [first, ...lines] = head.toString("latin1", 0, end).split("\r\n");
      const [method, path] = first.split(" ");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const c = l.indexOf(":");
        headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      const req = { method, path, headers, host: listenHost };
      requests.push(req);
      void (async () => {
        for (const r of routes) if (await r(req, s)) return;
        await reply(s, 404, { "Content-Type": "application/json" }, '{"errors":[{"code":"NOT_FOUND","message":"no route"}]}');
      })().catch(() => s.destroy());
    };
    s.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, listenHost, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `${listenHost}:${port}`,
    port,
    url: `http://${listenHost}:${port}`,
    requests,
    routes,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export interface MemImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  /** digest -> bytes (config and layers) */
  blobs: Map<string, Buffer>;
  layerDigests: string[];
}

/**
 * An OCI image in memory. `layers` distinct small gzip layers (or `layerCount` references to one
 * layer); `config` replaces the config bytes (diff_ids must then be right, or not, as the test wants).
 */
export async function memImage(o: { layers?: number; sameLayerTimes?: number; config?: (diffIds: string[]) => Buffer; layerBytes?: number } = {}): Promise<MemImage> {
  const blobs = new Map<string, Buffer>();
  const layers: { digest: string; size: number; diffId: string }[] = [];
  const distinct = o.sameLayerTimes ? 1 : (o.layers ?? 1);
  for (let i = 0; i < distinct; i++) {
    const tar = await makeTar([{ name: `f${i}.txt`, content: o.layerBytes ? Buffer.alloc(o.layerBytes, i + 1) : `layer ${i}\n` }]);
    const gz = compress(tar, "gzip");
    const d = sha256(gz);
    blobs.set(d, gz);
    layers.push({ digest: d, size: gz.length, diffId: sha256(tar) });
  }
  const all = o.sameLayerTimes ? Array.from({ length: o.sameLayerTimes }, () => layers[0]) : layers;
  const diffIds = all.map((l) => l.diffId);
  const config =
    o.config?.(diffIds) ?? Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIds }, config: {} }));
  const configDigest = sha256(config);
  blobs.set(configDigest, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: all.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
    }),
  );
  return { manifest, manifestDigest: sha256(manifest), config, configDigest, blobs, layerDigests: all.map((l) => l.digest) };
}

/** A route serving `img` as `<repo>:<tag>` (manifests and blobs; Range honoured), like a plain registry. */
export function serveImage(repo: string, tag: string, img: MemImage): Route {
  return async (req, s) => {
    if (req.path === `/v2/${repo}/manifests/${tag}` || req.path === `/v2/${repo}/manifests/${img.manifestDigest}`) {
      await reply(s, 200, { "Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": img.manifestDigest }, img.manifest);
      return true;
    }
    const m = new RegExp(`^/v2/${repo}/blobs/(sha256:[0-9a-f]{64})$`).exec(req.path);
    const blob = m && img.blobs.get(m[1]);
    if (blob) {
      const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      if (r) {
        const from = Number(r[1]);
        await reply(s, 206, { "Content-Range": `bytes ${from}-${blob.length - 1}/${blob.length}` }, blob.subarray(from));
      } else await reply(s, 200, { "Content-Type": "application/octet-stream" }, blob);
      return true;
    }
    return false;
  };
}

/** Samples the process's RSS every 20 ms while `p` runs; resolves with p's outcome and the peak growth. */
export async function peakRss<T>(p: Promise<T>): Promise<{ result: PromiseSettledResult<T>; growth: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, process.memoryUsage().rss);
      await delay(20);
    }
  })();
  const [result] = await Promise.allSettled([p]);
  done = true;
  await sampler;
  peak = Math.max(peak, process.memoryUsage().rss);
  return { result, growth: peak - base };
}
