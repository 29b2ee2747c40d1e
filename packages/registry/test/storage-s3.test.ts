import { driverConformanceSuite } from "../src/storage/conformance.js";
import { s3Driver } from "../src/storage/s3.js";
import { dropS3TestBucket, s3TestConfig } from "./helpers/s3-server.js";

driverConformanceSuite("s3", async () => {
  const cfg = await s3TestConfig({ partSize: 5 * 1024 * 1024, prefix: "conf/pre" });
  if (!cfg) throw new Error("no S3 server");
  return { driver: s3Driver(cfg), cleanup: () => dropS3TestBucket(cfg) };
});
