/**
 * A folder as people and programs read it over HTTP: a small HTML page (links, human sizes, dates,
 * which files are cached; no JavaScript, sensible on a phone) or JSON.
 */

import { createHash } from "node:crypto";
import type { ListEntry } from "../../shared/protocol.ts";
import { formatBytes } from "../../shared/units.ts";

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

/** A folder to show: its path ("/" or "/docs/"), sub-folders and files. */
export interface FolderView {
  path: string;
  folders: string[];
  files: ListEntry[];
}

/**
 * The folder as JSON: folders first, then files, each with its name relative to the folder.
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { folderJson } from "./pages.ts";
 * const json = folderJson({
 *   path: "/docs/",
 *   folders: ["img"],
 *   files: [{ name: "docs/a.txt", size: 3, mtimeMs: 0, cached: true }],
 * });
 * deepEqual(JSON.parse(json), [
 *   { name: "img/", type: "folder" },
 *   { name: "a.txt", type: "file", size: 3, modified: "1970-01-01T00:00:00.000Z", cached: true },
 * ]);
 * ```
 */
export function folderJson(view: FolderView): string {
  return JSON.stringify([
    ...view.folders.map((name) => ({ name: `${name}/`, type: "folder" })),
    ...view.files.map((file) => ({
      name: baseName(file.name),
      type: "file",
      size: file.size,
      modified: new Date(file.mtimeMs).toISOString(),
      cached: file.cached,
    })),
  ]);
}

/**
 * The folder as an HTML page.
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { folderPage } from "./pages.ts";
 * const page = folderPage({
 *   path: "/",
 *   folders: [],
 *   files: [{ name: "<b>.txt", size: 2048, mtimeMs: 0, cached: false }],
 * });
 * ok(page.includes('<a href="%3Cb%3E.txt">&lt;b&gt;.txt</a>'));
 * ok(page.includes("2.0 KiB"));
 * ```
 */
export function folderPage(view: FolderView): string {
  const rows = [
    ...(view.path === "/" ? [] : [row("../", "Parent folder", "", "", "")]),
    ...view.folders.map((name) => row(`${encode(name)}/`, `${name}/`, "", "", "")),
    ...view.files.map((file) =>
      row(
        encode(baseName(file.name)),
        baseName(file.name),
        formatBytes(file.size),
        new Date(file.mtimeMs).toISOString().slice(0, 16).replace("T", " ") + " UTC",
        file.cached ? "cached" : "",
      )
    ),
  ];
  const title = escape(view.path);
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
<table>
<thead><tr><th>Name</th><th class="size">Size</th><th class="when">Modified</th><th></th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<p>${count(view.folders.length, "folder")}, ${count(view.files.length, "file")}</p>
</body>
</html>
`;
}

function row(href: string, name: string, size: string, when: string, cached: string): string {
  return `<tr><td class="name"><a href="${href}">${escape(name)}</a></td>` +
    `<td class="size">${size}</td><td class="when">${when}</td>` +
    `<td class="cached">${cached}</td></tr>`;
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
