/**
 * The shared Redis connection. It fails fast: with Redis unreachable, commands reject at once
 * (no offline queue) or after `commandTimeoutMs`, and callers turn that into a 503 via
 * UnavailableError; the client keeps reconnecting in the background, so requests succeed
 * again as soon as Redis is back.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { UnavailableError } from "../errors.js";

export interface RedisOptions {
  url: string;
  keyPrefix: string;
  commandTimeoutMs: number;
}

export class RedisConnection {
  readonly redis: Redis;
  readonly prefix: string;

  constructor(opts: RedisOptions, logger?: Logger) {
    this.prefix = opts.keyPrefix;
    this.redis = new Redis(opts.url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: Math.max(opts.commandTimeoutMs, 1000),
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      reconnectOnError: () => true,
    });
    let down = false;
    this.redis.on("error", (e: Error) => {
      if (!down) logger?.warn({ err: e.message }, "redis unavailable");
      down = true;
    });
    this.redis.on("ready", () => {
      if (down) logger?.info("redis available again");
      down = false;
    });
  }

  /** Prefixed key. */
  key(...parts: string[]): string {
    return this.prefix + parts.join(":");
  }

  /** Runs a Redis operation; any failure to talk to Redis becomes UnavailableError. */
  async run<T>(op: (r: Redis) => Promise<T>): Promise<T> {
    try {
      return await op(this.redis);
    } catch (e) {
      throw new UnavailableError(`redis: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Resolves once connected (or rejects after `timeoutMs`). */
  async ready(timeoutMs = 5000): Promise<void> {
    if (this.redis.status === "ready") return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        cleanup();
        reject(new UnavailableError(`redis: not reachable within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearTimeout(t);
        this.redis.off("ready", onReady);
      };
      this.redis.on("ready", onReady);
    });
  }

  async ping(): Promise<void> {
    await this.run((r) => r.ping());
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
