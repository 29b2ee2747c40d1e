/**
 * One image (by tag or digest): pull commands, platforms of an index, the config (entrypoint,
 * command, environment, labels), the layers with their sizes and the history line that made
 * each, and the referrers (signatures, SBOMs, attestations) as badges.
 */
import { useEffect, useState } from "preact/hooks";
import { type ManifestDetail, manifest } from "../api.js";
import { Age, Badge, CopyButton, ErrorBox, Size } from "../components.js";
import { shortDigest } from "../format.js";
import { useLoad } from "../load.js";
import { href } from "../routes.js";
import { PullCommand } from "./Repository.js";

const KIND_LABEL: Record<string, string> = { signature: "Signature", sbom: "SBOM", attestation: "Attestation", other: "Artifact" };

function Config(props: { d: ManifestDetail }) {
  const c = props.d.config!;
  const labels = Object.entries(c.labels ?? {});
  return (
    <section aria-labelledby="config-title" class="card">
      <h2 id="config-title">Configuration</h2>
      <dl class="facts">
        <dt>Platform</dt>
        <dd>{c.os ? `${c.os}/${c.architecture}${c.variant ? `/${c.variant}` : ""}` : "–"}</dd>
        <dt>Entrypoint</dt>
        <dd>
          <code data-testid="entrypoint">{c.entrypoint ? JSON.stringify(c.entrypoint) : "–"}</code>
        </dd>
        <dt>Command</dt>
        <dd>
          <code>{c.cmd ? JSON.stringify(c.cmd) : "–"}</code>
        </dd>
        <dt>Working directory</dt>
        <dd>{c.workingDir ?? "–"}</dd>
        <dt>User</dt>
        <dd>{c.user ?? "–"}</dd>
        <dt>Ports</dt>
        <dd>{c.exposedPorts?.length ? c.exposedPorts.join(", ") : "–"}</dd>
        <dt>Created</dt>
        <dd>{c.created ? <Age iso={c.created} /> : "–"}</dd>
        <dt>Author</dt>
        <dd>{c.author ?? "–"}</dd>
      </dl>
      <h3>Environment</h3>
      {c.env?.length ? (
        <ul class="env">
          {c.env.map((e) => (
            <li key={e}>
              <code>{e}</code>
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">None.</p>
      )}
      <h3>Labels</h3>
      {labels.length ? (
        <table class="list compact">
          <caption class="sr-only">Labels</caption>
          <thead>
            <tr>
              <th scope="col">Label</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {labels.map(([k, v]) => (
              <tr key={k}>
                <td>
                  <code>{k}</code>
                </td>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">None.</p>
      )}
    </section>
  );
}

function Layers(props: { d: ManifestDetail }) {
  const layers = props.d.layers ?? [];
  return (
    <section aria-labelledby="layers-title" class="card">
      <h2 id="layers-title">
        Layers <span class="muted">({layers.length})</span>
      </h2>
      <table class="list" data-testid="layers">
        <caption class="sr-only">Layers, bottom first</caption>
        <thead>
          <tr>
            <th scope="col" class="num">
              #
            </th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">Digest</th>
            <th scope="col">Made by</th>
          </tr>
        </thead>
        <tbody>
          {layers.map((l, i) => (
            <tr key={`${i}${l.digest}`} data-digest={l.digest}>
              <td class="num">{i + 1}</td>
              <td class="num">
                <Size bytes={l.size} />
              </td>
              <td>
                <CopyButton text={l.digest} label={`digest of layer ${i + 1}`} class="digest">
                  <code>{shortDigest(l.digest)}</code>
                </CopyButton>
              </td>
              <td class="history">{l.createdBy ? <code>{l.createdBy}</code> : <span class="muted">–</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Platforms(props: { d: ManifestDetail }) {
  return (
    <section aria-labelledby="platforms-title" class="card">
      <h2 id="platforms-title">Platforms</h2>
      <table class="list" data-testid="platforms">
        <caption class="sr-only">Images of this index</caption>
        <thead>
          <tr>
            <th scope="col">Platform</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">Digest</th>
          </tr>
        </thead>
        <tbody>
          {(props.d.children ?? []).map((c) => (
            <tr key={c.digest} data-platform={c.platform}>
              <td>
                {c.type === "attestation" ? <Badge kind="attestation">attestation</Badge> : <Badge kind="platform">{c.platform}</Badge>}
              </td>
              <td class="num">
                <Size bytes={c.size} />
              </td>
              <td>
                <a href={href({ page: "image", name: props.d.name, reference: c.digest })}>
                  <code>{shortDigest(c.digest)}</code>
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function ImagePage(props: { name: string; reference: string }) {
  const d = useLoad(() => manifest(props.name, props.reference), [props.name, props.reference]);
  const [tool, setTool] = useState<"docker" | "podman">("docker");
  useEffect(() => {
    document.title = `${props.name}:${props.reference} · Strata registry`;
  }, [props.name, props.reference]);
  const m = d.data;
  return (
    <section aria-labelledby="image-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href({ page: "list", q: "", sort: "name" })}>Repositories</a> / <a href={href({ page: "repo", name: props.name })}>{props.name}</a> /{" "}
        <span aria-current="page">{props.reference.includes(":") ? shortDigest(props.reference) : props.reference}</span>
      </nav>
      <h1 id="image-title">
        {props.name}
        <span class="muted">{props.reference.includes(":") ? `@${shortDigest(props.reference)}` : `:${props.reference}`}</span>
      </h1>
      {d.error !== undefined ? <ErrorBox error={d.error} /> : null}
      {m ? (
        <>
          <PullCommand repository={props.name} reference={props.reference} tool={tool} onTool={setTool} idPrefix="image" />
          <dl class="facts card">
            <dt>Digest</dt>
            <dd>
              <CopyButton text={m.digest} label="digest" class="digest">
                <code>{m.digest}</code>
              </CopyButton>
            </dd>
            <dt>Media type</dt>
            <dd>
              <code>{m.mediaType}</code>
            </dd>
            {m.artifactType ? (
              <>
                <dt>Artifact type</dt>
                <dd>
                  <code>{m.artifactType}</code>
                </dd>
              </>
            ) : null}
            <dt>Size</dt>
            <dd>
              <Size bytes={m.size} />
            </dd>
            <dt>Platforms</dt>
            <dd data-testid="image-platforms">
              {m.platforms.length
                ? m.platforms.map((p) => (
                    <Badge kind="platform" key={p}>
                      {p}
                    </Badge>
                  ))
                : "–"}
            </dd>
            <dt>Tags</dt>
            <dd>{m.tags.length ? m.tags.join(", ") : "–"}</dd>
            <dt>Pushed</dt>
            <dd>
              <Age iso={m.pushedAt} />
            </dd>
            <dt>Pulled</dt>
            <dd>
              <Age iso={m.pulledAt} />
            </dd>
            <dt>Referrers</dt>
            <dd data-testid="referrers">
              {m.referrers.length
                ? m.referrers.map((r) => (
                    <Badge kind={r.kind} key={r.digest} title={`${r.artifactType ?? r.mediaType} ${r.digest}`}>
                      {KIND_LABEL[r.kind]}
                    </Badge>
                  ))
                : "none"}
            </dd>
          </dl>
          {m.children ? <Platforms d={m} /> : null}
          {m.config && m.config.history !== undefined ? <Config d={m} /> : null}
          {m.layers ? <Layers d={m} /> : null}
        </>
      ) : null}
    </section>
  );
}
