/**
 * The shared Redis connection. It fails fast: with Redis unreachable, commands reject at once
 * (no offline queue) or after `commandTimeoutMs`, and callers turn that into a 503 via
 * UnavailableError; the client keeps reconnecting in the background, so requests succeed
 * again as soon as Redis is back.
 *
 * Redis is reached through one URL (redis:// or rediss://) or through Redis Sentinel: the
 * client asks the sentinels for the current master, follows a failover (it reconnects when the
 * sentinels announce a new master, and when a demoted master answers READONLY), and refuses
 * to talk to a replica. TLS applies to the data connections and, in sentinel mode, to the
 * sentinels too.
 *
 * Writes whose loss would be visible (sessions, the tag index, locks) go through `write`,
 * which with `syncReplicas` > 0 waits (WAIT) until that many replicas hold them: Redis
 * replicates asynchronously, and a failover promotes a replica, so an acknowledged write that
 * had not reached it would be lost. A write that cannot be confirmed in time fails (503); it
 * may still have happened, which every caller tolerates (all such writes are idempotent).
 */
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Redis, type RedisOptions as IoRedisOptions } from "ioredis";
import type { Logger } from "pino";
import type { RedisConfig } from "../config.js";
import { splitAddr } from "../config.js";
import { UnavailableError } from "../errors.js";

export type RedisOptions = Pick<RedisConfig, "keyPrefix" | "commandTimeoutMs"> &
  Partial<Pick<RedisConfig, "url" | "sentinels" | "name" | "username" | "password" | "sentinelPassword" | "db" | "tls" | "syncReplicas">>;

function tlsOptions(tls: NonNullable<RedisConfig["tls"]>): ConnectionOptions {
  const file = (f: string | undefined) => (f === undefined ? undefined : readFileSync(f));
  return { ca: file(tls.ca), cert: file(tls.cert), key: file(tls.key), servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized };
}

/** ioredis options for a config (exported for tests). */
export function ioredisOptions(opts: RedisOptions): { url?: string; options: IoRedisOptions } {
  const retry = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000);
  const options: IoRedisOptions = {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: Math.max(opts.commandTimeoutMs, 1000),
    retryStrategy: retry,
    // A demoted master answers writes with READONLY: reconnect (to the new master in sentinel mode).
    reconnectOnError: () => true,
    username: opts.username,
    password: opts.password,
    db: opts.db,
  };
  const tls = opts.tls ? tlsOptions(opts.tls) : opts.url?.startsWith("rediss:") ? {} : undefined;
  if (tls) options.tls = tls;
  if (opts.sentinels) {
    Object.assign(options, {
      sentinels: opts.sentinels.map((a) => splitAddr(a)),
      name: opts.name,
      sentinelPassword: opts.sentinelPassword,
      // Never give up looking for a master: requests answer 503 meanwhile.
      sentinelRetryStrategy: retry,
      sentinelCommandTimeout: Math.max(opts.commandTimeoutMs, 1000),
      failoverDetector: true,
      enableTLSForSentinelMode: tls !== undefined,
      sentinelTLS: tls,
    } satisfies IoRedisOptions);
    return { options };
  }
  if (!opts.url) throw new Error("redis: a URL or sentinels are required");
  return { url: opts.url, options };
}

export class RedisConnection {
  readonly redis: Redis;
  readonly prefix: string;
  private readonly syncReplicas: number;
  private readonly waitMs: number;

  constructor(opts: RedisOptions, logger?: Logger) {
    this.prefix = opts.keyPrefix;
    this.syncReplicas = opts.syncReplicas ?? (opts.sentinels ? 1 : 0);
    this.waitMs = opts.commandTimeoutMs;
    const { url, options } = ioredisOptions(opts);
    this.redis = url ? new Redis(url, options) : new Redis(options);
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

  /** Runs a write that must survive a failover once acknowledged (see the module comment). */
  async write<T>(op: (r: Redis) => Promise<T>): Promise<T> {
    const result = await this.run(op);
    if (this.syncReplicas > 0) {
      // WAIT blocks this connection's pipeline; give it less than the command timeout.
      const acked = await this.run((r) => r.wait(this.syncReplicas, Math.max(1, this.waitMs - 250)));
      if (acked < this.syncReplicas) throw new UnavailableError(`redis: write confirmed by ${acked} of ${this.syncReplicas} replicas`);
    }
    return result;
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

