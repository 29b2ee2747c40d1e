import { driverConformanceSuite } from "../src/storage/conformance.js";
import { memoryDriver } from "../src/storage/memory.js";

driverConformanceSuite("inmemory", async () => ({ driver: memoryDriver(), cleanup: async () => {} }));
