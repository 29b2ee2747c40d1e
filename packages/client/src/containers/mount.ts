/**
 * The mount executor: performs a MountPlan (plan.ts) and undoes it. Uses the native addon's
 * mount(2) when the plan has no working directory, and the strata-mount helper (a child process
 * with its own cwd) when it has one. Without the native build it falls back to mount(8)/umount(8),
 * also run as a child process with the plan's cwd.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { resolve } from "node:path";
import { MountFlags, mount, mountAt, nativeAvailable, strataMountPath, umount } from "../native.js";
import { DEFAULT_OVERLAY_FEATURES, type MountPlan } from "./plan.js";

function run(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${(r.stderr || r.stdout || "").trim() || `exit status ${r.status}`}`);
}

/**
 * The always-set overlay options (plan.ts DEFAULT_OVERLAY_FEATURES) this kernel knows, judged like
 * Docker judges `index=off`: by the module parameter existing under /sys/module/overlay/parameters.
 * When that directory is missing (unknown kernel layout) all of them are used.
 */
export function overlayFeatures(): string[] {
  const dir = "/sys/module/overlay/parameters";
  if (!existsSync(dir)) return [...DEFAULT_OVERLAY_FEATURES];
  return DEFAULT_OVERLAY_FEATURES.filter((opt) => existsSync(`${dir}/${opt.split("=")[0]}`));
}

/** Mounts an overlay as planned. The target directory must exist. */
export function executeMount(plan: MountPlan): void {
  if (!plan.shortLinks) {
    mountPlanned(plan);
    return;
  }
  const { dir, links } = plan.shortLinks;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    for (const [name, target] of links) symlinkSync(target, `${dir}/${name}`);
    mountPlanned(plan);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function mountPlanned(plan: MountPlan): void {
  const flags = plan.readOnly ? MountFlags.MS_RDONLY : 0;
  if (nativeAvailable()) {
    if (plan.cwd === undefined) mount(plan.source, plan.target, plan.type, flags, plan.options);
    else if (existsSync(strataMountPath)) mountAt(plan.cwd, plan.source, plan.target, plan.type, flags, plan.options);
    else run("mount", ["-t", plan.type, ...(plan.readOnly ? ["-o", "ro"] : []), "-o", plan.options, plan.source, plan.target], plan.cwd);
    return;
  }
  run("mount", ["-t", plan.type, ...(plan.readOnly ? ["-o", "ro"] : []), "-o", plan.options, plan.source, plan.target], plan.cwd);
}

/** Unmounts `target` (lazily with `detach`). */
export function unmountPath(target: string, opts: { detach?: boolean } = {}): void {
  if (nativeAvailable()) {
    umount(target, opts.detach ? 2 : 0);
    return;
  }
  run("umount", [...(opts.detach ? ["-l"] : []), target]);
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points of this process' mount namespace (from /proc/self/mountinfo), with their fs type. */
export function listMounts(): Array<{ target: string; fstype: string }> {
  const text = readFileSync("/proc/self/mountinfo", "utf8");
  const out: Array<{ target: string; fstype: string }> = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-");
    out.push({ target: unescapeMountinfo(f[4]), fstype: sep >= 0 ? f[sep + 1] : "" });
  }
  return out;
}

/** True when something is mounted exactly at `target`. */
export function isMountPoint(target: string): boolean {
  const t = resolve(target);
  return listMounts().some((m) => m.target === t);
}
