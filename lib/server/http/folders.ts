/**
 * A folder's answers over HTTP: its index file (`--index`), its page or JSON made as the folder is
 * read (sorted as the query asks, compressed as the client takes), or the folder as one tar.
 */

import { SHA256 } from "../../shared/digest.ts";
import { SortBudget, sortedWithin } from "../listing.ts";
import { type Service, untilShutdown } from "../service.ts";
import { accepted, compressedParts } from "./encoding.ts";
import { fileReply } from "./files.ts";
import type { Field, RequestHead } from "./message.ts";
import { folderJson, folderOrder, folderPage, type PagePart, sortOf } from "./pages.ts";
import { type HttpOptions, type Reply, text } from "./reply.ts";
import { tarOf } from "./tar.ts";
import { contentDisposition } from "./types.ts";
import { NotFoundError } from "../errors.ts";

/** The budget of a port that sorts no folder page. */
const NO_SORTING = new SortBudget(0);

/**
 * A folder's page, as HTML or (when the client accepts it) JSON, made as it is sent: sorted as the
 * query asks (`?sort=name|size|date&order=asc|desc`, see folderOrder) when the folder fits in the
 * sort budget, else in the order the disk gives; cut short when the server shuts down. With
 * `?download=tar`, the folder and all below it as one archive. 404 for no such folder.
 */
export async function folderReply(
  head: RequestHead,
  path: string,
  service: Service,
  options: HttpOptions,
): Promise<Reply> {
  const query = head.target.includes("?") ? head.target.slice(head.target.indexOf("?") + 1) : "";
  if (new URLSearchParams(query).get("download") === "tar") return await tarReply(path, service);
  const folder = await service.store.folder(path.slice(1));
  if (folder === undefined) return text(404, "no such folder\n");
  const json = /\bapplication\/json\b/.test(head.headers.get("accept") ?? "");
  const sort = sortOf(query);
  const batches = sortedWithin(
    untilShutdown(folder, service),
    options.sortBudget ?? NO_SORTING,
    folderOrder(sort),
  );
  const page = json ? folderJson(batches) : folderPage(path, batches, sort);
  const fields: Field[] = [
    ["Content-Type", json ? "application/json" : "text/html; charset=utf-8"],
    ["Vary", options.compress === false ? "Accept" : "Accept, Accept-Encoding"],
  ];
  const coding = options.compress === false
    ? undefined
    : accepted(head.headers.get("accept-encoding"))[0];
  if (coding === undefined) return { status: 200, fields, body: { page } };
  fields.push(["Content-Encoding", coding]);
  return { status: 200, fields, body: { page: compressedParts(page, coding) } };
}

/**
 * The folder at `path` and everything below it as one tar archive, made as it is sent, a file at
 * a time. Its names are gathered first (at most MAX_TAR_FILES), so that no listing turn is held
 * while a slow client takes the archive; a larger folder is refused with 413, saying why.
 */
async function tarReply(path: string, service: Service): Promise<Reply> {
  const files = await service.store.tree(path.slice(1));
  if (files === undefined) return text(404, "no such folder\n");
  const names: string[] = [];
  for await (const batch of untilShutdown(files, service)) {
    names.push(...batch.map((file) => file.name));
    if (names.length > MAX_TAR_FILES) break; // which ends the walk
  }
  if (names.length > MAX_TAR_FILES) {
    return text(413, `the folder holds more than ${MAX_TAR_FILES} files to archive at once\n`);
  }
  // Archived under the folder's own name, as a folder downloaded and unpacked is.
  const base = path === "/" ? "" : path.slice(1, -1);
  const parent = base.slice(0, base.lastIndexOf("/") + 1);
  const archive = base === "" ? "files" : base.slice(parent.length);
  const parts = tarOf(
    names,
    (name) => service.store.open(name, SHA256),
    (n) => n.slice(parent.length),
  );
  return {
    status: 200,
    fields: [
      ["Content-Type", "application/x-tar"],
      ["Content-Disposition", contentDisposition(`${archive}.tar`).replace("inline", "attachment")],
    ],
    body: { page: asParts(parts) },
  };
}

/** The most files a folder's archive holds: its names are held in memory, about 10 MiB of them. */
const MAX_TAR_FILES = 100_000;

/** `chunks` as the parts of an answer made as it is sent. */
async function* asParts(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<PagePart> {
  for await (const data of chunks) yield { data, entries: 0 };
}

/**
 * The reply of the folder's index file (`--index`), the first of the names given that is a file
 * there; undefined when there is none, and the folder's page is served.
 */
export async function indexReply(
  head: RequestHead,
  path: string,
  service: Service,
  options: HttpOptions,
): Promise<Reply | undefined> {
  for (const name of options.index ?? []) {
    const reply = await fileReply(head, `${path}${name}`, service, options);
    if (!(reply.refused instanceof NotFoundError) && reply.status !== 301) return reply;
  }
  return undefined;
}
