/**
 * `strata manifest create DEST SRC...`: an OCI index (or, with `--format docker`, a Docker
 * manifest list) naming platform images already in a registry, pushed as DEST.
 *
 * Each SRC is read from its registry: an image manifest contributes one entry whose platform
 * comes from its config (os, architecture, variant, os.version); an index contributes all its
 * entries as they are. A SRC in another repository (or registry) is first copied into DEST's
 * repository by digest (blobs mounted when on the same registry), so the index never names a
 * manifest the repository lacks. The index is PUT last; its digest is printed.
 */
import { type Descriptor, digestOf, MediaTypes, parseImageConfig, parseManifest, parseReference, type Reference } from "@strata/core";
import { getCredentials } from "../credentials/docker-config.js";
import { RegistryClient } from "../registry/client.js";
import { RegistryWriter } from "../registry/push.js";
import { print } from "../terminal.js";
import { copyImage } from "../transports/copy.js";
import { DockerDestination, dockerSource } from "../transports/docker.js";
import { TransportError, TransportUsageError } from "../transports/types.js";

export interface ManifestCreateOptions {
  format: "oci" | "docker";
  quiet?: boolean;
  insecureRegistries?: string[];
}

function ref(text: string): Reference {
  const t = text.startsWith("docker://") ? text.slice("docker://".length) : text;
  try {
    return parseReference(t);
  } catch (e) {
    throw new TransportUsageError(`${text}: ${(e as Error).message}`);
  }
}

const clients = new Map<string, RegistryClient>();
async function clientFor(domain: string, insecureRegistries: string[] | undefined): Promise<RegistryClient> {
  let c = clients.get(domain);
  if (!c) {
    c = new RegistryClient({ domain, insecureRegistries, credentials: await getCredentials(domain) });
    clients.set(domain, c);
  }
  return c;
}

export async function manifestCreate(destText: string, sources: string[], o: ManifestCreateOptions): Promise<string> {
  const dest = ref(destText);
  if (dest.digest) throw new TransportUsageError(`${destText}: name the index by a tag, not a digest`);
  const entries: Descriptor[] = [];
  for (const s of sources) {
    const src = ref(s);
    const client = await clientFor(src.domain, o.insecureRegistries);
    const m = await client.getManifest(src.repository, src.digest ?? src.tag ?? "latest");
    let parsed;
    try {
      parsed = parseManifest(m.raw, m.contentType);
    } catch (e) {
      throw new TransportError(`${s}: ${(e as Error).message}`);
    }
    const here = src.domain === dest.domain && src.repository === dest.repository;
    if (!here) {
      // the manifest (and what it names) into DEST's repository, by digest
      const from = await dockerSource(`docker://${s}`, `${src.domain}/${src.repository}@${m.digest}`, { insecureRegistries: o.insecureRegistries });
      const to = await DockerDestination.create(`docker://${destText}`, `${dest.domain}/${dest.repository}@${m.digest}`, { insecureRegistries: o.insecureRegistries });
      await copyImage(from, to, { all: true });
    }
    if (parsed.kind === "index") {
      for (const d of parsed.manifests) entries.push(d as Descriptor);
      continue;
    }
    const cfgRaw = await client.readBlob(src.repository, parsed.config);
    let cfg;
    try {
      cfg = parseImageConfig(cfgRaw).config as ReturnType<typeof parseImageConfig>["config"] & { "os.version"?: string };
    } catch (e) {
      throw new TransportError(`${s}: ${(e as Error).message}`);
    }
    const platform = {
      architecture: cfg.architecture,
      os: cfg.os,
      ...(cfg["os.version"] ? { "os.version": cfg["os.version"] } : {}),
      ...(cfg.variant ? { variant: cfg.variant } : {}),
    };
    entries.push({ mediaType: parsed.mediaType, digest: m.digest, size: m.raw.length, platform } as Descriptor);
  }
  const mediaType = o.format === "docker" ? MediaTypes.DockerManifestList : MediaTypes.OciIndex;
  if (o.format === "docker" && entries.some((e) => e.mediaType !== MediaTypes.DockerManifest)) {
    throw new TransportUsageError("a Docker manifest list can only name Docker schema2 images: use --format oci");
  }
  const raw = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: entries.map((e) => ({ mediaType: e.mediaType, digest: e.digest, size: e.size, ...(e.platform ? { platform: e.platform } : {}) })) }));
  const writer = new RegistryWriter(await clientFor(dest.domain, o.insecureRegistries), dest.repository);
  const digest = await writer.putManifest(raw, mediaType, dest.tag ?? "latest");
  if (digest !== digestOf(raw)) throw new TransportError("internal: index digest");
  print(o.quiet ? `${digest}\n` : `Created ${dest.domain}/${dest.repository}:${dest.tag ?? "latest"}: ${digest} (${entries.length} images)\n`);
  return digest;
}
