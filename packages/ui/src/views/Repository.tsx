/**
 * One repository: its tags with platforms, size, age, last pull and short digest (click to
 * copy), a copy-ready pull command per tag, referrer badges, and multi-select delete of tags
 * or of the manifests they point at (when the registry allows deletes). Tags come TAGS_PAGE at
 * a time, the next ones with "Show more".
 */
import { useEffect, useState } from "preact/hooks";
import { deleteReference, info, type TagRow, tags } from "../api.js";
import { Age, Badge, CopyButton, ErrorBox, Size } from "../components.js";
import { pullCommand, shortDigest } from "../format.js";
import { handleActionError, useLoad } from "../load.js";
import { href } from "../routes.js";

type Tool = "docker" | "podman";

/** Tags per request: the first page and each "Show more". */
export const TAGS_PAGE = 200;

export function PullCommand(props: { repository: string; reference: string; tool: Tool; onTool: (t: Tool) => void; idPrefix: string }) {
  const cmd = pullCommand(props.tool, props.repository, props.reference);
  return (
    <div class="pull">
      <fieldset class="tool">
        <legend class="sr-only">Client</legend>
        {(["docker", "podman"] as Tool[]).map((t) => (
          <label key={t}>
            <input type="radio" name={`${props.idPrefix}-tool`} value={t} checked={props.tool === t} onChange={() => props.onTool(t)} /> {t}
          </label>
        ))}
      </fieldset>
      <code class="cmd" data-testid="pull-command">
        {cmd}
      </code>
      <CopyButton text={cmd} label="pull command" />
    </div>
  );
}

export function RepositoryPage(props: { name: string }) {
  const [sort, setSort] = useState<"pushed" | "name">("pushed");
  const page = useLoad(() => Promise.all([tags(props.name, sort, undefined, TAGS_PAGE), info()]), [props.name, sort]);
  const [more, setMore] = useState<{ items: TagRow[]; next?: string; error?: string }>({ items: [] });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [tool, setTool] = useState<Tool>("docker");
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ kind: "error" | "ok"; text: string }>();

  useEffect(() => {
    document.title = `${props.name} · Strata registry`;
  }, [props.name]);
  useEffect(() => setMore({ items: [] }), [props.name, sort, page.data]);

  const [rows, meta] = page.data ?? [{ items: [] as TagRow[] }, { deleteEnabled: false, auth: null }];
  const all = [...rows.items, ...more.items];
  const next = more.items.length ? more.next : rows.next;
  const showMore = async () => {
    try {
      const p = await tags(props.name, sort, next, TAGS_PAGE);
      setMore({ items: [...more.items, ...p.items], next: p.next });
    } catch (e) {
      setMore({ ...more, error: handleActionError(e) });
    }
  };
  const toggle = (tag: string) => {
    const s = new Set(selected);
    if (s.has(tag)) s.delete(tag);
    else s.add(tag);
    setSelected(s);
  };
  const remove = async (what: "tags" | "manifests") => {
    const chosen = all.filter((t) => selected.has(t.tag));
    const refs = what === "tags" ? chosen.map((t) => t.tag) : [...new Set(chosen.map((t) => t.digest))];
    const also = what === "manifests" ? all.filter((t) => !selected.has(t.tag) && refs.includes(t.digest)).map((t) => t.tag) : [];
    const question =
      what === "tags"
        ? `Delete ${refs.length} tag${refs.length === 1 ? "" : "s"} (${refs.join(", ")})? The images stay reachable by digest.`
        : `Delete ${refs.length} image${refs.length === 1 ? "" : "s"} by digest${also.length ? `, which also removes the tags ${also.join(", ")}` : ""}?`;
    if (!window.confirm(question)) return;
    setBusy(true);
    const failed: string[] = [];
    for (const r of refs) {
      try {
        await deleteReference(props.name, r);
      } catch (e) {
        failed.push(`${r}: ${handleActionError(e)}`);
      }
    }
    setBusy(false);
    setSelected(new Set());
    setMessage(failed.length ? { kind: "error", text: `Not deleted: ${failed.join("; ")}` } : { kind: "ok", text: `Deleted ${refs.length} ${what === "tags" ? "tag" : "image"}${refs.length === 1 ? "" : "s"}.` });
    page.reload();
  };

  const latest = all[0];
  return (
    <section aria-labelledby="repo-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href({ page: "list", q: "", sort: "name" })}>Repositories</a> / <span aria-current="page">{props.name}</span>
      </nav>
      <h1 id="repo-title">{props.name}</h1>
      {page.error !== undefined ? <ErrorBox error={page.error} /> : null}
      {latest ? <PullCommand repository={props.name} reference={latest.tag} tool={tool} onTool={setTool} idPrefix="repo" /> : null}
      <div class="toolbar">
        <label for="tag-sort">Sort tags by</label>
        <select id="tag-sort" value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value as "pushed" | "name")}>
          <option value="pushed">Last push</option>
          <option value="name">Name</option>
        </select>
        {meta.deleteEnabled ? (
          <>
            <button type="button" class="danger" disabled={selected.size === 0 || busy} onClick={() => remove("tags")}>
              Delete selected tags{selected.size ? ` (${selected.size})` : ""}
            </button>
            <button type="button" class="danger" disabled={selected.size === 0 || busy} onClick={() => remove("manifests")}>
              Delete their images
            </button>
          </>
        ) : null}
      </div>
      {message ? (
        <p class={message.kind === "error" ? "error" : "ok"} role={message.kind === "error" ? "alert" : "status"}>
          {message.text}
        </p>
      ) : null}
      <table class="list" aria-busy={page.loading}>
        <caption class="sr-only">Tags of {props.name}</caption>
        <thead>
          <tr>
            {meta.deleteEnabled ? (
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select all tags"
                  checked={all.length > 0 && selected.size === all.length}
                  onChange={(e) => setSelected((e.target as HTMLInputElement).checked ? new Set(all.map((t) => t.tag)) : new Set())}
                />
              </th>
            ) : null}
            <th scope="col">Tag</th>
            <th scope="col">Platforms</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">Pushed</th>
            <th scope="col">Pulled</th>
            <th scope="col">Digest</th>
            <th scope="col">Pull</th>
          </tr>
        </thead>
        <tbody>
          {all.map((t) => (
            <tr key={t.tag} data-tag={t.tag}>
              {meta.deleteEnabled ? (
                <td>
                  <input type="checkbox" aria-label={`Select tag ${t.tag}`} checked={selected.has(t.tag)} onChange={() => toggle(t.tag)} />
                </td>
              ) : null}
              <td>
                <a href={href({ page: "image", name: props.name, reference: t.tag })}>{t.tag}</a>
                {t.referrers > 0 ? (
                  <>
                    {" "}
                    <Badge kind="referrers" title="signatures, SBOMs or attestations refer to this image">
                      {t.referrers} referrer{t.referrers === 1 ? "" : "s"}
                    </Badge>
                  </>
                ) : null}
                {t.artifactType ? (
                  <>
                    {" "}
                    <Badge kind="other">{t.artifactType}</Badge>
                  </>
                ) : null}
              </td>
              <td class="platforms">
                {t.platforms.length ? (
                  t.platforms.map((p) => (
                    <Badge kind="platform" key={p}>
                      {p}
                    </Badge>
                  ))
                ) : (
                  <span class="muted">–</span>
                )}
              </td>
              <td class="num">
                <Size bytes={t.size} />
              </td>
              <td>
                <Age iso={t.pushedAt} />
              </td>
              <td>
                <Age iso={t.pulledAt} />
              </td>
              <td>
                <CopyButton text={t.digest} label={`digest of ${t.tag}`} class="digest">
                  <code>{shortDigest(t.digest)}</code>
                </CopyButton>
              </td>
              <td>
                <CopyButton text={pullCommand(tool, props.name, t.tag)} label={`pull command for ${t.tag}`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!page.loading && all.length === 0 && page.error === undefined ? <p class="muted">No tags.</p> : null}
      {more.error ? <p class="error">{more.error}</p> : null}
      {next ? (
        <button type="button" class="more" onClick={showMore}>
          Show more tags
        </button>
      ) : null}
    </section>
  );
}
