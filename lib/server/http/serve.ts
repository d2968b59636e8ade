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
  encodeResponseHead,
  headEnd,
  httpDate,
  HttpError,
  keepsAlive,
  MAX_HEAD_BYTES,
  parseHttpDate,
  parseRequestHead,
  presentedToken,
  type RequestHead,
} from "./message.ts";
import { folderJson, folderPage } from "./pages.ts";
import { parseRange } from "./ranges.ts";
import { contentType } from "./types.ts";

const encoder = new TextEncoder();

/** Serves HTTP requests on `connection` until the client closes or asks to. */
export async function serveHttp(connection: Connection, service: Service): Promise<void> {
  connection.protocol = "http";
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let filled = 0;
  for (;;) {
    let end = headEnd(buffer.subarray(0, filled));
    while (end === -1) {
      if (filled === buffer.length) {
        return await refuse(connection, new HttpError(431, "the request head is too large"));
      }
      const n = await connection.read(buffer.subarray(filled));
      if (n === null) return;
      filled += n;
      end = headEnd(buffer.subarray(0, filled));
    }
    connection.busy = true;
    connection.requestDone(filled > end);
    let head;
    try {
      head = parseRequestHead(buffer.subarray(0, end));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return await refuse(connection, error);
    }
    buffer.copyWithin(0, end, filled);
    filled -= end;
    const record = service.begin(connection, `http-${head.method.toLowerCase()}`);
    const carryOn = await answer(connection, service, head, record);
    await connection.flush();
    if (!carryOn || !keepsAlive(head) || service.closing()) return;
    connection.busy = false;
  }
}

/** Answers a request head that cannot be served, and ends the connection. */
async function refuse(connection: Connection, error: HttpError): Promise<void> {
  await connection.send(
    textResponse(error.status, `${error.message}\n`, [["Connection", "close"]]),
  );
  await connection.flush();
}

/**
 * Answers one request; false when the connection cannot carry on (a body cut short, say).
 */
async function answer(
  connection: Connection,
  service: Service,
  head: RequestHead,
  record: Request,
): Promise<boolean> {
  const { method, path } = head;
  const send = (status: number, text: string, fields: [string, string][] = []) => {
    record.done({ status });
    return reply(connection, head, status, text, fields);
  };
  if (method !== "GET" && method !== "HEAD") {
    await send(405, "only GET and HEAD are served here\n", [["Allow", "GET, HEAD"]]);
    return true;
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
  return await sendFile(connection, head, opened, record);
}

/** A file's answer: 200, 206, 304 or 416, with its validators and digests. */
async function sendFile(
  connection: Connection,
  head: RequestHead,
  body: FileBody,
  record: Request,
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
  const fields: [string, string][] = [
    ["Content-Type", contentType(body.name)],
    ["Last-Modified", lastModified],
    ["ETag", etag],
    ["Accept-Ranges", "bytes"],
    ["Repr-Digest", `sha-256=:${sha256}:`],
    ["Digest", `SHA-256=${sha256}`],
  ];
  if (notModified(head, etag, mtimeMs)) {
    record.done({ status: 304 });
    await connection.send(encodeResponseHead(304, fields));
    return true;
  }
  const ifRange = head.headers.get("if-range");
  const rangeApplies = ifRange === undefined || ifRange === etag || ifRange === lastModified;
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
  return connection.send(textResponse(status, text, fields, head.method === "HEAD"));
}

/** A whole small response with a text body (which HEAD leaves out, keeping its length). */
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
  const head = encodeResponseHead(status, [...typed, ["Content-Length", String(body.length)]]);
  if (headOnly) return head;
  const whole = new Uint8Array(head.length + body.length);
  whole.set(head);
  whole.set(body, head.length);
  return whole;
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
