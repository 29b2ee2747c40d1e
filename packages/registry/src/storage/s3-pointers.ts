/**
 * Pointer objects: how the S3 driver moves a large object without copying its bytes.
 *
 * S3 has no rename, and a multipart upload completes at the key it was created for. A chunked
 * blob upload is written before its digest (and so its final key) is known, so moving it to
 * the blob's key used to cost a server-side copy of every byte (0.48x raw PutObject for a
 * 256 MiB chunked push on Swift). Instead, a resumable writer for driver key K uploads its
 * parts to a physical object outside the key tree and, on commit, writes at K a pointer: an
 * empty object whose metadata names the physical object and its size. `move` then rewrites
 * only the pointer. When the destination is known before the commit (a verified blob upload),
 * `commitTo` writes the pointer straight at the destination and none at K (s3-writer.ts).
 *
 *   <root>v2/.../K                          pointer: empty body, metadata
 *                                             strata-target = <physical object key>
 *                                             strata-size   = bytes of the physical object
 *   <root>~strata-objects/v2/.../K~<hex>    physical object (multipart upload completed here);
 *                                             its name records the key it was written for
 *   <root>~strata-objects/v2/.../K~<hex>~ref  owner record: the driver key whose pointer owns
 *                                             the physical object after a move or a commitTo
 *
 * "~" is outside the key grammar, so no driver key reaches these objects and lists skip them.
 *
 * Ownership: the owner of a physical object is the key named by its owner record, else the key
 * named in its own name. Deleting a pointer deletes its physical object only when the pointer's
 * key is the owner, so deleting an upload's leftover pointer never deletes bytes a blob pointer
 * uses. A move writes, in this order: the owner record (new owner = destination), the pointer
 * at the destination, then removes the source pointer; a crash between any two steps leaves the
 * bytes referenced by at least one pointer, or by none (then they are an orphan). A commitTo
 * (destination D) writes the owner record (owner = D) beside the completion of the multipart
 * upload, then the pointer at D, then removes the writer's state: a crash before the completion
 * leaves the upload resumable (its early owner record, once stale and without physical object,
 * goes with the sweep); after it, the writer's state names a completed upload, and resuming the
 * writer finishes the commit (at D's pointer if it exists, else with a pointer at K; the owner
 * record naming D stays, so deleting K then leaves the bytes to the sweep).
 *
 * Orphans (a crash between completing a physical object and writing its pointer, a pointer
 * overwritten by another object, a move interrupted before its destination pointer) are removed
 * by `sweepOrphans` once older than a grace period: a physical object is kept while its owner's
 * key, or the key in its name, holds a pointer to it; an owner record is kept while its physical
 * object exists.
 */
import { randomBytes } from "node:crypto";

/** Marks the tree of physical objects, just below the driver's root. */
export const PHYSICAL_DIR = "~strata-objects";
/** Suffix of a physical object's owner record. */
export const OWNER_SUFFIX = "~ref";
/** Metadata names of a pointer (S3 returns user metadata names in lower case). */
export const META_TARGET = "strata-target";
export const META_SIZE = "strata-size";

export interface Pointer {
  /** Object key of the physical object. */
  readonly target: string;
  readonly size: number;
}

/** A new physical object key for the writer of driver key `key` under `root` ("" or "prefix/"). */
export function physicalKeyFor(root: string, key: string): string {
  return `${root}${PHYSICAL_DIR}${key}~${randomBytes(8).toString("hex")}`;
}

/** Object key prefix of every physical object written for driver key `key` or keys below it. */
export function physicalPrefixOf(root: string, key: string): string {
  return `${root}${PHYSICAL_DIR}${key}`;
}

/** Whether an object key is a physical object (not an owner record). */
export function isPhysicalKey(root: string, objectKey: string): boolean {
  return objectKey.startsWith(`${root}${PHYSICAL_DIR}/`) && !objectKey.endsWith(OWNER_SUFFIX) && /~[0-9a-f]{16}$/.test(objectKey);
}

/** The driver key a physical object was written for (from its name). */
export function writtenFor(root: string, physical: string): string {
  return physical.slice(`${root}${PHYSICAL_DIR}`.length, physical.lastIndexOf("~"));
}

export function ownerRecordOf(physical: string): string {
  return `${physical}${OWNER_SUFFIX}`;
}

/** Metadata to store on a pointer. */
export function pointerMetadata(p: Pointer): Record<string, string> {
  return { [META_TARGET]: p.target, [META_SIZE]: String(p.size) };
}

/** The pointer described by an object's metadata, or undefined for an ordinary object. */
export function pointerFrom(metadata: Record<string, string> | undefined): Pointer | undefined {
  const target = metadata?.[META_TARGET];
  const size = Number(metadata?.[META_SIZE]);
  if (!target || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { target, size };
}
