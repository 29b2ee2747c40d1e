export * from "./app.js";
export * from "./config.js";
export { registerRegistryCommands } from "./cli.js";
export type { StorageDriver, FileWriter, FileInfo } from "./storage/driver.js";
