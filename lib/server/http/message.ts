/**
 * HTTP/1.1 messages as bytes (RFC 9112), for the little the file server needs: request heads, and
 * response heads. Functions apart from any socket; a response head reads the clock for its Date.
 */

/** Longest request head accepted (request line and headers), as common servers allow. */
export const MAX_HEAD_BYTES = 16 * 1024;

/** A header field: its name and value. */
export type Field = [string, string];

/** A parsed request head. */
export interface RequestHead {
  method: string;
  /** The request target as sent ("/a%20b?q"), for the access log. */
  target: string;
  /** The request target's path, percent-decoded; undefined when it cannot be decoded. */
  path: string | undefined;
  /** "HTTP/1.1" or "HTTP/1.0". */
  version: string;
  /** Header fields by lowercase name; repeated fields joined with ", ". */
  headers: Map<string, string>;
  /**
   * Bytes of content that follow the head: 0 when there is none (always, for GET and HEAD, whose
   * content is refused), undefined when a transfer coding hides its length.
   */
  contentLength: number | undefined;
}

/** Why a request head cannot be answered: the status to answer with, and a sentence. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/** The head's decoder: one character a byte (WHATWG's "latin1", which is windows-1252). */
const decoder = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** The byte each character of windows-1252 above U+00FF came from (0x80-0x9F: €, ‚, …). */
const WINDOWS_1252 = new Map(
  Array.from({ length: 32 }, (_, i) => [decoder.decode(Uint8Array.of(0x80 + i)), 0x80 + i]),
);

/** The bytes a part of the head was decoded from, as the client sent them. */
function headBytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => WINDOWS_1252.get(c) ?? c.charCodeAt(0));
}

/**
 * Where the head ends in `bytes` (the index after its blank line), or -1 while it is incomplete.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { headEnd } from "./message.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET");
 * equal(headEnd(bytes), 27);
 * equal(headEnd(bytes.subarray(0, 20)), -1);
 * ```
 */
export function headEnd(bytes: Uint8Array): number {
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) {
    if (bytes[at + 1] === 10) return at + 2;
    if (bytes[at + 1] === 13 && bytes[at + 2] === 10) return at + 3;
  }
  return -1;
}

/**
 * How many bytes of blank lines (CRLF, or a bare LF) `bytes` starts with: a server ignores them
 * before a request line (RFC 9112 §2.2), as some clients send one after a request's content.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { blankLines } from "./message.ts";
 * equal(blankLines(new TextEncoder().encode("\r\n\nGET / HTTP/1.1\r\n")), 3);
 * equal(blankLines(new TextEncoder().encode("\r")), 0); // its LF may be yet to come
 * ```
 */
export function blankLines(bytes: Uint8Array): number {
  let at = 0;
  for (;;) {
    if (bytes[at] === 10) at += 1;
    else if (bytes[at] === 13 && bytes[at + 1] === 10) at += 2;
    else return at;
  }
}

/**
 * Parses a request head (up to and including its blank line). Throws HttpError for what cannot be
 * served: a malformed line, or one holding a NUL or a bare CR (400), an HTTP version other than
 * 1.x (505), content whose length cannot be told for sure (400), and a GET or HEAD with content
 * (which has no meaning there: 413 for a length, 501 for a transfer coding).
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseRequestHead } from "./message.ts";
 * const head = parseRequestHead(new TextEncoder().encode(
 *   "GET /docs/caf%C3%A9.txt?x=1 HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n",
 * ));
 * equal(head.path, "/docs/café.txt");
 * equal(head.headers.get("range"), "bytes=0-9");
 * ```
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const text = headText(bytes);
  // RFC 9110 §5.5: a field value holding CR, LF or NUL is dangerous (LF already ends a line).
  if (/\0|\r(?!\n)/.test(text)) {
    throw new HttpError(400, "the request head holds a NUL or a bare CR");
  }
  const lines = text.split("\n");
  const [method, target, version, ...rest] = withoutCr(lines[0]).split(" ");
  if (!method || !target || !version || rest.length > 0 || !/^[A-Z]+$/.test(method)) {
    throw new HttpError(400, "the request line is not METHOD TARGET VERSION");
  }
  if (!/^HTTP\/1\.[01]$/.test(version)) {
    throw new HttpError(505, `${version.slice(0, 16)} is not spoken here; HTTP/1.1 is`);
  }
  const headers = new Map<string, string>();
  let hosts = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = withoutCr(lines[i]);
    if (line === "") continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
      throw new HttpError(400, "a header line is malformed");
    }
    const value = line.slice(colon + 1).trim();
    if (name === "host") hosts++;
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  // RFC 9112 §3.2: one Host field, in every HTTP/1.1 request (a proxy may read a message that
  // lacks one, or has two, otherwise than we do).
  if (hosts > 1 || (hosts === 0 && version === "HTTP/1.1")) {
    throw new HttpError(400, "an HTTP/1.1 request takes exactly one Host field");
  }
  const contentLength = contentLengthOf(headers);
  if ((method === "GET" || method === "HEAD") && contentLength !== 0) {
    const status = contentLength === undefined ? 501 : 413;
    throw new HttpError(status, "requests with a body are not taken here");
  }
  return { method, target, path: decodePath(target), version, headers, contentLength };
}

/**
 * `bytes` as text, one character a byte as {@link decoder} reads them: by hand when they are few
 * and ASCII, as a tool's request head nearly always is (in 0.3 µs rather than the decoder's 0.5;
 * past about 256 bytes the decoder is the faster).
 */
function headText(bytes: Uint8Array): string {
  if (bytes.length > ASCII_BY_HAND) return decoder.decode(bytes);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return decoder.decode(bytes);
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/** The longest head {@link headText} reads by hand: its bytes become one call's arguments. */
const ASCII_BY_HAND = 256;

/** `line` without the CR of its CRLF. */
function withoutCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/**
 * The length of a request's content (RFC 9112 §6.3): 0 without any, undefined for a transfer
 * coding. A length that is not a number, or both a length and a coding (how requests are smuggled
 * past a proxy that reads them otherwise), cannot be trusted to say where the next request starts.
 */
function contentLengthOf(headers: Map<string, string>): number | undefined {
  const length = headers.get("content-length");
  if (headers.has("transfer-encoding")) {
    if (length !== undefined) {
      throw new HttpError(400, "a request takes a Content-Length or a Transfer-Encoding, not both");
    }
    return undefined;
  }
  if (length === undefined) return 0;
  if (!/^\d{1,15}$/.test(length)) throw new HttpError(400, "the Content-Length is not a number");
  return Number(length);
}

/** The path of a request target ("/a%20b?q" → "/a b"), or undefined if it is not a valid one. */
function decodePath(target: string): string | undefined {
  // Bytes outside ASCII are UTF-8 that a client sent unencoded.
  const utf8 = /^[\x21-\x7e]*$/.test(target) ? target : new TextDecoder().decode(headBytes(target));
  let path = utf8.split("?")[0].split("#")[0];
  const absolute = /^https?:\/\/[^/]*(\/.*)?$/i.exec(path); // as sent to a proxy
  if (absolute) path = absolute[1] ?? "/";
  if (!path.startsWith("/")) return undefined;
  if (!path.includes("%")) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/** True when the connection stays open after answering `head`. */
export function keepsAlive(head: RequestHead): boolean {
  const connection = head.headers.get("connection")?.toLowerCase() ?? "";
  if (head.version === "HTTP/1.0") return /\bkeep-alive\b/.test(connection);
  return !/\bclose\b/.test(connection);
}

/**
 * The access token an `Authorization` field presents: a `Bearer` token, or the password of
 * `Basic` credentials (any user name), which is how a browser's login prompt, `wget --password`
 * or `aria2c --http-passwd` can give one. Empty when the field presents none.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { presentedToken } from "./message.ts";
 * const text = (field?: string) => new TextDecoder().decode(presentedToken(field));
 * equal(text("Bearer b2c9f0e1"), "b2c9f0e1");
 * equal(text(`Basic ${btoa("anyone:b2c9f0e1")}`), "b2c9f0e1");
 * equal(text(undefined), "");
 * ```
 */
export function presentedToken(field: string | undefined): Uint8Array {
  const [, scheme, credentials] = /^\s*(\S+)\s+(\S+)\s*$/.exec(field ?? "") ?? [];
  if (/^bearer$/i.test(scheme ?? "")) return headBytes(credentials); // the bytes as sent
  if (!/^basic$/i.test(scheme ?? "")) return new Uint8Array(0);
  let decoded: string;
  try {
    decoded = atob(credentials);
  } catch {
    return new Uint8Array(0); // not base64: no credentials at all
  }
  const bytes = Uint8Array.from(decoded, (c) => c.charCodeAt(0));
  return bytes.subarray(bytes.indexOf(0x3a) + 1); // after the first colon (all when none)
}

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  416: "Range Not Satisfiable",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/**
 * A response head: status line, the fields every answer carries (the Date, RFC 9110 §6.6.1, and
 * `X-Content-Type-Options: nosniff`, so a browser takes each answer as the type it says), the
 * given fields in order, and the blank line.
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { encodeResponseHead } from "./message.ts";
 * const head = encodeResponseHead(404, [["Content-Length", "0"]]);
 * match(
 *   new TextDecoder().decode(head),
 *   /^HTTP\/1\.1 404 Not Found\r\nDate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT\r\n/,
 * );
 * match(new TextDecoder().decode(head), /\r\nX-Content-Type-Options: nosniff\r\n/);
 * match(new TextDecoder().decode(head), /\r\nContent-Length: 0\r\n\r\n$/);
 * ```
 */
export function encodeResponseHead(status: number, fields: Field[]): Uint8Array {
  return encoder.encode(responseHead(status, fields));
}

/** The text of the response head {@link encodeResponseHead} encodes. */
export function responseHead(status: number, fields: Field[]): string {
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\nDate: ${httpNow()}\r\n` +
    "X-Content-Type-Options: nosniff\r\n";
  for (const [name, value] of fields) head += `${name}: ${value}\r\n`;
  return head + "\r\n";
}

/** The second the Date field was last made for, and the field's value then. */
let lastDate = { second: NaN, date: "" };

/** The time now as an HTTP date, made once a second rather than for every answer. */
function httpNow(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== lastDate.second) lastDate = { second, date: httpDate(second * 1000) };
  return lastDate.date;
}

/**
 * True when `mtimeMs`, a file's modification time, is a strong validator as a date (RFC 9110
 * §8.8.2.2): at least a second before now, the Date of this answer. A file changed within the
 * second of its Last-Modified may change again within it, and a date cannot tell the two apart.
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isStrongDate } from "./message.ts";
 * equal(isStrongDate(Date.now()), false);
 * equal(isStrongDate(Date.now() - 2000), true);
 * ```
 */
export function isStrongDate(mtimeMs: number): boolean {
  return Math.floor(mtimeMs / 1000) + 1 <= Math.floor(Date.now() / 1000);
}

/** A date as HTTP writes it (RFC 9110 IMF-fixdate): "Sun, 06 Nov 1994 08:49:37 GMT". */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** The time an HTTP date names, whole seconds, or undefined for one that is not a date. */
export function parseHttpDate(text: string): number | undefined {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
