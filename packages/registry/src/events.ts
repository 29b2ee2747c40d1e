/**
 * The registry's in-process event seam. Handlers emit one event per completed action (a
 * manifest or blob pushed, pulled, deleted, a blob mounted); subscribers (the metadata
 * recorder, webhook notifications) react to them.
 *
 * Contract: `emit` is synchronous and never throws or waits. A subscriber only hands the
 * event to its own bounded queue (`WorkQueue`) and returns, so an emit costs the request a
 * few object allocations whatever the subscribers do later, and no subscriber can fail or
 * slow a request.
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { Context } from "koa";
import { identityOf } from "./http/auth.js";

export type EventAction = "push" | "pull" | "delete" | "mount";
export const EVENT_ACTIONS: readonly EventAction[] = ["push", "pull", "delete", "mount"];

export interface EventTarget {
  /** What the action touched: a manifest (by digest, possibly through a tag), a tag alone, or a blob. */
  readonly kind: "manifest" | "tag" | "blob";
  readonly repository: string;
  readonly digest?: string;
  readonly tag?: string;
  readonly mediaType?: string;
  readonly size?: number;
  /** The repository a mounted blob came from. */
  readonly fromRepository?: string;
}

export interface RequestRecord {
  /** One id per request, shared by every event it emits. */
  readonly id: string;
  /** The client's address and port. */
  readonly addr: string;
  /** The Host header the client sent. */
  readonly host: string;
  readonly method: string;
  readonly useragent: string;
  /** The scheme the request arrived with ("http" or "https"). */
  readonly scheme: string;
}

export interface RegistryEvent {
  readonly id: string;
  readonly timestamp: Date;
  readonly action: EventAction;
  readonly target: EventTarget;
  readonly request: RequestRecord;
  /** The authenticated user, when there is one. */
  readonly actor: { readonly name?: string };
}

export type EventListener = (e: RegistryEvent) => void;

export class EventBus {
  private readonly listeners = new Set<EventListener>();

  /** Adds a listener; returns its removal. A listener must only enqueue and return. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(e: RegistryEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a subscriber's bug must not reach the request that emitted
      }
    }
  }
}

/** The user the request acted as (from the authorization middleware), or undefined. */
export function actorOf(ctx: Context): string | undefined {
  return identityOf(ctx)?.user;
}

/** Builds the event for an action a request completed. */
export function requestEvent(ctx: Context, action: EventAction, target: EventTarget): RegistryEvent {
  const state = ctx.state as { requestId?: string };
  state.requestId ??= randomUUID();
  const sock = ctx.req.socket;
  const actor = actorOf(ctx);
  return {
    id: randomUUID(),
    timestamp: new Date(),
    action,
    target,
    request: {
      id: state.requestId,
      addr: sock.remoteAddress ? `${sock.remoteAddress.includes(":") ? `[${sock.remoteAddress}]` : sock.remoteAddress}:${sock.remotePort ?? 0}` : "",
      host: ctx.get("Host"),
      method: ctx.method,
      useragent: ctx.get("User-Agent"),
      scheme: ctx.protocol,
    },
    actor: actor === undefined ? {} : { name: actor },
  };
}

/** Builds the event for an action the registry took by itself (garbage collection, retention). */
export function systemEvent(action: EventAction, target: EventTarget, by: string): RegistryEvent {
  const id = randomUUID();
  return {
    id,
    timestamp: new Date(),
    action,
    target,
    request: { id, addr: "", host: "", method: "", useragent: by, scheme: "" },
    actor: {},
  };
}

/** Identifies this registry process in events: host name and listening port, and an id new at every start. */
export const instance = { hostname: hostname(), id: randomUUID() };

export interface WorkQueueOptions<T> {
  /** Most items held; a push beyond it drops the oldest item (reported through onDrop). */
  readonly capacity: number;
  /** Processes one item; a rejection is reported through onError and the item is dropped. */
  readonly handle: (item: T, signal: AbortSignal) => Promise<void>;
  readonly onDrop?: (item: T) => void;
  readonly onError?: (item: T, err: unknown) => void;
  /** Called whenever the number of held items changes. */
  readonly onSize?: (size: number) => void;
}

/**
 * A bounded FIFO with one worker: `push` is synchronous and O(1); the worker handles items
 * one at a time. Memory is bounded by `capacity` whatever the handler's speed.
 */
export class WorkQueue<T> {
  private items: T[] = [];
  private head = 0;
  private running = false;
  private closed = false;
  private readonly abort = new AbortController();
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: WorkQueueOptions<T>) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.closed) {
      this.opts.onDrop?.(item);
      return;
    }
    if (this.size >= this.opts.capacity) this.opts.onDrop?.(this.shift()!);
    this.items.push(item);
    this.opts.onSize?.(this.size);
    if (!this.running) void this.run();
  }

  private shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && this.size > 0) {
        const item = this.shift()!;
        this.opts.onSize?.(this.size);
        try {
          await this.opts.handle(item, this.abort.signal);
        } catch (e) {
          this.opts.onError?.(item, e);
        }
      }
    } finally {
      this.running = false;
      if (this.size === 0 || this.closed) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Resolves once every item pushed so far has been handled, or after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<boolean> {
    if (!this.running && this.size === 0) return true;
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      t.unref?.();
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Waits up to `drainMs` for pending items, then stops the worker (aborting a handler in flight). */
  async close(drainMs: number): Promise<void> {
    if (drainMs > 0) await this.idle(drainMs);
    this.closed = true;
    this.abort.abort();
    for (const item of this.items.slice(this.head)) this.opts.onDrop?.(item);
    this.items = [];
    this.head = 0;
    this.opts.onSize?.(0);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
