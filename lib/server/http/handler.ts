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
import type { Service } from "../service.ts";
import type { FileBody } from "../store/store.ts";
import {
  httpDate,
  isStrongDate,
  parseHttpDate,
  presentedToken,
  type RequestHead,
} from "./message.ts";
import { folderJson, folderPage } from "./pages.ts";
import { parseRange } from "./ranges.ts";
import { contentType, runsScripts } from "./types.ts";

/** A header field: its name and value. */
export type Field = [string, string];

/** Bytes `start` up to `end` (exclusive) of a file, to send as a reply's body. */
export interface FilePart {
  file: FileBody;
  start: number;
  end: number;
}

/** What to answer an HTTP request with. */
export interface Reply {
  status: number;
  /** Fields of this answer, beyond those the writer adds (Date, nosniff, length, connection). */
  fields: Field[];
  /**
   * A text of the server's own (a message, a folder page: served with the strict
   * Content-Security-Policy), a part of a file, or nothing at all (304).
   */
  body?: string | FilePart;
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
}

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
  { head, contentKept }: HttpRequest,
  service: Service,
  peer: Peer,
  options: HttpOptions = {},
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
    return text(200, service.metrics(), [[
      "Content-Type",
      "text/plain; version=0.0.4; charset=utf-8",
    ]]);
  }
  if (path.startsWith("/-/")) return text(404, "no such page\n");
  if (path.endsWith("/")) return await folderReply(head, path, service);
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

/** A folder's page, as HTML or (when the client accepts it) JSON; 404 for no such folder. */
async function folderReply(head: RequestHead, path: string, service: Service): Promise<Reply> {
  const folder = await service.store.folder(path.slice(1));
  if (folder === undefined) return text(404, "no such folder\n");
  const view = { path, ...folder };
  const json = /\bapplication\/json\b/.test(head.headers.get("accept") ?? "");
  return text(200, json ? folderJson(view) : folderPage(view), [
    ["Content-Type", json ? "application/json" : "text/html; charset=utf-8"],
    ["Vary", "Accept"],
  ]);
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
  let digest;
  try {
    digest = await file.digest();
  } catch (error) {
    file[Symbol.dispose]();
    const failed = asWireError(error);
    return { ...text(500, `${failed.message}\n`), failed, name };
  }
  return { ...partReply(head, file, digest, options), name };
}

/**
 * The answer of `file`, whose digest is `digest`, to `head`: 200 with the whole file, 206 with
 * the range asked for, 304 when the client's copy is current, 416 for a range not in the file;
 * with its validators and digests.
 */
function partReply(
  head: RequestHead,
  file: FileBody,
  digest: Uint8Array,
  options: HttpOptions,
): Reply {
  const { size, mtimeMs } = file.stamp;
  const version = versionOf(digest, mtimeMs);
  const { etag, lastModified } = version;
  const fields = fileFields(file, version, options);
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
  /** Strong, from the content: the same bytes give the same tag wherever and whenever served. */
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

/** The fields of a file's answer: its type, validators and digests. */
function fileFields(
  file: FileBody,
  { etag, lastModified, sha256 }: Version,
  options: HttpOptions,
): Field[] {
  const type = contentType(file.name);
  const fields: Field[] = [
    ["Content-Type", type],
    ["Last-Modified", lastModified],
    ["ETag", etag],
    ["Accept-Ranges", "bytes"],
    ["Repr-Digest", `sha-256=:${sha256}:`],
    ["Digest", `SHA-256=${sha256}`],
  ];
  if (options.htmlSandbox && runsScripts(type)) fields.push(["Content-Security-Policy", "sandbox"]);
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
