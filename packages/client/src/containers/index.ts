export { type Change, type ChangeKind, formatChanges, overlayChanges } from "./changes.js";
export { registerContainerCommands } from "./cli.js";
export { formatPs, psRows } from "./ps.js";
export { type CommitOptions, type CommitResult, commitContainer, EMPTY_LAYER_DIFF_ID, rfc3339Nano } from "./commit.js";
export { exportLayers, exportToDir, exportToTar, type MergedEntry, mergedEntries, mergedTarChunks } from "./export.js";
export { INIT_ENTRIES, setupInitLayer } from "./init.js";
export { executeMount, isMountPoint, listMounts, unmountPath } from "./mount.js";
export {
  DEFAULT_OVERLAY_FEATURES,
  DOCKER_MAX_DEPTH,
  type MountFacts,
  type MountPlan,
  MountPlanError,
  OVERLAY_MAX_LOWERS,
  planMount,
} from "./plan.js";
export { isOpaque, isWhiteout, lookupInStack } from "./stack.js";
export {
  type Container,
  type ContainerMeta,
  ContainerNotFoundError,
  type CreateOptions,
  containerLayers,
  containersFile,
  createContainer,
  isContainerMounted,
  listContainers,
  mergedDir,
  mountContainer,
  mountImageReadOnly,
  planContainerMount,
  planImageMount,
  readContainerMeta,
  readOnlyTarget,
  removeContainer,
  resolveContainer,
  unmountContainer,
  unmountImageReadOnly,
} from "./store.js";
export { encodeHeader, upperDirTar, upperDirTarChunks } from "./tarwriter.js";
