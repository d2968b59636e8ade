/**
 * A folder as people and programs read it over HTTP: a small HTML page (links, human sizes, dates,
 * which files are cached; no JavaScript, sensible on a phone) or JSON, each made a part at a time
 * as the folder is read, so a page is sent as it is made, whatever the folder's size.
 */

import { createHash } from "node:crypto";
import type { ListEntry } from "../../shared/protocol.ts";
import { formatBytes } from "../../shared/units.ts";
import type { OrderedBatch, SubFolder } from "../listing.ts";

/** The style of the folder page, the one thing on it its Content-Security-Policy lets apply. */
const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; margin: 1rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.25rem; word-break: break-all; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .35rem .5rem; text-align: left; border-bottom: 1px solid #ddd; }
td.size, th.size { text-align: right; white-space: nowrap; }
td.name { word-break: break-all; }
td.when { white-space: nowrap; color: #555; }
td.cached { color: #26734d; font-size: .875rem; }
@media (max-width: 36rem) { td.when, th.when { display: none; } }
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

/** A piece of a folder's page: its text, and how many of the folder's entries it shows. */
export interface PagePart {
  text: string;
  entries: number;
}

/**
 * The order of a folder's page, when it is sorted: sub-folders first, then files, each by name,
 * code unit by code unit.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { folderOrder } from "./pages.ts";
 * const file = (name: string) => ({ name, size: 0, mtimeMs: 0, cached: false });
 * const entries = [file("b"), { folder: "z" }, file("B"), { folder: "a" }];
 * deepEqual(entries.sort(folderOrder), [{ folder: "a" }, { folder: "z" }, file("B"), file("b")]);
 * ```
 */
export function folderOrder(a: PageEntry, b: PageEntry): number {
  const [x, y] = [nameOf(a), nameOf(b)];
  if (("folder" in a) !== ("folder" in b)) return "folder" in a ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The folder as JSON, a part for each batch (see sortedWithin): an array of its entries, each
 * with its name relative to the folder.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { folderJson } from "./pages.ts";
 * async function* batches() {
 *   yield { sorted: true, entries: [{ folder: "img" }] };
 *   yield { sorted: true, entries: [{ name: "docs/a.txt", size: 3, mtimeMs: 0, cached: true }] };
 * }
 * const parts = await Array.fromAsync(folderJson(batches()));
 * deepEqual(JSON.parse(parts.map((part) => part.text).join("")), [
 *   { name: "img/", type: "folder" },
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
        "folder" in entry ? { name: `${entry.folder}/`, type: "folder" } : {
          name: baseName(entry.name),
          type: "file",
          size: entry.size,
          modified: new Date(entry.mtimeMs).toISOString(),
          cached: entry.cached,
        },
      )
    );
    yield { text: (first ? "[" : ",") + items.join(","), entries: entries.length };
    first = false;
  }
  yield { text: first ? "[]" : "]", entries: 0 };
}

/**
 * The folder at `path` ("/" or "/docs/") as an HTML page, a part for each batch (see
 * sortedWithin); a page whose entries are not sorted says so above them.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { folderPage } from "./pages.ts";
 * async function* batches() {
 *   yield { sorted: false, entries: [{ name: "<b>.txt", size: 2048, mtimeMs: 0, cached: false }] };
 * }
 * const page = (await Array.fromAsync(folderPage("/", batches()))).map((p) => p.text).join("");
 * ok(page.includes('<a href="%3Cb%3E.txt">&lt;b&gt;.txt</a>'));
 * ok(page.includes("2.0 KiB"));
 * ok(page.includes("in the order the disk gives"));
 * ok(page.endsWith("<p>0 folders, 1 file</p>\n</body>\n</html>\n"));
 * ```
 */
export async function* folderPage(
  path: string,
  batches: AsyncIterable<OrderedBatch<PageEntry>>,
): AsyncGenerator<PagePart> {
  let folders = 0;
  let files = 0;
  let head = true;
  for await (const { sorted, entries } of batches) {
    const rows = entries.map((entry) => {
      if ("folder" in entry) return row(`${encode(entry.folder)}/`, `${entry.folder}/`, "", "", "");
      const name = baseName(entry.name);
      const when = new Date(entry.mtimeMs).toISOString().slice(0, 16).replace("T", " ") + " UTC";
      return row(encode(name), name, formatBytes(entry.size), when, entry.cached ? "cached" : "");
    });
    const subFolders = entries.filter((entry) => "folder" in entry).length;
    folders += subFolders;
    files += entries.length - subFolders;
    yield { text: (head ? pageHead(path, sorted) : "") + rows.join(""), entries: entries.length };
    head = false;
  }
  if (head) yield { text: pageHead(path, true), entries: 0 };
  yield {
    text: `</tbody>\n</table>\n<p>${count(folders, "folder")}, ${count(files, "file")}</p>\n` +
      "</body>\n</html>\n",
    entries: 0,
  };
}

/** The page of the folder at `path` up to its first row; one not `sorted` says so. */
function pageHead(path: string, sorted: boolean): string {
  const title = escape(path);
  const note = sorted
    ? ""
    : "<p>More entries than the server sorts at once: shown in the order the disk gives.</p>\n";
  const parent = path === "/" ? "" : row("../", "Parent folder", "", "", "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Index of ${title}</h1>
${note}<table>
<thead><tr><th>Name</th><th class="size">Size</th><th class="when">Modified</th><th></th></tr></thead>
<tbody>
${parent}`;
}

/** The name `entry` goes by within its folder. */
function nameOf(entry: PageEntry): string {
  return "folder" in entry ? entry.folder : baseName(entry.name);
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
