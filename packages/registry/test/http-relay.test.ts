/**
 * The native relay of object-store responses (http/relay.ts): exactly the announced bytes go to
 * the client, in order, including those Node had read already; a source that ends short fails
 * the client's response; a source that sends more than announced is cut at the announced size;
 * a response that does not qualify is sent through the fallback stream.
 * Real sockets: a raw TCP "store" and an HTTP server relaying its responses.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { get, createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { relayBody, relayStats } from "../src/http/relay.js";
import { rawGet } from "./helpers/raw-get.js";

const MiB = 1024 * 1024;

/** What the store answers: the announced length, the bytes sent, and an optional transfer coding. */
interface StoreAnswer {
  announced: number;
  bytes: Buffer;
  /** The blob's size the relay is asked for (default: the announced length). */
  size?: number;
  chunked?: boolean;
}

describe("native relay of store responses", { skip: process.platform !== "linux" ? "Linux only" : false }, () => {
  let store: TcpServer;
  let relay: Server;
  let storeUrl = "";
  let relayUrl = "";
  const answers = new Map<string, StoreAnswer>();
  let fallbacks = 0;

  before(async () => {
    store = createTcpServer((sock: Socket) => {
      sock.on("error", () => {}); // the relay closes the connection when done
      sock.once("data", (d) => {
        const path = d.toString().split(" ")[1];
        const a = answers.get(path)!;
        const head = a.chunked
          ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          : `HTTP/1.1 200 OK\r\nContent-Length: ${a.announced}\r\n\r\n`;
        const body = a.chunked ? Buffer.concat([Buffer.from(`${a.bytes.length.toString(16)}\r\n`), a.bytes, Buffer.from("\r\n0\r\n\r\n")]) : a.bytes;
        // The head and the first bytes in one write, so Node has body bytes before the relay starts.
        sock.write(Buffer.concat([Buffer.from(head), body.subarray(0, 1000)]));
        setTimeout(() => sock.end(body.subarray(1000)), 50);
      });
    });
    await new Promise<void>((r) => store.listen(0, "127.0.0.1", r));
    storeUrl = `http://127.0.0.1:${(store.address() as { port: number }).port}`;
    relay = createHttpServer((req, res) => {
      const path = req.url!;
      const a = answers.get(path)!;
      const size = a.size ?? a.announced;
      get(`${storeUrl}${path}`, (msg: IncomingMessage) => {
        // Wait until Node has read some of the body, as the SDK's response usually has.
        setTimeout(() => {
          res.setHeader("Content-Length", String(size));
          const body = relayBody(res, {
            response: msg,
            size,
            fallback: () => {
              fallbacks++;
              return msg;
            },
          });
          body.on("error", () => res.destroy());
          body.pipe(res);
        }, 20);
      }).on("error", () => res.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    relayUrl = `http://127.0.0.1:${(relay.address() as { port: number }).port}`;
  });
  after(async () => {
    relay.closeAllConnections();
    await new Promise((r) => relay.close(r));
    await new Promise((r) => store.close(r));
  });

  it("relays exactly the announced bytes, those Node read first included", async () => {
    const bytes = randomBytes(5 * MiB + 7);
    answers.set("/whole", { announced: bytes.length, bytes });
    const before = { ...relayStats };
    const res = await rawGet(`${relayUrl}/whole`);
    assert.equal(res.status, 200);
    assert.ok(res.complete && res.body.equals(bytes), "the client got the store's bytes whole");
    assert.equal(relayStats.responses, before.responses + 1);
    assert.equal(relayStats.bytes, before.bytes + bytes.length);
  });

  it("a store that ends short fails the client's response", async () => {
    const bytes = randomBytes(3 * MiB);
    answers.set("/short", { announced: bytes.length + 10, bytes });
    // The store closes 10 bytes before the length it announced (the blob's size).
    const before = relayStats.responses;
    const res = await rawGet(`${relayUrl}/short`);
    assert.ok(!res.complete, "the response is cut");
    assert.ok(res.body.length <= bytes.length);
    assert.equal(relayStats.responses, before + 1, "relayed");
  });

  it("a store that sends more than announced: exactly the announced bytes go out", async () => {
    const bytes = randomBytes(2 * MiB);
    answers.set("/long", { announced: 2 * MiB - 5, bytes });
    const before = relayStats.responses;
    const res = await rawGet(`${relayUrl}/long`);
    assert.ok(res.complete && res.body.equals(bytes.subarray(0, 2 * MiB - 5)));
    assert.equal(relayStats.responses, before + 1, "relayed");
  });

  it("a store response of another length than the blob's is not relayed", async () => {
    const bytes = randomBytes(MiB);
    answers.set("/other", { announced: bytes.length, bytes, size: bytes.length + 1 });
    const before = { responses: relayStats.responses, fallbacks };
    const res = await rawGet(`${relayUrl}/other`);
    assert.ok(!res.complete);
    assert.equal(relayStats.responses, before.responses);
    assert.equal(fallbacks, before.fallbacks + 1);
  });

  it("a chunked store response is not relayed: the fallback sends it", async () => {
    const bytes = randomBytes(MiB);
    answers.set("/chunked", { announced: 0, bytes, chunked: true, size: bytes.length });
    const before = { responses: relayStats.responses, fallbacks };
    const res = await rawGet(`${relayUrl}/chunked`);
    assert.ok(res.complete && res.body.equals(bytes));
    assert.equal(relayStats.responses, before.responses);
    assert.equal(fallbacks, before.fallbacks + 1);
  });

  it("a body destroyed before it starts releases the store's response", async () => {
    const msg = new Readable({ read() {} });
    const body = relayBody({} as never, { response: msg, size: 1, fallback: () => msg });
    body.destroy();
    await new Promise((r) => setImmediate(r));
    assert.ok(msg.destroyed);
  });
});
