/**
 * HTTP/1.1 on the server's own connections, for every tool that speaks it (curl, wget, aria2,
 * browsers, proxies): GET and HEAD of files with ranges, validators and digests, folder pages,
 * the metrics page and a health check. It runs on the same connection machinery as the other
 * dialects, so the same limits hold: connection caps, the idle and request deadlines, and the
 * per-host cap (Deno.serve keeps every connection open forever, silent or trickling, and offers
 * no way to count or close them: see docs/SECURITY.md). This module reads requests and writes
 * answers, each request in an exchange of its own; what to answer is handler.ts's to decide.
 */

import type { Connection } from "../connection.ts";
import type { Exchange, Fields } from "../exchange.ts";
import type { Service } from "../service.ts";
import { handle } from "./handler.ts";
import {
  blankLines,
  encodeResponseHead,
  type Field,
  headEnd,
  HttpError,
  keepsAlive,
  MAX_HEAD_BYTES,
  parseRequestHead,
  type RequestHead,
  responseHead,
} from "./message.ts";
import { PAGE_POLICY } from "./pages.ts";
import type { FolderBody, HttpOptions, HttpRequest, Reply } from "./reply.ts";

const encoder = new TextEncoder();

/**
 * Content of a request that is read and dropped, so that the connection carries on after the
 * answer (a 405: nothing here takes content); longer content, or content of a length only a
 * transfer coding would tell, is answered and the connection closed.
 */
const MAX_DROPPED_BYTES = 64 * 1024;

/** Serves HTTP requests on `connection` until the client closes or asks to. */
export async function serveHttp(
  connection: Connection,
  service: Service,
  options: HttpOptions = {},
): Promise<void> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let filled = 0;
  for (;;) {
    const end = await readHead(connection, buffer, filled);
    if (end === undefined) return;
    if (end instanceof HttpError) return await refuse(connection, end);
    const head = takeHead(buffer, end);
    if (head instanceof HttpError) return await refuse(connection, head);
    filled = end.filled - end.at;
    // Content only a 405 meets (GET and HEAD with content are refused above): dropped, so the
    // next request is read from where it starts, or else the connection ends after the answer.
    const left = head.contentLength === 0
      ? filled
      : await dropContent(connection, buffer, filled, head.contentLength);
    const request = { head, contentKept: left === undefined };
    filled = left ?? filled;
    const carryOn = await answer(connection, service, options, request);
    await connection.flush();
    if (!carryOn || !keepsAlive(head) || service.closing()) return;
  }
}

/**
 * The request head that ends at `end.at` in `buffer`, parsed, with what follows it moved to the
 * start of `buffer`; an HttpError for a head that cannot be answered.
 */
function takeHead(buffer: Uint8Array, end: HeadEnd): RequestHead | HttpError {
  let head;
  try {
    head = parseRequestHead(buffer.subarray(0, end.at));
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    return error;
  }
  buffer.copyWithin(0, end.at, end.filled);
  return head;
}

/**
 * Answers `request` in an exchange of its own, the one way this port writes an answer to a
 * request: the reply handle() decides on is sent (HEAD gets the head alone), then the exchange
 * ends as the reply says. False when the connection cannot carry on.
 */
async function answer(
  connection: Connection,
  service: Service,
  options: HttpOptions,
  request: HttpRequest,
): Promise<boolean> {
  const { head } = request;
  using exchange = connection.begin(`http-${head.method.toLowerCase()}`);
  const fields = accessFields(head);
  try {
    const reply = await handle(request, service, connection, options);
    fields.status = reply.status;
    const body = reply.body;
    const part = typeof body === "object" && "file" in body ? body : undefined;
    using _file = part?.file;
    await sendHead(connection, reply, head, fields);
    if (head.method !== "HEAD") {
      if (part) await exchange.send(part.file, part.start, part.end, (c) => connection.send(c));
      else if (typeof body === "object" && "page" in body) {
        await sendPage(connection, body, chunked(head), fields);
      }
    }
    end(exchange, reply, fields);
    return !reply.close && !closesAfter(reply, head);
  } catch (error) {
    // Whatever cut the answer short (a file that changed as it was sent, the peer gone): its head
    // may have promised the whole length, or a chunked page its end, so all that can be said now
    // is a close, which leaves the body short for the client to see, never completed with other
    // bytes.
    exchange.failed(error, fields);
    return false;
  }
}

/**
 * Sends a folder's page, each part as it is made: as a chunk of its own when `chunked` (then the
 * last chunk), else as it is, the close then ending the body. `fields` count the entries and
 * bytes sent.
 */
async function sendPage(
  connection: Connection,
  { page }: FolderBody,
  chunked: boolean,
  fields: Fields,
): Promise<void> {
  fields.entries = 0;
  fields.bytes = 0;
  for await (const { data, entries } of page) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    // An empty chunk would end the body.
    if (bytes.length === 0) continue;
    await connection.send(chunked ? chunkOf(bytes) : bytes);
    await connection.flush();
    fields.entries += entries;
    fields.bytes += bytes.length;
  }
  if (chunked) await connection.send(LAST_CHUNK);
}

/** `bytes` as one chunk of a chunked body (RFC 9112 §7.1). */
function chunkOf(bytes: Uint8Array): Uint8Array {
  const size = encoder.encode(`${bytes.length.toString(16)}\r\n`);
  const chunk = new Uint8Array(size.length + bytes.length + 2);
  chunk.set(size);
  chunk.set(bytes, size.length);
  chunk.set(CRLF, size.length + bytes.length);
  return chunk;
}

const CRLF = encoder.encode("\r\n");
const LAST_CHUNK = encoder.encode("0\r\n\r\n");

/** True when an answer of unknown length goes chunked: to an HTTP/1.1 request (RFC 9112 §6.1). */
function chunked(head: RequestHead | undefined): boolean {
  return head?.version === "HTTP/1.1";
}

/**
 * True when the connection must end after `reply` to make its body's end known: a page (of no
 * length known beforehand) to a client that cannot take it chunked (HTTP/1.0).
 */
function closesAfter(reply: Reply, head: RequestHead | undefined): boolean {
  return typeof reply.body === "object" && "page" in reply.body && !chunked(head);
}

/**
 * Ends `exchange` as `reply`, now sent, says: refused, failed, or answered, with `fields`; its log
 * line says who asked for what, as an access log does.
 */
function end(exchange: Exchange, reply: Reply, fields: Fields): void {
  if (reply.name !== undefined) fields.name = reply.name;
  if (reply.refused) exchange.refused(reply.refused, fields);
  else if (reply.failed) exchange.failed(reply.failed, fields);
  else exchange.answered(fields);
}

/** What an access log says of a request: what was asked for, and by what. */
function accessFields(head: RequestHead): Fields {
  return {
    method: head.method,
    target: head.target,
    version: head.version,
    referer: head.headers.get("referer"),
    agent: head.headers.get("user-agent"),
  };
}

/**
 * Sends `reply`'s head, with the fields every answer carries, and its text when it has one (see
 * {@link encodeReply}), counted in the log's fields, `logged`. The head of a file's answer, or of one without a body, is written
 * straight into the connection's buffer (a 4 KiB file's answer makes no bytes of its own).
 */
async function sendHead(
  connection: Connection,
  reply: Reply,
  head: RequestHead,
  logged: Fields,
): Promise<void> {
  const { status, body } = reply;
  if (typeof body === "string") {
    const bytes = encoder.encode(body);
    await connection.send(encodeReply({ ...reply, body }, head, bytes));
    // A text's bytes counted once sent, as a file's are as they leave (a page's, its parts').
    if (head.method !== "HEAD") logged.bytes = bytes.length;
    return;
  }
  const fields = reply.fields.concat(connectionFields(reply, head));
  if (body && "page" in body) {
    fields.push(["Content-Security-Policy", PAGE_POLICY]);
    if (chunked(head)) fields.push(["Transfer-Encoding", "chunked"]);
  } else if (body) fields.push(["Content-Length", `${body.end - body.start}`]);
  await connection.sendText(responseHead(status, fields));
}

/**
 * The bytes of `reply`, a text of the server's own: its head, with the fields every answer
 * carries, and its text unless `head`, the request it answers, is HEAD (a HEAD's answer keeps the
 * length); `bytes`, when given, are the text encoded already. The text goes with its strict
 * Content-Security-Policy. Without a request (an answer before one could be read), the connection
 * ends after it.
 */
function encodeReply(
  reply: Reply & { body: string },
  head?: RequestHead,
  bytes = encoder.encode(reply.body),
): Uint8Array {
  const { status } = reply;
  const fields = reply.fields.concat(connectionFields(reply, head));
  const typed = fields.some(([name]) => name === "Content-Type")
    ? fields
    : [["Content-Type", "text/plain; charset=utf-8"] as Field, ...fields];
  const encoded = encodeResponseHead(status, [
    ...typed,
    ["Content-Security-Policy", PAGE_POLICY],
    ["Content-Length", String(bytes.length)],
  ]);
  if (head?.method === "HEAD") return encoded;
  const whole = new Uint8Array(encoded.length + bytes.length);
  whole.set(encoded);
  whole.set(bytes, encoded.length);
  return whole;
}

/**
 * `Connection: close` when the connection ends after `reply`; else, for an HTTP/1.0 client that
 * asked to keep it, `Connection: keep-alive`: without it, the client takes the connection as
 * closed after the answer (RFC 9112 §9.3).
 */
function connectionFields(reply: Reply, head: RequestHead | undefined): readonly Field[] {
  if (reply.close || head === undefined || closesAfter(reply, head)) return CLOSE;
  return head.version === "HTTP/1.0" && keepsAlive(head) ? KEEP_ALIVE : NONE;
}

const CLOSE: readonly Field[] = [["Connection", "close"]];
const KEEP_ALIVE: readonly Field[] = [["Connection", "keep-alive"]];
const NONE: readonly Field[] = [];

/** Where a request head ends in the buffer, and how many bytes the buffer holds. */
interface HeadEnd {
  at: number;
  filled: number;
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
): Promise<HeadEnd | HttpError | undefined> {
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
    encodeReply({ status: error.status, fields: [], body: `${error.message}\n` }),
  );
  await connection.flush();
}

/**
 * The answer to plain HTTP sent to the HTTPS port, in the clear, as nginx gives it: words a person
 * can read, where a TLS alert would read to curl as an answer of HTTP/0.9.
 */
export function httpsRequired(): Uint8Array {
  return encodeReply({
    status: 400,
    fields: [],
    body: "This port speaks HTTPS only: use an https:// address.\n",
  });
}

/** The busy text as an HTTP answer, for a client over a limit of the HTTP port. */
export function httpBusy(why: string): Uint8Array {
  return encodeReply({
    status: 503,
    fields: [["Retry-After", "1"]],
    body: `Server busy: ${why}; try again later.\n`,
  });
}
