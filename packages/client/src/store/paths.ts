/**
 * The store layout: exactly Docker Engine's data root with the overlay2 driver.
 *
 *   <root>/
 *     image/overlay2/
 *       repositories.json                                     0600, compact JSON, sorted keys
 *       imagedb/content/sha256/<imageID>                       0600, config bytes verbatim
 *       layerdb/sha256/<chainID>/{diff,parent,size,cache-id,tar-split.json.gz}   dir 0700
 *       layerdb/tmp/write-set-<pid>-<random>/                  an entry being written
 *       layerdb/mounts/<containerID>/{mount-id,init-id,parent} (containers; read only here)
 *       distribution/diffid-by-digest/sha256/<blobHex>         "sha256:<diffID>"
 *       distribution/v2metadata-by-diffid/sha256/<diffIDHex>   [{"Digest","SourceRepository","HMAC"}]
 *     overlay2/                                                0710
 *       l/<26-char link> -> ../<cache-id>/diff                  l: 0700
 *       <cache-id>/{diff/,link,lower,work/,committed}           dir 0710
 *       .strata-tmp-<pid>-<random>/                            a layer being extracted
 *     .strata.lock                                             the store lock (pid inside)
 *     strata/leases/<pid>-<random>                             chainIDs a live process is writing an image with
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { type Digest, digestHex } from "@strata/core/digest";

/** `/var/lib/strata` for root, else `$XDG_DATA_HOME/strata` or `~/.local/share/strata`. */
export function defaultRoot(): string {
  if (typeof process.getuid === "function" && process.getuid() === 0) return "/var/lib/strata";
  const xdg = process.env.XDG_DATA_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".local", "share"), "strata");
}

export class StorePaths {
  readonly image: string;
  readonly overlay: string;
  constructor(readonly root: string) {
    this.image = join(root, "image", "overlay2");
    this.overlay = join(root, "overlay2");
  }
  get lockFile(): string {
    return join(this.root, ".strata.lock");
  }
  get leases(): string {
    return join(this.root, "strata", "leases");
  }
  get repositories(): string {
    return join(this.image, "repositories.json");
  }
  get imagedbContent(): string {
    return join(this.image, "imagedb", "content", "sha256");
  }
  get imagedbMetadata(): string {
    return join(this.image, "imagedb", "metadata", "sha256");
  }
  imageConfig(id: Digest): string {
    return join(this.imagedbContent, digestHex(id));
  }
  get layerdb(): string {
    return join(this.image, "layerdb", "sha256");
  }
  get layerdbTmp(): string {
    return join(this.image, "layerdb", "tmp");
  }
  get mounts(): string {
    return join(this.image, "layerdb", "mounts");
  }
  layer(chainId: Digest): string {
    return join(this.layerdb, digestHex(chainId));
  }
  get diffIdByDigest(): string {
    return join(this.image, "distribution", "diffid-by-digest", "sha256");
  }
  get v2MetadataByDiffId(): string {
    return join(this.image, "distribution", "v2metadata-by-diffid", "sha256");
  }
  get links(): string {
    return join(this.overlay, "l");
  }
  overlayDir(cacheId: string): string {
    return join(this.overlay, cacheId);
  }
}
