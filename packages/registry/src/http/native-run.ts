/**
 * What the native body senders (sendfile.ts: file -> socket, relay.ts: socket -> socket) share:
 * one native transfer at a time under a progress watchdog, and the wait until the response head
 * has reached the kernel before native code writes to the same socket.
 */
import { createRequire } from "node:module";
import type { Socket } from "node:net";

/**
 * The addon `native/build/Release/<name>.node`, or undefined off Linux or where it was not
 * built (callers then stream in JavaScript).
 */
export function loadLinuxAddon<T>(name: string): T | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    return createRequire(import.meta.url)(`../../../native/build/Release/${name}.node`) as T;
  } catch {
    return undefined;
  }
}

/** A transfer object of the project's addons: started once, cancelled at most once. */
export interface NativeTransfer {
  start(): void;
  cancel(): void;
  /** Bytes handed to the destination so far. */
  readonly sent: number;
}

/** `done(errno, sent)` as the addons call it: exactly once, unless cancelled first. */
export type NativeDone = (errno: number, sent: number) => void;

/**
 * Runs native transfers one after another; one that makes no progress for `idleMs` is
 * cancelled and fails. `cancel()` stops the running one (its promise then never settles).
 */
export class WatchedTransfers {
  private current: NativeTransfer | undefined;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly idleMs: number,
    private readonly fail: (message: string) => Error,
  ) {}

  /** Runs the transfer `create` makes for `length` bytes; `ended` sees it once it reported. */
  run<T extends NativeTransfer>(create: (done: NativeDone) => T, length: number, ended?: (t: T) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let lastSent = 0;
      const t: T = create((errno, sent) => {
        this.stopWatch();
        this.current = undefined;
        ended?.(t);
        if (errno === 0 && sent === length) resolve();
        else reject(this.fail(`stopped after ${sent} of ${length} bytes (errno ${errno})`));
      });
      this.current = t;
      this.idle = setInterval(() => {
        if (t.sent !== lastSent) {
          lastSent = t.sent;
          return;
        }
        this.cancel();
        reject(this.fail(`no progress for ${this.idleMs / 1000} s`));
      }, this.idleMs);
      this.idle.unref();
      t.start();
    });
  }

  cancel(): void {
    this.current?.cancel();
    this.current = undefined;
    this.stopWatch();
  }

  private stopWatch(): void {
    if (this.idle) clearInterval(this.idle);
    this.idle = undefined;
  }
}

/** Waits until everything Node was given for `socket` (the response head) reached the kernel. */
export async function flushed(socket: Socket, idleMs: number, fail: (message: string) => Error): Promise<void> {
  const deadline = Date.now() + idleMs;
  while (socket.writableLength > 0 || socket.writableCorked > 0) {
    if (socket.destroyed) throw fail("socket closed before the body");
    if (Date.now() > deadline) throw fail(`client read nothing for ${idleMs / 1000} s`);
    // A cork is lifted on the next tick; earlier bytes still queued drain as the client reads.
    if (socket.writableCorked > 0) await new Promise<void>((r) => setImmediate(r));
    else await new Promise<void>((r) => setTimeout(r, 2));
  }
}
