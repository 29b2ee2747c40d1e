export * from "./digest.js";
export * from "./chainid.js";
export * from "./errors.js";
export * from "./mediatypes.js";
export * from "./reference.js";
export * from "./manifest.js";
export * from "./verify.js";
