/** Creates the configured storage driver. */
import { resolve } from "node:path";
import type { RegistryConfig } from "../config.js";
import type { StorageDriver } from "./driver.js";
import { filesystemDriver } from "./filesystem.js";
import { memoryDriver } from "./memory.js";

export async function createDriver(config: RegistryConfig): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case "filesystem":
      return filesystemDriver(resolve(config.storage.filesystem.root));
    case "memory":
      return memoryDriver();
    case "s3": {
      const { s3Driver } = await import("./s3.js");
      return s3Driver(config.storage.s3!);
    }
  }
}
