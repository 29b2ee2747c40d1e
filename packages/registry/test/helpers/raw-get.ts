/**
 * One HTTP(S) request on a fresh connection with its whole answer, and whether that answer
 * arrived whole: for tests of blob bodies that a server may cut short on purpose (a changed or
 * unverified file is never served whole). Certificates are not checked (test servers).
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The response ended cleanly with as many bytes as announced. */
  complete: boolean;
}

export function rawGet(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<RawResponse> {
  const req = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = req(url, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (complete: boolean) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete });
      };
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish(res.complete));
      res.on("error", () => finish(false));
      res.on("aborted", () => finish(false));
      res.on("close", () => finish(res.complete));
    });
    r.on("error", reject);
    r.end();
  });
}
