/**
 * The registry's whole configuration: one zod schema, the type inferred from it.
 * Sources, later ones winning: schema defaults < YAML file (--config) < STRATA_* environment
 * < command-line flags. Environment names: STRATA_ + the path in upper snake case with "__"
 * between levels (STRATA_STORAGE__S3__FORCE_PATH_STYLE=true), plus the short forms
 * STRATA_ADDR, STRATA_DATA and STRATA_REDIS_URL. S3 credentials may also come from the
 * standard AWS_* variables (the SDK's default chain) when absent here.
 */
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const MiB = 1024 * 1024;

const addrSchema = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$/, "expected HOST:PORT");

export const s3Schema = z.object({
  endpoint: z.string().url().optional(),
  bucket: z.string().min(1),
  region: z.string().default("us-east-1"),
  forcePathStyle: z.boolean().default(false),
  /** Key prefix inside the bucket ("" or "a/b"). */
  prefix: z
    .string()
    .default("")
    .refine((p) => !p.startsWith("/") && !p.endsWith("/"), "prefix must not start or end with /"),
  /** Answer blob GETs with a redirect to a presigned URL. */
  redirect: z.boolean().default(false),
  redirectExpirySeconds: z.number().int().positive().default(1200),
  accessKeyId: z.string().optional(),
  secretAccessKey: z.string().optional(),
  sessionToken: z.string().optional(),
  /** Minimum multipart part size (S3 requires 5 MiB for all but the last part). */
  partSize: z
    .number()
    .int()
    .min(5 * MiB)
    .default(8 * MiB),
  /**
   * Memory for multipart parts of all uploads together; uploads beyond it wait for a part to
   * finish (their clients are slowed, the heap does not grow). Parts are larger than partSize
   * while this holds two of them for every upload filling parts (storage/s3-buffers.ts).
   * The buffer governor (memory.bufferLimitBytes) leaves them out of its count; raising this
   * raises the peak RSS of many concurrent uploads (figures in storage/s3-buffers.ts).
   */
  partBufferBytes: z
    .number()
    .int()
    .min(5 * MiB)
    .default(32 * MiB),
  /**
   * Part size of an upload while it is the only one filling parts: two such parts may be held
   * beyond partBufferBytes, so a lone upload makes fewer S3 requests (figures in
   * storage/s3-buffers.ts); 0 turns it off.
   */
  lonePartSize: z
    .number()
    .int()
    .refine((n) => n === 0 || n >= 5 * MiB, "lonePartSize must be 0 or at least 5 MiB")
    .default(32 * MiB),
  maxAttempts: z.number().int().positive().default(5),
  /** Create the bucket when it does not exist (at start-up and whenever a health check finds it missing). */
  createBucket: z.boolean().default(false),
  requestTimeoutMs: z.number().int().positive().default(60_000),
});

/** A webhook receiver of registry events (see services/notifications.ts). */
export const notificationEndpointSchema = z.object({
  /** Shown in logs and metrics instead of the URL (which may carry credentials). */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "name: letters, digits, . _ - (at most 64)").optional(),
  url: z
    .string()
    .url()
    .refine((u) => /^https?:/i.test(u), "url must be http or https"),
  /** Sent with every request (e.g. Authorization); never logged. A list joins with ", ". */
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
  /** Actions delivered to this endpoint. */
  events: z.array(z.enum(["push", "pull", "delete", "mount"])).default(["push", "pull", "delete", "mount"]),
  /** Targets with these media types are not delivered (e.g. layer media types to receive manifests only). */
  ignoredMediaTypes: z.array(z.string()).default([]),
  /** "distribution": the CNCF distribution envelope; "cloudevents": CloudEvents 1.0 structured JSON. */
  format: z.enum(["distribution", "cloudevents"]).default("distribution"),
  /** One delivery attempt's deadline. */
  timeoutMs: z.number().int().positive().default(5000),
  /** Attempts per event before it is given up (counted as failed). */
  maxAttempts: z.number().int().positive().default(6),
  /** Delay before the first retry; doubled at each further retry, capped at 60 s. */
  backoffMs: z.number().int().positive().default(500),
  /** Events held for this endpoint; beyond it the oldest is dropped (counted as failed). */
  queueSize: z.number().int().positive().default(10_000),
});
export type NotificationEndpoint = z.infer<typeof notificationEndpointSchema>;

/** Actions an access rule grants; "*" = all of them. */
export const accessActions = ["pull", "push", "delete"] as const;

const accessRuleSchema = z.object({
  /** Globs over repository names: * = within one path component, ** = any number of components, ${user} = the user's name. */
  repositories: z.array(z.string().min(1)).min(1),
  /** "anonymous" (no credentials), "*" (any authenticated user), user names, or "group:NAME". */
  users: z.array(z.string().min(1)).min(1),
  actions: z.array(z.enum([...accessActions, "*"])).min(1),
});

const authSchema = z
  .object({
    htpasswd: z
      .object({
        /** bcrypt entries as `htpasswd -B` writes them; re-read when the file changes. */
        path: z.string().min(1),
        /** Realm of the Basic challenge. */
        realm: z.string().default("strata"),
      })
      .optional(),
    /** Docker token authentication (distribution's token spec). */
    token: z
      .object({
        /** Where clients get tokens; default: this registry's own /auth/token. */
        realm: z.string().url().optional(),
        /** The `service` of challenges and the tokens' audience; default: the request's Host. */
        service: z.string().min(1).optional(),
        issuer: z.string().min(1).default("strata"),
        expiresInSeconds: z.number().int().min(60).default(300),
        /** Lifetime of refresh tokens (docker login's identity token). */
        refreshExpiresInSeconds: z.number().int().min(60).default(30 * 24 * 3600),
        /** PEM private key (EC P-256 -> ES256, RSA -> RS256): this registry issues tokens. */
        signingKey: z.string().min(1).optional(),
        /** Public keys of an external token server: a JWKS file or an http(s) URL. */
        jwks: z.string().min(1).optional(),
        /** Allowed clock difference when checking exp/nbf. */
        leewaySeconds: z.number().int().nonnegative().default(30),
      })
      .refine((t) => t.signingKey !== undefined || t.jwks !== undefined, "auth.token needs signingKey or jwks")
      .optional(),
    /** Failed logins allowed per user and per client address within the window. */
    rateLimit: z
      .object({
        failuresPerUser: z.number().int().positive().default(10),
        failuresPerAddress: z.number().int().positive().default(30),
        windowSeconds: z.number().int().positive().default(60),
      })
      .default({ failuresPerUser: 10, failuresPerAddress: 30, windowSeconds: 60 }),
  })
  .refine((a) => a.htpasswd !== undefined || a.token !== undefined, "auth needs htpasswd or token");

const tlsSchema = z.object({
  certificate: z.string().min(1),
  key: z.string().min(1),
  /** CA bundle: clients must present a certificate it signed (mutual TLS). */
  clientCA: z.string().min(1).optional(),
  /** Offer HTTP/2 (ALPN h2) next to HTTP/1.1. */
  http2: z.boolean().default(true),
  /** How often the files are checked for changes. */
  reloadIntervalSeconds: z.number().positive().default(5),
});

/** A regular expression given as a string (validated when the configuration is read). */
const regexString = z.string().refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, "not a valid regular expression");

const repositoryGlobs = z.array(z.string().min(1)).min(1);

/** Tags beyond these are deleted by the next GC run (see services/retention.ts). */
const retentionRuleSchema = z
  .object({
    /** Globs over repository names (* within one component, ** any number of components). */
    repositories: repositoryGlobs,
    /** Keep the N most recently pushed candidate tags. */
    keepLast: z.number().int().nonnegative().optional(),
    /** Keep candidate tags pushed within this many days (OR'ed with keepLast). */
    keepWithinDays: z.number().nonnegative().optional(),
    /** Only tags matching this regular expression are candidates (default: every tag). */
    tags: regexString.optional(),
  })
  .refine((r) => r.keepLast !== undefined || r.keepWithinDays !== undefined, "a retention rule needs keepLast or keepWithinDays");

/** Matching tags can be created, never moved or deleted. */
const immutableRuleSchema = z.object({
  repositories: repositoryGlobs,
  /** Tags matching this regular expression are immutable (default: every tag). */
  tags: regexString.optional(),
});

/** Bytes of distinct blobs linked in the matching repositories together. */
const quotaRuleSchema = z.object({
  repositories: repositoryGlobs,
  maxBytes: z.number().int().nonnegative(),
});

const upstreamUrlSchema = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), "url must be http or https")
  .refine((u) => !new URL(u).username && !new URL(u).password, "no credentials in the url (use username and password)");

/** One upstream of a multi-upstream mirror: chosen by the request's `ns` query parameter or by a name prefix. */
const proxyUpstreamSchema = z
  .object({
    /** Matches `?ns=` (containerd hosts.toml mirrors), e.g. docker.io; names keep their form. `ns: docker.io` applies Docker Hub's rules. */
    ns: z.string().regex(/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/, "ns: a registry host name").optional(),
    /** Matches names starting with it (e.g. quay/); the prefix is removed for the upstream. */
    prefix: z.string().regex(/^[a-z0-9]+([._-][a-z0-9]+)*\/([a-z0-9]+([._-][a-z0-9]+)*\/)*$/, "prefix: repository path components ending with /").optional(),
    url: upstreamUrlSchema,
    username: z.string().optional(),
    password: z.string().optional(),
  })
  .refine((u) => (u.ns === undefined) !== (u.prefix === undefined), "each upstream needs exactly one of ns or prefix");

/** Pull-through cache (mirror) of distribution-compatible upstream registries. */
const proxySchema = z
  .object({
    /** The default upstream (Docker Hub rules apply when it is registry-1.docker.io). */
    remoteurl: upstreamUrlSchema.optional(),
    /** Credentials for remoteurl; also STRATA_PROXY__USERNAME / STRATA_PROXY__PASSWORD. Never logged. */
    username: z.string().optional(),
    password: z.string().optional(),
    /** How long a tag's answer is trusted before it is revalidated upstream. */
    ttlSeconds: z.number().int().nonnegative().default(600),
    upstreams: z.array(proxyUpstreamSchema).default([]),
    /** Accept pushes (the registry then holds both pushed and mirrored content). */
    allowPush: z.boolean().default(false),
    /** Deadline for an upstream answer's headers, and for each wait between body chunks. */
    timeoutSeconds: z.number().positive().default(30),
    cache: z
      .object({
        /** Mirrored bytes kept; beyond it the least recently pulled content is evicted. 0 = unlimited. */
        maxBytes: z.number().int().nonnegative().default(0),
        /** Content not pulled for this many days is evicted. 0 = never. */
        evictAfterDays: z.number().nonnegative().default(0),
        /** How often eviction runs. */
        intervalSeconds: z.number().positive().default(60),
      })
      .default({ maxBytes: 0, evictAfterDays: 0, intervalSeconds: 60 }),
  })
  .refine((p) => p.remoteurl !== undefined || p.upstreams.length > 0, "proxy needs remoteurl or upstreams");

export const configSchema = z.object({
  addr: addrSchema.default("127.0.0.1:5000"),
  storage: z
    .object({
      driver: z.enum(["filesystem", "memory", "s3"]).default("filesystem"),
      filesystem: z.object({ root: z.string().default("./data") }).default({ root: "./data" }),
      s3: s3Schema.optional(),
    })
    .default({ driver: "filesystem", filesystem: { root: "./data" } })
    .refine((s) => s.driver !== "s3" || s.s3 !== undefined, "storage.s3 is required when storage.driver is s3"),
  redis: z
    .object({
      /** redis://[user:password@]host:port/db, or rediss://... for TLS. Absent (and no sentinels): sessions, caches and locks live in this process. */
      url: z.string().optional(),
      /** Redis Sentinel: "host:port" of each sentinel; the master is looked up by `name` and followed across failovers. */
      sentinels: z.preprocess((v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v), z.array(addrSchema).min(1).optional()),
      /** The master group name the sentinels monitor. */
      name: z.string().min(1).optional(),
      /** Credentials and database for sentinel mode (with a URL they go in the URL). */
      username: z.string().optional(),
      password: z.string().optional(),
      sentinelPassword: z.string().optional(),
      db: z.number().int().nonnegative().optional(),
      /** TLS to Redis (and to the sentinels); also enabled by a rediss:// URL. Files are PEM. */
      tls: z
        .object({
          ca: z.string().optional(),
          cert: z.string().optional(),
          key: z.string().optional(),
          servername: z.string().optional(),
          rejectUnauthorized: z.boolean().default(true),
        })
        .optional(),
      keyPrefix: z.string().default("strata:"),
      /** Fail a request after this long without a Redis answer. */
      commandTimeoutMs: z.number().int().positive().default(2000),
      /** Lease of a lock: renewed while its holder lives; a dead holder's lock frees itself after this long. */
      lockTtlMs: z.number().int().min(500).default(3000),
      /**
       * Replicas that must confirm a write (WAIT) before the request that made it is answered,
       * so that a failover cannot lose it. Default: 1 with sentinels, else 0.
       */
      syncReplicas: z.number().int().nonnegative().optional(),
    })
    .refine((r) => !(r.url && r.sentinels), "set either redis.url or redis.sentinels, not both")
    .refine((r) => !r.sentinels || r.name, "redis.name (the monitored master's name) is required with redis.sentinels")
    .default({ keyPrefix: "strata:", commandTimeoutMs: 2000, lockTtlMs: 3000 }),
  uploads: z
    .object({
      /** An upload session untouched for this long is expired and purged. */
      ttlSeconds: z
        .number()
        .int()
        .positive()
        .default(24 * 3600),
      purgeIntervalSeconds: z.number().int().nonnegative().default(3600),
      /** Upload data that no session owns any more (left by a crash) is purged once untouched for this long. */
      orphanGraceSeconds: z.number().int().nonnegative().default(600),
    })
    .default({ ttlSeconds: 24 * 3600, purgeIntervalSeconds: 3600, orphanGraceSeconds: 600 }),
  limits: z
    .object({
      manifestMaxBytes: z
        .number()
        .int()
        .positive()
        .default(4 * MiB),
      /** Largest accepted blob; 0 = unlimited. */
      blobMaxBytes: z.number().int().nonnegative().default(0),
    })
    .default({ manifestMaxBytes: 4 * MiB, blobMaxBytes: 0 }),
  cache: z
    .object({
      /** Bytes of manifests kept in memory (manifests by digest are immutable). */
      manifestBytes: z
        .number()
        .int()
        .nonnegative()
        .default(64 * MiB),
    })
    .default({ manifestBytes: 64 * MiB }),
  log: z
    .object({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    })
    .default({ level: "info" }),
  /** Garbage collection (services/gc.ts). */
  gc: z
    .object({
      /** Blobs, links and manifests younger than this are never collected (grace period). */
      delaySeconds: z.number().int().nonnegative().default(3600),
      /** Collect on this schedule (0: only on demand, `strata gc`). */
      intervalSeconds: z.number().int().nonnegative().default(0),
      /** "delete": manifests no tag reaches (directly, as index child or as referrer) are collected too. */
      untagged: z.enum(["delete", "keep"]).default("keep"),
    })
    .default({ delaySeconds: 3600, intervalSeconds: 0, untagged: "keep" }),
  retention: z.array(retentionRuleSchema).default([]),
  immutable: z.array(immutableRuleSchema).default([]),
  quotas: z.array(quotaRuleSchema).default([]),
  /** Enable DELETE of manifests, tags and blobs. */
  delete: z.object({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** Webhooks that receive push, pull, delete and mount events. */
  notifications: z.object({ endpoints: z.array(notificationEndpointSchema).default([]) }).default({ endpoints: [] }),
  /** The web UI at /ui/. */
  ui: z.object({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** Who may connect: htpasswd users (Basic) and/or Docker token authentication. Absent: open registry. */
  auth: authSchema.optional(),
  /**
   * Per-repository rules; the first rule matching (user, repository) grants its actions, no rule
   * grants nothing. Absent (with auth): every authenticated user may do everything.
   */
  access: z.array(accessRuleSchema).optional(),
  /** Named sets of users, referred to as "group:NAME" in access rules. */
  groups: z.record(z.string(), z.array(z.string().min(1))).default({}),
  /** Serve HTTPS (TLS 1.2+, HTTP/2 with HTTP/1.1 fallback); files are reloaded when they change. */
  tls: tlsSchema.optional(),
  /** Memory of the serving process. */
  memory: z
    .object({
      /**
       * When the bytes held by Buffers (request bodies on their way to storage) exceed this, V8
       * is asked to collect at once (memory.ts `governBuffers`), so dropped request Buffers do
       * not pile up until its own external-memory trigger. S3 part buffers are left out of the
       * count (only down to a third of the limit for the rest). 0: never.
       */
      bufferLimitBytes: z.number().int().min(0).default(48 * MiB),
    })
    .default({ bufferLimitBytes: 48 * MiB }),
  /** How blob bodies leave the server. */
  http: z
    .object({
      /**
       * How verified blob files are sent on Linux over plain HTTP/1.x (filesystem storage):
       * `sendfile` (zero-copy, sendfile(2)), `copy` (native pread/write through one 32 KiB
       * buffer), `auto` (copy to loopback clients, whose own copy then reads a cache-hot buffer;
       * sendfile to everyone else), `stream` (through JavaScript streams, as TLS always is).
       * S3 storage over plain HTTP: a verified version's GetObject response is relayed from
       * socket to socket natively (http/relay.ts), by splice(2) except with `copy` (read/write
       * through one 256 KiB buffer); `stream` sends it through JavaScript streams.
       */
      send: z.enum(["auto", "sendfile", "copy", "stream"]).default("auto"),
      /**
       * Behind nginx (opt-in, filesystem storage): a whole-blob GET of a verified blob file is
       * answered with `X-Accel-Redirect: <prefix><key>` and no body, and nginx sends the file
       * from an `internal` location whose alias is the storage root (see README).
       */
      accelRedirect: z
        .object({ prefix: z.string().regex(/^\/[A-Za-z0-9._~/-]*[^/]$/, "prefix must be an absolute URI path without a trailing slash") })
        .optional(),
    })
    .default({ send: "auto" }),
  /** Serve as a pull-through cache of upstream registries (read-only unless proxy.allowPush). */
  proxy: proxySchema.optional(),
})
  .refine((c) => c.access === undefined || c.auth !== undefined, { message: "access rules need auth (auth.htpasswd or auth.token)", path: ["access"] });

export type RegistryConfig = z.infer<typeof configSchema>;
export type RedisConfig = RegistryConfig["redis"];

/** Whether the registry keeps its shared state in Redis (a fleet) rather than in the process. */
export function redisConfigured(config: RegistryConfig): boolean {
  return config.redis.url !== undefined || config.redis.sentinels !== undefined;
}
export type RegistryConfigInput = z.input<typeof configSchema>;
export type S3Config = z.infer<typeof s3Schema>;
export type AuthConfig = z.infer<typeof authSchema>;
export type AccessRule = z.infer<typeof accessRuleSchema>;
export type TlsConfig = z.infer<typeof tlsSchema>;
export type RetentionRule = z.infer<typeof retentionRuleSchema>;
export type ImmutableRule = z.infer<typeof immutableRuleSchema>;
export type QuotaRule = z.infer<typeof quotaRuleSchema>;
export type GcConfig = RegistryConfig["gc"];
export type ProxyConfig = z.infer<typeof proxySchema>;

export class ConfigError extends Error {
  /** Its message lists one problem per line (printed whole by the CLI). */
  readonly multiline = true;
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Keys of `value` that `schema` does not know, at every level, each as "path: unknown key (did
 * you mean x?)". Walks the schema's own structure, so every object schema is strict whatever
 * way it was declared.
 */
function unknownKeys(schema: z.ZodType, value: unknown, path: string[], out: string[]): void {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  const inner = (def.innerType ?? (def.type === "pipe" ? def.in : undefined)) as z.ZodType | undefined;
  if (inner) return unknownKeys(inner, value, path, out);
  if (value === null || typeof value !== "object") return;
  if (def.type === "array" && Array.isArray(value)) {
    value.forEach((v, i) => unknownKeys(def.element as z.ZodType, v, [...path, String(i)], out));
    return;
  }
  if (def.type === "record") {
    for (const [k, v] of Object.entries(value)) unknownKeys(def.valueType as z.ZodType, v, [...path, k], out);
    return;
  }
  if (def.type !== "object" || Array.isArray(value)) return;
  const shape = def.shape as Record<string, z.ZodType>;
  const loose = def.catchall !== undefined && (def.catchall as { _zod: { def: { type: string } } })._zod.def.type !== "never";
  for (const [k, v] of Object.entries(value)) {
    if (Object.hasOwn(shape, k)) unknownKeys(shape[k], v, [...path, k], out);
    if (Object.hasOwn(shape, k) || loose) continue;
    const close = Object.keys(shape)
      .map((c) => ({ c, d: editDistance(k.toLowerCase(), c.toLowerCase()) }))
      .filter((x) => x.d <= Math.max(1, Math.floor(k.length / 3)))
      .sort((a, b) => a.d - b.d)[0];
    out.push(`  ${[...path, k].join(".")}: unknown key${close ? ` (did you mean ${[...path, close.c].join(".")}?)` : ""}`);
  }
}

function camel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function coerce(v: string): unknown {
  if (v === "true") return true;
  if (v === "false") return false;
  if (/^-?\d+$/.test(v) && v.length < 16) return Number(v);
  return v;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    if (typeof cur[p] !== "object" || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[path[path.length - 1]] = value;
}

/** Applies STRATA_* variables onto a raw (unvalidated) config object. */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  const short: Record<string, string[]> = { STRATA_ADDR: ["addr"], STRATA_DATA: ["storage", "filesystem", "root"], STRATA_REDIS_URL: ["redis", "url"] };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || !k.startsWith("STRATA_")) continue;
    if (short[k]) {
      setPath(out, short[k], v);
      continue;
    }
    const rest = k.slice("STRATA_".length);
    if (!rest.includes("__") && !["LOG", "STORAGE"].some((p) => rest.startsWith(p))) continue;
    setPath(out, rest.split("__").map(camel), coerce(v));
  }
  return out;
}

/** Validates a raw config object; throws ConfigError with every problem (unknown keys too) on one line each. */
export function parseConfig(raw: unknown): RegistryConfig {
  const problems: string[] = [];
  unknownKeys(configSchema, raw ?? {}, [], problems);
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) problems.push(...r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`));
  if (problems.length || !r.success) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  return r.data;
}

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Highest-priority overrides (command-line flags). */
  overrides?: { addr?: string; data?: string };
}

export async function loadConfig(opts: LoadConfigOptions = {}): Promise<RegistryConfig> {
  let raw: Record<string, unknown> = {};
  if (opts.file) {
    let text: string;
    try {
      text = await readFile(opts.file, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (e) {
      throw new ConfigError(`config file ${opts.file} is not valid YAML: ${(e as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== "object" || Array.isArray(parsed))) {
      throw new ConfigError(`config file ${opts.file} must hold a mapping`);
    }
    raw = (parsed as Record<string, unknown>) ?? {};
  }
  raw = applyEnv(raw, opts.env ?? process.env);
  if (opts.overrides?.addr) raw.addr = opts.overrides.addr;
  if (opts.overrides?.data) setPath(raw, ["storage", "filesystem", "root"], opts.overrides.data);
  return parseConfig(raw);
}

/** Splits "host:port" (host may be "[v6]" or empty). */
export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host: host || "0.0.0.0", port: Number(addr.slice(i + 1)) };
}
