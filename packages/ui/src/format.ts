/** Display formats: sizes in powers of 1024 as the registry's clients print them, relative ages. */

export function formatSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "–";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 45) return "just now";
  const steps: [number, string][] = [
    [60, "minute"],
    [3600, "hour"],
    [86400, "day"],
    [86400 * 30, "month"],
    [86400 * 365, "year"],
  ];
  let unit = "minute";
  let n = 1;
  for (const [secs, name] of steps) {
    if (s >= secs * 0.75) {
      unit = name;
      n = Math.max(1, Math.round(s / secs));
    }
  }
  return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
}

export function shortDigest(digest: string): string {
  const i = digest.indexOf(":");
  return digest.slice(i + 1, i + 13);
}

/** The registry's host as image references name it. */
export function registryHost(): string {
  return location.host;
}

export function pullCommand(tool: "docker" | "podman", repository: string, reference: string): string {
  const sep = reference.includes(":") ? "@" : ":";
  return `${tool} pull ${registryHost()}/${repository}${sep}${reference}`;
}
