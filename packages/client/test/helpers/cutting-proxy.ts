/**
 * A TCP proxy in front of a registry that breaks uploads: the first `times` PATCH requests are
 * cut after `cutAt` bytes (head included) by closing both connections. Every request line and head
 * (as far as the first packet holds it) is recorded.
 */
import net from "node:net";

export async function startCuttingProxy(upstreamPort: number, cutAt: number, times: number): Promise<{ host: string; lines: string[]; heads: string[]; stop(): Promise<void> }> {
  const lines: string[] = [];
  const heads: string[] = [];
  let left = times;
  const server = net.createServer((c) => {
    const u = net.connect(upstreamPort, "127.0.0.1");
    let first = true;
    let cut = false;
    let sent = 0;
    c.on("data", (d: Buffer) => {
      if (first) {
        first = false;
        lines.push(d.toString("latin1", 0, Math.max(0, d.indexOf("\r\n"))));
        heads.push(d.toString("latin1", 0, Math.max(0, d.indexOf("\r\n\r\n"))));
        if (left > 0 && d.toString("latin1", 0, 6) === "PATCH ") {
          left--;
          cut = true;
        }
      }
      if (cut) {
        const room = cutAt - sent;
        if (d.length >= room) {
          c.pause();
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
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

