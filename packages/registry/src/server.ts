/** `strata serve`: runs the registry over HTTP or HTTPS until SIGTERM/SIGINT, then drains and exits. */
import { createServer } from "node:http";
import type { Server } from "node:net";
import { pino } from "pino";
import { createRegistry } from "./app.js";
import { type LoadConfigOptions, loadConfig, type RegistryConfig, redisConfigured, splitAddr } from "./config.js";
import { createTlsServer } from "./http/tls.js";
import { compactHeap, governBuffers } from "./memory.js";
import { pooledBufferBytes } from "./storage/s3-buffers.js";

export interface RunningServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Starts a registry HTTP server for a config (tests and `serve`). `compact`: return the heap's
 * start-up garbage to the OS before listening (memory.ts; `serve` does).
 */
export async function startServer(config: RegistryConfig, opts: { compact?: boolean } = {}): Promise<RunningServer> {
  const logger = pino({ level: config.log.level });
  const reg = await createRegistry(config, { logger });
  const tls = config.tls ? await createTlsServer(config.tls, reg.app.callback(), logger).catch(async (e) => {
    await reg.close();
    throw e;
  }) : undefined;
  const server = tls?.server ?? createServer(reg.app.callback());
  Object.assign(server, { keepAliveTimeout: 65_000, requestTimeout: 0 });
  const { host, port } = splitAddr(config.addr);
  if (opts.compact) compactHeap();
  if (!config.auth && !isLoopback(host)) logger.warn({ addr: config.addr }, "no auth configured: anyone who can reach this address can push, overwrite and delete");
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const ungovern = config.memory.bufferLimitBytes > 0 ? governBuffers(config.memory.bufferLimitBytes, 100, pooledBufferBytes) : () => {};
  const addr = server.address();
  const actualPort = typeof addr === "object" && addr ? addr.port : port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${tls ? "https" : "http"}://${shownHost}:${actualPort}`,
    server,
    async close() {
      ungovern();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        tls?.stop();
        (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      });
      await reg.close();
    },
  };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export async function serve(opts: LoadConfigOptions): Promise<void> {
  const config = await loadConfig(opts);
  const logger = pino({ level: config.log.level });
  const running = await startServer(config, { compact: true });
  logger.info({ url: running.url, storage: config.storage.driver, redis: redisConfigured(config) ? "on" : "off" }, "strata registry listening");
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
