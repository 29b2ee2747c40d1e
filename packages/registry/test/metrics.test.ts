import assert from "node:assert/strict";
import { describe, it } from "node:test";
import request from "supertest";
import { createRegistry } from "../src/app.js";
import { parseConfig } from "../src/config.js";

describe("GET /metrics", () => {
  it("counts requests by resource, method and status in Prometheus text format, without repository names", async () => {
    const reg = await createRegistry(parseConfig({ storage: { driver: "memory" }, log: { level: "silent" } }));
    try {
      const app = reg.app.callback();
      await request(app).get("/v2/");
      await request(app)
        .get(`/v2/secret-team/app/blobs/sha256:${"0".repeat(64)}`)
        .expect(404);
      const res = await request(app).get("/metrics").expect(200);
      assert.match(res.headers["content-type"], /^text\/plain/);
      assert.match(res.text, /strata_http_requests_total\{resource="base",method="GET",status="200"\} 1/);
      assert.match(res.text, /strata_http_requests_total\{resource="blobs",method="GET",status="404"\} 1/);
      assert.match(res.text, /strata_http_request_duration_seconds_bucket/);
      assert.doesNotMatch(res.text, /secret-team/);
    } finally {
      await reg.close();
    }
  });
});
