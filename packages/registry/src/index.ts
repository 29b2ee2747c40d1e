export * from "./app.js";
export { registerRegistryCommands } from "./cli.js";
export * from "./config.js";
export type { FileInfo, FileWriter, StorageDriver } from "./storage/driver.js";
export { Policy } from "./auth/policy.js";
