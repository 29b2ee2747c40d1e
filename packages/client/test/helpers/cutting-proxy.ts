/**
 * A TCP proxy in front of a registry that breaks uploads: the first `times` requests that stream
 * a blob's bytes (`streamsBlob`) are cut after `cutAt` bytes (head included) by closing both
 * connections. Every request line and head (as far as the first packet holds it) is recorded, and
 * the bytes each connection passed on to the registry (`bytes`, by the same index).
 */

import net from "node:net";
import { MONOLITHIC_MAX } from "../../src/registry/push.js";

/**
 * Whether a request head streams blob bytes to an upload session: a PATCH, or a PUT with more
 * than MONOLITHIC_MAX bytes (the client's whole-blob PUT; a smaller blob's PUT is not cut).
 */
export function streamsBlob(head: string): boolean {
  if (head.startsWith("PATCH ")) return true;
  const length = /\r\ncontent-length: (\d+)/i.exec(head);
  return /^PUT \S*\/blobs\/uploads\//.test(head) && length !== null && Number(length[1]) > MONOLITHIC_MAX;
}

export async function startCuttingProxy(
  upstreamPort: number,
  cutAt: number,
  times: number,
): Promise<{ host: string; lines: string[]; heads: string[]; bytes: number[]; stop(): Promise<void> }> {
  const lines: string[] = [];
  const heads: string[] = [];
  const bytes: number[] = [];
  let left = times;
  const server = net.createServer((c) => {
    const u = net.connect(upstreamPort, "127.0.0.1");
    let first = true;
    let cut = false;
    let sent = 0;
    let index = -1;
    c.on("data", (d: Buffer) => {
      if (first) {
        first = false;
        index = bytes.push(0) - 1;
        lines.push(d.toString("latin1", 0, Math.max(0, d.indexOf("\r\n"))));
        heads.push(d.toString("latin1", 0, Math.max(0, d.indexOf("\r\n\r\n"))));
        if (left > 0 && streamsBlob(heads[heads.length - 1])) {
          left--;
          cut = true;
        }
      }
      if (cut) {
        const room = cutAt - sent;
        if (d.length >= room) {
          c.pause();
          bytes[index] += room;
          u.write(d.subarray(0, room), () => {
            setTimeout(() => {
              u.destroy();
              c.destroy();
            }, 200);
          });
          sent = cutAt;
          return;
        }
        sent += d.length;
      }
      bytes[index] += d.length;
      u.write(d);
    });
    u.pipe(c);
    c.on("error", () => u.destroy());
    u.on("error", () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    lines,
    heads,
    bytes,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

