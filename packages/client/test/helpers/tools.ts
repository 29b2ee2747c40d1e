/**
 * Optional tools the tests run (Debian packages, listed in the README and installed by .ci/run).
 * `missing(...)` gives the one-line skip reason for a suite when any of them is not installed,
 * or false when all are there.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

const PACKAGE: Record<string, string> = {
  "docker-registry": "docker-registry",
  skopeo: "skopeo",
  dockerd: "docker.io",
  docker: "docker.io",
  podman: "podman",
  umoci: "umoci",
  "tar-split": "tar-split",
  zstd: "zstd",
  "redis-server": "redis-server",
  "redis-cli": "redis-tools",
  openssl: "openssl",
  htpasswd: "apache2-utils",
  jq: "jq",
  setfattr: "attr",
};

function installed(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  return dirs.some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function missing(...tools: string[]): string | false {
  const absent = tools.filter((t) => !installed(t));
  if (absent.length === 0) return false;
  return `needs ${absent.map((t) => `${t} (Debian package ${PACKAGE[t] ?? t})`).join(", ")}: not installed`;
}
