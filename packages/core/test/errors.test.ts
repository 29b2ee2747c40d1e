/**
 * The OCI distribution-spec error codes ("Error Codes" table) with the HTTP status each is returned with,
 * and the error body shape: {"errors":[{"code":"<CODE>","message":"<text>","detail":<any>}]}.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allErrorCodes, type ErrorCode, ErrorCodes, lookupErrorCode, OciError, toErrorBody } from "../src/index.js";

const SPEC: Record<string, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  // returned when a pushed manifest references missing content: a bad request (spec: "MUST return 400")
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
};

describe("error code registry", () => {
  for (const [code, status] of Object.entries(SPEC)) {
    it(`${code} is registered with status ${status}`, () => {
      const d = lookupErrorCode(code);
      assert.ok(d, `${code} missing`);
      assert.equal(d.code, code);
      assert.equal(d.status, status);
      assert.ok(d.message.length > 0);
      assert.equal(ErrorCodes[code as ErrorCode], d);
      assert.ok(allErrorCodes().includes(d));
    });
  }

  it("codes are unique, upper-case and keyed by their own name", () => {
    const all = allErrorCodes();
    assert.equal(new Set(all.map((d) => d.code)).size, all.length);
    assert.equal(all.length, Object.keys(ErrorCodes).length);
    for (const [key, d] of Object.entries(ErrorCodes)) {
      assert.equal(d.code, key);
      assert.match(d.code, /^[A-Z_]+$/);
      assert.ok(d.status >= 400 && d.status <= 599, `${d.code} status ${d.status}`);
    }
  });

  it("descriptors are immutable", () => {
    const d = ErrorCodes.BLOB_UNKNOWN as { status: number };
    assert.throws(() => {
      d.status = 200;
    }, TypeError);
    assert.equal(ErrorCodes.BLOB_UNKNOWN.status, 404);
  });

  it("unknown codes are not found", () => {
    assert.equal(lookupErrorCode("NOT_A_CODE"), undefined);
    assert.equal(lookupErrorCode("blob_unknown"), undefined);
    assert.equal(lookupErrorCode(""), undefined);
  });
});

describe("OciError", () => {
  it("defaults status and message from the registry", () => {
    for (const code of Object.keys(SPEC) as ErrorCode[]) {
      const e = new OciError(code);
      assert.ok(e instanceof Error);
      assert.equal(e.name, "OciError");
      assert.equal(e.code, code);
      assert.equal(e.status, SPEC[code]);
      assert.equal(e.message, ErrorCodes[code].message);
      assert.equal(e.detail, undefined);
      assert.deepEqual(e.headers, {});
    }
  });

  it("takes message, detail, status, headers and cause", () => {
    const cause = new Error("root");
    const e = new OciError("TOOMANYREQUESTS", { message: "slow down", detail: { limit: 10 }, headers: { "Retry-After": "5" }, cause });
    assert.equal(e.message, "slow down");
    assert.deepEqual(e.detail, { limit: 10 });
    assert.equal(e.status, 429);
    assert.deepEqual(e.headers, { "Retry-After": "5" });
    assert.equal(e.cause, cause);
    assert.equal(new OciError("BLOB_UNKNOWN", { status: 400 }).status, 400);
  });
});

describe("toErrorBody", () => {
  it("renders one error as a one-element errors array without a detail key when there is none", () => {
    const body = toErrorBody(new OciError("MANIFEST_UNKNOWN"));
    assert.deepEqual(body, { errors: [{ code: "MANIFEST_UNKNOWN", message: ErrorCodes.MANIFEST_UNKNOWN.message }] });
    assert.equal("detail" in body.errors[0], false);
    assert.deepEqual(JSON.parse(JSON.stringify(body)), body);
  });

  it("renders several errors in order with their details", () => {
    const body = toErrorBody([
      new OciError("NAME_INVALID", { message: "bad name", detail: { name: "A" } }),
      new OciError("DIGEST_INVALID", { detail: "sha256:abc" }),
      new OciError("UNSUPPORTED", { detail: null }),
    ]);
    assert.deepEqual(body, {
      errors: [
        { code: "NAME_INVALID", message: "bad name", detail: { name: "A" } },
        { code: "DIGEST_INVALID", message: ErrorCodes.DIGEST_INVALID.message, detail: "sha256:abc" },
        { code: "UNSUPPORTED", message: ErrorCodes.UNSUPPORTED.message, detail: null },
      ],
    });
  });

  it("never includes status, headers or stack", () => {
    const body = toErrorBody(new OciError("DENIED", { headers: { "X-A": "b" }, detail: 1 }));
    assert.deepEqual(Object.keys(body), ["errors"]);
    assert.deepEqual(Object.keys(body.errors[0]).sort(), ["code", "detail", "message"]);
  });

  it("an empty list renders an empty errors array", () => {
    assert.deepEqual(toErrorBody([]), { errors: [] });
  });
});
