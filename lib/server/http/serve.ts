/**
 * HTTP/1.1 on the server's own connections, for every tool that speaks it (curl, wget, aria2,
 * browsers, proxies): GET and HEAD of files with ranges, validators and digests, folder pages,
 * the metrics page and a health check. It runs on the same connection machinery as the other
 * dialects, so the same limits hold: connection caps, the idle and request deadlines, and the
 * per-host cap (Deno.serve keeps every connection open forever, silent or trickling, and offers
 * no way to count or close them: see docs/SECURITY.md).
 */

import { SHA256 } from "../../shared/digest.ts";
import { ErrorCode, type WireError } from "../../shared/errors.ts";
import type { Connection } from "../connection.ts";
import { NotFoundError } from "../errors.ts";
import type { Request, Service } from "../service.ts";
import type { FileBody } from "../store/store.ts";
import {
  blankLines,
  encodeResponseHead,
  headEnd,
  httpDate,
  HttpError,
  isStrongDate,
  keepsAlive,
  MAX_HEAD_BYTES,
  parseHttpDate,
  parseRequestHead,
  presentedToken,
  type RequestHead,
} from "./message.ts";
import { folderJson, folderPage, PAGE_POLICY } from "./pages.ts";
import { parseRange } from "./ranges.ts";
import { contentType, runsScripts } from "./types.ts";

const encoder = new TextEncoder();

/**
 * Content of a request that is read and dropped, so that the connection carries on after the
 * answer (a 405: nothing here takes content); longer content, or content of a length only a
 * transfer coding would tell, is answered and the connection closed.
 */
const MAX_DROPPED_BYTES = 64 * 1024;

/** How the HTTP port serves, beyond what every port shares. */
export interface HttpOptions {
  /**
   * Send `Content-Security-Policy: sandbox` with the files a browser may run scripts in (HTML,
   * SVG, XML), so a shared page cannot act with the origin's rights (docs/SECURITY.md).
   */
  htmlSandbox?: boolean;
}

/** Serves HTTP requests on `connection` until the client closes or asks to. */
export async function serveHttp(
  connection: Connection,
  service: Service,
  options: HttpOptions = {},
): Promise<void> {
  connection.protocol = "http";
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let filled = 0;
  for (;;) {
    const end = await readHead(connection, buffer, filled);
    if (end === undefined) return;
    if (end instanceof HttpError) return await refuse(connection, end);
    filled = end.filled;
    connection.busy = true;
    connection.requestDone(filled > end.at);
    let head;
    try {
      head = parseRequestHead(buffer.subarray(0, end.at));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return await refuse(connection, error);
    }
    buffer.copyWithin(0, end.at, filled);
    filled -= end.at;
    // Content only a 405 meets (GET and HEAD with content are refused above): dropped, so the
    // next request is read from where it starts, or else the connection ends after the answer.
    const left = head.contentLength === 0
      ? filled
      : await dropContent(connection, buffer, filled, head.contentLength);
    if (left !== undefined) filled = left;
    if (head.contentLength !== 0) connection.requestDone(filled > 0);
    const record = service.begin(connection, `http-${head.method.toLowerCase()}`);
    const carryOn = await answer(
      connection,
      service,
      { head, record, options },
      left !== undefined,
    );
    await connection.flush();
    if (!carryOn || !keepsAlive(head) || service.closing()) return;
    connection.busy = false;
  }
}

/**
 * Reads until `buffer` (its first `filled` bytes already read) holds a whole request head, with
 * any blank lines before it dropped: where the head ends and how much is in `buffer`; undefined
 * when the peer leaves first; an HttpError when the head cannot fit (414 when even its request
 * line does not, 431 otherwise).
 */
async function readHead(
  connection: Connection,
  buffer: Uint8Array,
  filled: number,
): Promise<{ at: number; filled: number } | HttpError | undefined> {
  for (;;) {
    const blank = blankLines(buffer.subarray(0, filled));
    buffer.copyWithin(0, blank, filled);
    filled -= blank;
    const at = headEnd(buffer.subarray(0, filled));
    if (at !== -1) return { at, filled };
    if (filled === buffer.length) {
      return buffer.includes(10)
        ? new HttpError(431, "the request head is too large")
        : new HttpError(414, "the request line is too long");
    }
    const n = await connection.read(buffer.subarray(filled));
    if (n === null) return undefined;
    filled += n;
  }
}

/**
 * Reads and drops a request's `length` bytes of content, the first of them among the `filled`
 * bytes of `buffer`: how many bytes then remain in `buffer` (the next request's), moved to its
 * start. Undefined when the content cannot be dropped (too long, of unknown length, or cut short
 * by the peer leaving): the connection must then end after the answer.
 */
async function dropContent(
  connection: Connection,
  buffer: Uint8Array,
  filled: number,
  length: number | undefined,
): Promise<number | undefined> {
  if (length === undefined || length > MAX_DROPPED_BYTES) return undefined;
  let left = length;
  while (left > filled) {
    left -= filled;
    const n = await connection.read(buffer);
    if (n === null) return undefined;
    filled = n;
  }
  buffer.copyWithin(0, left, filled);
  return filled - left;
}

/** Answers a request head that cannot be served, and ends the connection. */
async function refuse(connection: Connection, error: HttpError): Promise<void> {
  await connection.send(
    textResponse(error.status, `${error.message}\n`, [["Connection", "close"]]),
  );
  await connection.flush();
}

/** One request to answer: its head, its record, and how the port serves. */
interface Asked {
  head: RequestHead;
  record: Request;
  options: HttpOptions;
}

/**
 * Answers one request; false when the connection cannot carry on (a body cut short, say, or
 * content that could not be dropped: `carryOn` false).
 */
async function answer(
  connection: Connection,
  service: Service,
  { head, record, options }: Asked,
  carryOn: boolean,
): Promise<boolean> {
  const { method, path } = head;
  const send = (status: number, text: string, fields: [string, string][] = []) => {
    record.done({ status });
    return reply(connection, head, status, text, fields);
  };
  if (method !== "GET" && method !== "HEAD") {
    await send(405, "only GET and HEAD are served here\n", [
      ["Allow", "GET, HEAD"],
      ...(carryOn ? [] : [["Connection", "close"] as [string, string]]),
    ]);
    return carryOn;
  }
  if (path === undefined) {
    await send(400, "the request target is not a valid path\n");
    return true;
  }
  if (path === "/-/healthy") {
    await send(200, "OK\n"); // open to all, for the health checks of proxies
    return true;
  }
  const token = presentedToken(head.headers.get("authorization"));
  const refusal = token.length === 0
    ? service.access.challenge()
    : await service.access.admit(connection, token);
  if (refusal !== undefined) {
    // A wrong token ends the connection, as on the native port; a missing one may be followed
    // by the same request with credentials, as a browser does after its login prompt.
    // Each challenge in its own field, Basic first: a browser reads only the first challenge of
    // a field, and shows its login prompt only for Basic.
    const wrong = token.length > 0;
    await send(401, `${refusal.message}\n`, [
      ["WWW-Authenticate", 'Basic realm="files", charset="UTF-8"'],
      ["WWW-Authenticate", 'Bearer realm="files"'],
      ...(wrong ? [["Connection", "close"] as [string, string]] : []),
    ]);
    return !wrong;
  }
  if (path === "/-/metrics") {
    const fields: [string, string][] = [[
      "Content-Type",
      "text/plain; version=0.0.4; charset=utf-8",
    ]];
    await send(200, service.metrics(), fields);
    return true;
  }
  if (path.startsWith("/-/")) {
    await send(404, "no such page\n");
    return true;
  }
  if (path.endsWith("/")) {
    const folder = await service.store.folder(path.slice(1));
    if (folder === undefined) {
      await send(404, "no such folder\n");
      return true;
    }
    const view = { path, ...folder };
    const json = /\bapplication\/json\b/.test(head.headers.get("accept") ?? "");
    const fields: [string, string][] = [
      ["Content-Type", json ? "application/json" : "text/html; charset=utf-8"],
      ["Vary", "Accept"],
    ];
    await send(200, json ? folderJson(view) : folderPage(view), fields);
    return true;
  }
  const name = path.slice(1);
  let body: FileBody;
  try {
    body = service.store.open(name, SHA256);
  } catch (error) {
    const failure = record.refused(error, { name });
    if (failure instanceof NotFoundError && await service.store.folder(`${name}/`)) {
      const location = encodeURI(`${path}/`);
      await reply(connection, head, 301, `${location}\n`, [["Location", location]]);
    } else {
      await reply(connection, head, statusOf(failure), `${failure.message}\n`);
    }
    return true;
  }
  using opened = body;
  return await sendFile(connection, { head, record, options }, opened);
}

/** A file's answer: 200, 206, 304 or 416, with its validators and digests. */
async function sendFile(
  connection: Connection,
  { head, record, options }: Asked,
  body: FileBody,
): Promise<boolean> {
  const { size, mtimeMs } = body.stamp;
  let digest;
  try {
    digest = await body.digest();
  } catch (error) {
    const failure = record.failed(error);
    if (failure === undefined) throw error;
    await reply(connection, head, 500, `${failure.message}\n`);
    return true;
  }
  const sha256 = digest.toBase64();
  // Strong, from the content: the same bytes give the same tag wherever and whenever served.
  const etag = `"${digest.toBase64({ alphabet: "base64url", omitPadding: true })}"`;
  const lastModified = httpDate(mtimeMs);
  const type = contentType(body.name);
  const fields: [string, string][] = [
    ["Content-Type", type],
    ["Last-Modified", lastModified],
    ["ETag", etag],
    ["Accept-Ranges", "bytes"],
    ["Repr-Digest", `sha-256=:${sha256}:`],
    ["Digest", `SHA-256=${sha256}`],
    ...keepAlive(head),
  ];
  if (options.htmlSandbox && runsScripts(type)) {
    fields.push(["Content-Security-Policy", "sandbox"]);
  }
  if (notModified(head, etag, mtimeMs)) {
    record.done({ status: 304 });
    await connection.send(encodeResponseHead(304, fields));
    return true;
  }
  // A date names a version only when the file cannot have changed again within its second.
  const ifRange = head.headers.get("if-range");
  const rangeApplies = ifRange === undefined || ifRange === etag ||
    (ifRange === lastModified && isStrongDate(mtimeMs));
  const range = rangeApplies ? parseRange(head.headers.get("range"), size) : undefined;
  if (range === "unsatisfiable") {
    record.done({ status: 416 });
    await reply(connection, head, 416, "the range asked for is not in the file\n", [
      ["Content-Range", `bytes */${size}`],
    ]);
    return true;
  }
  const { start, end } = range ?? { start: 0, end: size };
  const status = range ? 206 : 200;
  if (range) fields.push(["Content-Range", `bytes ${start}-${end - 1}/${size}`]);
  fields.push(["Content-Length", String(end - start)]);
  await connection.send(encodeResponseHead(status, fields));
  if (head.method === "HEAD") {
    record.done({ status });
    return true;
  }
  try {
    await record.send(body, start, end, (chunk) => connection.send(chunk));
  } catch (error) {
    // The head promised the whole length: all that can be said now is a close, which leaves the
    // body short for the client to see, never completed with other bytes.
    if (record.failed(error) === undefined) throw error;
    return false;
  }
  record.done({ status });
  return true;
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

/** Answers the request `head` with a small text: its head only, when the request is HEAD. */
function reply(
  connection: Connection,
  head: RequestHead,
  status: number,
  text: string,
  fields: [string, string][] = [],
): Promise<void> {
  const kept = fields.some(([name]) => name === "Connection") ? fields : [
    ...fields,
    ...keepAlive(head),
  ];
  return connection.send(textResponse(status, text, kept, head.method === "HEAD"));
}

/**
 * `Connection: keep-alive` for an HTTP/1.0 client that asked to keep the connection: without it,
 * the client takes the connection as closed after the answer (RFC 9112 §9.3).
 */
function keepAlive(head: RequestHead): [string, string][] {
  return head.version === "HTTP/1.0" && keepsAlive(head) ? [["Connection", "keep-alive"]] : [];
}

/**
 * A whole small response of the server's own (a text, a folder page), with its strict
 * Content-Security-Policy, and a text body (which HEAD leaves out, keeping its length).
 */
function textResponse(
  status: number,
  text: string,
  fields: [string, string][] = [],
  headOnly = false,
): Uint8Array {
  const body = encoder.encode(text);
  const typed = fields.some(([name]) => name === "Content-Type")
    ? fields
    : [["Content-Type", "text/plain; charset=utf-8"] as [string, string], ...fields];
  const head = encodeResponseHead(status, [
    ...typed,
    ["Content-Security-Policy", PAGE_POLICY],
    ["Content-Length", String(body.length)],
  ]);
  if (headOnly) return head;
  const whole = new Uint8Array(head.length + body.length);
  whole.set(head);
  whole.set(body, head.length);
  return whole;
}

/**
 * The answer to plain HTTP sent to the HTTPS port, in the clear, as nginx gives it: words a person
 * can read, where a TLS alert would read to curl as an answer of HTTP/0.9.
 */
export function httpsRequired(): Uint8Array {
  return textResponse(400, "This port speaks HTTPS only: use an https:// address.\n", [
    ["Connection", "close"],
  ]);
}

/** The busy text as an HTTP answer, for a client over a limit of the HTTP port. */
export function httpBusy(why: string): Uint8Array {
  return textResponse(503, `Server busy: ${why}; try again later.\n`, [
    ["Retry-After", "1"],
    ["Connection", "close"],
  ]);
}

/** The status that says what a wire error says. */
function statusOf(error: WireError): number {
  return error.code === ErrorCode.NotFound ? 404 : error.code === ErrorCode.BadRequest ? 400 : 500;
}
