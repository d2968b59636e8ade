/**
 * What the HTTP port answers: a function from a parsed request (with the service and the peer)
 * to a reply, a value that says the status, the fields and the body, and how the request's
 * exchange ends. It sends nothing: serve.ts writes every reply the same way, so "logged once"
 * and "HEAD has no body" hold for every answer there is.
 */

import { SHA256 } from "../../shared/digest.ts";
import { ErrorCode, type WireError } from "../../shared/errors.ts";
import type { Peer } from "../access.ts";
import { asWireError, NotFoundError } from "../errors.ts";
import { type Service, untilShutdown } from "../service.ts";
import type { FileBody } from "../store/store.ts";
import { allowedOrigin, corsFields, isPreflight, preflightFields } from "./cors.ts";
import {
  accepted,
  type Coding,
  compressedParts,
  compressible,
  MAX_COMPRESSED_BYTES,
  MIN_COMPRESSED_BYTES,
  SUFFIXES,
} from "./encoding.ts";
import {
  type Field,
  httpDate,
  isStrongDate,
  parseHttpDate,
  presentedToken,
  type RequestHead,
} from "./message.ts";
import { SortBudget, sortedWithin } from "../listing.ts";
import { folderJson, folderOrder, folderPage, type PagePart, sortOf } from "./pages.ts";
import { tarOf } from "./tar.ts";
import { parseRange } from "./ranges.ts";
import { contentDisposition, contentType, runsScripts } from "./types.ts";

/** Bytes `start` up to `end` (exclusive) of a file, to send as a reply's body. */
export interface FilePart {
  file: FileBody;
  start: number;
  end: number;
}

/** A folder's page, made as it is sent (see pages.ts). */
export interface FolderBody {
  page: AsyncIterable<PagePart>;
}

/** What to answer an HTTP request with. */
export interface Reply {
  status: number;
  /** Fields of this answer, beyond those the writer adds (Date, nosniff, length, connection). */
  fields: Field[];
  /**
   * A text of the server's own (a message: served with the strict Content-Security-Policy), a
   * folder's page (the same), a part of a file, or nothing at all (304).
   */
  body?: string | FilePart | FolderBody;
  /** True when the connection ends after this answer. */
  close?: boolean;
  /** The refusal this answer says (a bad name, a missing file): logged, not counted. */
  refused?: WireError;
  /** The server's failure this answer reports: logged and counted as an error. */
  failed?: WireError;
  /** The file the request named, for the log line. */
  name?: string;
}

/** A request as the handler takes it. */
export interface HttpRequest {
  head: RequestHead;
  /**
   * True when content came with the request that could not be read and dropped (too long, or of
   * a length only a transfer coding would tell): the connection must end after the answer.
   */
  contentKept: boolean;
}

/** How the HTTP port serves, beyond what every port shares. */
export interface HttpOptions {
  /**
   * Send `Content-Security-Policy: sandbox` with the files a browser may run scripts in (HTML,
   * SVG, XML), so a shared page cannot act with the origin's rights (docs/SECURITY.md).
   */
  htmlSandbox?: boolean;
  /**
   * The room folder pages sort their entries in, between them (see sortedWithin); none unless
   * given, and then every page shows its entries in the order the disk gives.
   */
  sortBudget?: SortBudget;
  /** A `Cache-Control` value sent with every file (`--cache-control`), none unless given. */
  cacheControl?: string;
  /**
   * The origins whose pages may read the answers (`--cors`): `["*"]` for any; none unless given.
   */
  cors?: string[];
  /** Files served for a folder's URL in its stead, the first present (`--index`); none by default. */
  index?: string[];
  /** False to send every file as it is, whatever the client accepts (`--compress off`). */
  compress?: boolean;
}

/** The budget of a port that sorts no folder page. */
const NO_SORTING = new SortBudget(0);

/**
 * The reply to `request` from `peer`: files with ranges, validators and digests, folder pages,
 * the metrics page and a health check; anything but GET and HEAD is 405, and without a valid
 * token (when tokens are on) anything but the health check is 401.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { handle } from "./handler.ts";
 * import { parseRequestHead } from "./message.ts";
 * const head = parseRequestHead(new TextEncoder().encode("GET /-/healthy HTTP/1.1\r\nHost: a\r\n\r\n"));
 * const service = {} as import("../service.ts").Service; // the health check needs none of it
 * const peer = {} as import("../access.ts").Peer;
 * const reply = await handle({ head, contentKept: false }, service, peer);
 * equal(reply.status, 200);
 * equal(reply.body, "OK\n");
 * ```
 */
export async function handle(
  request: HttpRequest,
  service: Service,
  peer: Peer,
  options: HttpOptions = {},
): Promise<Reply> {
  const origin = allowedOrigin(request.head, options.cors);
  if (origin === undefined) return await route(request, service, peer, options);
  if (isPreflight(request.head)) return { status: 204, fields: preflightFields(origin) };
  const reply = await route(request, service, peer, options);
  return { ...reply, fields: [...reply.fields, ...corsFields(origin)] };
}

/** The reply to `request`, before any field for other origins. */
async function route(
  { head, contentKept }: HttpRequest,
  service: Service,
  peer: Peer,
  options: HttpOptions,
): Promise<Reply> {
  const { method, path } = head;
  if (method !== "GET" && method !== "HEAD") {
    const reply = text(405, "only GET and HEAD are served here\n", [["Allow", "GET, HEAD"]]);
    return { ...reply, close: contentKept };
  }
  if (path === undefined) return text(400, "the request target is not a valid path\n");
  // Open to all, for the health checks of proxies.
  if (path === "/-/healthy") return text(200, "OK\n");
  const refusal = await admit(head, service, peer);
  if (refusal !== undefined) return refusal;
  if (path === "/-/metrics") {
    return text(200, await service.metrics(), [[
      "Content-Type",
      "text/plain; version=0.0.4; charset=utf-8",
    ]]);
  }
  if (path.startsWith("/-/")) return text(404, "no such page\n");
  if (path.endsWith("/")) {
    return await indexReply(head, path, service, options) ??
      await folderReply(head, path, service, options);
  }
  return await fileReply(head, path, service, options);
}

/** A text of the server's own as a reply. */
function text(status: number, body: string, fields: Field[] = []): Reply {
  return { status, fields, body };
}

/**
 * The 401 for a request without a valid token, when one is needed; undefined when the request may
 * go on. A wrong token ends the connection, as on the native port; a missing one may be followed
 * by the same request with credentials, as a browser does after its login prompt. Each challenge
 * has a field of its own, Basic first: a browser reads only the first challenge of a field, and
 * shows its login prompt only for Basic.
 */
async function admit(head: RequestHead, service: Service, peer: Peer): Promise<Reply | undefined> {
  const token = presentedToken(head.headers.get("authorization"));
  const refusal = token.length === 0
    ? service.access.challenge()
    : await service.access.admit(peer, token);
  if (refusal === undefined) return undefined;
  const reply = text(401, `${refusal.message}\n`, [
    ["WWW-Authenticate", 'Basic realm="files", charset="UTF-8"'],
    ["WWW-Authenticate", 'Bearer realm="files"'],
  ]);
  return { ...reply, close: token.length > 0 };
}

/**
 * A folder's page, as HTML or (when the client accepts it) JSON, made as it is sent: sorted as the
 * query asks (`?sort=name|size|date&order=asc|desc`, see folderOrder) when the folder fits in the
 * sort budget, else in the order the disk gives; cut short when the server shuts down. With
 * `?download=tar`, the folder and all below it as one archive. 404 for no such folder.
 */
async function folderReply(
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
async function indexReply(
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

/**
 * A file's reply; a 301 to the folder of that name, when there is one; or the refusal that says
 * why it cannot be served.
 */
async function fileReply(
  head: RequestHead,
  path: string,
  service: Service,
  options: HttpOptions,
): Promise<Reply> {
  const name = path.slice(1);
  let file: FileBody;
  try {
    file = service.store.open(name, SHA256);
  } catch (error) {
    const refused = asWireError(error);
    if (refused instanceof NotFoundError && await service.store.folder(`${name}/`)) {
      const location = encodeURI(`${path}/`);
      return { ...text(301, `${location}\n`, [["Location", location]]), name };
    }
    return { ...text(statusOf(refused), `${refused.message}\n`), refused, name };
  }
  const sent = await represent(head, file, service, options);
  let digest;
  try {
    digest = await sent.body.digest();
  } catch (error) {
    sent.body[Symbol.dispose]();
    const failed = asWireError(error);
    return { ...text(500, `${failed.message}\n`), failed, name };
  }
  return { ...partReply(head, sent, digest, options), name };
}

/** What is sent for a file: its bytes as they are, or compressed. */
interface Representation {
  body: FileBody;
  /** The file's name, for its type and the name it is saved under. */
  name: string;
  /** When the file changed: Last-Modified, whatever the coding. */
  mtimeMs: number;
  /** The content coding `body` is in; none for the file as it is. */
  coding?: Coding;
  /** True when the answer depends on Accept-Encoding, as it does for every type that compresses. */
  vary: boolean;
}

/**
 * What to send of `file` for `head`: for a type that compresses, in the best coding the client
 * takes, from a current precompressed sibling (`NAME.zst`, `.br`, `.gz`) or else a copy made and
 * cached; otherwise, or for a range (ranges are of the file as it is), `file` itself. `file` is
 * disposed of when something else is sent instead.
 */
async function represent(
  head: RequestHead,
  file: FileBody,
  service: Service,
  options: HttpOptions,
): Promise<Representation> {
  const plain = { body: file, name: file.name, mtimeMs: file.stamp.mtimeMs, vary: false };
  if (options.compress === false || !compressible(contentType(file.name))) return plain;
  const as = { ...plain, vary: true };
  if (head.headers.has("range")) return as;
  const codings = accepted(head.headers.get("accept-encoding"));
  for (const coding of codings) {
    const sibling = precompressed(file, coding, service);
    if (sibling) return { ...as, body: sibling, coding };
  }
  const { size } = file.stamp;
  if (codings.length === 0 || size < MIN_COMPRESSED_BYTES || size > MAX_COMPRESSED_BYTES) {
    return as;
  }
  const encoded = await service.store.encoded(file, codings[0]);
  if (encoded === undefined) return as;
  file[Symbol.dispose]();
  return { ...as, body: encoded, coding: codings[0] };
}

/**
 * The sibling of `file` compressed ahead of time by `coding`, when there is one as new as the
 * file; `file` is then disposed of. Undefined when there is none, or it is older than the file.
 */
function precompressed(file: FileBody, coding: Coding, service: Service): FileBody | undefined {
  let sibling;
  try {
    sibling = service.store.open(file.name + SUFFIXES[coding], SHA256);
  } catch (error) {
    if (asWireError(error) instanceof NotFoundError) return undefined;
    throw error;
  }
  if (sibling.stamp.mtimeMs < file.stamp.mtimeMs) {
    sibling[Symbol.dispose]();
    return undefined;
  }
  file[Symbol.dispose]();
  return sibling;
}

/**
 * The answer of `sent`, whose digest is `digest`, to `head`: 200 with the whole file, 206 with
 * the range asked for, 304 when the client's copy is current, 416 for a range not in the file;
 * with its validators and digests.
 */
function partReply(
  head: RequestHead,
  sent: Representation,
  digest: Uint8Array,
  options: HttpOptions,
): Reply {
  const { body: file, mtimeMs } = sent;
  const { size } = file.stamp;
  const version = versionOf(digest, mtimeMs);
  const { etag, lastModified } = version;
  const fields = fileFields(sent, version, options);
  if (notModified(head, etag, mtimeMs)) {
    file[Symbol.dispose]();
    return { status: 304, fields };
  }
  // A date names a version only when the file cannot have changed again within its second.
  const ifRange = head.headers.get("if-range");
  const rangeApplies = ifRange === undefined || ifRange === etag ||
    (ifRange === lastModified && isStrongDate(mtimeMs));
  const range = rangeApplies ? parseRange(head.headers.get("range"), size) : undefined;
  if (range === "unsatisfiable") {
    file[Symbol.dispose]();
    return text(416, "the range asked for is not in the file\n", [
      ["Content-Range", `bytes */${size}`],
    ]);
  }
  const { start, end } = range ?? { start: 0, end: size };
  if (range) fields.push(["Content-Range", `bytes ${start}-${end - 1}/${size}`]);
  return { status: range ? 206 : 200, fields, body: { file, start, end } };
}

/** What the answers for one version of a file say of it: its validators and its SHA-256. */
interface Version {
  mtimeMs: number;
  /**
   * Strong, from the bytes sent: the same bytes give the same tag wherever and whenever served,
   * and each coding's bytes a tag of their own.
   */
  etag: string;
  lastModified: string;
  /** The SHA-256 in base64. */
  sha256: string;
}

/**
 * Each version's fields by its digest (one Uint8Array per version, as the store hands it out), so
 * that they are written once per version rather than once per answer; forgotten with the digest.
 */
const versions = new WeakMap<Uint8Array, Version>();

/** The fields of the version whose SHA-256 is `digest` and whose mtime is `mtimeMs`. */
function versionOf(digest: Uint8Array, mtimeMs: number): Version {
  const known = versions.get(digest);
  if (known?.mtimeMs === mtimeMs) return known;
  const version = {
    mtimeMs,
    etag: `"${digest.toBase64({ alphabet: "base64url", omitPadding: true })}"`,
    lastModified: httpDate(mtimeMs),
    sha256: digest.toBase64(),
  };
  versions.set(digest, version);
  return version;
}

/**
 * The fields of a file's answer: its type, coding, validators and digests (of the bytes sent, as
 * RFC 9530 has it: a compressed answer's Repr-Digest is of the compressed bytes).
 */
function fileFields(
  sent: Representation,
  { etag, lastModified, sha256 }: Version,
  options: HttpOptions,
): Field[] {
  const type = contentType(sent.name);
  const fields: Field[] = [
    ["Content-Type", type],
    ["Content-Disposition", contentDisposition(sent.name)],
    ["Last-Modified", lastModified],
    ["ETag", etag],
    ["Accept-Ranges", "bytes"],
    ["Repr-Digest", `sha-256=:${sha256}:`],
  ];
  // The older Digest field's only reader, aria2, checks it against the bytes once decoded: sent
  // with a file as it is, and left out of a compressed answer rather than have it read otherwise.
  if (sent.coding) fields.push(["Content-Encoding", sent.coding]);
  else fields.push(["Digest", `SHA-256=${sha256}`]);
  if (sent.vary) fields.push(["Vary", "Accept-Encoding"]);
  if (options.htmlSandbox && runsScripts(type)) fields.push(["Content-Security-Policy", "sandbox"]);
  if (options.cacheControl !== undefined) fields.push(["Cache-Control", options.cacheControl]);
  return fields;
}

/** True when the client's copy (by ETag, or else by date) is current. */
function notModified(head: RequestHead, etag: string, mtimeMs: number): boolean {
  const ifNoneMatch = head.headers.get("if-none-match");
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch.trim() === "*" ||
      ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
  }
  const since = parseHttpDate(head.headers.get("if-modified-since") ?? "");
  return since !== undefined && Math.floor(mtimeMs / 1000) * 1000 <= since;
}

/** The status that says what a wire error says. */
function statusOf(error: WireError): number {
  return error.code === ErrorCode.NotFound ? 404 : error.code === ErrorCode.BadRequest ? 400 : 500;
}
