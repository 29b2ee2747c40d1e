export { registerContainerCommands, psRows, formatPsTable } from "./cli.js";
export {
  planMount,
  maxLowersForPage,
  MountPlanError,
  OVERLAY_MAX_LOWERS,
  DOCKER_MAX_DEPTH,
  DEFAULT_OVERLAY_FEATURES,
  type MountFacts,
  type MountPlan,
} from "./plan.js";
export { executeMount, unmountPath, isMountPoint, listMounts } from "./mount.js";
export {
  createContainer,
  listContainers,
  resolveContainer,
  removeContainer,
  mountContainer,
  unmountContainer,
  mountImageReadOnly,
  unmountImageReadOnly,
  planContainerMount,
  planImageMount,
  containerLayers,
  mergedDir,
  readOnlyTarget,
  containersFile,
  readContainerMeta,
  isContainerMounted,
  ContainerNotFoundError,
  type Container,
  type ContainerMeta,
  type CreateOptions,
} from "./store.js";
export { INIT_ENTRIES, setupInitLayer } from "./init.js";
export { overlayChanges, formatChanges, type Change, type ChangeKind } from "./changes.js";
export { commitContainer, EMPTY_LAYER_DIFF_ID, rfc3339Nano, type CommitOptions, type CommitResult } from "./commit.js";
export { exportLayers, exportToDir, exportToTar, mergedEntries, mergedTarChunks, type MergedEntry } from "./export.js";
export { upperDirTar, upperDirTarChunks, encodeHeader } from "./tarwriter.js";
export { lookupInStack, isWhiteout, isOpaque } from "./stack.js";
