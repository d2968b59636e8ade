/**
 * A folder as people and programs read it over HTTP: a page (breadcrumbs to walk up, columns that
 * sort by name, size or date through plain links, names in natural order, a light and a dark
 * scheme, readable on a phone, no JavaScript) or JSON, each made a part at a time as the folder is
 * read, so a page is sent as it is made, whatever the folder's size.
 */

import { createHash } from "node:crypto";
import type { ListEntry } from "../../shared/protocol.ts";
import { formatBytes } from "../../shared/units.ts";
import type { OrderedBatch, SubFolder } from "../listing.ts";

/** The style of the folder page, the one thing on it its Content-Security-Policy lets apply. */
const STYLE = `
:root { color-scheme: light dark; --line: #ddd; --muted: #666; --link: #0b57d0; }
@media (prefers-color-scheme: dark) { :root { --line: #333; --muted: #999; --link: #8ab4f8; } }
body { font: 16px/1.5 system-ui, sans-serif; margin: 1rem auto; max-width: 60rem; padding: 0 1rem; }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 1.25rem; font-weight: 600; overflow-wrap: anywhere; }
h1 a { padding: 0 .1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .4rem .5rem; text-align: left; border-bottom: 1px solid var(--line); }
th { font-weight: 600; white-space: nowrap; }
th a { color: inherit; }
.size { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.name { overflow-wrap: anywhere; }
td.when { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
td.cached { color: var(--muted); font-size: .75rem; white-space: nowrap; }
p.note, p.count, p.download { color: var(--muted); font-size: .875rem; }
@media (max-width: 36rem) { .when, td.cached { display: none; } body { padding: 0 .5rem; } }
`;

/**
 * The Content-Security-Policy of the server's own answers (folder pages, error texts): nothing
 * loads or runs, no form posts, no page frames them; only the folder page's own style applies,
 * named by its digest, so no name shown on a page could ever bring markup to life.
 */
export const PAGE_POLICY = "default-src 'none'; " +
  `style-src 'sha256-${createHash("sha256").update(STYLE).digest("base64")}'; ` +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** A folder's entry as its page shows it: a sub-folder, or a file (named from the data folder). */
export type PageEntry = ListEntry | SubFolder;

/**
 * A piece of an answer made as it is sent (a folder's page, its archive): its text or bytes, and
 * how many of the folder's entries it shows.
 */
export interface PagePart {
  data: string | Uint8Array;
  entries: number;
}

/** What a folder's entries can be sorted by. */
export type SortKey = "name" | "size" | "date";

/** How a folder's page is sorted: by which column, and which way. */
export interface PageSort {
  key: SortKey;
  descending: boolean;
}

/**
 * The sort a request's query asks for (`?sort=size&order=desc`, as Caddy's pages take it): by
 * name, size or date, ascending unless `order=desc`; by name, ascending, when it asks for nothing
 * this knows.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { sortOf } from "./pages.ts";
 * deepEqual(sortOf("sort=size&order=desc"), { key: "size", descending: true });
 * deepEqual(sortOf(""), { key: "name", descending: false });
 * deepEqual(sortOf("sort=evil"), { key: "name", descending: false });
 * ```
 */
export function sortOf(query: string): PageSort {
  const params = new URLSearchParams(query);
  const key = params.get("sort");
  return {
    key: key === "size" || key === "date" ? key : "name",
    descending: params.get("order") === "desc",
  };
}

/** Names in natural order, as people count: "f2" before "f10", case set aside, then code units. */
const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

/**
 * The order of a folder's entries for `sort`: sub-folders first, whichever way, then files; by the
 * column asked for (sub-folders, which have no size, by name for size), ties by name, names in
 * natural order ("f2" before "f10"), and names equal but for case by code unit, so the order is
 * total.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { folderOrder } from "./pages.ts";
 * const file = (name: string, size = 0) => ({ name, size, mtimeMs: 0, cached: false });
 * const entries = [file("f10"), { folder: "z", mtimeMs: 0 }, file("f2", 9), file("F2")];
 * deepEqual(entries.sort(folderOrder({ key: "name", descending: false })).map((e) =>
 *   "folder" in e ? e.folder : e.name), ["z", "F2", "f2", "f10"]);
 * deepEqual(entries.sort(folderOrder({ key: "size", descending: true })).map((e) =>
 *   "folder" in e ? e.folder : e.name), ["z", "f2", "f10", "F2"]);
 * ```
 */
export function folderOrder({ key, descending }: PageSort): (a: PageEntry, b: PageEntry) => number {
  const way = descending ? -1 : 1;
  return (a, b) => {
    const folders = ("folder" in b ? 1 : 0) - ("folder" in a ? 1 : 0);
    if (folders !== 0) return folders;
    const byKey = key === "size"
      ? sizeOf(a) - sizeOf(b)
      : key === "date"
      ? a.mtimeMs - b.mtimeMs
      : 0;
    if (byKey !== 0) return way * byKey;
    const [x, y] = [nameOf(a), nameOf(b)];
    return way * (collator.compare(x, y) || (x < y ? -1 : x > y ? 1 : 0));
  };
}

/**
 * The folder as JSON, a part for each batch (see sortedWithin): an array of its entries, each
 * with its name relative to the folder.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { folderJson } from "./pages.ts";
 * async function* batches() {
 *   yield { sorted: true, entries: [{ folder: "img", mtimeMs: 0 }] };
 *   yield { sorted: true, entries: [{ name: "docs/a.txt", size: 3, mtimeMs: 0, cached: true }] };
 * }
 * const parts = await Array.fromAsync(folderJson(batches()));
 * deepEqual(JSON.parse(parts.map((part) => part.data).join("")), [
 *   { name: "img/", type: "folder", modified: "1970-01-01T00:00:00.000Z" },
 *   { name: "a.txt", type: "file", size: 3, modified: "1970-01-01T00:00:00.000Z", cached: true },
 * ]);
 * ```
 */
export async function* folderJson(
  batches: AsyncIterable<OrderedBatch<PageEntry>>,
): AsyncGenerator<PagePart> {
  let first = true;
  for await (const { entries } of batches) {
    if (entries.length === 0) continue;
    const items = entries.map((entry) =>
      JSON.stringify(
        "folder" in entry
          ? {
            name: `${entry.folder}/`,
            type: "folder",
            modified: new Date(entry.mtimeMs).toISOString(),
          }
          : {
            name: baseName(entry.name),
            type: "file",
            size: entry.size,
            modified: new Date(entry.mtimeMs).toISOString(),
            cached: entry.cached,
          },
      )
    );
    yield { data: (first ? "[" : ",") + items.join(","), entries: entries.length };
    first = false;
  }
  yield { data: first ? "[]" : "]", entries: 0 };
}

/**
 * The folder at `path` ("/" or "/docs/") as an HTML page sorted by `sort`, a part for each batch
 * (see sortedWithin); a page whose entries are not sorted says so above them.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { folderPage } from "./pages.ts";
 * async function* batches() {
 *   yield { sorted: false, entries: [{ name: "<b>.txt", size: 2048, mtimeMs: 0, cached: false }] };
 * }
 * const sort = { key: "name" as const, descending: false };
 * const parts = await Array.fromAsync(folderPage("/docs/", batches(), sort));
 * const page = parts.map((p) => p.data).join("");
 * ok(page.includes('<a href="%3Cb%3E.txt">&lt;b&gt;.txt</a>'));
 * ok(page.includes("2.0 KiB"));
 * ok(page.includes('<a href="/">/</a><a href="/docs/">docs</a>/'));
 * ok(page.includes("in the order the disk gives"));
 * ok(page.endsWith('<p class="count">0 folders, 1 file</p>\n</body>\n</html>\n'));
 * ```
 */
export async function* folderPage(
  path: string,
  batches: AsyncIterable<OrderedBatch<PageEntry>>,
  sort: PageSort,
): AsyncGenerator<PagePart> {
  let folders = 0;
  let files = 0;
  let head = true;
  for await (const { sorted, entries } of batches) {
    const rows = entries.map(entryRow);
    const subFolders = entries.filter((entry) => "folder" in entry).length;
    folders += subFolders;
    files += entries.length - subFolders;
    const data = (head ? pageHead(path, sorted, sort) : "") + rows.join("");
    yield { data, entries: entries.length };
    head = false;
  }
  if (head) yield { data: pageHead(path, true, sort), entries: 0 };
  yield {
    data: `</tbody>\n</table>\n<p class="count">${count(folders, "folder")}, ` +
      `${count(files, "file")}</p>\n</body>\n</html>\n`,
    entries: 0,
  };
}

/** The row of `entry`: its link, size, date and, for a file in the cache, a quiet mark. */
function entryRow(entry: PageEntry): string {
  const when = new Date(entry.mtimeMs).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  if ("folder" in entry) return row(`${encode(entry.folder)}/`, `${entry.folder}/`, "", when, "");
  const name = baseName(entry.name);
  return row(encode(name), name, formatBytes(entry.size), when, entry.cached ? "cached" : "");
}

/** The page of the folder at `path` up to its first row, sorted by `sort`; one not `sorted` says so. */
function pageHead(path: string, sorted: boolean, sort: PageSort): string {
  const note = sorted
    ? ""
    : '<p class="note">More entries than the server sorts at once: shown in the order the disk ' +
      "gives.</p>\n";
  const parent = path === "/" ? "" : row("../", "../", "", "", "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(path)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Index of ${breadcrumbs(path)}</h1>
${note}<p class="download"><a href="?download=tar">Download this folder as .tar</a></p>
<table>
<thead><tr>${heading("Name", "name", "", sort)}${heading("Size", "size", "size", sort)}${
    heading("Modified", "date", "when", sort)
  }<th class="cached"></th></tr></thead>
<tbody>
${parent}`;
}

/** The path as links to each folder on it, so any of them is a click away. */
function breadcrumbs(path: string): string {
  const parts = path.split("/").filter((part) => part !== "");
  let href = "/";
  const links = parts.map((part) => {
    href += `${encode(part)}/`;
    return `<a href="${href}">${escape(part)}</a>/`;
  });
  return `<a href="/">/</a>${links.join("")}`;
}

/**
 * A column's heading: a link that sorts by it (the other way when it is the column sorted by, with
 * an arrow saying which way it is).
 */
function heading(label: string, key: SortKey, className: string, sort: PageSort): string {
  const current = sort.key === key;
  const order = current && !sort.descending ? "desc" : "asc";
  const arrow = current ? (sort.descending ? " ↓" : " ↑") : "";
  const attributes = className ? ` class="${className}"` : "";
  return `<th${attributes}><a href="?sort=${key}&amp;order=${order}">${label}${arrow}</a></th>`;
}

/** The name `entry` goes by within its folder. */
function nameOf(entry: PageEntry): string {
  return "folder" in entry ? entry.folder : baseName(entry.name);
}

/** The size `entry` sorts by: a folder's is none, below any file's. */
function sizeOf(entry: PageEntry): number {
  return "folder" in entry ? -1 : entry.size;
}

/** A row of the page's table, a line of its own. */
function row(href: string, name: string, size: string, when: string, cached: string): string {
  return `<tr><td class="name"><a href="${href}">${escape(name)}</a></td>` +
    `<td class="size">${size}</td><td class="when">${when}</td>` +
    `<td class="cached">${cached}</td></tr>\n`;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

/** A name as one path segment of a URL. */
function encode(name: string): string {
  return encodeURIComponent(name);
}

/** Text as HTML, so a name can never become markup. */
function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
