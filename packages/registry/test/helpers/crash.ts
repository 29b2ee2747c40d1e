/**
 * Crash injection for in-process tests: a driver that, once armed, lets the first matching
 * operation reach storage and then never answers it, nor anything after it, as if the process
 * had been killed right after that call. The registry built on it is then abandoned (its Redis
 * connection closed, so its locks are no longer renewed) and a fresh one is started on the
 * same storage: what the fresh one sees is what a restart after kill -9 at that instant sees.
 */
import { createServer, type Server } from "node:http";
import { createRegistry } from "../../src/app.js";
import type { RegistryConfig } from "../../src/config.js";
import type { FileWriter, StorageDriver } from "../../src/storage/driver.js";

export type DriverOp = "putContent" | "delete" | "move" | "commit";

export interface CrashingDriver {
  readonly driver: StorageDriver;
  /** The next `op` on a key for which `match` holds is the last one to happen. */
  crashAfter(op: DriverOp, match: (key: string) => boolean): void;
  /** Resolves when the crash happened. */
  readonly crashed: Promise<void>;
}

const never = new Promise<never>(() => {});

export function crashingDriver(inner: StorageDriver): CrashingDriver {
  let armed: { op: DriverOp; match: (key: string) => boolean } | undefined;
  let dead = false;
  let onCrash!: () => void;
  const crashed = new Promise<void>((r) => {
    onCrash = r;
  });
  const gate = async <T>(op: DriverOp, key: string, run: () => Promise<T>): Promise<T> => {
    if (dead) return never;
    const hit = armed !== undefined && armed.op === op && armed.match(key);
    const result = await run();
    if (hit || dead) {
      dead = true;
      onCrash();
      return never;
    }
    return result;
  };
  const driver: StorageDriver = {
    ...inner,
    name: inner.name,
    getContent: (key, signal) => (dead ? never : inner.getContent(key, signal)),
    putContent: (key, content, signal) => gate("putContent", key, () => inner.putContent(key, content, signal)),
    reader: (key, opts) => (dead ? never : inner.reader(key, opts)),
    async writer(key, opts) {
      if (dead) return never;
      const w = await inner.writer(key, opts);
      const wrapped: FileWriter = {
        get size() {
          return w.size;
        },
        write: (c) => (dead ? never : w.write(c)),
        close: () => (dead ? never : w.close()),
        commit: () => gate("commit", key, () => w.commit()),
        cancel: () => (dead ? never : w.cancel()),
      };
      // a commit straight to another key is a "commit" of that key
      if (w.commitTo) wrapped.commitTo = (dest, o) => gate("commit", dest, () => w.commitTo!(dest, o));
      return wrapped;
    },
    stat: (key, signal) => (dead ? never : inner.stat(key, signal)),
    list: (key, opts) => (dead ? never : inner.list(key, opts)),
    move: (source, dest, signal) => gate("move", dest, () => inner.move(source, dest, signal)),
    delete: (key, signal) => gate("delete", key, () => inner.delete(key, signal)),
    close: async () => {},
  };
  return {
    driver,
    crashed,
    crashAfter(op, match) {
      armed = { op, match };
    },
  };
}

/**
 * Serves a registry over `inner` wrapped in a crashing driver; `run` sets things up through the
 * server, arms the crash and sends the request that will hit it, returned unawaited as `sent`
 * (wrapped: an async function would wait for a returned request). Resolves once the crash
 * happened and the dead registry is closed.
 */
export async function runUntilCrash(
  config: RegistryConfig,
  inner: StorageDriver,
  run: (server: Server, crashing: CrashingDriver) => Promise<{ sent: PromiseLike<unknown> }>,
): Promise<void> {
  const crashing = crashingDriver(inner);
  const doomed = await createRegistry(config, { driver: crashing.driver });
  const server = createServer(doomed.app.callback()).listen(0, "127.0.0.1");
  try {
    const { sent } = await run(server, crashing);
    sent.then(
      () => {},
      () => {},
    );
    await crashing.crashed;
  } finally {
    server.closeAllConnections();
    server.close();
    await doomed.close();
  }
}
