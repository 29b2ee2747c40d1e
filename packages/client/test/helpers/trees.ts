/**
 * Lists a directory tree as lines of the golden fixture's docker-trees.txt (13 TAB-separated
 * fields: tree path type mode uid gid size target rdev nlink hlgroup mtime xattrs).
 * The row format itself lives in ../layer-helpers.ts (`listTree`).
 */
import { listTree } from "../layer-helpers.js";

export async function treeLines(tree: string, root: string): Promise<string[]> {
  return listTree(root).map((row) => [tree, ...row].join("\t"));
}
