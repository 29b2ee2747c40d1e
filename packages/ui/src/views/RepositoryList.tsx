/** The first page: every repository, searchable, sorted by name, last push or size, paged with "Show more". */
import { useEffect, useRef, useState } from "preact/hooks";
import { type RepositoryRow, repositories } from "../api.js";
import { Age, ErrorBox, Size } from "../components.js";
import { handleActionError, useLoad } from "../load.js";
import { href } from "../routes.js";

const SORTS: [string, string][] = [
  ["name", "Name"],
  ["pushed", "Last push"],
  ["size", "Size"],
];

export function RepositoryList(props: { q: string; sort: string }) {
  const [q, setQ] = useState(props.q);
  const page = useLoad(() => repositories(props.q, props.sort), [props.q, props.sort]);
  const [more, setMore] = useState<{ items: RepositoryRow[]; next?: string }>({ items: [] });
  const [moreError, setMoreError] = useState<string>();
  const timer = useRef<number | undefined>(undefined);

  useEffect(() => setMore({ items: [] }), [props.q, props.sort]);
  useEffect(() => {
    document.title = "Repositories · Strata registry";
  }, []);

  const go = (nq: string, sort: string) => {
    location.hash = href({ page: "list", q: nq, sort });
  };
  const onInput = (v: string) => {
    setQ(v);
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => go(v.trim(), props.sort), 250);
  };
  const rows = [...(page.data?.items ?? []), ...more.items];
  const next = more.next ?? (more.items.length ? undefined : page.data?.next);
  const showMore = async () => {
    try {
      const p = await repositories(props.q, props.sort, next);
      setMore({ items: [...more.items, ...p.items], next: p.next });
    } catch (e) {
      setMoreError(handleActionError(e));
    }
  };

  return (
    <section aria-labelledby="repos-title">
      <h1 id="repos-title">Repositories</h1>
      <form class="toolbar" role="search" onSubmit={(e) => (e.preventDefault(), go(q.trim(), props.sort))}>
        <label for="repo-search">Search</label>
        <input id="repo-search" type="search" placeholder="name contains…" value={q} onInput={(e) => onInput((e.target as HTMLInputElement).value)} autocomplete="off" spellcheck={false} />
        <label for="repo-sort">Sort by</label>
        <select id="repo-sort" value={props.sort} onChange={(e) => go(q.trim(), (e.target as HTMLSelectElement).value)}>
          {SORTS.map(([v, label]) => (
            <option value={v} key={v}>
              {label}
            </option>
          ))}
        </select>
      </form>
      {page.error !== undefined ? <ErrorBox error={page.error} /> : null}
      <table class="list" aria-busy={page.loading}>
        <caption class="sr-only">
          Repositories{props.q ? ` whose name contains ${props.q}` : ""}, sorted by {SORTS.find(([v]) => v === props.sort)?.[1] ?? props.sort}
        </caption>
        <thead>
          <tr>
            <th scope="col" aria-sort={props.sort === "name" ? "ascending" : undefined}>
              Name
            </th>
            <th scope="col" class="num">
              Tags
            </th>
            <th scope="col" class="num" aria-sort={props.sort === "size" ? "descending" : undefined}>
              Size
            </th>
            <th scope="col" aria-sort={props.sort === "pushed" ? "descending" : undefined}>
              Last push
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.name} data-repository={r.name}>
              <td>
                <a href={href({ page: "repo", name: r.name })}>{r.name}</a>
              </td>
              <td class="num">{r.tagCount}</td>
              <td class="num">
                <Size bytes={r.size} />
              </td>
              <td>
                <Age iso={r.pushedAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!page.loading && rows.length === 0 && page.error === undefined ? <p class="muted">{props.q ? "No repository matches." : "No repositories yet."}</p> : null}
      {moreError ? <p class="error">{moreError}</p> : null}
      {next ? (
        <button type="button" class="more" onClick={showMore}>
          Show more
        </button>
      ) : null}
    </section>
  );
}
