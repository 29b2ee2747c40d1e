export * from "./chainid.js";
export * from "./digest.js";
export * from "./errors.js";
export * from "./manifest.js";
export * from "./mediatypes.js";
export * from "./reference.js";
export * from "./verify.js";
