/** Named mutual exclusion. Embedded mode locks within the process; a fleet locks in Redis. */

export interface Locker {
  /** Runs `fn` while holding the exclusive lock `name`. */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

/** A promise-chain mutex per name, for one process. */
export class MemoryLocker implements Locker {
  private readonly tails = new Map<string, Promise<void>>();

  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.tails.set(name, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(name) === tail) this.tails.delete(name);
    }
  }
}
