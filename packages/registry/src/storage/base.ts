/**
 * Wraps every driver once: rejects keys outside the key grammar before any I/O, so that
 * drivers themselves only do raw I/O and a bad key can never reach a filesystem or bucket.
 */
import type { FileWriter, ListOptions, ListResult, ReadOptions, StorageDriver, WriterOptions } from "./driver.js";
import { InvalidPathError } from "./driver.js";
import { isValidKey } from "./paths.js";

export function checkedDriver(inner: StorageDriver): StorageDriver {
  const check = (key: string) => {
    if (!isValidKey(key)) throw new InvalidPathError(inner.name, key);
  };
  const wrapped: StorageDriver = {
    name: inner.name,
    async getContent(key, signal) {
      check(key);
      return inner.getContent(key, signal);
    },
    async putContent(key, content, signal) {
      check(key);
      return inner.putContent(key, content, signal);
    },
    async reader(key, opts?: ReadOptions) {
      check(key);
      return inner.reader(key, opts);
    },
    async writer(key, opts?: WriterOptions): Promise<FileWriter> {
      check(key);
      const w = await inner.writer(key, opts);
      const commitTo = w.commitTo;
      if (commitTo) {
        w.commitTo = async (dest, opts) => {
          check(dest);
          return commitTo.call(w, dest, opts);
        };
      }
      return w;
    },
    async stat(key, signal) {
      check(key);
      return inner.stat(key, signal);
    },
    async list(key, opts?: ListOptions): Promise<ListResult> {
      check(key);
      if (opts?.after !== undefined && !isValidKey(opts.after)) throw new InvalidPathError(inner.name, opts.after);
      return inner.list(key, opts);
    },
    async move(source, dest, signal) {
      check(source);
      check(dest);
      return inner.move(source, dest, signal);
    },
    async delete(key, signal) {
      check(key);
      return inner.delete(key, signal);
    },
    close: inner.close ? () => inner.close!() : undefined,
  };
  if (inner.redirectURL) {
    wrapped.redirectURL = async (key, opts) => {
      check(key);
      return inner.redirectURL!(key, opts);
    };
  }
  if (inner.openFile) {
    wrapped.openFile = async (key, signal) => {
      check(key);
      return inner.openFile!(key, signal);
    };
  }
  if (inner.readObject) {
    wrapped.readObject = async (key, signal) => {
      check(key);
      return inner.readObject!(key, signal);
    };
  }
  if (inner.identify) {
    wrapped.identify = async (key, signal) => {
      check(key);
      return inner.identify!(key, signal);
    };
  }
  return wrapped;
}
