/** `strata serve`: runs the registry over HTTP until SIGTERM/SIGINT, then drains and exits. */
import { createServer, type Server } from "node:http";
import { pino } from "pino";
import { createRegistry } from "./app.js";
import { type LoadConfigOptions, loadConfig, type RegistryConfig, redisConfigured, splitAddr } from "./config.js";

export interface RunningServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** Starts a registry HTTP server for a config (tests and `serve`). */
export async function startServer(config: RegistryConfig): Promise<RunningServer> {
  const logger = pino({ level: config.log.level });
  const reg = await createRegistry(config, { logger });
  const server = createServer(reg.app.callback());
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0;
  const { host, port } = splitAddr(config.addr);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === "object" && addr ? addr.port : port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${actualPort}`,
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await reg.close();
    },
  };
}

export async function serve(opts: LoadConfigOptions): Promise<void> {
  const config = await loadConfig(opts);
  const logger = pino({ level: config.log.level });
  const running = await startServer(config);
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
