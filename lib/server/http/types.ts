/**
 * What the HTTP port says of a file by its name: its content type, whether a browser runs scripts
 * in it, and the name it is saved under.
 *
 * Content types by file extension, for the types browsers and tools act on; anything else is
 * application/octet-stream, which every client saves as it is.
 */

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  gif: "image/gif",
  gz: "application/gzip",
  htm: "text/html; charset=utf-8",
  html: "text/html; charset=utf-8",
  ico: "image/x-icon",
  jpeg: "image/jpeg",
  jpg: "image/jpeg",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  md: "text/markdown; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  mp3: "audio/mpeg",
  mp4: "video/mp4",
  pdf: "application/pdf",
  png: "image/png",
  svg: "image/svg+xml",
  tar: "application/x-tar",
  txt: "text/plain; charset=utf-8",
  wasm: "application/wasm",
  webm: "video/webm",
  webp: "image/webp",
  xml: "application/xml",
  zip: "application/zip",
};

/**
 * The Content-Type for a file called `name`.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { contentType } from "./types.ts";
 * equal(contentType("docs/index.HTML"), "text/html; charset=utf-8");
 * equal(contentType("data.bin"), "application/octet-stream");
 * ```
 */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  const extension = dot > name.lastIndexOf("/") ? name.slice(dot + 1).toLowerCase() : "";
  return TYPES[extension] ?? "application/octet-stream";
}

/** Types a browser shows as a document that can run scripts: HTML, SVG and XML. */
const SCRIPTABLE = new Set([TYPES.html, TYPES.svg, TYPES.xml]);

/**
 * True when a browser may run scripts in a file of `type`, with the rights of the server's origin.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { contentType, runsScripts } from "./types.ts";
 * equal(runsScripts(contentType("index.html")), true);
 * equal(runsScripts(contentType("logo.svg")), true);
 * equal(runsScripts(contentType("notes.txt")), false);
 * ```
 */
export function runsScripts(type: string): boolean {
  return SCRIPTABLE.has(type);
}

/**
 * `Content-Disposition` for the file called `name`: shown in the browser (inline), and saved
 * under its own name by `curl -OJ`, `wget --content-disposition` or a browser's "save as". The
 * name goes twice: as RFC 8187 UTF-8 (`filename*`, which browsers prefer), and as the UTF-8 bytes
 * themselves (`filename`, the one curl and wget read), with quotes, backslashes and control
 * characters as "_".
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { contentDisposition } from "./types.ts";
 * equal(
 *   contentDisposition('docs/café "menu".txt'),
 *   `inline; filename="café _menu_.txt"; filename*=UTF-8''caf%C3%A9%20%22menu%22.txt`,
 * );
 * ```
 */
export function contentDisposition(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const quoted = base.replace(/[\p{Cc}"\\]/gu, "_");
  // RFC 8187's attr-char leaves out a few characters encodeURIComponent keeps.
  const encoded = encodeURIComponent(base).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `inline; filename="${quoted}"; filename*=UTF-8''${encoded}`;
}
