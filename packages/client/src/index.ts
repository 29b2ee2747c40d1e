export { registerClientCommands } from "./cli.js";
export { formatImages, imageRows } from "./commands/images.js";
export { type InspectResult, inspectImage } from "./commands/inspect.js";
export { rmiImages } from "./commands/rmi.js";
export { saveImages, tarSplitTarSize } from "./commands/save.js";
export { type ImageCheck, type LayerCheck, verifyImage, verifyLayer, verifyStore } from "./commands/verify.js";
export * from "./containers/index.js";
export { humanSize, PlainProgress, type ProgressReporter, type PullEvent, silentProgress, TtyProgress } from "./progress.js";
export { PullError, type PulledLayer, type PullOptions, type PullResult, pull } from "./pull.js";
export { type Credentials, parseChallenges, redact } from "./registry/auth.js";
export { getCredentials } from "./credentials/docker-config.js";
export {
  type FetchedManifest,
  isLoopbackHost,
  MANIFEST_ACCEPT,
  RegistryClient,
  type RegistryClientOptions,
  RegistryError,
  registryBaseUrl,
} from "./registry/client.js";
export { NoMatchingPlatformError, selectPlatform } from "./registry/platform.js";
export { imageSize, listImages, loadImage, referenceKeys, removeImage, resolveImage, type StoredImage } from "./store/images.js";
export { StoreLock } from "./store/lock.js";
export { defaultRoot, StorePaths } from "./store/paths.js";
export { type LayerRecord, type PendingLayer, type Repositories, Store, type V2Metadata } from "./store/store.js";
