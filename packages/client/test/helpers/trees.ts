/**
 * Lists a directory tree in the golden fixture's docker-trees.txt format (13 TAB-separated
 * fields: tree path type mode uid gid size target rdev nlink hlgroup mtime xattrs).
 */
import { execFileSync } from "node:child_process";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";

const FIXED_MTIME_NS = 1700000000n * 1000000000n;

function xattrsOf(root: string): Map<string, string> {
  // getfattr prints "# file: <path>" then name=0x<hex> lines, blank line between files.
  let out: string;
  try {
    out = execFileSync("getfattr", ["-R", "-P", "-d", "-m", "-", "-e", "hex", "--absolute-names", root], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch (e) {
    out = (e as { stdout?: string }).stdout ?? "";
  }
  const map = new Map<string, string>();
  let file = "";
  const pairs = new Map<string, string[]>();
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) {
      file = line.slice(8);
      pairs.set(file, []);
    } else if (line.includes("=") && file) {
      const eq = line.indexOf("=");
      const name = line.slice(0, eq);
      const hex = line.slice(eq + 1).replace(/^0x/, "");
      const value = Buffer.from(hex, "hex");
      const printable = [...value].every((b) => b >= 0x20 && b < 0x7f && b !== 0x2c && b !== 0x3d && b !== 0x5c);
      pairs.get(file)!.push(`${name}=${printable ? value.toString("latin1") : `0x${hex}`}`);
    }
  }
  for (const [f, p] of pairs) map.set(f, p.sort().join(","));
  return map;
}

export async function treeLines(tree: string, root: string): Promise<string[]> {
  const entries: { path: string; abs: string }[] = [{ path: ".", abs: root }];
  const walk = async (rel: string) => {
    for (const name of await readdir(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      entries.push({ path: r, abs: join(root, r) });
      if ((await lstat(join(root, r))).isDirectory()) await walk(r);
    }
  };
  await walk("");
  entries.sort((a, b) => (a.path === "." ? -1 : b.path === "." ? 1 : Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))));
  const xattrs = xattrsOf(root);
  const stats = new Map<string, Awaited<ReturnType<typeof lstat>> & { ino: bigint }>();
  const groups = new Map<bigint, string>();
  for (const e of entries) {
    const st = (await lstat(e.abs, { bigint: true })) as never as Awaited<ReturnType<typeof lstat>> & { ino: bigint };
    stats.set(e.path, st);
    if (st.isFile() && Number(st.nlink) > 1 && !groups.has(st.ino) && e.path !== ".") groups.set(st.ino, e.path);
  }
  const lines: string[] = [];
  for (const e of entries) {
    const st = stats.get(e.path)! as unknown as import("node:fs").BigIntStats;
    const type = st.isDirectory()
      ? "dir"
      : st.isFile()
        ? "file"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isCharacterDevice()
            ? "char"
            : st.isBlockDevice()
              ? "block"
              : st.isFIFO()
                ? "fifo"
                : "other";
    const mode = (Number(st.mode) & 0o7777).toString(8).padStart(4, "0");
    const size = type === "file" ? String(st.size) : "-";
    const target = type === "symlink" ? await readlink(e.abs) : "-";
    const rdevN = Number(st.rdev);
    const rdev = type === "char" || type === "block" ? `${(rdevN >> 8) & 0xfff}:${(rdevN & 0xff) | ((rdevN >> 12) & 0xfff00)}` : "-";
    const hl = type === "file" && Number(st.nlink) > 1 ? groups.get(st.ino)! : "-";
    const mtime = st.mtimeNs === FIXED_MTIME_NS ? "1700000000" : "*";
    const xa = xattrs.get(e.abs) || "-";
    lines.push([tree, e.path, type, mode, String(st.uid), String(st.gid), size, target, rdev, String(st.nlink), hl, mtime, xa].join("\t"));
  }
  return lines;
}
