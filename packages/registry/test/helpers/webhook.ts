/**
 * A webhook receiver for notification tests, on a free loopback port. It records every
 * request (headers and parsed body) and answers according to its mode:
 *   ok      204 at once
 *   fail:N  500 to the first N requests, then 204
 *   hang    reads the request and never answers (the connection stays open)
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  headers: IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index the JSON freely
  body: any;
  at: number;
}

export interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** Requests that arrived and were not answered (mode hang). */
  readonly hanging: number;
  /** Resolves once `pred` holds for the received requests, or rejects after `timeoutMs`. */
  waitFor(pred: (r: Received[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(mode: "ok" | "hang" | `fail:${number}` = "ok"): Promise<Receiver> {
  const received: Received[] = [];
  const open: ServerResponse[] = [];
  let failures = mode.startsWith("fail:") ? Number(mode.slice(5)) : 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* recorded as text */
      }
      received.push({ headers: req.headers, body, at: Date.now() });
      if (mode === "hang") {
        open.push(res);
        return;
      }
      if (failures > 0) {
        failures--;
        res.statusCode = 500;
        res.end("try later");
        return;
      }
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    get hanging() {
      return open.filter((r) => !r.writableEnded).length;
    },
    async waitFor(pred, timeoutMs = 10_000, what = "the expected notifications") {
      const deadline = Date.now() + timeoutMs;
      while (!pred(received)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received ${received.length}: ${JSON.stringify(received.map((r) => r.body)).slice(0, 2000)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Every event of every distribution envelope received. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- event JSON
export function eventsOf(received: Received[]): any[] {
  return received.flatMap((r) => (r.body && Array.isArray(r.body.events) ? r.body.events : []));
}
