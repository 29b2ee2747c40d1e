// tar-split NDJSON (the content of Docker's tar-split.json.gz), encoded byte for byte as
// tar-split's JSON packer (Go encoding/json) writes it:
//   {"type":2,"payload":"<base64>","position":N}                  raw tar bytes (segment)
//   {"type":1,"name":"…","name_raw":"…","size":N,"payload":…,"position":N}   file entry
// Field order type,name,name_raw,size,payload,position; name/name_raw/size omitted when empty/0;
// payload is the base64 of the 8-byte big-endian CRC-64/ISO of the content, or null without content.
// Names that are not valid UTF-8 go in name_raw. Strings are escaped like Go's encoder with HTML
// escaping (<, >, & as \u003c…, U+2028/U+2029, control characters as \u00XX except \n \r \t).
import { isUtf8 } from "node:buffer";

export const SEGMENT = 2;
export const FILE = 1;

const HEX = "0123456789abcdef";

/** JSON string literal exactly as Go's encoding/json (escapeHTML on, Go < 1.22) writes a valid UTF-8 string. */
export function goJsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) {
      if (c === 0x22) esc = '\\"';
      else if (c === 0x5c) esc = "\\\\";
      else if (c === 0x0a) esc = "\\n";
      else if (c === 0x0d) esc = "\\r";
      else if (c === 0x09) esc = "\\t";
      else if (c === 0x2028) esc = "\\u2028";
      else if (c === 0x2029) esc = "\\u2029";
      else esc = `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
    }
    if (esc !== undefined) {
      out += s.slice(start, i) + esc;
      start = i + 1;
    }
  }
  return `${out + s.slice(start)}"`;
}

export function segmentLine(payload: Buffer, position: number): string {
  return `{"type":2,"payload":"${payload.toString("base64")}","position":${position}}\n`;
}

export function fileLine(name: Buffer, size: number, crc: Buffer | null, position: number): string {
  let s = '{"type":1';
  if (name.length > 0) {
    if (isUtf8(name)) s += `,"name":${goJsonString(name.toString("utf8"))}`;
    else s += `,"name_raw":"${name.toString("base64")}"`;
  }
  if (size !== 0) s += `,"size":${size}`;
  s += crc ? `,"payload":"${crc.toString("base64")}"` : ',"payload":null';
  return `${s},"position":${position}}\n`;
}

const NEEDS_CLEAN = /(?:^|\/)\.{1,2}(?:\/|$)|\/\/./;

/** Go's path.Clean on raw bytes held in a latin1 string. */
export function goClean(p: string): string {
  if (p === "") return ".";
  // Fast path: no ".", ".." or empty components, so only trailing slashes can go.
  if (!NEEDS_CLEAN.test(p)) {
    let e = p.length;
    while (e > 1 && p.charCodeAt(e - 1) === 0x2f) e--;
    return e === p.length ? p : p.slice(0, e);
  }
  const rooted = p[0] === "/";
  const parts = p.split("/");
  const out: string[] = [];
  for (const part of parts) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const body = out.join("/");
  if (rooted) return `/${body}`;
  return body === "" ? "." : body;
}

export interface TarSplitEntry {
  type: number;
  /** Raw name bytes (from name or name_raw). */
  name?: Buffer;
  size: number;
  payload: Buffer | null;
  position: number;
}

/** Parses one NDJSON line. */
export function parseTarSplitLine(line: string): TarSplitEntry {
  const o = JSON.parse(line) as { type?: unknown; name?: unknown; name_raw?: unknown; size?: unknown; payload?: unknown; position?: unknown };
  if (o.type !== FILE && o.type !== SEGMENT) throw new Error(`tar-split: unknown entry type ${String(o.type)}`);
  const size = o.size === undefined ? 0 : o.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw new Error("tar-split: bad size");
  let name: Buffer | undefined;
  if (typeof o.name === "string" && o.name !== "") name = Buffer.from(o.name, "utf8");
  else if (typeof o.name_raw === "string" && o.name_raw !== "") name = Buffer.from(o.name_raw, "base64");
  let payload: Buffer | null = null;
  if (typeof o.payload === "string") payload = Buffer.from(o.payload, "base64");
  else if (o.payload !== null && o.payload !== undefined) throw new Error("tar-split: bad payload");
  return { type: o.type as number, name, size, payload, position: typeof o.position === "number" ? o.position : -1 };
}
