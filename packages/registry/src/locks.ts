/**
 * Named mutual exclusion. Embedded mode locks within the process; a fleet locks in Redis
 * (redis/locks.ts, which explains what a holder whose lease ran out can and cannot do).
 */

/** What the holder of a lock is given while it runs. */
export interface Lease {
  /**
   * Aborted once the lock can no longer be trusted to be held (its lease ran out without
   * renewal). Storage calls made under the lock take it, so that a holder that lost its lock
   * stops writing.
   */
  readonly signal: AbortSignal;
  /**
   * Redis mode: the lock's key and token. Redis writes that must only happen while the lock is
   * held check the token in the same script (fencing); see redis/locks.ts.
   */
  readonly fence?: { readonly key: string; readonly token: string };
}

export interface Locker {
  /** Runs `fn` while holding the exclusive lock `name`. */
  withLock<T>(name: string, fn: (lease: Lease) => Promise<T>): Promise<T>;
  /** Whether some holder (of any process) holds `name` right now. */
  isHeld(name: string): Promise<boolean>;
}

/** A lease that cannot be lost: locks held by this process only end with their holder. */
const PROCESS_LEASE: Lease = { signal: new AbortController().signal };

/** A promise-chain mutex per name, for one process. */
export class MemoryLocker implements Locker {
  private readonly tails = new Map<string, Promise<void>>();

  async withLock<T>(name: string, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const prev = this.tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.tails.set(name, tail);
    await prev;
    try {
      return await fn(PROCESS_LEASE);
    } finally {
      release();
      if (this.tails.get(name) === tail) this.tails.delete(name);
    }
  }

  async isHeld(name: string): Promise<boolean> {
    return this.tails.has(name);
  }
}
