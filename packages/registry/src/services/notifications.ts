/**
 * Webhook notifications: every configured endpoint gets its own bounded queue and one
 * delivery worker, fed by the event bus. A request only enqueues (events.ts), so a slow,
 * hanging or dead receiver never delays a push or a pull; at worst its queue fills and
 * the oldest events are dropped.
 *
 * Delivery: one event per POST, serially per endpoint. Any 2xx or 3xx answer is success.
 * Anything else (a status >= 400, a network error, no answer within `timeoutMs`) is retried
 * after `backoffMs`, doubled at each retry (capped at 60 s, with jitter), up to
 * `maxAttempts`; then the event is given up and counted as failed.
 *
 * Formats:
 *   distribution  `{"events":[event]}` with Content-Type
 *                 application/vnd.docker.distribution.events.v1+json, the envelope CNCF
 *                 distribution sends, so existing receivers work unchanged.
 *   cloudevents   CloudEvents 1.0 structured mode (application/cloudevents+json) whose
 *                 `data` is the same event object.
 *
 * Logs name an endpoint by its `name` and origin only: its headers (credentials) and the
 * URL's path, query and user info never appear.
 */
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import type { NotificationEndpoint } from "../config.js";
import { type EventBus, instance, type RegistryEvent, WorkQueue } from "../events.js";

export const EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json";
export const CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents+json";
const MAX_BACKOFF_MS = 60_000;

/** The distribution notification event for a registry event. */
export function distributionEvent(e: RegistryEvent, sourceAddr: string): Record<string, unknown> {
  const t = e.target;
  // the key order distribution uses: mediaType, size, digest, length, repository, fromRepository, url, tag
  const target: Record<string, unknown> = {};
  if (t.mediaType !== undefined) target.mediaType = t.mediaType;
  if (t.size !== undefined) target.size = t.size;
  if (t.digest !== undefined) target.digest = t.digest;
  if (t.size !== undefined) target.length = t.size;
  target.repository = t.repository;
  if (t.fromRepository !== undefined) target.fromRepository = t.fromRepository;
  // a delete names only what was deleted (distribution sends digest and repository)
  if (t.digest !== undefined && e.request.host && e.action !== "delete") {
    target.url = `${e.request.scheme}://${e.request.host}/v2/${t.repository}/${t.kind === "blob" ? "blobs" : "manifests"}/${t.digest}`;
  }
  if (t.tag !== undefined) target.tag = t.tag;
  return {
    id: e.id,
    timestamp: e.timestamp.toISOString(),
    action: e.action,
    target,
    request: { id: e.request.id, addr: e.request.addr, host: e.request.host, method: e.request.method, useragent: e.request.useragent },
    actor: e.actor.name === undefined ? {} : { name: e.actor.name },
    source: { addr: sourceAddr, instanceID: instance.id },
  };
}

/** The request body and Content-Type an endpoint receives for one event. */
export function notificationBody(format: NotificationEndpoint["format"], e: RegistryEvent, sourceAddr: string): { type: string; body: string } {
  const event = distributionEvent(e, sourceAddr);
  if (format === "distribution") return { type: EVENTS_MEDIA_TYPE, body: JSON.stringify({ events: [event] }) };
  const t = e.target;
  const subject = t.tag !== undefined ? `${t.repository}:${t.tag}` : t.digest !== undefined ? `${t.repository}@${t.digest}` : t.repository;
  return {
    type: `${CLOUDEVENTS_MEDIA_TYPE}; charset=utf-8`,
    body: JSON.stringify({
      specversion: "1.0",
      id: e.id,
      source: `strata://${sourceAddr}`,
      type: `io.strata.registry.${t.kind}.${e.action}`,
      subject,
      time: e.timestamp.toISOString(),
      datacontenttype: "application/json",
      data: event,
    }),
  };
}

/** scheme://host[:port] of a URL, without user info, path or query. */
export function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(invalid url)";
  }
}

/**
 * The URL to POST to and the headers to send: user info in the URL (which fetch refuses)
 * becomes Basic authorization unless the endpoint sets an Authorization header itself.
 */
function requestTarget(ep: NotificationEndpoint): { url: string; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(ep.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
  const u = new URL(ep.url);
  if (u.username || u.password) {
    const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64");
    if (!Object.keys(headers).some((k) => k.toLowerCase() === "authorization")) headers.Authorization = `Basic ${basic}`;
    u.username = "";
    u.password = "";
  }
  return { url: u.toString(), headers };
}

interface Metrics {
  sent: Counter<"endpoint">;
  failed: Counter<"endpoint" | "reason">;
  errors: Counter<"endpoint">;
  queued: Gauge<"endpoint">;
}

function createMetrics(registry: Registry): Metrics {
  return {
    sent: new Counter({ name: "strata_notifications_sent_total", help: "Events delivered to a webhook endpoint", labelNames: ["endpoint"], registers: [registry] }),
    failed: new Counter({
      name: "strata_notifications_failed_total",
      help: "Events given up: after every attempt failed (retries), or pushed out of a full queue (dropped)",
      labelNames: ["endpoint", "reason"],
      registers: [registry],
    }),
    errors: new Counter({ name: "strata_notifications_attempt_errors_total", help: "Delivery attempts that failed (each is retried or gives up)", labelNames: ["endpoint"], registers: [registry] }),
    queued: new Gauge({ name: "strata_notifications_queued", help: "Events waiting for delivery", labelNames: ["endpoint"], registers: [registry] }),
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });

/** One endpoint: its queue, its delivery loop and its metric labels. */
class Channel {
  readonly queue: WorkQueue<RegistryEvent>;
  private readonly headers: Record<string, string>;
  private readonly url: string;

  constructor(
    readonly ep: NotificationEndpoint,
    readonly name: string,
    private readonly metrics: Metrics,
    logger: Logger,
    private readonly sourceAddr: () => string,
  ) {
    ({ url: this.url, headers: this.headers } = requestTarget(ep));
    const origin = safeOrigin(ep.url);
    this.queue = new WorkQueue<RegistryEvent>({
      capacity: ep.queueSize,
      handle: (e, signal) => this.deliver(e, signal),
      onDrop: () => metrics.failed.inc({ endpoint: name, reason: "dropped" }),
      onError: (e, err) => {
        if ((err as Error).name === "AbortError") return metrics.failed.inc({ endpoint: name, reason: "dropped" });
        metrics.failed.inc({ endpoint: name, reason: "retries" });
        logger.warn({ endpoint: name, origin, event: e.id, action: e.action, err: (err as Error).message }, "notification given up");
      },
      onSize: (n) => metrics.queued.set({ endpoint: name }, n),
    });
    metrics.queued.set({ endpoint: name }, 0);
    metrics.sent.inc({ endpoint: name }, 0);
    logger.info({ endpoint: name, origin, format: ep.format, events: ep.events }, "notification endpoint configured");
  }

  wants(e: RegistryEvent): boolean {
    return this.ep.events.includes(e.action) && !(e.target.mediaType !== undefined && this.ep.ignoredMediaTypes.includes(e.target.mediaType));
  }

  private async deliver(e: RegistryEvent, signal: AbortSignal): Promise<void> {
    const { type, body } = notificationBody(this.ep.format, e, this.sourceAddr());
    let delay = this.ep.backoffMs;
    for (let attempt = 1; ; attempt++) {
      let failure: string;
      try {
        const res = await fetch(this.url, {
          method: "POST",
          headers: { ...this.headers, "Content-Type": type, "User-Agent": "strata-notifications/1" },
          body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.ep.timeoutMs)]),
        });
        // the answer's body is not needed: release the connection without reading it
        await res.body?.cancel().catch(() => {});
        if (res.status >= 200 && res.status < 400) {
          this.metrics.sent.inc({ endpoint: this.name });
          return;
        }
        failure = `status ${res.status}`;
      } catch (err) {
        if (signal.aborted) throw signal.reason as Error;
        const cause = (err as Error).cause as Error | undefined;
        failure = (err as Error).name === "TimeoutError" ? `no answer within ${this.ep.timeoutMs} ms` : (cause?.message ?? (err as Error).message);
      }
      this.metrics.errors.inc({ endpoint: this.name });
      if (attempt >= this.ep.maxAttempts) throw new Error(`${attempt} attempts failed, last: ${failure}`);
      await sleep(delay * (0.75 + Math.random() * 0.5), signal);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }
}

export class Notifier {
  private readonly channels: Channel[];
  private readonly unsubscribe: () => void;

  /** `sourceAddr()` names this registry instance in events (host name and listening port). */
  constructor(endpoints: readonly NotificationEndpoint[], bus: EventBus, registry: Registry, logger: Logger, sourceAddr: () => string) {
    const metrics = endpoints.length > 0 ? createMetrics(registry) : undefined;
    this.channels = endpoints.map((ep, i) => new Channel(ep, ep.name ?? `endpoint-${i}`, metrics!, logger, sourceAddr));
    this.unsubscribe = bus.subscribe((e) => {
      for (const c of this.channels) if (c.wants(e)) c.queue.push(e);
    });
  }

  /** Events waiting, per endpoint (in configuration order). */
  pending(): number[] {
    return this.channels.map((c) => c.queue.size);
  }

  /** Resolves once every queue is empty, or after `timeoutMs` (false then). */
  async idle(timeoutMs: number): Promise<boolean> {
    const r = await Promise.all(this.channels.map((c) => c.queue.idle(timeoutMs)));
    return r.every(Boolean);
  }

  /** Stops delivering: pending events get up to `drainMs` to go out, the rest are dropped. */
  async close(drainMs = 2000): Promise<void> {
    this.unsubscribe();
    await Promise.all(this.channels.map((c) => c.queue.close(drainMs)));
  }
}
