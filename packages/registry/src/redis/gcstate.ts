/**
 * The collector's shared state for a fleet (the protocol is in services/gc.ts):
 *   <prefix>gc:run         present while a collection runs (removed at its end; a collector
 *                          that died leaves it, which only makes pushes record protections
 *                          until the next run starts)
 *   <prefix>gc:protected   set of digests referenced by a push during the current run
 *   <prefix>gc:pushes      sorted set ticket -> expiry (ms, Redis server time) of manifest
 *                          PUTs in flight
 * Each step that must be atomic is one script; times come from the Redis server's clock, so
 * replicas' clocks do not matter.
 */
import { randomBytes } from "node:crypto";
import type { Digest } from "@strata/core";
import { PUSH_TTL_MS, type GcState } from "../services/gc.js";
import type { RedisConnection } from "./client.js";

const NOW = `local t = redis.call("time") local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n`;

// KEYS: pushes; ARGV: ticket, ttl
const BEGIN_PUSH = `${NOW}redis.call("zadd", KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) return 1`;
// KEYS: run, protected; ARGV: digest
const PROTECT = `if redis.call("exists", KEYS[1]) == 1 then redis.call("sadd", KEYS[2], ARGV[1]) end return 1`;
// KEYS: run, protected, pushes; ARGV: run token
const BEGIN_RUN = `${NOW}redis.call("set", KEYS[1], ARGV[1]) redis.call("del", KEYS[2])
redis.call("zremrangebyscore", KEYS[3], "-inf", now) return redis.call("zrange", KEYS[3], 0, -1)`;
// KEYS: pushes; ARGV: tickets...
const IN_FLIGHT = `${NOW}local out = {} for i = 1, #ARGV do local s = redis.call("zscore", KEYS[1], ARGV[i])
if s and tonumber(s) > now then out[#out + 1] = ARGV[i] end end return out`;
// KEYS: run, protected; ARGV: run token (a collector that lost its lock ends nothing of its successor's)
const END_RUN = `if redis.call("get", KEYS[1]) == ARGV[1] then redis.call("del", KEYS[1], KEYS[2]) end return 1`;

export class RedisGcState implements GcState {
  private token = "";

  constructor(private readonly conn: RedisConnection) {}

  private k(name: string): string {
    return this.conn.key("gc", name);
  }

  async beginPush(): Promise<string> {
    const ticket = randomBytes(12).toString("hex");
    await this.conn.write((r) => r.eval(BEGIN_PUSH, 1, this.k("pushes"), ticket, String(PUSH_TTL_MS)));
    return ticket;
  }

  async endPush(ticket: string): Promise<void> {
    await this.conn.run((r) => r.zrem(this.k("pushes"), ticket));
  }

  async protect(digest: Digest): Promise<void> {
    await this.conn.write((r) => r.eval(PROTECT, 2, this.k("run"), this.k("protected"), digest));
  }

  async beginRun(): Promise<string[]> {
    this.token = randomBytes(12).toString("hex");
    const token = this.token;
    return (await this.conn.write((r) => r.eval(BEGIN_RUN, 3, this.k("run"), this.k("protected"), this.k("pushes"), token))) as string[];
  }

  async inFlight(tickets: string[]): Promise<string[]> {
    if (tickets.length === 0) return [];
    return (await this.conn.run((r) => r.eval(IN_FLIGHT, 1, this.k("pushes"), ...tickets))) as string[];
  }

  async isProtected(digest: Digest): Promise<boolean> {
    return (await this.conn.run((r) => r.sismember(this.k("protected"), digest))) === 1;
  }

  async endRun(): Promise<void> {
    const token = this.token;
    await this.conn.write((r) => r.eval(END_RUN, 2, this.k("run"), this.k("protected"), token));
  }
}
